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
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorToProto } from "../onnx/tensor.js";

/** Adds the side chain computing `sqrt(mean((x - mean(x))^2) + eps)` over the last axis; returns its output name. */
export function addLnScale(g: OnnxGraph, x: string, rank: number, eps: number, tag: string): string {
  const axis = BigInt(rank - 1);
  const p = `/tdb/${tag}/scale`;
  const epsName = g.uniqueName(`${p}/eps`);
  g.addInitializer(tensorToProto(epsName, new Float32Array([eps]), []));
  const useAxesInput = g.opsetVersion() >= 18;
  let axesName = "";
  if (useAxesInput) {
    axesName = g.uniqueName(`${p}/axes`);
    g.addInitializer(tensorToProto(axesName, new BigInt64Array([axis]), [1]));
  }
  const node = (opType: string, input: string[], base: string, reduce = false) => {
    const output = g.uniqueName(`${p}/${base}_output_0`);
    const attribute = [];
    if (reduce) {
      if (!useAxesInput) attribute.push(create(AttributeProtoSchema, { name: "axes", type: AttributeProto_AttributeType.INTS, ints: [axis] }));
      attribute.push(create(AttributeProtoSchema, { name: "keepdims", type: AttributeProto_AttributeType.INT, i: 1n }));
    }
    g.addNode(create(NodeProtoSchema, { opType, input: reduce && useAxesInput ? [...input, axesName] : input, output: [output], name: g.uniqueName(`${p}/${base}`), attribute }));
    return output;
  };
  const mean = node("ReduceMean", [x], "ReduceMean", true);
  const neg = node("Neg", [mean], "Neg");
  const d = node("Add", [x, neg], "Center");
  const sq = node("Mul", [d, d], "Square");
  const v = node("ReduceMean", [sq], "Var", true);
  const ve = node("Add", [v, epsName], "AddEps");
  return node("Sqrt", [ve], "Sqrt");
}
