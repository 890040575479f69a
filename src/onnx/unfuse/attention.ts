/**
 * onnxruntime's `Attention` (packed QKV self-attention) written back as the attention of a
 * TorchScript GPT-2 export, op for op: `MatMul` + `Add(bias)` -> `Split` into q, k, v ->
 * `Reshape` each to [B,S,H,dh] -> `Transpose` (q, v to [B,H,S,dh], k to [B,H,dh,S]) ->
 * `MatMul(q, k^T)` -> `Mul(scale)` -> `Add` of the mask (causal `Where` over the padding bias) ->
 * `Add(attention_bias)` -> `Softmax` (the pattern) -> `MatMul(pattern, v)` ->
 * `Transpose(0,2,1,3)` -> `Reshape` [B,S,hidden]. With `past`, keys and values are
 * concatenated after it and `present` is their stack.
 *
 * The mask follows onnxruntime's kernel: masked keys get `mask_filter_value` (default -10000)
 * added to their scores, causally hidden ones the lowest float instead; so rows whose keys are
 * all masked (padding queries) come out as onnxruntime's do.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import { TensorProto_DataType as DT } from "onnx-buf";
import { INT64_MAX } from "../emit.js";
import type { OnnxGraph } from "../graph.js";
import { tensorToProto } from "../tensor.js";
import { facts, floatAttr, floatType, input, intAttr, intsAttr, lowest, put, UnfuseUnsupported, usedOutput, type UnfuseEmitter } from "./common.js";

/** The rank of a `mask_index` value: declared, or known from its producer. */
function maskRank(g: OnnxGraph, mask: string): number | undefined {
  const dims = facts(g, mask).dims;
  if (dims) return dims.length;
  const p = g.producer(mask);
  if (p && p.opType === "EmbedLayerNormalization" && p.output[1] === mask) return 1;
  return undefined;
}

/**
 * The additive padding bias of `mask_index`, broadcastable to [B,H,S,T] scores: 0 for kept
 * keys, `filter` for masked ones. `total` gives the key length T (an int64 scalar); `x` is the input.
 */
function paddingBias(g: OnnxGraph, e: UnfuseEmitter, mask: string, x: string, total: () => string, filter: number, T: number): string {
  const rank = maskRank(g, mask);
  if (rank === undefined) throw new UnfuseUnsupported(`the rank of mask_index ${mask} is not declared in the graph`);
  const zero = e.scalar(0, T);
  const fill = e.scalar(filter, T);
  if (rank === 2 || rank === 3) {
    // Raw 0/1 mask [B,T] or [B,S,T]: values > 0 keep the key.
    const keep = e.op("Greater", [mask, e.int32s([0], [])]);
    const bias = e.op("Where", [keep, zero, fill]);
    return e.unsqueeze(bias, rank === 2 ? [1, 2] : [1]);
  }
  if (rank === 1) {
    // [B] key lengths (end positions), or [2B] end positions then start positions.
    const m = e.op("Cast", [mask], { to: DT.INT64 });
    const batch = e.unsqueeze(e.dim(x, 0), [0]);
    const ends = e.slice(m, e.ints([0]), batch, [0]);
    const startsRaw = e.slice(m, batch, e.ints([INT64_MAX]), [0]);
    const zeros = e.op("ConstantOfShape", [batch], { value: tensorToProto("", new BigInt64Array([0n]), [1], "int64") });
    const starts = e.slice(e.op("Concat", [startsRaw, zeros], { axis: 0 }), e.ints([0]), batch, [0]);
    const cols = e.op("Range", [e.ints([0], []), total(), e.ints([1], [])]);
    const beforeEnd = e.op("Less", [cols, e.unsqueeze(ends, [1])]);
    const afterStart = e.op("Not", [e.op("Less", [cols, e.unsqueeze(starts, [1])])]);
    const bias = e.op("Where", [e.op("And", [beforeEnd, afterStart]), zero, fill]);
    return e.unsqueeze(bias, [1, 2]);
  }
  throw new UnfuseUnsupported(`${rank}-D mask_index${rank === 4 ? " (Megatron causal mask)" : ""}`);
}

