/**
 * Conversions between ONNX `TensorProto` messages and plain typed arrays with dims.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { TensorProtoSchema, TensorProto_DataType, TensorProto_DataLocation, type TensorProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";

/** Element types tdb-js reads and writes. */
export type ElemType = "float32" | "float64" | "float16" | "int64" | "int32" | "int8" | "uint8" | "bool";

/** Typed array for each {@link ElemType}. float16 is kept as raw `Uint16Array` bits; bool as `Uint8Array`. */
export interface ElemArray {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** Any typed array a {@link HostTensor} can hold. */
export type AnyTypedArray = ElemArray[ElemType];

/**
 * A tensor on the host: element type, row-major data and dims.
 *
 * @example
 * ```ts
 * const t: HostTensor = { type: "float32", data: new Float32Array(6), dims: [2, 3] };
 * ```
 */
export interface HostTensor<T extends ElemType = ElemType> {
  type: T;
  data: ElemArray[T];
  dims: number[];
}

const ONNX_OF: Record<ElemType, TensorProto_DataType> = {
  float32: TensorProto_DataType.FLOAT,
  float64: TensorProto_DataType.DOUBLE,
  float16: TensorProto_DataType.FLOAT16,
  int64: TensorProto_DataType.INT64,
  int32: TensorProto_DataType.INT32,
  int8: TensorProto_DataType.INT8,
  uint8: TensorProto_DataType.UINT8,
  bool: TensorProto_DataType.BOOL,
};

const ELEM_OF = new Map<number, ElemType>(Object.entries(ONNX_OF).map(([k, v]) => [v, k as ElemType]));

const BYTES: Record<ElemType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** The ONNX `TensorProto.DataType` number of an element type. */
export function onnxDataType(type: ElemType): TensorProto_DataType {
  return ONNX_OF[type];
}

/** The element type of an ONNX data type number; throws for types tdb-js does not read. */
export function elemTypeOf(dataType: number): ElemType {
  const t = ELEM_OF.get(dataType);
  if (!t) {
    throw new TdbError("E_ONNX_INVALID", `unsupported ONNX tensor data type ${dataType}`, {
      value: dataType,
      allowed: [...ELEM_OF.entries()].map(([n, e]) => `${n} (${e})`),
    });
  }
  return t;
}

/** Bytes per element. */
export function bytesPerElement(type: ElemType): number {
  return BYTES[type];
}

/** Number of elements for dims (1 for a scalar). */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function newArray(type: ElemType, n: number): AnyTypedArray {
  switch (type) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "float16":
      return new Uint16Array(n);
    case "int64":
      return new BigInt64Array(n);
    case "int32":
      return new Int32Array(n);
    case "int8":
      return new Int8Array(n);
    case "uint8":
    case "bool":
      return new Uint8Array(n);
  }
}

/** A view of `bytes` as the element type, copying only when the bytes are not aligned. */
function viewBytes(type: ElemType, bytes: Uint8Array, n: number): AnyTypedArray {
  const size = BYTES[type];
  if (bytes.byteLength !== n * size) {
    throw new TdbError("E_ONNX_INVALID", `raw data has ${bytes.byteLength} bytes, expected ${n * size} for ${n} ${type}`, {
      value: bytes.byteLength,
      allowed: n * size,
    });
  }
  let src = bytes;
  // A copy, aligned (Buffer.prototype.slice would return an unaligned view, not a copy).
  if (bytes.byteOffset % size !== 0) src = new Uint8Array(bytes);
  const buf = src.buffer as ArrayBuffer;
  switch (type) {
    case "float32":
      return new Float32Array(buf, src.byteOffset, n);
    case "float64":
      return new Float64Array(buf, src.byteOffset, n);
    case "float16":
      return new Uint16Array(buf, src.byteOffset, n);
    case "int64":
      return new BigInt64Array(buf, src.byteOffset, n);
    case "int32":
      return new Int32Array(buf, src.byteOffset, n);
    case "int8":
      return new Int8Array(buf, src.byteOffset, n);
    case "uint8":
    case "bool":
      return new Uint8Array(buf, src.byteOffset, n);
  }
}

/**
 * Reads a `TensorProto` into a {@link HostTensor}. Raw data is viewed in place when aligned
 * (no copy): do not mutate the result unless you own the model.
 *
 * External data must have been resolved first (see `resolveExternalData` in `external.ts`).
 */
export function tensorFromProto(t: TensorProto): HostTensor {
  const type = elemTypeOf(t.dataType);
  const dims = t.dims.map((d) => Number(d));
  const n = numel(dims);
  if (t.dataLocation === TensorProto_DataLocation.EXTERNAL && t.rawData.byteLength === 0) {
    throw new TdbError("E_ONNX_INVALID", `tensor ${t.name} keeps its data externally and it was not loaded`, {
      value: t.name,
    });
  }
  if (t.rawData.byteLength > 0 || n === 0) return { type, dims, data: viewBytes(type, t.rawData, n) };
  const out = newArray(type, n);
  const fill = (src: ArrayLike<number | bigint>) => {
    if (src.length !== n) {
      throw new TdbError("E_ONNX_INVALID", `tensor ${t.name} has ${src.length} values, expected ${n}`, {
        value: src.length,
        allowed: n,
      });
    }
    for (let i = 0; i < n; i++) (out as unknown as (number | bigint)[])[i] = src[i] as never;
  };
  switch (type) {
    case "float32":
      fill(t.floatData);
      break;
    case "float64":
      fill(t.doubleData);
      break;
    case "int64":
      fill(t.int64Data);
      break;
    default:
      // int32, int8, uint8, bool and float16 bits all live in int32_data.
      fill(t.int32Data);
  }
  return { type, dims, data: out };
}

/**
 * Builds a `TensorProto` (raw data, little-endian) from a typed array.
 *
 * @example
 * ```ts
 * const w = tensorToProto("w", new Float32Array([1, 2, 3, 4]), [2, 2]);
 * ```
 */
export function tensorToProto(name: string, data: AnyTypedArray, dims: readonly number[], type?: ElemType): TensorProto {
  const elem = type ?? inferElemType(data);
  const n = numel(dims);
  if (data.length !== n) {
    throw new TdbError("E_BAD_INPUT", `tensor ${name}: ${data.length} values for dims [${dims.join(", ")}]`, {
      value: data.length,
      allowed: n,
    });
  }
  return create(TensorProtoSchema, {
    name,
    dims: dims.map((d) => BigInt(d)),
    dataType: ONNX_OF[elem],
    rawData: new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength),
  });
}

/** The element type naturally held by a typed array (Uint8Array counts as uint8). */
export function inferElemType(data: AnyTypedArray): ElemType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Uint16Array) return "float16";
  return "uint8";
}
