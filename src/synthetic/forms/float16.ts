/**
 * The float16 form of a generated GPT-2 graph, as a float16 conversion of the float32 export
 * writes it (onnxruntime's / onnxconverter's `convert_float_to_float16` with `keep_io_types`
 * false): float initializers and constants stored as float16 (values clipped to float16's
 * finite range, so the mask value -3.4e38 becomes -65504), `Cast(to=FLOAT)` casting to
 * FLOAT16, and float inputs and outputs (logits, past and present keys/values) declared float16.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { ModelProtoSchema, TensorProto_DataType, type AttributeProto, type ModelProto, type TensorProto, type TypeProto } from "onnx-buf";
import { floatsToHalfs } from "../../onnx/half.js";
import { tensorFromProto, tensorToProto } from "../../onnx/tensor.js";

/** Largest finite float16. */
const F16_MAX = 65504;

function toHalf(t: TensorProto): TensorProto {
  if (t.dataType !== TensorProto_DataType.FLOAT) return t;
  const h = tensorFromProto(t);
  const clipped = Float32Array.from(h.data as Float32Array, (v) => (Number.isFinite(v) ? Math.max(-F16_MAX, Math.min(F16_MAX, v)) : v));
  return tensorToProto(t.name, floatsToHalfs(clipped), h.dims, "float16");
}

function retype(t: TypeProto | undefined): void {
  if (t?.value.case === "tensorType" && t.value.value.elemType === TensorProto_DataType.FLOAT) t.value.value.elemType = TensorProto_DataType.FLOAT16;
}

function convertAttribute(a: AttributeProto, opType: string): void {
  if (a.t) a.t = toHalf(a.t);
  if (opType === "Cast" && a.name === "to" && Number(a.i) === TensorProto_DataType.FLOAT) a.i = BigInt(TensorProto_DataType.FLOAT16);
}

/**
 * `model` (any variant) converted to float16 (see the module comment); `model` is not changed.
 *
 * @example
 * ```ts
 * const m = float16Graph(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)));
 * ```
 */
export function float16Graph(model: ModelProto): ModelProto {
  const m = clone(ModelProtoSchema, model);
  const g = m.graph!;
  const visit = (graph: NonNullable<ModelProto["graph"]>): void => {
    graph.initializer = graph.initializer.map(toHalf);
    for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) retype(v.type);
    for (const n of graph.node) {
      for (const a of n.attribute) {
        convertAttribute(a, n.opType);
        if (a.g) visit(a.g);
        for (const sg of a.graphs) visit(sg);
      }
    }
  };
  visit(g);
  return m;
}