/** Rewrites one `com.microsoft.Attention` node. */
export function unfuseAttention(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const x = input(node, 0)!;
  const w = input(node, 1);
  const bias = input(node, 2);
  const mask = input(node, 3);
  const past = input(node, 4);
  const attnBias = input(node, 5);
  if (!w) throw new UnfuseUnsupported("no weights input");
  if (intAttr(node, "do_rotary", 0)) throw new UnfuseUnsupported("do_rotary (rotary embeddings)");
  if (intAttr(node, "past_present_share_buffer", 0) || input(node, 6)) throw new UnfuseUnsupported("past_present_share_buffer / past_sequence_length");
  if (e.opset < 11) throw new UnfuseUnsupported(`ai.onnx opset ${e.opset} (Range and Slice inputs need 11+)`);
  const H = intAttr(node, "num_heads", 0);
  if (H <= 0) throw new UnfuseUnsupported("num_heads missing");
  const T = floatType(g, [w, x]);
  let sizes = intsAttr(node, "qkv_hidden_sizes");
  if (!sizes || sizes.length === 0) {
    const total = facts(g, w).dims?.[1] ?? facts(g, bias ?? "").dims?.[0];
    if (typeof total !== "number" || total % 3 !== 0) throw new UnfuseUnsupported(`the packed QKV width of ${w} is not known statically`);
    sizes = [total / 3, total / 3, total / 3];
  }
  if (sizes.length !== 3 || sizes[0] !== sizes[1] || sizes.some((s) => s % H !== 0)) {
    throw new UnfuseUnsupported(`qkv_hidden_sizes [${sizes.join(", ")}] for ${H} heads`);
  }
  if (past && sizes[2] !== sizes[0]) throw new UnfuseUnsupported("past with a different v hidden size");
  const [hq, , hv] = sizes as [number, number, number];
  const dq = hq / H;
  const dv = hv / H;
  const scaleAttr = floatAttr(node, "scale", 0);
  const scale = scaleAttr !== 0 ? scaleAttr : 1 / Math.sqrt(dq);

  const proj = e.op("MatMul", [x, w]);
  const qkv = bias ? e.op("Add", [proj, bias]) : proj;
  const [q, k, v] = e.split(qkv, 2, sizes) as [string, string, string];
  const heads = (t: string, d: number) => e.op("Reshape", [t, e.ints([0, 0, H, d])]);
  const qh = e.op("Transpose", [heads(q, dq)], { perm: [0, 2, 1, 3] });
  const k4 = heads(k, dq);
  const vh = e.op("Transpose", [heads(v, dv)], { perm: [0, 2, 1, 3] });
  const presentName = usedOutput(e, node, 1);
  let keys: string;
  let values = vh;
  let kT: string;
  if (past) {
    const kh = e.op("Transpose", [k4], { perm: [0, 2, 1, 3] });
    keys = e.op("Concat", [e.op("Gather", [past, e.ints([0], [])], { axis: 0 }), kh], { axis: 2 });
    values = e.op("Concat", [e.op("Gather", [past, e.ints([1], [])], { axis: 0 }), vh], { axis: 2 });
    kT = e.op("Transpose", [keys], { perm: [0, 1, 3, 2] });
  } else {
    kT = e.op("Transpose", [k4], { perm: [0, 2, 3, 1] });
    keys = presentName ? e.op("Transpose", [k4], { perm: [0, 2, 1, 3] }) : kT;
  }
  if (presentName) put(e, "Concat", [e.unsqueeze(keys, [0]), e.unsqueeze(values, [0])], presentName, { axis: 0 });

  attend(g, e, node, { x, qh, kT, keys: past || presentName ? keys : undefined, values, scale, T, mask, attnBias, width: hv });
}

/** The shared second half of the attention ops: scores, masks, softmax, values, head merge. */
interface AttendArgs {
  /** The query input [B,S,...] (for B and S at run time). */
  x: string;
  /** Queries [B,H,S,dq]. */
  qh: string;
  /** Keys transposed [B,H,dq,T]. */
  kT: string;
  /** Keys [B,H,T,dq], when materialised (past/present). */
  keys?: string;
  /** Values [B,H,T,dv]. */
  values: string;
  /** The score scale: a number, or a float scalar tensor computed at run time. */
  scale: number | string;
  /** Float element type. */
  T: number;
  /** Padding mask (`mask_index` / `key_padding_mask`). */
  mask?: string;
  /** Additive bias [B|1, H|1, S, T]. */
  attnBias?: string;
  /** Output width (v hidden size), or undefined for -1. */
  width?: number;
}

function attend(g: OnnxGraph, e: UnfuseEmitter, node: NodeProto, a: AttendArgs): void {
  const { x, qh, kT, values, T, mask, attnBias } = a;
  const scaled = e.op("Mul", [e.op("MatMul", [qh, kT]), typeof a.scale === "number" ? e.scalar(a.scale, T) : a.scale]);
  // Key length: from the keys [B,H,T,dh] (or [B,H,dh,T] when that is all there is).
  const keyLen = a.keys ?? kT;
  let totalLen: string | undefined;
  const total = () => (totalLen ??= e.dim(keyLen, keyLen === kT ? 3 : 2));
  // One additive mask, as onnxruntime's kernel builds it: the padding bias where the key is
  // causally visible, the lowest float where it is not (replaced, not added: a mask_filter_value
  // of -3.4e38 plus the lowest float would be -inf).
  let maskAdd = mask ? paddingBias(g, e, mask, x, total, Math.max(floatAttr(node, "mask_filter_value", -10000), lowest(T)), T) : undefined;
  if (intAttr(node, "unidirectional", 0)) {
    // Query i (after P past keys) sees key j iff j <= P + i, i.e. j < T - S + 1 + i.
    const rows = e.op("Range", [e.op("Add", [e.op("Sub", [total(), e.dim(x, 1)]), e.ints([1], [])]), e.op("Add", [total(), e.ints([1], [])]), e.ints([1], [])]);
    const cols = e.op("Range", [e.ints([0], []), total(), e.ints([1], [])]);
    const allowed = e.op("Less", [cols, e.unsqueeze(rows, [1])]);
    maskAdd = e.op("Where", [allowed, maskAdd ?? e.scalar(0, T), e.scalar(lowest(T), T)]);
  }
  let scores = maskAdd ? e.op("Add", [scaled, maskAdd]) : scaled;
  if (attnBias) scores = e.op("Add", [scores, attnBias]);
  const pattern = e.op("Softmax", [scores], { axis: -1 });
  const z = e.op("MatMul", [pattern, values]);
  const merged = e.op("Transpose", [z], { perm: [0, 2, 1, 3] });
  put(e, "Reshape", [merged, e.ints([0, 0, a.width ?? -1])], node.output[0]);
}

