/**
 * Un-fusing `com.microsoft.Attention`: each variant (masks of every format onnxruntime's CPU
 * kernel takes, causal or not, past/present, attention_bias, scale, mask_filter_value, unequal
 * v width) runs in onnxruntime-node as the fused op, is rewritten as standard ONNX, runs again,
 * and both outputs must agree within 1e-5 on random inputs, batch 2, several lengths, padding.
 */
import { describe, expect, it } from "vitest";
import { GraphBuilder, attr, type AttrInput } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { unfuseContribOps } from "../../src/onnx/unfuse/index.js";
import { compareUnfused, f32, i32, msModel, rand } from "./_unfuse.js";

const MS = "com.microsoft";
const DIN = 6; // input width (differs from the attention width on purpose)
const H = 2;

type MaskKind = "none" | "2d" | "1d" | "1d-start" | "3d" | "4d";

interface Variant {
  unidirectional?: boolean;
  mask?: MaskKind;
  past?: boolean;
  present?: boolean;
  attnBias?: "1HST" | "B1ST";
  sizes?: [number, number, number];
  scale?: number;
  filter?: number;
  noBias?: boolean;
  zeroBias?: boolean;
  opset?: number;
}

function attentionModel(v: Variant) {
  const [hq, hk, hv] = v.sizes ?? [8, 8, 8];
  const b = new GraphBuilder({ opset: v.opset ?? 13 });
  const x = b.input("x", "float32", ["batch", "seq", DIN]);
  const w = b.initializer("qkv_w", rand(DIN * (hq + hk + hv), 11, 0.7), [DIN, hq + hk + hv]);
  const bias = v.noBias ? "" : b.initializer("qkv_b", v.zeroBias ? new Float32Array(hq + hk + hv) : rand(hq + hk + hv, 12, 0.5), [hq + hk + hv]);
  const maskShape: Record<MaskKind, (string | number)[] | undefined> = {
    none: undefined,
    "2d": ["batch", "total"],
    "1d": ["batch"],
    "1d-start": ["twice_batch"],
    "3d": ["batch", "seq", "total"],
    "4d": ["batch", 1, "max", "max"],
  };
  const ms = maskShape[v.mask ?? "none"];
  const mask = ms ? b.input("mask_index", "int32", ms) : "";
  const past = v.past ? b.input("past", "float32", [2, "batch", H, "past_seq", hq / H]) : "";
  const ab = v.attnBias ? b.input("attention_bias", "float32", v.attnBias === "1HST" ? [1, H, "seq", "total"] : ["batch", 1, "seq", "total"]) : "";
  const inputs = [x, w, bias, mask, past, ab];
  while (inputs[inputs.length - 1] === "") inputs.pop();
  const attrs: Record<string, AttrInput> = { num_heads: H };
  if (v.unidirectional) attrs.unidirectional = 1;
  if (v.sizes) attrs.qkv_hidden_sizes = v.sizes;
  if (v.scale !== undefined) attrs.scale = attr.float(v.scale);
  if (v.filter !== undefined) attrs.mask_filter_value = attr.float(v.filter);
  const withPresent = v.present || v.past;
  const outs = b.node("Attention", inputs, { name: "Attention_0", domain: MS, outputs: withPresent ? ["attn_out", "present"] : ["attn_out"], attrs });
  b.output(outs[0]!, "float32");
  if (withPresent) b.output("present", "float32");
  return msModel(b);
}

