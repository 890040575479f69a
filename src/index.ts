/**
 * tdb-js: look inside transformers.js language models and explain what they do.
 *
 * @module
 */
export { TdbError, type TdbErrorCode, type TdbErrorDetails } from "./errors.js";
export * from "./onnx/tensor.js";
