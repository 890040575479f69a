/**
 * Cheap copies of a model for surgery: the graph structure (nodes, inputs, outputs) is copied so
 * that it can be rewired, while initializer tensors (the weights) are shared, not copied.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { NodeProtoSchema, ValueInfoProtoSchema, type ModelProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";

/**
 * A copy of `model` whose main-graph nodes and value lists can be mutated freely; initializers
 * (and their bytes) are shared with the original, which must therefore not be mutated.
 */
export function cloneStructure(model: ModelProto): ModelProto {
  const g = model.graph;
  if (!g) throw new TdbError("E_ONNX_INVALID", "model has no graph");
  return {
    ...model,
    graph: {
      ...g,
      node: g.node.map((n) => clone(NodeProtoSchema, n)),
      initializer: [...g.initializer],
      input: g.input.map((v) => clone(ValueInfoProtoSchema, v)),
      output: g.output.map((v) => clone(ValueInfoProtoSchema, v)),
      valueInfo: [...g.valueInfo],
    },
  };
}
