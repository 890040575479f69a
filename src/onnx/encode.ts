/**
 * A protobuf binary encoder that writes a message into ONE preallocated buffer.
 *
 * `toBinary` from protobuf-es grows its buffer by doubling (the old and new buffers are alive
 * together while it copies), shifts every length-delimited payload whose length prefix needs
 * more than one byte (a memmove of the whole payload at every nesting level), and finally copies
 * the result out of the oversized buffer. For a 500 MB model that is a peak of several full
 * copies. This encoder first computes the exact encoded size of every message (cached per
 * message object in a `WeakMap`), allocates the output once, and writes each byte once.
 *
 * It is generic over message descriptors and writes exactly what `toBinary` writes: fields in
 * field-number order, proto2/editions explicit presence (own properties), implicit presence
 * (non-zero values), oneofs, packed and unpacked repeated fields as the descriptor says,
 * delimited (group) encoding, and `$unknown` fields last. Map fields and well-known types that
 * protobuf-es stores in unwrapped form (wrappers, `Struct`) are not supported: ONNX has none.
 *
 * @module
 */
import { ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { TdbError } from "../base/errors.js";

/** Wire types (protobuf spec). */
const VARINT = 0;
const BIT64 = 1;
const LEN = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const BIT32 = 5;

/** `google.protobuf.FeatureSet.FieldPresence` values used by protobuf-es descriptors. */
const IMPLICIT = 2;
const LEGACY_REQUIRED = 3;

/** Largest message protobuf (and onnxruntime) accept: 2 GiB - 1. */
export const MAX_PROTOBUF_BYTES = 2 ** 31 - 1;

const UNSUPPORTED_TYPES = /^google\.protobuf\.(Struct|Value|ListValue|DoubleValue|FloatValue|Int64Value|UInt64Value|Int32Value|UInt32Value|BoolValue|StringValue|BytesValue)$/;

type AnyMessage = Record<string, unknown> & { $typeName?: string; $unknown?: { no: number; wireType: number; data: Uint8Array }[] };

/** The fields of a message type sorted by number, as toBinary writes them. */
const plans = new WeakMap<DescMessage, readonly DescField[]>();

function planOf(desc: DescMessage): readonly DescField[] {
  let plan = plans.get(desc);
  if (plan) return plan;
  for (const f of desc.fields) {
    if (f.fieldKind === "map") {
      throw new TdbError("E_ONNX_INVALID", `encoder: map field ${desc.typeName}.${f.name} is not supported`, { value: `${desc.typeName}.${f.name}` });
    }
    const child = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") ? f.message : undefined;
    if (child && UNSUPPORTED_TYPES.test(child.typeName)) {
      throw new TdbError("E_ONNX_INVALID", `encoder: field ${desc.typeName}.${f.name} of type ${child.typeName} is not supported`, {
        value: `${desc.typeName}.${f.name}`,
      });
    }
  }
  plan = [...desc.fields].sort((a, b) => a.number - b.number);
  plans.set(desc, plan);
  return plan;
}

const ABSENT: unique symbol = Symbol("absent");

/** The value toBinary would write for a singular field, or ABSENT. */
function singularValue(f: DescField, msg: AnyMessage): unknown {
  const name = f.localName;
  if (f.oneof) {
    const o = msg[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o !== undefined && o.case === name ? o.value : ABSENT;
  }
  const v = msg[name];
  if (f.presence !== IMPLICIT) {
    if (v !== undefined && Object.prototype.hasOwnProperty.call(msg, name)) return v;
    if (f.presence === LEGACY_REQUIRED) {
      throw new TdbError("E_ONNX_INVALID", `cannot encode ${f.parent.typeName}.${f.name}: required field not set`, { value: f.name });
    }
    return ABSENT;
  }
  if (f.fieldKind === "enum") return v !== f.enum.values[0]?.number ? v : ABSENT;
  if (f.fieldKind === "message") return v === undefined ? ABSENT : v;
  if (f.fieldKind !== "scalar") return ABSENT;
  switch (f.scalar) {
    case ScalarType.BOOL:
      return v !== false ? v : ABSENT;
    case ScalarType.STRING:
      return v !== "" ? v : ABSENT;
    case ScalarType.BYTES:
      return !(v instanceof Uint8Array) || v.byteLength > 0 ? v : ABSENT;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return !Object.is(v, 0) ? v : ABSENT;
    default:
      // Loose comparison matches 0n, 0 and "0", as toBinary does.
      return v != 0 ? v : ABSENT;
  }
}

function fieldError(f: DescField, why: string): TdbError {
  return new TdbError("E_ONNX_INVALID", `cannot encode field ${f.parent.typeName}.${f.name}: ${why}`, { value: `${f.parent.typeName}.${f.name}` });
}

function varint32Size(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

function tagSize(no: number): number {
  return varint32Size((no << 3) >>> 0);
}

const TWO_32 = 0x1_0000_0000n;

function varint64Size(u: bigint): number {
  if (u < TWO_32) return varint32Size(Number(u));
  let n = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    n++;
  }
  return n;
}

/** UTF-8 byte length of a JS string as TextEncoder encodes it (lone surrogates become U+FFFD). */
export function utf8Length(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function toBig(f: DescField, v: unknown, signed: boolean): bigint {
  let b: bigint;
  try {
    b = typeof v === "bigint" ? v : BigInt(v as string | number);
  } catch {
    throw fieldError(f, `invalid ${signed ? "int64" : "uint64"} ${String(v)}`);
  }
  if (signed ? b < INT64_MIN || b > INT64_MAX : b < 0n || b > UINT64_MAX) throw fieldError(f, `${signed ? "int64" : "uint64"} out of range: ${b}`);
  return b;
}

function checkInt32(f: DescField, v: unknown, unsigned: boolean): number {
  if (typeof v !== "number" || !Number.isInteger(v) || (unsigned ? v < 0 || v > 0xffffffff : v < -0x80000000 || v > 0x7fffffff)) {
    throw fieldError(f, `invalid ${unsigned ? "uint32" : "int32"}: ${String(v)}`);
  }
  return v;
}

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.BYTES:
    case ScalarType.STRING:
      return LEN;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return BIT64;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return BIT32;
    default:
      return VARINT;
  }
}

function scalarTypeOf(f: DescField): ScalarType {
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) return ScalarType.INT32;
  if (f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar")) return f.scalar;
  throw fieldError(f, "not a scalar");
}

/** Fixed encoded size of a scalar type, or 0 for variable-length types. */
function fixedSize(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 8;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 4;
    case ScalarType.BOOL:
      return 1;
    default:
      return 0;
  }
}

