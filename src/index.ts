/**
 * tdb-js: look inside transformers.js language models and explain what they do.
 *
 * @module
 */
export { TdbError, type TdbErrorCode, type TdbErrorDetails } from "./errors.js";
export * from "./onnx/tensor.js";
export { decodeModel, encodeModel } from "./onnx/proto.js";
export { encodeMessage, encodedSize } from "./onnx/encode.js";
export { externalizeData, resolveExternalData, forEachTensor, type ExternalDataLoader, type ExternalizeOptions, type Externalized } from "./onnx/external.js";
export { OnnxGraph } from "./onnx/graph.js";
export {
  addTapOutput,
  insertEditPoint,
  inlineIfBranch,
  removeUnusedInputs,
  removeUnusedInitializers,
  pruneDeadNodes,
  tensorValueInfo,
  type TapOptions,
  type EditPointOptions,
  type EditPoint,
} from "./onnx/surgery.js";
export { validateGraph, graphProblems, type ValidateOptions } from "./onnx/validate.js";
