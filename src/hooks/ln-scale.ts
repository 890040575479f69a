/**
 * `ln*.hook_scale`: the LayerNorm scale sqrt(var(x) + eps).
 *
 * In the export this is the `Sqrt` inside the decomposed LayerNorm. Exposing it would give that
 * Sqrt a second consumer and stop onnxruntime from fusing the LayerNorm (fusions require
 * single-consumer interiors). So the scale is recomputed from the LayerNorm's input by a short
 * side chain spelled differently from the original (`Add(x, Neg(mean))`, `Mul(d, d)`), so that
 * common-subexpression elimination cannot merge it back into the LayerNorm. The values are the
 * same: x + (-m) == x - m and d * d == d ** 2 exactly in IEEE arithmetic. The means reduce over
 * the last axis written as a positive index (`rank - 1`), which CSE also sees as different
 * from the export's `axes=[-1]`.
 *
 * @module
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { GraphEmitter } from "../onnx/emit.js";
import type { OnnxGraph } from "../onnx/graph.js";

/** Adds the side chain computing `sqrt(mean((x - mean(x))^2) + eps)` over the last axis; returns its output name. */
export function addLnScale(g: OnnxGraph, x: string, rank: number, eps: number, tag: string): string {
  const e = new GraphEmitter(g, `/tdb/${tag}/scale`);
  const axes = [rank - 1];
  const mean = e.reduce("ReduceMean", x, axes, true, {}, "ReduceMean");
  const d = e.op("Add", [x, e.op("Neg", [mean], {}, "Neg")], {}, "Center");
  const v = e.reduce("ReduceMean", e.op("Mul", [d, d], {}, "Square"), axes, true, {}, "Var");
  return e.op("Sqrt", [e.op("Add", [v, e.scalar(eps, DT.FLOAT)], {}, "AddEps")], {}, "Sqrt");
}