function scalarSize(f: DescField, t: ScalarType, v: unknown): number {
  switch (t) {
    case ScalarType.STRING: {
      const n = utf8Length(typeof v === "string" ? v : String(v));
      return varint32Size(n) + n;
    }
    case ScalarType.BYTES: {
      if (!(v instanceof Uint8Array)) throw fieldError(f, "expected Uint8Array");
      return varint32Size(v.byteLength) + v.byteLength;
    }
    case ScalarType.INT32: {
      const x = checkInt32(f, v, false);
      return x >= 0 ? varint32Size(x) : 10;
    }
    case ScalarType.UINT32:
      return varint32Size(checkInt32(f, v, true));
    case ScalarType.SINT32: {
      const x = checkInt32(f, v, false);
      return varint32Size(((x << 1) ^ (x >> 31)) >>> 0);
    }
    case ScalarType.INT64:
      return varint64Size(BigInt.asUintN(64, toBig(f, v, true)));
    case ScalarType.UINT64:
      return varint64Size(toBig(f, v, false));
    case ScalarType.SINT64: {
      const b = toBig(f, v, true);
      return varint64Size(BigInt.asUintN(64, (b << 1n) ^ (b >> 63n)));
    }
    default:
      return fixedSize(t);
  }
}

/** Exact encoded sizes, cached per message object (and per packed list) for one encode. */
class Sizer {
  readonly cache = new WeakMap<object, number>();

  message(desc: DescMessage, msg: AnyMessage): number {
    const hit = this.cache.get(msg);
    if (hit !== undefined) return hit;
    if (msg.$typeName !== undefined && msg.$typeName !== desc.typeName) {
      throw new TdbError("E_ONNX_INVALID", `cannot encode ${msg.$typeName} as ${desc.typeName}`, { value: msg.$typeName, allowed: desc.typeName });
    }
    let size = 0;
    for (const f of planOf(desc)) size += this.field(f, msg);
    for (const u of msg.$unknown ?? []) size += tagSize(u.no) + u.data.byteLength;
    this.cache.set(msg, size);
    return size;
  }

