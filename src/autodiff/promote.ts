/**
 * Float32 -> float64 promotion of a model, for computing precise finite-difference references
 * of float32 graphs (float32 values are exact in float64, so the promoted graph computes the
 * same function with less rounding).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { TensorProto_DataType as DT, ValueInfoProtoSchema, type ModelProto, type NodeProto, type TensorProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { makeAttribute } from "../onnx/builder.js";
import { cloneStructure } from "../onnx/clone.js";
import { tensorFromProto, tensorToProto, type HostTensor } from "../onnx/tensor.js";

function promoteTensor(t: TensorProto): TensorProto {
  if (t.dataType !== DT.FLOAT) return t;
  const h = tensorFromProto(t);
  return tensorToProto(t.name, Float64Array.from(h.data as Float32Array), h.dims, "float64");
}

function promoteNode(n: NodeProto): void {
  if ((n.domain ?? "") !== "" && n.domain !== "ai.onnx") return;
  n.attribute = n.attribute.map((a) => {
    if (n.opType === "Cast" && a.name === "to" && Number(a.i) === DT.FLOAT) return makeAttribute("to", DT.DOUBLE);
    if (n.opType === "Constant" && a.name === "value_float") return makeAttribute("value", tensorToProto("", new Float64Array([a.f]), [], "float64"));
    if (n.opType === "Constant" && a.name === "value_floats") return makeAttribute("value", tensorToProto("", Float64Array.from(a.floats), [a.floats.length], "float64"));
    if (a.t && (n.opType === "Constant" || n.opType === "ConstantOfShape")) return makeAttribute(a.name, promoteTensor(a.t));
    return a;
  });
  if (n.opType === "ConstantOfShape" && !n.attribute.some((a) => a.name === "value")) {
    n.attribute.push(makeAttribute("value", tensorToProto("", new Float64Array([0]), [1], "float64")));
  }
}

/**
 * A copy of `model` computing in float64 where it computed in float32: float32 inputs,
 * initializers, constants and casts become float64; value_info and output types are dropped
 * (onnxruntime infers them). Subgraphs are not supported (throws `E_UNSUPPORTED_GRAPH`).
 */
export function promoteToDouble(model: ModelProto): ModelProto {
  const m = cloneStructure(model);
  const g = m.graph!;
  for (const n of g.node) {
    if (n.attribute.some((a) => a.g || a.graphs.length > 0)) {
      throw new TdbError("E_UNSUPPORTED_GRAPH", `cannot promote ${n.opType} node ${n.name}: it holds a subgraph`, { value: n.name });
    }
    promoteNode(n);
  }
  g.initializer = g.initializer.map(promoteTensor);
  for (const v of g.input) {
    const t = v.type?.value;
    if (t?.case === "tensorType" && t.value.elemType === DT.FLOAT) t.value.elemType = DT.DOUBLE;
  }
  g.output = g.output.map((v) => create(ValueInfoProtoSchema, { name: v.name }));
  g.valueInfo = [];
  return m;
}

/** A float64 copy of a float32 tensor; other tensors are returned as they are. */
export function promoteFeed(t: HostTensor): HostTensor {
  return t.type === "float32" ? { type: "float64", data: Float64Array.from(t.data as Float32Array), dims: [...t.dims] } : t;
}
