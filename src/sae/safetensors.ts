/**
 * The safetensors format, read and written in TypeScript: an 8-byte little-endian header length
 * N, N bytes of UTF-8 JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}`
 * with an optional `"__metadata__"` object of strings), then the tensors' bytes, C order, little
 * endian. Reading checks every number before it is used (header length against the file, each
 * range against the data and against its dtype and shape, ranges against each other: they must
 * tile the data with no gap or overlap, as the reference implementation requires); any failure is
 * `E_SAFETENSORS`. Writing follows the reference writer: compact JSON, tensors ordered by dtype
 * alignment (largest first) then name, header padded with spaces to a multiple of 8 bytes.
 *
 * Platform-free (no Node module).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { halfToFloat } from "../onnx/half.js";

/** A safetensors dtype name (`"F32"`, `"BF16"`, ...). */
export type SafetensorsDtype = "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "I16" | "U16" | "F16" | "BF16" | "I32" | "U32" | "F32" | "F64" | "I64" | "U64";

/** Element sizes of the safetensors dtypes, in bytes. */
const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Every dtype name the format defines (what a header's `dtype` may be). */
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = Object.freeze(Object.keys(DTYPE_SIZE) as SafetensorsDtype[]);

/** Dtypes {@link tensorToFloat32} converts. */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = Object.freeze(["F32", "F16", "BF16", "F64"] as const);

/** Order of the reference implementation's `Dtype` enum (increasing alignment); the writer sorts by it, largest first. */
const DTYPE_RANK: readonly SafetensorsDtype[] = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"];

/** The largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of a safetensors file: dtype, shape and its raw little-endian bytes. */
export interface SafeTensor {
  /** Element type. */
  readonly dtype: SafetensorsDtype;
  /** Shape (C order); `[]` is a scalar. */
  readonly shape: readonly number[];
  /** The tensor's bytes (a view into the file when read). */
  readonly bytes: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in order of their data offsets. */
  readonly tensors: ReadonlyMap<string, SafeTensor>;
  /** The `__metadata__` strings, if the header has them. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

function bad(message: string, value?: unknown, allowed?: unknown, origin?: string): TdbError {
  return new TdbError("E_SAFETENSORS", `${origin ? `${origin}: ` : ""}corrupt safetensors: ${message}`, { value, allowed });
}

const isNatural = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/**
 * Parses a safetensors file held in `bytes`. Tensors are views into `bytes` (no copy). `origin`
 * names the file in error messages. Every inconsistency is `E_SAFETENSORS` with the offending
 * value and what was allowed.
 *
 * @example
 * ```ts
 * const f = readSafetensors(bytes);
 * const w = tensorToFloat32(f.tensors.get("W_enc")!);
 * ```
 */
export function readSafetensors(bytes: Uint8Array, origin?: string): SafetensorsFile {
  if (bytes.byteLength < 8) throw bad(`file of ${bytes.byteLength} bytes is shorter than the 8-byte header length`, bytes.byteLength, ">= 8 bytes", origin);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  const room = bytes.byteLength - 8;
  if (n64 > BigInt(room)) throw bad(`header length ${n64} runs past the end of the file (${room} bytes after the length)`, n64.toString(), `<= ${room}`, origin);
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) throw bad(`header length ${n} is over the limit`, n, `<= ${MAX_HEADER_BYTES}`, origin);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new TdbError("E_SAFETENSORS", `${origin ? `${origin}: ` : ""}corrupt safetensors: the header is not UTF-8 JSON (${(e as Error).message})`, {
      value: n,
      allowed: "a JSON object",
      cause: e,
    });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw bad("the header is not a JSON object", header === null ? "null" : typeof header, "a JSON object", origin);
  const data = bytes.subarray(8 + n);
  let metadata: Record<string, string> | undefined;
  const entries: [string, SafeTensor, number, number][] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof info !== "object" || info === null || Array.isArray(info)) throw bad("__metadata__ is not an object", info, "an object of strings", origin);
      const pairs = Object.entries(info as Record<string, unknown>);
      for (const [k, v] of pairs) if (typeof v !== "string") throw bad(`__metadata__.${k} is not a string`, v, "a string", origin);
      metadata = Object.fromEntries(pairs) as Record<string, string>;
      continue;
    }
    if (typeof info !== "object" || info === null || Array.isArray(info)) throw bad(`tensor ${JSON.stringify(name)} is not an object`, info, "{ dtype, shape, data_offsets }", origin);
    const { dtype, shape, data_offsets: offsets } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_SIZE)) throw bad(`tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(dtype)}`, dtype, SAFETENSORS_DTYPES, origin);
    if (!Array.isArray(shape) || !shape.every(isNatural)) throw bad(`tensor ${JSON.stringify(name)} has shape ${JSON.stringify(shape)}`, shape, "an array of non-negative integers", origin);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNatural) || (offsets[0] as number) > (offsets[1] as number)) {
      throw bad(`tensor ${JSON.stringify(name)} has data_offsets ${JSON.stringify(offsets)}`, offsets, "[begin, end] with 0 <= begin <= end", origin);
    }
    const [begin, end] = offsets as [number, number];
    if (end > data.byteLength) throw bad(`tensor ${JSON.stringify(name)} ends at byte ${end} of a data section of ${data.byteLength} bytes`, offsets, `end <= ${data.byteLength}`, origin);
    const size = DTYPE_SIZE[dtype as SafetensorsDtype];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count * size) || count * size !== end - begin) {
      throw bad(`tensor ${JSON.stringify(name)}: shape [${(shape as number[]).join(", ")}] of ${dtype} is ${count * size} bytes, data_offsets span ${end - begin}`, offsets, `a span of ${count * size} bytes`, origin);
    }
    entries.push([name, { dtype: dtype as SafetensorsDtype, shape: Object.freeze([...(shape as number[])]), bytes: data.subarray(begin, end) }, begin, end]);
  }
  entries.sort((a, b) => a[2] - b[2] || a[3] - b[3]);
  let at = 0;
  for (const [name, , begin, end] of entries) {
    if (begin < at) throw bad(`tensor ${JSON.stringify(name)} at [${begin}, ${end}] overlaps the previous tensor (ending at ${at})`, [begin, end], `begin >= ${at}`, origin);
    if (begin > at) throw bad(`gap in the data section before tensor ${JSON.stringify(name)} (bytes ${at}..${begin} belong to no tensor)`, [begin, end], `begin = ${at}`, origin);
    at = end;
  }
  if (at !== data.byteLength) throw bad(`the tensors cover ${at} bytes of a data section of ${data.byteLength}`, data.byteLength, `${at} bytes of data`, origin);
  return { tensors: new Map(entries.map(([name, t]) => [name, t])), metadata };
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;


