/**
 * ONNX protobuf decode/encode. (Stub: to be replaced by the streaming-size encoder.)
 *
 * @module
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, type ModelProto } from "onnx-buf";

/** Decodes ONNX model bytes. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return fromBinary(ModelProtoSchema, bytes);
}

/** Encodes an ONNX model to bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}
