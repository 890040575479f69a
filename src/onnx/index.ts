/**
 * `tdb-js/onnx`: the ONNX layer. Protobuf decoding and encoding (with external data), the
 * {@link OnnxGraph} IR (producers, consumers, scopes), graph surgery (taps, edit points, `If`
 * inlining), un-fusing of onnxruntime's `com.microsoft` ops ({@link unfuseContribOps}),
 * validation and a graph builder. Architecture-free: nothing here knows GPT-2.
 *
 * @example
 * ```ts
 * import { decodeModel, OnnxGraph, exposeValue, encodeModel } from "tdb-js/onnx";
 * const g = OnnxGraph.fromModel(decodeModel(bytes));
 * exposeValue(g, "/transformer/h.0/mlp/act/Mul_1_output_0", "mlp0");
 * const patched = encodeModel(g.model);
 * ```
 *
 * @module
 */
export * from "./tensor.js";
export { decodeModel, encodeModel } from "./proto.js";
export { encodeMessage, encodedSize } from "./encode.js";
export { externalizeData, resolveExternalData, forEachTensor, type ExternalDataLoader, type ExternalizeOptions, type Externalized } from "./external.js";
export { OnnxGraph } from "./graph.js";
export { cloneStructure } from "./clone.js";
export {
  addTapOutput,
  exposeValue,
  insertEditPoint,
  inlineIfBranch,
  removeUnusedInputs,
  removeUnusedInitializers,
  pruneDeadNodes,
  tensorValueInfo,
  type TapOptions,
  type EditPointOptions,
  type EditPoint,
} from "./surgery.js";
export { GraphEmitter, axesAsInput, AXES_INPUT_SINCE, INT64_MAX, type EmitPlacement } from "./emit.js";
export { validateGraph, graphProblems, type ValidateOptions } from "./validate.js";
export { GraphBuilder, attr, makeAttribute, valueInfo, type Dim, type Attr, type AttrInput, type NodeOptions, type GraphBuilderOptions } from "./builder.js";
export { upgradeToOpset13, type OpsetUpgrade } from "./opset-upgrade.js";
export { unfuseContribOps, UNFUSABLE_OPS, type UnfuseOptions, type UnfuseReport, type UnfusedNode, type UnsupportedNode } from "./unfuse/index.js";