/**
 * A float tensor's values as a new Float32Array: F32 as is, F16 and BF16 widened exactly, F64
 * rounded to float32. Other dtypes are `E_SAFETENSORS`.
 */
export function tensorToFloat32(t: SafeTensor, name = "tensor"): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case "F32":
      if (littleEndian) out.set(new Float32Array(t.bytes.slice().buffer));
      else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    case "BF16": {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new TdbError("E_SAFETENSORS", `${name} is ${t.dtype}, not a float dtype`, { value: t.dtype, allowed: FLOAT_DTYPES });
  }
}

/** A tensor to write: float values (stored as F32 or F64) or raw bytes of any dtype. */
export type TensorToWrite =
  | { readonly dtype?: "F32" | "F64"; readonly shape: readonly number[]; readonly data: Float32Array | Float64Array }
  | SafeTensor;

/**
 * A safetensors file of `tensors`, byte for byte as the reference writer lays it out: compact
 * JSON header (`__metadata__` first, then tensors by dtype alignment, largest first, then by
 * name), padded with spaces to a multiple of 8 bytes, then the data in the same order. Float data
 * is stored as `dtype` (default F32). A shape that does not match the data is `E_BAD_INPUT`.
 *
 * @example
 * ```ts
 * const bytes = writeSafetensors({ b_dec: { shape: [4], data: new Float32Array(4) } }, { format: "pt" });
 * ```
 */
export function writeSafetensors(tensors: Readonly<Record<string, TensorToWrite>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const items: { name: string; dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array }[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === "__metadata__") throw new TdbError("E_BAD_INPUT", "a tensor cannot be named __metadata__", { value: name });
    const shape: number[] = [...t.shape];
    if (!shape.every((d) => isNatural(d))) throw new TdbError("E_BAD_INPUT", `tensor ${name}: bad shape [${shape.join(", ")}]`, { value: shape, allowed: "non-negative integers" });
    const count = shape.reduce((a, b) => a * b, 1);
    let dtype: SafetensorsDtype;
    let bytes: Uint8Array;
    if ("bytes" in t) {
      dtype = t.dtype;
      bytes = t.bytes;
      if (!(dtype in DTYPE_SIZE)) throw new TdbError("E_BAD_INPUT", `tensor ${name}: unknown dtype ${String(dtype)}`, { value: dtype, allowed: SAFETENSORS_DTYPES });
      if (bytes.byteLength !== count * DTYPE_SIZE[dtype]) {
        throw new TdbError("E_BAD_INPUT", `tensor ${name}: ${bytes.byteLength} bytes for shape [${shape.join(", ")}] of ${dtype}`, { value: bytes.byteLength, allowed: count * DTYPE_SIZE[dtype] });
      }
    } else {
      dtype = t.dtype ?? "F32";
      if (dtype !== "F32" && dtype !== "F64") throw new TdbError("E_BAD_INPUT", `tensor ${name}: float data is written as F32 or F64`, { value: dtype, allowed: ["F32", "F64"] });
      if (t.data.length !== count) throw new TdbError("E_BAD_INPUT", `tensor ${name}: ${t.data.length} values for shape [${shape.join(", ")}]`, { value: t.data.length, allowed: count });
      const typed = dtype === "F32" ? Float32Array.from(t.data) : Float64Array.from(t.data);
      bytes = new Uint8Array(typed.byteLength);
      const dv = new DataView(bytes.buffer);
      if (dtype === "F32") for (let i = 0; i < count; i++) dv.setFloat32(4 * i, typed[i]!, true);
      else for (let i = 0; i < count; i++) dv.setFloat64(8 * i, typed[i]!, true);
    }
    items.push({ name, dtype, shape, bytes });
  }
  items.sort((a, b) => DTYPE_RANK.indexOf(b.dtype) - DTYPE_RANK.indexOf(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Written by hand: a plain object would put integer-like names ("0", "1") first.
  const object = (pairs: readonly [string, string][]) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
  const parts: [string, string][] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    parts.push(["__metadata__", object(keys.map((k) => [k, JSON.stringify(metadata[k])]))]);
  }
  let offset = 0;
  for (const it of items) {
    parts.push([it.name, JSON.stringify({ dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.bytes.byteLength] })]);
    offset += it.bytes.byteLength;
  }
  let json = new TextEncoder().encode(object(parts));
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad > 0) {
    const padded = new Uint8Array(json.byteLength + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const it of items) {
    out.set(it.bytes, at);
    at += it.bytes.byteLength;
  }
  return out;
}