/**
 * `com.microsoft.MultiHeadAttention(query, key, value, bias?, key_padding_mask?,
 * attention_bias?, past_key?, past_value?)` with projected 3-D query, key and value
 * ([B,S,D], [B,L,D], [B,L,Dv]; self- or cross-attention): `Add` of the bias slices, heads
 * split by `Reshape` + `Transpose`, keys and values after `past_key`/`past_value` (outputs
 * `present_key`, `present_value`), then the same scores, masks and softmax as `Attention`.
 * Packed QKV/KV inputs, keys given as [B,H,L,dh], buffer sharing, `cache_indirection` and the
 * `qk` output are refused by name.
 */
export function unfuseMultiHeadAttention(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const query = input(node, 0)!;
  const key = input(node, 1);
  const value = input(node, 2);
  const bias = input(node, 3);
  const mask = input(node, 4);
  const attnBias = input(node, 5);
  const pastKey = input(node, 6);
  const pastValue = input(node, 7);
  const rank = (v: string | undefined) => (v ? facts(g, v).dims?.length : undefined);
  if (!key || !value) throw new UnfuseUnsupported("packed QKV or packed KV input (query or key without value)");
  if (rank(query) !== undefined && rank(query) !== 3) throw new UnfuseUnsupported(`query of rank ${rank(query)}`);
  if (rank(key) !== undefined && rank(key) !== 3) throw new UnfuseUnsupported(`key of rank ${rank(key)} (keys as [B,H,L,dh])`);
  if (!!pastKey !== !!pastValue) throw new UnfuseUnsupported("past_key without past_value (or the reverse)");
  if (input(node, 8) || input(node, 9) || intAttr(node, "past_present_share_buffer", 0)) throw new UnfuseUnsupported("past_sequence_length / cache_indirection (buffer sharing)");
  if (usedOutput(e, node, 3)) throw new UnfuseUnsupported("the qk output");
  if (e.opset < 11) throw new UnfuseUnsupported(`ai.onnx opset ${e.opset} (Range and Slice inputs need 11+)`);
  const H = intAttr(node, "num_heads", 0);
  if (H <= 0) throw new UnfuseUnsupported("num_heads missing");
  const T = floatType(g, [query, key, value]);
  const width = (v: string) => {
    const d = facts(g, v).dims?.[2];
    return typeof d === "number" ? d : undefined;
  };
  const D = width(query) ?? width(key);
  let Dv = width(value);
  let q = query;
  let k = key;
  let v = value;
  if (bias) {
    const b = facts(g, bias).dims?.[0];
    if (D === undefined && typeof b === "number" && b % 3 === 0) Dv ??= b / 3;
    const d = D ?? (typeof b === "number" && Dv !== undefined ? (b - Dv) / 2 : undefined);
    if (d === undefined || Dv === undefined) throw new UnfuseUnsupported(`the widths of query and value are not known statically (needed to split the bias ${bias})`);
    const [bq, bk, bv] = e.split(bias, 0, [d, d, Dv]) as [string, string, string];
    q = e.op("Add", [query, bq]);
    k = e.op("Add", [key, bk]);
    v = e.op("Add", [value, bv]);
  }
  const heads = (t: string) => e.op("Transpose", [e.op("Reshape", [t, e.ints([0, 0, H, -1])])], { perm: [0, 2, 1, 3] });
  const qh = heads(q);
  let keys = heads(k);
  let values = heads(v);
  if (pastKey && pastValue) {
    keys = e.op("Concat", [pastKey, keys], { axis: 2 });
    values = e.op("Concat", [pastValue, values], { axis: 2 });
  }
  const presentKey = usedOutput(e, node, 1);
  const presentValue = usedOutput(e, node, 2);
  if (presentKey) keys = put(e, "Identity", [keys], presentKey);
  if (presentValue) values = put(e, "Identity", [values], presentValue);
  const kT = e.op("Transpose", [keys], { perm: [0, 1, 3, 2] });
  const scaleAttr = floatAttr(node, "scale", 0);
  let scale: number | string;
  if (scaleAttr !== 0) scale = scaleAttr;
  else if (D !== undefined) scale = 1 / Math.sqrt(D / H);
  else scale = e.op("Reciprocal", [e.op("Sqrt", [e.op("Cast", [e.dim(qh, 3)], { to: T })])]);
  attend(g, e, node, { x: query, qh, kT, keys, values, scale, T, mask, attnBias, width: Dv });
}
