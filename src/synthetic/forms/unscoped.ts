/**
 * The unscoped form of a generated GPT-2 graph: node and value names as `torch.onnx` wrote them
 * before 1.13, with no module scopes. Nodes are `<Op>_<n>` (`Gather_7`, `Add_12`); intermediate
 * values are plain numbers (`123`), constants `onnx::<ConsumerOp>_<n>` (`onnx::Reshape_45`). The
 * graph's inputs and outputs keep their names, and so do the parameter initializers (the
 * unembedding already is `onnx::MatMul_<n>`) unless {@link UnscopedOptions.numericInitializers}
 * asks for numbers there too, as some old exports wrote them. The function is unchanged; only
 * names differ.
 *
 * @module
 */
import type { ModelProto, NodeProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { cloneStructure } from "../../onnx/clone.js";
import { OnnxGraph } from "../../onnx/graph.js";

/** Options of {@link unscopedNames}. */
export interface UnscopedOptions {
  /** Rename every initializer to a number as well (`"17"`; the unembedding included). Default false. */
  numericInitializers?: boolean;
  /** First number handed out. Default 1 (numbers then count up in graph order). */
  start?: number;
}

/**
 * `model` with the names of an export without module scopes (see the module comment). The
 * initializer tensors are shared with `model`, not copied. A graph with an `If` (the merged
 * decoder) is refused: its branches read outer values by name; convert the decoder form.
 *
 * @example
 * ```ts
 * const old = unscopedNames(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)));
 * old.graph!.node[0]!.name; // "Shape_1"
 * ```
 */
export function unscopedNames(model: ModelProto, opts: UnscopedOptions = {}): ModelProto {
  const out = cloneStructure(model);
  const g = OnnxGraph.fromModel(out);
  if (g.nodes.some((n) => n.opType === "If")) {
    throw new TdbError("E_BAD_INPUT", "unscopedNames takes a graph without If (the decoder form)", { value: "If", allowed: ["decoder"] });
  }
  const start = opts.start ?? 1;
  if (!Number.isInteger(start) || start < 0) throw new TdbError("E_BAD_OPTION", "start must be a non-negative integer", { value: start, allowed: ">= 0" });
  let next = start;
  const keep = new Set([...g.inputNames(), ...g.outputNames()]);
  const rename = new Map<string, string>();
  if (opts.numericInitializers) {
    out.graph!.initializer = out.graph!.initializer.map((t) => {
      const name = String(next++);
      rename.set(t.name, name);
      return { ...t, name };
    });
  }
  const firstConsumer = (v: string): NodeProto | undefined => g.consumers(v)[0];
  const nodeNames: string[] = [];
  for (const n of g.nodes) {
    let id: number | undefined;
    for (const o of n.output) {
      if (!o || keep.has(o)) continue;
      const k = next++;
      id ??= k;
      rename.set(o, n.opType === "Constant" ? `onnx::${firstConsumer(o)?.opType ?? "Constant"}_${k}` : String(k));
    }
    nodeNames.push(`${n.opType}_${id ?? next++}`);
  }
  const r = (v: string) => rename.get(v) ?? v;
  g.nodes.forEach((n, i) => {
    n.name = nodeNames[i]!;
    n.input = n.input.map(r);
    n.output = n.output.map(r);
  });
  out.graph!.input = out.graph!.input.map((v) => ({ ...v, name: r(v.name) }));
  out.graph!.valueInfo = out.graph!.valueInfo.map((v) => ({ ...v, name: r(v.name) }));
  g.invalidate();
  return out;
}
