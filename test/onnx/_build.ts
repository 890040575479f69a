/**
 * Tiny graph-building helpers for the ONNX layer's tests (independent of src/onnx/builder.ts).
 */
import { create } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { tensorValueInfo } from "../../src/onnx/surgery.js";
import { tensorToProto, type ElemType } from "../../src/onnx/tensor.js";

export { tensorValueInfo as vi };

/** A float32 initializer. */
export function f32(name: string, values: number[] | Float32Array, dims: number[] = [values.length]): TensorProto {
  return tensorToProto(name, values instanceof Float32Array ? values : new Float32Array(values), dims);
}

/** An int64 initializer. */
export function i64(name: string, values: (number | bigint)[], dims: number[] = [values.length]): TensorProto {
  return tensorToProto(name, new BigInt64Array(values.map((v) => BigInt(v))), dims);
}

/** Attribute helpers. */
export const attr = {
  int: (name: string, i: number | bigint): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) }),
  ints: (name: string, ints: (number | bigint)[]): AttributeProto =>
    create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: ints.map((v) => BigInt(v)) }),
  float: (name: string, f: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f }),
  graph: (name: string, g: GraphProto): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g }),
  tensor: (name: string, t: TensorProto): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.TENSOR, t }),
};

let counter = 0;

/** A node; its name defaults to `/test/<op>_<n>`. */
export function node(opType: string, input: string[], output: string[], opts: { name?: string; attribute?: AttributeProto[] } = {}): NodeProto {
  return create(NodeProtoSchema, { opType, input, output, name: opts.name ?? `/test/${opType}_${counter++}`, attribute: opts.attribute ?? [] });
}

/** A graph. */
export function graph(
  nodes: NodeProto[],
  inputs: ValueInfoProto[],
  outputs: ValueInfoProto[],
  initializers: TensorProto[] = [],
  name = "g",
): GraphProto {
  return create(GraphProtoSchema, { name, node: nodes, input: inputs, output: outputs, initializer: initializers });
}

/** A model around a graph (IR 8, default opset 13 unless given). */
export function model(g: GraphProto, opset = 13): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: "tdb-test",
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(opset) })],
    graph: g,
  });
}

/** A float tensor value info with a symbolic or fixed shape. */
export function fvi(name: string, shape?: (number | string)[], type: ElemType = "float32"): ValueInfoProto {
  return tensorValueInfo(name, type, shape);
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randn(n: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 0x1_0000_0000) * 2 - 1;
  }
  return out;
}

/**
 * x [B,S,4] -> MatMul W1 [4,4] -> Relu -> MatMul W2 [4,3] -> y [B,S,3], with named values
 * `h` (after the first MatMul) and `r` (after Relu).
 */
export function mlpModel(): ModelProto {
  return model(
    graph(
      [node("MatMul", ["x", "W1"], ["h"], { name: "/mlp/fc/MatMul" }), node("Relu", ["h"], ["r"], { name: "/mlp/act/Relu" }), node("MatMul", ["r", "W2"], ["y"], { name: "/mlp/proj/MatMul" })],
      [fvi("x", ["batch", "seq", 4])],
      [fvi("y", ["batch", "seq", 3])],
      [f32("W1", randn(16, 3), [4, 4]), f32("W2", randn(12, 4), [4, 3])],
    ),
  );
}