/** Feeds for batch 2, query length S, past length P: row 1 padded (left or right) by `pad`. */
function attentionFeeds(v: Variant, S: number, P: number, seed: number, pad: { left: boolean; n: number }): Record<string, HostTensor> {
  const hq = (v.sizes ?? [8])[0];
  const T = P + S;
  const f: Record<string, HostTensor> = { x: f32(rand(2 * S * DIN, seed), [2, S, DIN]) };
  const keep = (b: number, j: number) => b === 0 || (pad.left ? j >= pad.n : j < T - pad.n);
  switch (v.mask ?? "none") {
    case "2d":
      f.mask_index = i32(Array.from({ length: 2 * T }, (_, i) => (keep(Math.floor(i / T), i % T) ? 1 : 0)), [2, T]);
      break;
    case "1d":
      f.mask_index = i32([T, T - pad.n], [2]);
      break;
    case "1d-start":
      f.mask_index = i32([T, T - (pad.left ? 0 : pad.n), 0, pad.left ? pad.n : 0], [4]);
      break;
    case "3d": {
      // row 1 padded, and query 0 of row 0 also hides the last key
      const data: number[] = [];
      for (let b = 0; b < 2; b++) for (let i = 0; i < S; i++) for (let j = 0; j < T; j++) data.push(keep(b, j) && !(b === 0 && i === 0 && j === T - 1 && T > 1) ? 1 : 0);
      f.mask_index = i32(data, [2, S, T]);
      break;
    }
    case "4d": {
      f.mask_index = i32(Array.from({ length: 2 * T * T }, () => 1), [2, 1, T, T]);
      break;
    }
  }
  if (v.past) f.past = f32(rand(2 * 2 * H * P * (hq / H), seed + 7), [2, 2, H, P, hq / H]);
  if (v.attnBias) f.attention_bias = f32(rand((v.attnBias === "1HST" ? H : 2) * S * T, seed + 9, 2), v.attnBias === "1HST" ? [1, H, S, T] : [2, 1, S, T]);
  return f;
}

const CASES: [string, Variant][] = [
  ["bidirectional, no mask", {}],
  ["unidirectional, no mask (GPT-2)", { unidirectional: true }],
  ["unidirectional, 2-D mask [B, T]", { unidirectional: true, mask: "2d" }],
  ["bidirectional, 2-D mask", { mask: "2d" }],
  ["1-D mask [B] (key lengths)", { mask: "1d", unidirectional: true }],
  ["1-D mask [2B] (ends, starts)", { mask: "1d-start" }],
  ["3-D mask [B, S, T]", { mask: "3d", unidirectional: true }],
  ["present without past", { unidirectional: true, mask: "2d", present: true }],
  ["past + present, 2-D mask over past + new", { unidirectional: true, mask: "2d", past: true }],
  ["past + present, bidirectional", { past: true }],
  ["attention_bias [1, H, S, T]", { unidirectional: true, attnBias: "1HST" }],
  ["attention_bias [B, 1, S, T] with a mask (onnxruntime refuses past + attention_bias)", { attnBias: "B1ST", mask: "2d", unidirectional: true }],
  ["scale attribute", { unidirectional: true, scale: 0.3 }],
  ["mask_filter_value attribute", { mask: "2d", filter: -30 }],
  ["default mask_filter_value (-10000) made observable by scores in the thousands", { mask: "2d", scale: 3000 }],
  ["mask_filter_value -3.4e38 (onnxruntime's GPT-2 fusion), causal, left padding", { mask: "2d", filter: -3.4028234663852886e38, unidirectional: true }],
  ["qkv_hidden_sizes with a wider v", { sizes: [8, 8, 12], mask: "2d", unidirectional: true }],
  ["opset 12 (Split, Unsqueeze, reductions with attributes)", { unidirectional: true, mask: "1d-start", past: true, opset: 12 }],
  ["opset 17", { unidirectional: true, mask: "2d", opset: 17 }],
  ["opset 18 (Split and reductions as inputs)", { unidirectional: true, mask: "1d", opset: 18 }],
];

