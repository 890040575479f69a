/**
 * Generation with the key/value cache: the with-past graph tdb-js builds (one-token steps equal
 * the full-sequence run at that position, on a plain decoder and on the no-past branch of a
 * merged decoder, and the float64 reference), and generation with edits equal to a
 * full-sequence reference token for token (greedy and seeded sampling). The reference runs the
 * whole sequence through `model.intervene` at every step, with each edit's positions turned into
 * absolute ones by the documented rule, written out here: the token at absolute position `a` is
 * computed in the prompt pass (sequence length = prompt length) when `a` is in the prompt, else
 * in the step that adds it (sequence length `a + 1`); position `q` names it when `q == a`
 * (`q >= 0`) or `length + q == a` (`q < 0`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ablateDirection, patchFrom, steer, zeroHead, zeroNeuron, type Edit } from "../../src/intervene/edits.js";
import { Rng } from "../../src/base/random.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { KvCache, runWithPast } from "../../src/runtime/kv-cache.js";
import type { HookName } from "../../src/hooks/names.js";
import { readFile, writeFile } from "node:fs/promises";
import type { ModelProto } from "onnx-buf";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { float16Graph } from "../../src/synthetic/forms/float16.js";
import { int32Inputs } from "../../src/synthetic/forms/int32.js";
import { positionIdsInput } from "../../src/synthetic/forms/position-ids.js";
import { withPastGraph } from "../../src/synthetic/forms/with-past.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, makeTestModel, maxAbsDiff, useTestModel, type TestModel } from "../helpers/models.js";

const TOKENS = [11, 40, 7, 120, 3, 66, 9, 250, 17];
const V = FOUR_LAYER.vocab_size;
const D = FOUR_LAYER.n_embd;
const H = FOUR_LAYER.n_head;
const DH = D / H;

describe("the with-past graph", () => {
  for (const variant of ["decoder", "merged"] as const) {
    let tm: TestModel;
    let model: Model;
    beforeAll(async () => {
      tm = await makeTestModel({ config: FOUR_LAYER, seed: 9, variant });
      model = await Model.load(tm.dir);
    });
    afterAll(async () => {
      await model?.dispose();
      await tm?.cleanup();
    });

    it(`${variant}: a one-token step with the past of n tokens equals the full run at position n (logits and hooks, 1e-5)`, async () => {
      const rt = runtimeOf(model);
      const hooks: HookName[] = ["blocks.1.attn.hook_pattern", "blocks.2.hook_resid_pre", "blocks.3.attn.hook_k", "blocks.0.mlp.hook_post", "blocks.3.hook_resid_post"];
      const full = await rt.trace([TOKENS], { hooks, prependBos: false });
      const ref = gpt2Reference(tm.arch, tm.weights, [TOKENS]);
      let worst = 0;
      for (let n = 1; n < TOKENS.length; n++) {
        const cache = new KvCache(FOUR_LAYER.n_layer, H, DH);
        const prompt = await runWithPast(rt, cache, TOKENS.slice(0, n), { hooks, edits: [] });
        expect(cache.length).toBe(n);
        worst = Math.max(worst, maxAbsDiff(prompt.logits, full.logits.data.subarray((n - 1) * V, n * V)));
        const step = await runWithPast(rt, cache, [TOKENS[n]!], { hooks, edits: [] });
        expect(cache.length).toBe(n + 1);
        expect(cache.keys[2]!.length).toBe((n + 1) * D);
        const at = (h: HookName, width: number) => full.cache.get(h).data.subarray(n * width, (n + 1) * width);
        const diffs = [
          maxAbsDiff(step.logits, full.logits.data.subarray(n * V, (n + 1) * V)),
          maxAbsDiff(step.logits, Float32Array.from(ref.logits.data.subarray(n * V, (n + 1) * V))),
          maxAbsDiff(step.hooks.get("blocks.2.hook_resid_pre")!.data, at("blocks.2.hook_resid_pre", D)),
          maxAbsDiff(step.hooks.get("blocks.3.hook_resid_post")!.data, at("blocks.3.hook_resid_post", D)),
          maxAbsDiff(step.hooks.get("blocks.3.attn.hook_k")!.data, at("blocks.3.attn.hook_k", D)),
          maxAbsDiff(step.hooks.get("blocks.0.mlp.hook_post")!.data, at("blocks.0.mlp.hook_post", 4 * D)),
        ];
        // The pattern row of query n over keys 0..n, per head.
        const pat = step.hooks.get("blocks.1.attn.hook_pattern")!;
        expect(pat.dims).toEqual([1, H, 1, n + 1]);
        const fp = full.cache.get("blocks.1.attn.hook_pattern");
        const S = TOKENS.length;
        for (let h = 0; h < H; h++) {
          const row = fp.data.subarray((h * S + n) * S, (h * S + n) * S + n + 1);
          diffs.push(maxAbsDiff(pat.data.subarray(h * (n + 1), (h + 1) * (n + 1)), row));
        }
        worst = Math.max(worst, ...diffs);
      }
      expect(worst).toBeLessThan(1e-5);
    });
  }
});

describe("cached generation on other export forms", () => {
  /** Last field: whether the steps run on the cache (undefined: either, as the runtime chooses for float16). */
  const FORMS: [string, "decoder" | "merged", (m: ModelProto) => ModelProto, boolean | undefined][] = [
    ["int32 inputs", "decoder", int32Inputs, true],
    ["position_ids input", "decoder", positionIdsInput, true],
    ["with past (past_key_values), int32, position_ids", "merged", (m) => int32Inputs(positionIdsInput(withPastGraph(m))), true],
    ["with past (past_N)", "merged", (m) => withPastGraph(m, { layout: "past_N" }), true],
    ["float16", "decoder", float16Graph, undefined],
  ];
  for (const [name, variant, make, cached] of FORMS) {
    it(`${name}: equals the full re-run token for token`, async () => {
      const tm = await makeTestModel({ config: FOUR_LAYER, seed: 5, variant });
      await writeFile(tm.model, encodeModel(make(decodeModel(await readFile(tm.model)))));
      const model = await Model.load(tm.dir);
      try {
        const edits = [steer("blocks.1.hook_resid_pre", Array.from({ length: D }, (_, i) => Math.cos(i)), 4, { positions: [-1] }), zeroHead(2, 1)];
        const g = await model.generate([11, 40, 7], { edits, maxNewTokens: 6, stopAtEos: false });
        if (cached !== undefined) expect(g.cached).toBe(cached);
        const full = await model.generate([11, 40, 7], { edits, maxNewTokens: 6, stopAtEos: false, cache: false });
        expect(g.tokens).toEqual(full.tokens);
      } finally {
        await model.dispose();
        await tm.cleanup();
      }
    });
  }
});

