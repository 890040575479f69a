/**
 * Upgrades an opset 11/12 graph to ai.onnx opset 13 in place, for the ops whose form changed
 * there and that exported transformers use: `Split` (`split` attribute -> input), `Squeeze` /
 * `Unsqueeze` / `ReduceSum` (`axes` attribute -> input), `Dropout` (`ratio` attribute, opset 11,
 * dropped: inference), and `Softmax` / `LogSoftmax` (opset 13 normalises over one axis instead of
 * the flattened trailing axes: the same function when the axis is the last one). Older `torch.onnx`
 * (1.5/1.6) wrote opset 11; gradients (`autodiff/`) and tdb-js's own emitted nodes (e.g.
 * `GatherND(batch_dims)`) need 13. A graph with an op this cannot upgrade safely, or with
 * subgraphs, is left as it is, and the result says why.
 *
 * @module
 */
import type { AttributeProto, NodeProto } from "onnx-buf";
import type { OnnxGraph } from "./graph.js";
import { tensorToProto } from "./tensor.js";

/** Result of {@link upgradeToOpset13}. */
export type OpsetUpgrade =
  | { upgraded: true; from: number; rewritten: number }
  | { upgraded: false; from: number; reason: string };

/** Ops whose opset 13 form takes `axes` as an input. */
const AXES_TO_INPUT = new Set(["Squeeze", "Unsqueeze", "ReduceSum"]);

/** Ops that kept their form from opset 11 to 13 but whose `axis` semantics changed (softmax family). */
const SOFTMAX = new Set(["Softmax", "LogSoftmax", "Hardmax"]);

function ints(a: AttributeProto | undefined): bigint[] | undefined {
  return a ? a.ints.map((x) => BigInt(x)) : undefined;
}

/**
 * Upgrades `g` (opset 11 or 12) to opset 13 in place (see the module comment). `softmaxRank` is
 * the rank of softmax inputs when known (4: attention scores), so that a non-negative last axis is
 * recognised; `axis = -1` is always accepted. Graphs already at 13 or later, or older than 11,
 * are not changed.
 *
 * @example
 * ```ts
 * const r = upgradeToOpset13(OnnxGraph.fromModel(model), 4);
 * if (!r.upgraded) console.log(r.reason);
 * ```
 */
export function upgradeToOpset13(g: OnnxGraph, softmaxRank?: number): OpsetUpgrade {
  const from = g.opsetVersion("");
  if (from >= 13) return { upgraded: false, from, reason: `already opset ${from}` };
  if (from < 11) return { upgraded: false, from, reason: `opset ${from} is older than 11` };
  if (g.nodes.some((n) => n.attribute.some((a) => a.g || a.graphs.length > 0))) return { upgraded: false, from, reason: "the graph has subgraphs" };
  for (const n of g.nodes) {
    if ((n.domain ?? "") !== "" && n.domain !== "ai.onnx") continue;
    if (SOFTMAX.has(n.opType)) {
      const axis = Number(n.attribute.find((a) => a.name === "axis")?.i ?? 1n);
      if (axis !== -1 && !(softmaxRank !== undefined && axis === softmaxRank - 1)) {
        return { upgraded: false, from, reason: `${n.opType} ${n.name} has axis ${axis}: opset 13 would normalise over that axis only` };
      }
    }
  }
  let rewritten = 0;
  const constInput = (n: NodeProto, what: string, data: bigint[]): string => {
    const name = g.uniqueName(`${n.name || n.opType}_${what}`);
    g.addInitializer(tensorToProto(name, BigInt64Array.from(data), [data.length]));
    return name;
  };
  for (const n of g.nodes) {
    if ((n.domain ?? "") !== "" && n.domain !== "ai.onnx") continue;
    if (n.opType === "Split") {
      const split = ints(n.attribute.find((a) => a.name === "split"));
      if (split) {
        n.input = [n.input[0]!, constInput(n, "split", split)];
        n.attribute = n.attribute.filter((a) => a.name !== "split");
        rewritten++;
      }
    } else if (AXES_TO_INPUT.has(n.opType)) {
      const axes = ints(n.attribute.find((a) => a.name === "axes"));
      if (axes) {
        n.input = [n.input[0]!, constInput(n, "axes", axes)];
        n.attribute = n.attribute.filter((a) => a.name !== "axes");
        rewritten++;
      }
    } else if (n.opType === "Dropout" && n.attribute.some((a) => a.name === "ratio")) {
      n.attribute = n.attribute.filter((a) => a.name !== "ratio");
      rewritten++;
    }
  }
  const o = g.model.opsetImport.find((x) => (x.domain ?? "") === "" || x.domain === "ai.onnx")!;
  o.version = 13n;
  if (g.model.irVersion < 7n) g.model.irVersion = 7n;
  g.invalidate();
  return { upgraded: true, from, rewritten };
}