  private child(f: DescField & { message: DescMessage }, v: unknown): number {
    if (typeof v !== "object" || v === null) throw fieldError(f, "expected a message");
    const inner = this.message(f.message, v as AnyMessage);
    return f.delimitedEncoding ? 2 * tagSize(f.number) + inner : tagSize(f.number) + varint32Size(inner) + inner;
  }

  packed(f: DescField, t: ScalarType, items: readonly unknown[]): number {
    const hit = this.cache.get(items);
    if (hit !== undefined) return hit;
    const k = fixedSize(t);
    let n = 0;
    if (k > 0) n = k * items.length;
    else for (const it of items) n += scalarSize(f, t, it);
    this.cache.set(items, n);
    return n;
  }

  private field(f: DescField, msg: AnyMessage): number {
    switch (f.fieldKind) {
      case "list": {
        const items = msg[f.localName] as readonly unknown[] | undefined;
        if (!items || items.length === 0) return 0;
        if (f.listKind === "message") {
          let n = 0;
          for (const it of items) n += this.child(f, it);
          return n;
        }
        const t = scalarTypeOf(f);
        if (f.packed) {
          const p = this.packed(f, t, items);
          return tagSize(f.number) + varint32Size(p) + p;
        }
        const k = fixedSize(t);
        if (k > 0) return (tagSize(f.number) + k) * items.length;
        let n = tagSize(f.number) * items.length;
        for (const it of items) n += scalarSize(f, t, it);
        return n;
      }
      case "message": {
        const v = singularValue(f, msg);
        return v === ABSENT ? 0 : this.child(f, v);
      }
      case "scalar":
      case "enum": {
        const v = singularValue(f, msg);
        return v === ABSENT ? 0 : tagSize(f.number) + scalarSize(f, scalarTypeOf(f), v);
      }
      default:
        return 0;
    }
  }
}

/** Writes into a buffer of exactly the computed size. */
class Writer {
  readonly buf: Uint8Array<ArrayBuffer>;
  private readonly view: DataView;
  pos = 0;
  private readonly utf8 = new TextEncoder();

  constructor(
    size: number,
    private readonly sizer: Sizer,
  ) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  varint32(v: number): void {
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  varint64(u: bigint): void {
    if (u < TWO_32) {
      this.varint32(Number(u));
      return;
    }
    let lo = Number(u & 0xffffffffn);
    let hi = Number(u >> 32n);
    const buf = this.buf;
    while (hi > 0 || lo > 0x7f) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.pos++] = lo;
  }

  tag(no: number, wt: number): void {
    this.varint32(((no << 3) | wt) >>> 0);
  }

  string(s: string): void {
    const n = utf8Length(s);
    this.varint32(n);
    const buf = this.buf;
    if (n === s.length) {
      // ASCII: one byte per code unit.
      for (let i = 0, p = this.pos; i < n; i++) buf[p + i] = s.charCodeAt(i);
    } else {
      this.utf8.encodeInto(s, buf.subarray(this.pos, this.pos + n));
    }
    this.pos += n;
  }

  scalar(f: DescField, t: ScalarType, v: unknown): void {
    switch (t) {
      case ScalarType.STRING:
        this.string(typeof v === "string" ? v : String(v));
        return;
      case ScalarType.BYTES: {
        const b = v as Uint8Array;
        this.varint32(b.byteLength);
        this.buf.set(b, this.pos);
        this.pos += b.byteLength;
        return;
      }
      case ScalarType.BOOL:
        this.buf[this.pos++] = v ? 1 : 0;
        return;
      case ScalarType.INT32: {
        const x = v as number;
        if (x >= 0) this.varint32(x);
        else this.varint64(BigInt.asUintN(64, BigInt(x)));
        return;
      }
      case ScalarType.UINT32:
        this.varint32(v as number);
        return;
      case ScalarType.SINT32: {
        const x = v as number;
        this.varint32(((x << 1) ^ (x >> 31)) >>> 0);
        return;
      }
      case ScalarType.INT64:
        this.varint64(BigInt.asUintN(64, toBig(f, v, true)));
        return;
      case ScalarType.UINT64:
        this.varint64(toBig(f, v, false));
        return;
      case ScalarType.SINT64: {
        const b = toBig(f, v, true);
        this.varint64(BigInt.asUintN(64, (b << 1n) ^ (b >> 63n)));
        return;
      }
      case ScalarType.DOUBLE:
        this.view.setFloat64(this.pos, Number(v), true);
        this.pos += 8;
        return;
      case ScalarType.FLOAT:
        this.view.setFloat32(this.pos, Number(v), true);
        this.pos += 4;
        return;
      case ScalarType.FIXED32:
        this.view.setUint32(this.pos, Number(v), true);
        this.pos += 4;
        return;
      case ScalarType.SFIXED32:
        this.view.setInt32(this.pos, Number(v), true);
        this.pos += 4;
        return;
      case ScalarType.FIXED64:
        this.view.setBigUint64(this.pos, toBig(f, v, false), true);
        this.pos += 8;
        return;
      case ScalarType.SFIXED64:
        this.view.setBigInt64(this.pos, toBig(f, v, true), true);
        this.pos += 8;
        return;
    }
  }

