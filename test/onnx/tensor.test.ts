/**
 * Tensor protos to host tensors: raw data at any byte offset (protobuf decoders hand out views
 * into the file's buffer; a Node Buffer's slice() is a view, not a copy) reads as the values written.
 */
import { create } from "@bufbuild/protobuf";
import { TensorProtoSchema, TensorProto_DataType } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { tensorFromProto } from "../../src/onnx/tensor.js";

describe("tensorFromProto with unaligned raw data", () => {
  const cases: [string, TensorProto_DataType, BigInt64Array | Float32Array][] = [
    ["int64", TensorProto_DataType.INT64, BigInt64Array.from([3n, -7n, 1n << 40n])],
    ["float32", TensorProto_DataType.FLOAT, Float32Array.from([1.5, -2.25, 3e10])],
  ];
  for (const [type, dataType, typed] of cases) {
    it(`${type} from a Buffer view at an odd offset`, () => {
      const file = Buffer.alloc(typed.byteLength + 3);
      Buffer.from(typed.buffer).copy(file, 3);
      const raw = file.subarray(3, 3 + typed.byteLength); // byteOffset 3: not a multiple of 4 or 8
      const t = tensorFromProto(create(TensorProtoSchema, { name: "t", dataType, dims: [3n], rawData: raw }));
      expect(t.dims).toEqual([3]);
      expect(Array.from(t.data as ArrayLike<unknown>)).toEqual(Array.from(typed as ArrayLike<unknown>));
    });
  }
});
