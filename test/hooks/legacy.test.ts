/**
 * The legacy export form (torch.onnx 1.5/1.6, opset 11, Hugging Face transformers 2.x/3.x GPT-2:
 * no module scopes, `w * b - 1e4 * (1 - b)` or `where(b, w, -1e4)` causal masks, keys permuted
 * `(0, 2, 3, 1)`, `past_N` / `present_N` stacks, `Add(x, 0)` after the embeddings, Gemm or
 * MatMul + Add Conv1D, with or without `attention_mask`):
 * - the generated graph computes the same logits as the modern generated graph and the float64
 *   reference (run directly in onnxruntime);
 * - `Model.load` finds every hook, and each equals the float64 reference within 1e-4 (batch of one
 *   and a padded batch; attention scores compared where the reference is not masked: the legacy
 *   graph masks with -1e4, not float32's minimum, and that is checked separately);
 * - interventions equal the reference with hand-edited weights; the attribution table equals
 *   the modern graph's; greedy generation (with and without a steering edit) equals the
 *   full-sequence reference / the modern model token for token, on the key/value cache.
 */
import { writeFile } from "node:fs/promises";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { steer, zeroHead } from "../../src/intervene/edits.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { TINY_GPT2, type Gpt2Config } from "../../src/synthetic/config.js";
import { legacyGpt2Graph, type LegacyOptions } from "../../src/synthetic/forms/legacy.js";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, lcgRows, makeTestModel, maxAbsDiff, realPositions, type TestModel } from "../helpers/models.js";

const VARIANTS: { label: string; config: Gpt2Config; seed: number; opts: LegacyOptions }[] = [
  { label: "mul-sub mask, past_N, attention_mask, Gemm, initializers as inputs", config: TINY_GPT2, seed: 7, opts: { initializersAsInputs: true } },
  { label: "mul-sub mask, position_ids, past_N split apart (onnxruntime's GPT-2 helper)", config: TINY_GPT2, seed: 13, opts: { positionIds: true, pastUnstack: "split" } },
  { label: "where mask, no past, scale from Shape, MatMul + Add", config: FOUR_LAYER, seed: 5, opts: { mask: "where", past: false, scale: "shape", conv1d: "matmul" } },
  { label: "mul-sub mask, no past, no attention_mask, numeric initializers", config: TINY_GPT2, seed: 9, opts: { past: false, attentionMask: false, numericInitializers: true } },
  { label: "where mask, past_N split apart, no attention_mask", config: TINY_GPT2, seed: 11, opts: { mask: "where", attentionMask: false, pastUnstack: "split" } },
];


const pad = (rows: number[][]) => {
  const S = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]),
    mask: rows.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]),
  };
};

const i64 = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0]!.length]);