  message(desc: DescMessage, msg: AnyMessage): void {
    for (const f of planOf(desc)) this.field(f, msg);
    for (const u of msg.$unknown ?? []) {
      this.tag(u.no, u.wireType);
      this.buf.set(u.data, this.pos);
      this.pos += u.data.byteLength;
    }
  }

  private child(f: DescField & { message: DescMessage }, v: unknown): void {
    const m = v as AnyMessage;
    if (f.delimitedEncoding) {
      this.tag(f.number, START_GROUP);
      this.message(f.message, m);
      this.tag(f.number, END_GROUP);
      return;
    }
    this.tag(f.number, LEN);
    this.varint32(this.sizer.message(f.message, m));
    this.message(f.message, m);
  }

  private field(f: DescField, msg: AnyMessage): void {
    switch (f.fieldKind) {
      case "list": {
        const items = msg[f.localName] as readonly unknown[] | undefined;
        if (!items || items.length === 0) return;
        if (f.listKind === "message") {
          for (const it of items) this.child(f, it);
          return;
        }
        const t = scalarTypeOf(f);
        if (f.packed) {
          this.tag(f.number, LEN);
          this.varint32(this.sizer.packed(f, t, items));
          for (const it of items) this.scalar(f, t, it);
          return;
        }
        const wt = wireTypeOf(t);
        for (const it of items) {
          this.tag(f.number, wt);
          this.scalar(f, t, it);
        }
        return;
      }
      case "message": {
        const v = singularValue(f, msg);
        if (v !== ABSENT) this.child(f, v);
        return;
      }
      case "scalar":
      case "enum": {
        const v = singularValue(f, msg);
        if (v === ABSENT) return;
        const t = scalarTypeOf(f);
        this.tag(f.number, wireTypeOf(t));
        this.scalar(f, t, v);
        return;
      }
    }
  }
}

/**
 * The exact number of bytes {@link encodeMessage} (and `toBinary`) produce for `message`.
 *
 * @example
 * ```ts
 * const n = encodedSize(ModelProtoSchema, model);
 * ```
 */
export function encodedSize<Desc extends DescMessage>(schema: Desc, message: Message): number {
  return new Sizer().message(schema, message as unknown as AnyMessage);
}

/**
 * Encodes a message to protobuf binary, byte-identical to `toBinary(schema, message)` (with
 * unknown fields written), using one allocation of exactly the output size.
 * Throws `E_ONNX_INVALID` for a message over 2 GiB (protobuf's limit: keep the weights in an
 * external data file instead, see `externalizeData`).
 *
 * @example
 * ```ts
 * const bytes = encodeMessage(ModelProtoSchema, model);
 * ```
 */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: Message): Uint8Array<ArrayBuffer> {
  const sizer = new Sizer();
  const msg = message as unknown as AnyMessage;
  const size = sizer.message(schema, msg);
  if (size > MAX_PROTOBUF_BYTES) {
    throw new TdbError("E_ONNX_INVALID", `${schema.typeName} would encode to ${size} bytes, over protobuf's 2 GiB limit; move the weights to external data`, {
      value: size,
      allowed: MAX_PROTOBUF_BYTES,
    });
  }
  const w = new Writer(size, sizer);
  w.message(schema, msg);
  if (w.pos !== size) throw new Error(`internal error: encoded ${w.pos} bytes, computed ${size}`);
  return w.buf;
}
