/**
 * ONNX model bytes <-> `ModelProto`.
 *
 * Decoding keeps tensor bytes as views into the input (protobuf-es returns `subarray`s for
 * `bytes` fields), so a 500 MB model is not copied; keep the input alive and unmodified while
 * the model is in use. Encoding computes the exact size first and writes into one buffer (see
 * `encode.ts`), byte-identical to protobuf-es `toBinary`.
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { encodeMessage } from "./encode.js";

/**
 * Decodes ONNX model bytes. Tensor `rawData` are views into `bytes` (no copy).
 * Throws `E_ONNX_DECODE` for bytes that are not a protobuf message, or that decode to something
 * without a graph or an IR version (random bytes often parse as an empty message).
 *
 * @example
 * ```ts
 * const model = decodeModel(await readFile("model.onnx"));
 * console.log(model.graph?.node.length);
 * ```
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw new TdbError("E_ONNX_DECODE", `cannot decode ${bytes.byteLength} bytes as an ONNX model: ${e instanceof Error ? e.message : String(e)}`, {
      value: bytes.byteLength,
      allowed: "a serialized ONNX ModelProto (.onnx file)",
      cause: e,
    });
  }
  const g = model.graph;
  const empty = !g || (g.node.length === 0 && g.input.length === 0 && g.output.length === 0 && g.initializer.length === 0);
  if (empty || model.irVersion === 0n) {
    throw new TdbError("E_ONNX_DECODE", `${bytes.byteLength} bytes decode to no ONNX model (${empty ? "no graph" : "IR version 0"}); is this an .onnx file?`, {
      value: bytes.byteLength,
      allowed: "a serialized ONNX ModelProto with a graph and an IR version",
    });
  }
  return model;
}

/**
 * Encodes an ONNX model to bytes with a single allocation of the exact output size;
 * the bytes equal protobuf-es `toBinary(ModelProtoSchema, model)`.
 *
 * @example
 * ```ts
 * const session = await ort.InferenceSession.create(encodeModel(model));
 * ```
 */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage(ModelProtoSchema, model);
}