describe("unfuse: com.microsoft.Attention", () => {
  it.each(CASES)("%s", async (_t, v) => {
    const sets: Record<string, HostTensor>[] = [];
    let seed = 1;
    for (const S of [1, 3, 6]) {
      for (const P of v.past ? [0, 2] : [0]) {
        for (const pad of [
          { left: false, n: 2 },
          { left: true, n: 1 },
        ]) {
          if (S + P <= pad.n) continue;
          sets.push(attentionFeeds(v, S, P, seed++, pad));
        }
      }
    }
    const r = await compareUnfused(attentionModel(v), sets);
    expect(r.maxDiff).toBeLessThan(1e-5);
    expect(Object.keys(r.perOutput).sort()).toEqual(v.past || v.present ? ["attn_out", "present"] : ["attn_out"]);
  });

  it("no bias input (onnxruntime's CPU kernel needs one: the reference is the fused op with a zero bias)", async () => {
    const { createSession } = await import("../../src/backend/ort.js");
    const { encodeModel } = await import("../../src/onnx/proto.js");
    const v: Variant = { unidirectional: true, mask: "2d" };
    const g = OnnxGraph.fromModel(attentionModel({ ...v, noBias: true }));
    unfuseContribOps(g, { strict: true });
    const plain = await createSession(encodeModel(g.model), { optimizationLevel: "disabled" });
    const fused = await createSession(encodeModel(attentionModel({ ...v, zeroBias: true })), { optimizationLevel: "disabled" });
    let d = 0;
    for (const S of [2, 5]) {
      const f = attentionFeeds(v, S, 0, S, { left: true, n: 1 });
      const a = (await fused.run(f)).attn_out!.data as Float32Array;
      const b = (await plain.run(f)).attn_out!.data as Float32Array;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    }
    await plain.release();
    await fused.release();
    expect(d).toBeLessThan(1e-5);
  });

  it("EmbedLayerNormalization's mask_index (1-D, rank known from its producer) feeding Attention", async () => {
    const V = 13;
    const b = new GraphBuilder({ opset: 13 });
    const ids = b.input("input_ids", "int32", ["batch", "seq"]);
    const mask = b.input("mask", "int32", ["batch", "seq"]);
    const wte = b.initializer("wte", rand(V * DIN, 41), [V, DIN]);
    const wpe = b.initializer("wpe", rand(16 * DIN, 42), [16, DIN]);
    const gamma = b.initializer("gamma", rand(DIN, 43).map((v) => 1 + v / 2), [DIN]);
    const beta = b.initializer("beta", rand(DIN, 44), [DIN]);
    const [emb, maskIndex] = b.node("EmbedLayerNormalization", [ids, "", wte, wpe, "", gamma, beta, mask], { name: "EmbedLayerNormalization_0", domain: MS, outputs: 2, attrs: { epsilon: attr.float(1e-5) } });
    const w = b.initializer("qkv_w", rand(DIN * 24, 45, 0.7), [DIN, 24]);
    const bias = b.initializer("qkv_b", rand(24, 46, 0.5), [24]);
    const out = b.op("Attention", [emb!, w, bias, maskIndex!], { name: "Attention_0", domain: MS, attrs: { num_heads: H } });
    b.output("out", "float32", undefined, out);
    const sets = [2, 5].map((S, k) => ({
      input_ids: i32(Array.from({ length: 2 * S }, (_, i) => (i * 5 + k) % V), [2, S]),
      // right padding in row 1 (the 1-D mask_index is key lengths)
      mask: i32(Array.from({ length: 2 * S }, (_, i) => (i >= S && i >= 2 * S - 1 ? 0 : 1)), [2, S]),
    }));
    const r = await compareUnfused(msModel(b), sets);
    expect(r.maxDiff).toBeLessThan(1e-5);
    expect(r.report.unfused.map((u) => u.op)).toEqual(["EmbedLayerNormalization", "Attention"]);
  });

  it("writes the export's op order: Split (3 outputs) -> Reshape each, Softmax pattern, Transpose after MatMul(pattern, v)", () => {
    const g = OnnxGraph.fromModel(attentionModel({ unidirectional: true, mask: "2d" }));
    unfuseContribOps(g, { strict: true });
    const split = g.nodes.find((n) => n.opType === "Split")!;
    expect(split.output).toHaveLength(3);
    for (const o of split.output) expect(g.consumers(o).map((n) => n.opType)).toEqual(["Reshape"]);
    const softmax = g.nodes.filter((n) => n.opType === "Softmax");
    expect(softmax).toHaveLength(1);
    const pv = g.consumers(softmax[0]!.output[0]!);
    expect(pv.map((n) => n.opType)).toEqual(["MatMul"]);
    const vT = g.producer(pv[0]!.input[1]!)!;
    expect(vT.opType).toBe("Transpose");
    expect(g.producer(vT.input[0]!)!.input[0]).toBe(split.output[2]);
    const z = g.consumers(pv[0]!.output[0]!);
    expect(z.map((n) => n.opType)).toEqual(["Transpose"]);
    expect(g.consumers(z[0]!.output[0]!).map((n) => n.opType)).toEqual(["Reshape"]);
    expect(g.producer("attn_out")!.opType).toBe("Reshape");
    expect(g.nodes.every((n) => n.name.startsWith("Attention_0/") || n.opType === "Identity")).toBe(true);
    // scores are scaled by a Mul, then the mask is added: a causal Where over the padding bias
    const scores = g.producer(softmax[0]!.input[0]!)!;
    expect(scores.opType).toBe("Add");
    expect(g.producer(scores.input[0]!)!.opType).toBe("Mul");
    expect(g.producer(scores.input[1]!)!.opType).toBe("Where");
  });

  it("a 4-D (Megatron) mask is reported by name and left fused; strict mode throws E_UNSUPPORTED_GRAPH", async () => {
    const g = OnnxGraph.fromModel(attentionModel({ unidirectional: true, mask: "4d" }));
    const before = g.nodes.length;
    const r = unfuseContribOps(g);
    expect(r.unsupported).toEqual([{ op: "Attention", domain: MS, node: "Attention_0", reason: expect.stringMatching(/4-D mask_index/) }]);
    expect(g.nodes.length).toBe(before);
    const { thrown } = await import("../helpers/errors.js");
    const e = thrown(() => unfuseContribOps(OnnxGraph.fromModel(attentionModel({ mask: "4d" })), { strict: true }));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.message).toMatch(/Attention node Attention_0: 4-D mask_index/);
  });
});

