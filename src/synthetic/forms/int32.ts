/**
 * The int32-input form of a generated GPT-2 graph: `input_ids`, `attention_mask` (and
 * `position_ids` when present) declared int32, as onnxruntime-genai's model builder declares
 * them. Readers that take int32 as they are (`Shape`, `Gather` indices, `Reshape`, `Unsqueeze`,
 * `Cast`, ...) read the input directly; any other reader gets a `Cast` to int64 in front.
 *
 * @module
 */
import { TensorProto_DataType, type ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { cloneStructure } from "../../onnx/clone.js";
import { GraphEmitter } from "../../onnx/emit.js";
import { OnnxGraph } from "../../onnx/graph.js";

/** Token inputs the form re-declares as int32. */
export const INT32_TOKEN_INPUTS = ["input_ids", "attention_mask", "position_ids"] as const;

/** Readers (op type -> input slots) that accept an int32 tensor where the export fed int64. */
const TAKES_INT32: Record<string, readonly number[]> = {
  Shape: [0],
  Size: [0],
  Gather: [1],
  Reshape: [0],
  Unsqueeze: [0],
  Squeeze: [0],
  Cast: [0],
};

/**
 * `model` with its token inputs declared int32 (see the module comment). A graph with an `If`
 * (the merged decoder) is refused: its branches read the inputs too; convert the decoder or
 * with-past form instead.
 *
 * @example
 * ```ts
 * const m = int32Inputs(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)));
 * ```
 */
export function int32Inputs(model: ModelProto): ModelProto {
  const g = OnnxGraph.fromModel(cloneStructure(model));
  if (g.nodes.some((n) => n.opType === "If")) {
    throw new TdbError("E_BAD_INPUT", "int32Inputs takes a graph without If (the decoder or with-past form)", { value: "If", allowed: ["decoder", "with-past"] });
  }
  for (const name of INT32_TOKEN_INPUTS) {
    const info = g.graph.input.find((v) => v.name === name);
    if (!info) continue;
    if (info.type?.value.case !== "tensorType") continue;
    info.type.value.value.elemType = TensorProto_DataType.INT32;
    let cast: string | undefined;
    for (const n of g.consumers(name)) {
      const ok = TAKES_INT32[n.opType] ?? [];
      n.input = n.input.map((v, slot) => {
        if (v !== name || ok.includes(slot)) return v;
        if (!cast) {
          const e = new GraphEmitter(g, `/model/${name}`);
          e.placement = { before: g.nodes[0]! };
          cast = e.op("Cast", [name], { to: TensorProto_DataType.INT64 }, "Cast");
        }
        return cast;
      });
    }
    g.invalidate();
  }
  return g.model;
}