describe.each(VARIANTS)("legacy graph: $label", ({ config, seed, opts }) => {
  let tm: TestModel;
  let model: Model;
  beforeAll(async () => {
    tm = await makeTestModel({ config, seed });
    await writeFile(tm.model, encodeModel(legacyGpt2Graph(config, tm.weights, opts)));
    model = await Model.load(tm.dir);
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });

  it("is the legacy form: opset 11, no scopes, and computes the modern graph's logits in onnxruntime", async () => {
    const m = legacyGpt2Graph(config, tm.weights, opts);
    expect(m.opsetImport[0]!.version).toBe(11n);
    const g = OnnxGraph.fromModel(m);
    expect(g.nodes.every((n) => /^[A-Za-z]+_\d+$/.test(n.name))).toBe(true);
    const ops = new Set(g.nodes.map((n) => n.opType));
    expect(ops.has("Where")).toBe(opts.mask === "where");
    expect(g.nodes.find((n) => n.opType === "Split")!.input).toHaveLength(1);
    const rows = lcgRows([7, 4], 3, config.vocab_size);
    const { ids, mask } = pad(rows);
    const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids) };
    if (opts.attentionMask !== false) feeds.attention_mask = i64(mask);
    if (opts.positionIds) feeds.position_ids = i64(ids.map((r) => r.map((_, j) => j)));
    if (opts.past !== false) {
      for (let l = 0; l < config.n_layer; l++) feeds[`past_${l}`] = new ort.Tensor("float32", new Float32Array(0), [2, 2, config.n_head, 0, config.n_embd / config.n_head]);
    }
    const legacy = await ort.InferenceSession.create(encodeModel(m));
    const modern = await ort.InferenceSession.create(encodeModel(buildGpt2Graph(config, tm.weights)));
    const a = (await legacy.run(feeds)).logits!.data as Float32Array;
    const b = (await modern.run({ input_ids: i64(ids), attention_mask: i64(mask) })).logits!.data as Float32Array;
    const ref = gpt2Reference(config, tm.weights, ids, mask).logits.data;
    const V = config.vocab_size;
    const S = ids[0]!.length;
    const real = (i: number) => Math.floor(i / V) % S < rows[Math.floor(i / (S * V))]!.length;
    expect(maxAbsDiff(a, b, real)).toBeLessThan(1e-4);
    expect(maxAbsDiff(a, ref, real)).toBeLessThan(1e-4);
    console.log(`legacy ${JSON.stringify(opts)} logits: vs modern ${maxAbsDiff(a, b, real).toExponential(2)}, vs float64 ${maxAbsDiff(a, ref, real).toExponential(2)}`);
    if (opts.past !== false) {
      // present_N = stack(key, value) [2, B, H, S, dh]
      const out = await legacy.run(feeds);
      expect(out.present_0!.dims).toEqual([2, 2, config.n_head, S, config.n_embd / config.n_head]);
    }
  });

  it.each([
    { label: "batch 1", lengths: [9] },
    { label: "padded batch of 3", lengths: [7, 3, 5] },
  ])("every hook equals the float64 reference within 1e-4 ($label)", async ({ lengths }) => {
    const V = config.vocab_size;
    const rows = lcgRows(lengths, 11 + lengths.length, V);
    const t = await model.trace(rows, { hooks: () => true });
    const { ids, mask } = pad(rows);
    const Smax = ids[0]!.length;
    const ref = gpt2Reference(config, tm.weights, ids, mask);
    const names = runtimeOf(model).selectHooks(() => true);
    expect(names).toHaveLength(2 + 16 * config.n_layer + 1);
    const worst: Record<string, number> = {};
    let maskedScores = 0;
    for (const name of names) {
      const r = ref.cache.get(name)!;
      const a = t.cache.get(name);
      expect(a.dims, name).toEqual(r.dims);
      const real = realPositions(a, lengths);
      worst[name] = maxAbsDiff(a.data, r.data, (flat) => {
        if (!real(flat)) return false;
        if (name.endsWith("hook_attn_scores") && r.data[flat]! < -1e30) {
          // Masked by the legacy graph's own constant (-1e4), not float32's minimum.
          expect(a.data[flat]!).toBeLessThanOrEqual(-1e4 + 100);
          maskedScores++;
          return false;
        }
        return true;
      });
    }
    worst.logits = maxAbsDiff(t.logits.data, ref.logits.data, (i) => Math.floor(i / V) % Smax < lengths[Math.floor(i / (Smax * V))]!);
    expect(maskedScores).toBeGreaterThan(0);
    expect(Object.entries(worst).filter(([, x]) => !(x <= 1e-4))).toEqual([]);
    console.log(`legacy ${JSON.stringify(opts)} ${lengths.join(",")}: max hook diff ${Math.max(...Object.values(worst)).toExponential(2)}`);
  });

  it("zeroHead equals the reference with the head's c_proj rows zeroed", async () => {
    const P = lcgRows([10], 5, config.vocab_size)[0]!;
    const dh = config.n_embd / config.n_head;
    const w: Gpt2Weights = new Map([...tm.weights].map(([k, v]) => [k, { data: v.data.slice(), dims: [...v.dims] }]));
    w.get("transformer.h.1.attn.c_proj.weight")!.data.fill(0, 1 * dh * config.n_embd, 2 * dh * config.n_embd);
    const want = gpt2Reference(config, w, [P]).logits.data;
    const r = await model.intervene([P], [zeroHead(1, 1)], { logits: "all" });
    expect(maxAbsDiff(r.edited.logits.data, want)).toBeLessThan(1e-4);
    expect(maxAbsDiff(r.clean.logits.data, want)).toBeGreaterThan(1e-3);
  });

  describe("against the modern graph of the same weights", () => {
    let mt: TestModel;
    let modern: Model;
    beforeAll(async () => {
      mt = await makeTestModel({ config, seed });
      modern = await Model.load(mt.dir);
    });
    afterAll(async () => {
      await modern?.dispose();
      await mt?.cleanup();
    });

    it("the attribution table equals the modern graph's", async () => {
      const P = lcgRows([10], 6, config.vocab_size)[0]!;
      const o = { target: 100, distractor: 201, topK: 12 };
      const a = await model.attribute([P], o);
      const b = await modern.attribute([P], o);
      expect(a.loss).toBeCloseTo(b.loss, 5);
      expect(a.counts).toEqual(b.counts);
      expect(a.nodes.map((n) => n.id)).toEqual(b.nodes.map((n) => n.id));
      a.nodes.forEach((n, i) => expect(n.totalEffect, n.id).toBeCloseTo(b.nodes[i]!.totalEffect, 4));
    });

    it("greedy generation equals the full-sequence reference, on the key/value cache", async () => {
      const P = lcgRows([6], 8, config.vocab_size)[0]!;
      const g = await model.generate(P, { maxNewTokens: 8 });
      expect(g.cached).toBe(true);
      const seq = [...P];
      for (let k = 0; k < 8; k++) {
        const lg = gpt2Reference(config, tm.weights, [seq]).logits.data;
        const V = config.vocab_size;
        const last = lg.subarray((seq.length - 1) * V, seq.length * V);
        let best = 0;
        for (let j = 1; j < V; j++) if (last[j]! > last[best]!) best = j;
        seq.push(best);
      }
      expect(g.tokens).toEqual(seq);
      // With a steering edit: the same tokens as the modern model (both cached), and not the plain ones.
      const v = Array.from({ length: config.n_embd }, (_, i) => Math.sin(i));
      const eo = { edits: [steer("blocks.1.hook_resid_pre", v, 3)], maxNewTokens: 8 };
      const a = await model.generate(P, eo);
      const b = await modern.generate(P, eo);
      expect([a.cached, b.cached]).toEqual([true, true]);
      expect(a.tokens).toEqual(b.tokens);
      expect(a.newTokens).not.toEqual(g.newTokens);
      const full = await model.generate(P, { ...eo, cache: false });
      expect(full.cached).toBe(false);
      expect(full.tokens).toEqual(a.tokens);
    });
  });
});