interface MhaVariant {
  bias?: boolean;
  mask?: "2d" | "1d" | "3d";
  past?: boolean;
  cross?: boolean;
  unidirectional?: boolean;
  attnBias?: boolean;
  scale?: number;
  wideV?: boolean;
  undeclaredWidths?: boolean;
}

const D = 8;

function mhaModel(v: MhaVariant) {
  const Dv = v.wideV ? 12 : D;
  const b = new GraphBuilder({ opset: 13 });
  const w = (n: number) => (v.undeclaredWidths ? "w" : n);
  const q = b.input("query", "float32", ["batch", "seq", w(D)]);
  const kv = v.cross ? "kv_seq" : "seq";
  const k = b.input("key", "float32", ["batch", kv, w(D)]);
  const val = b.input("value", "float32", ["batch", kv, w(Dv)]);
  const bias = v.bias ? b.initializer("bias", rand(2 * D + Dv, 31, 0.5), [2 * D + Dv]) : "";
  const maskDims = { "2d": ["batch", "total"], "1d": ["batch"], "3d": ["batch", "seq", "total"] } as const;
  const mask = v.mask ? b.input("key_padding_mask", "int32", [...maskDims[v.mask]]) : "";
  const ab = v.attnBias ? b.input("attention_bias", "float32", [1, H, "seq", "total"]) : "";
  const pk = v.past ? b.input("past_key", "float32", ["batch", H, "past", D / H]) : "";
  const pv = v.past ? b.input("past_value", "float32", ["batch", H, "past", Dv / H]) : "";
  const inputs = [q, k, val, bias, mask, ab, pk, pv];
  while (inputs[inputs.length - 1] === "") inputs.pop();
  const attrs: Record<string, AttrInput> = { num_heads: H };
  if (v.unidirectional) attrs.unidirectional = 1;
  if (v.scale !== undefined) attrs.scale = attr.float(v.scale);
  const outs = b.node("MultiHeadAttention", inputs, { name: "MultiHeadAttention_0", domain: MS, outputs: v.past ? ["out", "present_key", "present_value"] : ["out"], attrs });
  b.output(outs[0]!, "float32");
  if (v.past) {
    b.output("present_key", "float32");
    b.output("present_value", "float32");
  }
  return msModel(b);
}

function mhaFeeds(v: MhaVariant, S: number, L: number, P: number, seed: number): Record<string, HostTensor> {
  const Dv = v.wideV ? 12 : D;
  const T = P + L;
  const f: Record<string, HostTensor> = {
    query: f32(rand(2 * S * D, seed), [2, S, D]),
    key: f32(rand(2 * L * D, seed + 1), [2, L, D]),
    value: f32(rand(2 * L * Dv, seed + 2), [2, L, Dv]),
  };
  if (v.mask === "2d") f.key_padding_mask = i32(Array.from({ length: 2 * T }, (_, i) => (i >= T && i < T + 1 ? 0 : 1)), [2, T]);
  if (v.mask === "1d") f.key_padding_mask = i32([T, Math.max(1, T - 2)], [2]);
  if (v.mask === "3d") f.key_padding_mask = i32(Array.from({ length: 2 * S * T }, (_, i) => (i % T === T - 1 && i >= S * T ? 0 : 1)), [2, S, T]);
  if (v.attnBias) f.attention_bias = f32(rand(H * S * T, seed + 3, 2), [1, H, S, T]);
  if (v.past) {
    f.past_key = f32(rand(2 * H * P * (D / H), seed + 4), [2, H, P, D / H]);
    f.past_value = f32(rand(2 * H * P * (Dv / H), seed + 5), [2, H, P, Dv / H]);
  }
  return f;
}