describe("generate with the cache", () => {
  let tm: TestModel;
  let model: Model;
  useTestModel({ config: FOUR_LAYER, seed: 9 }, (t, m) => {
    tm = t;
    model = m;
  });

  const PROMPT = [11, 40, 7, 120];
  const N = 8;
  const vec = (f: (i: number) => number) => Array.from({ length: D }, (_, i) => f(i));
  /** Half of block 1's neurons: an edit strong enough to change greedy tokens. */
  const NEURONS = Array.from({ length: 2 * D }, (_, i) => 2 * i);

  /** Absolute positions of an edit at sequence length `L` (prompt length `S0`), by the documented rule. */
  function absolute(positions: readonly number[], L: number, S0: number): number[] {
    const out: number[] = [];
    for (let a = 0; a < L; a++) {
      const len = a < S0 ? S0 : a + 1;
      if (positions.some((q) => (q >= 0 ? q === a : len + q === a))) out.push(a);
    }
    return out;
  }

  /** Sampling as documented: softmax(logits / T) over the top k, one uniform draw per token. */
  function sample(logits: Float32Array, temperature: number, topK: number, rng: Rng): number {
    if (temperature === 0) return logits.indexOf(Math.max(...logits));
    const ids = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, topK);
    const w = ids.map((i) => Math.exp((logits[i]! - logits[ids[0]!]!) / temperature));
    const total = w.reduce((a, b) => a + b, 0);
    let u = rng.uniform() * total;
    for (let j = 0; j < ids.length; j++) if ((u -= w[j]!) <= 0) return ids[j]!;
    return ids[ids.length - 1]!;
  }

  /** Full-sequence reference: `model.intervene` on the whole sequence at every step. */
  async function reference(edits: readonly Edit[], n: number, sampling: { temperature: number; topK: number; seed: number }): Promise<number[]> {
    const tokens = [...PROMPT];
    const rng = new Rng(sampling.seed);
    for (let i = 0; i < n; i++) {
      const L = tokens.length;
      const abs = edits
        .map((e) => (e.positions === undefined ? e : { ...e, positions: absolute(e.positions, L, PROMPT.length) }))
        .filter((e) => e.positions === undefined || e.positions.length > 0);
      const logits = abs.length ? (await model.intervene([tokens], abs)).edited.logitsAt() : (await model.trace([tokens], { hooks: [], prependBos: false })).logitsAt();
      tokens.push(sample(logits, sampling.temperature, sampling.topK, rng));
    }
    return tokens;
  }

  const CASES: [string, () => Edit[]][] = [
    ["no edits", () => []],
    ["steering on resid_pre, every position", () => [steer("blocks.1.hook_resid_pre", vec((i) => Math.cos(i)), 4)]],
    ["steering on resid_pre at -1", () => [steer("blocks.2.hook_resid_pre", vec((i) => Math.sin(3 * i)), 6, { positions: [-1] })]],
    ["zero ablation of a head, every position", () => [zeroHead(0, 1)]],
    ["zero ablation of heads at 1 and -1", () => [zeroHead(2, [0, 2], { positions: [1, -1] })]],
    ["neuron edit at 2, 5 and -2", () => [zeroNeuron(1, NEURONS, { positions: [2, 5, -2] })]],
    ["keys and values of a head scaled at -1 (they join the cache edited)", () => [
      { hook: "blocks.0.attn.hook_k", kind: "scale", value: 4, at: { head: [0, 1] }, positions: [-1] },
      { hook: "blocks.0.attn.hook_v", kind: "scale", value: -3, at: { head: [0, 1] }, positions: [-1] },
    ]],
    [
      "all together, with a direction ablation",
      () => [
        ablateDirection("blocks.3.hook_resid_pre", vec((i) => (i % 3) - 1), { positions: [-1] }),
        steer("blocks.1.hook_resid_pre", vec((i) => Math.cos(i)), 3, { positions: [0, 6] }),
        zeroHead(1, 2),
        zeroNeuron(0, [5, 9], { positions: [-1, 3] }),
      ],
    ],
  ];

  for (const [name, edits] of CASES) {
    it(`${name}: equals the full-sequence reference token for token (greedy and sampled)`, async () => {
      for (const sampling of [
        { temperature: 0, topK: V, seed: 0 },
        { temperature: 1.5, topK: 40, seed: 5 },
      ]) {
        const g = await model.generate(PROMPT, { edits: edits(), maxNewTokens: N, stopAtEos: false, ...sampling });
        expect(g.cached).toBe(true);
        expect(g.tokens).toEqual(await reference(edits(), N, sampling));
        const full = await model.generate(PROMPT, { edits: edits(), maxNewTokens: N, stopAtEos: false, cache: false, ...sampling });
        expect(full.cached).toBe(false);
        expect(full.tokens).toEqual(g.tokens);
      }
    });
  }

  it("edits change the generation (so the comparisons above can fail)", async () => {
    const clean = (await model.generate(PROMPT, { maxNewTokens: N, stopAtEos: false })).tokens;
    for (const [name, edits] of CASES.slice(1)) {
      const g = await model.generate(PROMPT, { edits: edits(), maxNewTokens: N, stopAtEos: false });
      expect(g.tokens, name).not.toEqual(clean);
    }
  });

  it("a neuron edit with positions matches the float64 reference's argmax", async () => {
    const neurons = NEURONS;
    const positions = [2, 5, -1];
    const tokens = [...PROMPT];
    for (let i = 0; i < N; i++) {
      const abs = new Set(absolute(positions, tokens.length, PROMPT.length));
      const r = gpt2Reference(tm.arch, tm.weights, [tokens], undefined, {
        onHook: (hook, t) => {
          if (hook !== "blocks.1.mlp.hook_post") return;
          const w = t.dims[2]!;
          for (const p of abs) for (const k of neurons) t.data[p * w + k] = 0;
        },
      });
      const last = r.logits.data.subarray((tokens.length - 1) * V, tokens.length * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (last[j]! > last[best]!) best = j;
      tokens.push(best);
    }
    const g = await model.generate(PROMPT, { edits: [zeroNeuron(1, neurons, { positions })], maxNewTokens: N, stopAtEos: false });
    expect(g.cached).toBe(true);
    expect(g.tokens).toEqual(tokens);
    expect(g.tokens).not.toEqual((await model.generate(PROMPT, { maxNewTokens: N, stopAtEos: false })).tokens);
  });

  it("patch edits re-run the whole sequence, with the same position rule", async () => {
    const source = await model.trace([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]], { hooks: ["blocks.2.hook_resid_pre"], prependBos: false });
    const edits = (): Edit[] => [patchFrom("blocks.2.hook_resid_pre", source, { positions: [1, -1], align: "start" })];
    const g = await model.generate(PROMPT, { edits: edits(), maxNewTokens: N, stopAtEos: false });
    expect(g.cached).toBe(false);
    expect(g.tokens).toEqual(await reference(edits(), N, { temperature: 0, topK: V, seed: 0 }));
    // A source shorter than the prompt, aligned at the end: only the positions edited need a source position.
    const short = await model.trace([[5, 6, 7]], { hooks: ["blocks.2.hook_resid_pre"], prependBos: false });
    const shortEdits = (): Edit[] => [patchFrom("blocks.2.hook_resid_pre", short, { positions: [-1], align: "end" })];
    const s = await model.generate(PROMPT, { edits: shortEdits(), maxNewTokens: 3, stopAtEos: false });
    expect(s.tokens).toEqual(await reference(shortEdits(), 3, { temperature: 0, topK: V, seed: 0 }));
  });

  it("a model whose adapter cannot build a with-past graph re-runs the whole sequence, with the same result", async () => {
    const other = await Model.load(tm.dir);
    try {
      const rt = runtimeOf(other) as unknown as { adapter: object };
      rt.adapter = { ...rt.adapter, withPast: undefined };
      const edits = [steer("blocks.2.hook_resid_pre", vec((i) => Math.sin(3 * i)), 6, { positions: [-1] })];
      const g = await other.generate(PROMPT, { edits, maxNewTokens: N, stopAtEos: false });
      expect(g.cached).toBe(false);
      expect(g.tokens).toEqual((await model.generate(PROMPT, { edits, maxNewTokens: N, stopAtEos: false })).tokens);
    } finally {
      await other.dispose();
    }
  });

  it("stops at the context length as the full re-run does, and checks positions against it", async () => {
    const long = Array.from({ length: FOUR_LAYER.n_positions - 3 }, (_, i) => (i * 7) % V);
    const edits = [steer("blocks.1.hook_resid_pre", vec((i) => Math.cos(i)), 4, { positions: [-1] })];
    const g = await model.generate(long, { edits, maxNewTokens: 10, stopAtEos: false });
    expect(g.tokens).toHaveLength(FOUR_LAYER.n_positions);
    expect(g.tokens).toEqual((await model.generate(long, { edits, maxNewTokens: 10, stopAtEos: false, cache: false })).tokens);
    await expect(model.generate(PROMPT, { edits: [zeroNeuron(0, 1, { positions: [FOUR_LAYER.n_positions] })] })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
    await expect(model.generate(PROMPT, { edits: [zeroNeuron(0, 9999)] })).rejects.toMatchObject({ code: "E_INDEX_RANGE" });
    await expect(model.generate(PROMPT, { cache: "yes" as unknown as boolean })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
  });
});