const MHA_CASES: [string, MhaVariant][] = [
  ["self-attention, no bias, no mask", {}],
  ["bias, 2-D key padding mask", { bias: true, mask: "2d" }],
  ["1-D key lengths, unidirectional", { mask: "1d", unidirectional: true, bias: true }],
  ["3-D mask", { mask: "3d" }],
  ["past_key / past_value -> present_key / present_value, unidirectional, mask", { past: true, unidirectional: true, mask: "2d", bias: true }],
  ["cross-attention (key length differs), mask", { cross: true, mask: "2d", bias: true }],
  ["attention_bias and scale", { attnBias: true, scale: 0.2, unidirectional: true }],
  ["wider v with bias", { wideV: true, bias: true, mask: "2d" }],
  ["widths not declared: scale from the head size at run time", { undeclaredWidths: true, mask: "2d" }],
];

describe("unfuse: com.microsoft.MultiHeadAttention", () => {
  it.each(MHA_CASES)("%s", async (_t, v) => {
    const sets: Record<string, HostTensor>[] = [];
    let seed = 1;
    for (const S of [1, 4]) for (const P of v.past ? [0, 3] : [0]) sets.push(mhaFeeds(v, S, v.cross ? S + 2 : S, P, seed++));
    const r = await compareUnfused(mhaModel(v), sets);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });

  it("packed QKV (query only) is reported by name", () => {
    const b = new GraphBuilder({ opset: 13 });
    const q = b.input("qkv", "float32", ["batch", "seq", H, 3, 4]);
    b.output("out", "float32", undefined, b.op("MultiHeadAttention", [q], { name: "mha", domain: MS, attrs: { num_heads: H } }));
    const r = unfuseContribOps(OnnxGraph.fromModel(msModel(b)));
    expect(r.unsupported).toEqual([{ op: "MultiHeadAttention", domain: MS, node: "mha", reason: expect.stringMatching(/packed QKV/) }]);
  });
});

describe("unfuse: scale", () => {
  it("a 48-block fused graph (192 fused nodes) un-fuses in well under 15 s (replacements appended, one sort at the end)", () => {
    // Inserting each node in the middle of the graph rebuilt the name index per node: 43 s here.
    const L = 48;
    const b = new GraphBuilder({ opset: 13 });
    let x = b.input("x", "float32", ["batch", "seq", D]);
    const mask = b.input("mask", "int32", ["batch", "seq"]);
    let resid = x;
    for (let l = 0; l < L; l++) {
      const g = b.initializer(`g${l}`, rand(D, l + 1), [D]);
      const be = b.initializer(`b${l}`, rand(D, l + 2), [D]);
      const w = b.initializer(`w${l}`, rand(D * 3 * D, l + 3), [D, 3 * D]);
      const bias = b.initializer(`bias${l}`, rand(3 * D, l + 4), [3 * D]);
      const wo = b.initializer(`wo${l}`, rand(D * D, l + 5), [D, D]);
      const [ln1, , , sum] = b.node("SkipLayerNormalization", [resid, x, g, be], { name: `SkipLayerNorm_${l}`, domain: MS, outputs: 4 });
      const a = b.op("Attention", [ln1!, w, bias, mask], { name: `Attention_${l}`, domain: MS, attrs: { num_heads: 2, unidirectional: 1 } });
      const fused = b.op("FusedMatMul", [a, wo], { name: `FusedMatMul_${l}`, domain: MS, attrs: { alpha: attr.float(0.5) } });
      x = b.op("FastGelu", [fused, b.initializer(`gb${l}`, rand(D, l + 6), [D])], { name: `FastGelu_${l}`, domain: MS });
      resid = sum!;
    }
    b.output("y", "float32", undefined, x);
    b.output("resid", "float32", undefined, resid);
    const g = OnnxGraph.fromModel(msModel(b));
    const t0 = performance.now();
    const r = unfuseContribOps(g, { strict: true });
    const ms = performance.now() - t0;
    expect(r.unfused).toHaveLength(4 * L);
    expect(ms).toBeLessThan(15_000);
    // dependency order: every input is produced earlier (or is a graph input / initializer)
    const seen = new Set([...g.inputNames(), ...g.initializerNames()]);
    for (const n of g.nodes) {
      for (const i of n.input) if (i) expect(seen.has(i), `${n.name} reads ${i}`).toBe(true);
      for (const o of n.output) seen.add(o);
    }
  });
});
