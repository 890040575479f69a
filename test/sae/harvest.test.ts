/**
 * Harvesting activations for SAE training: the rows streamed from a model over a corpus are, in
 * order, the rows of the context windows built here by hand (tokens from `model.toTokens`, BOS
 * between documents, `[BOS] + next tokens`), checked against `model.trace(...).cache.get(hook)` of
 * each window alone and against the float64 reference forward; budgets, BOS skipping, resuming
 * offsets; trainSae on a model; bad hooks and options.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSaeCheckpoint } from "../../src/sae/checkpoint.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { harvestActivations, saeHookWidth } from "../../src/sae/harvest.js";
import { trainSae } from "../../src/sae/train.js";
import { rejected, thrown } from "../helpers/errors.js";
import { maxAbsDiff, useTestModel, type TestModel } from "../helpers/models.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: TINY_GPT2, seed: 21 }, (t, m) => {
  tm = t;
  model = m;
});

const DOCS = [
  { id: "a", text: "The quick brown fox jumps over the lazy dog near the river bank." },
  { id: "b", text: "   " }, // blank: skipped
  { id: "c", text: "Sparse autoencoders find features; they read one hook of the model." },
  { id: "d", text: "Short one." },
  { id: "e", text: "A last document with a few more words so that the stream runs past several windows of tokens." },
];

/** The token windows of DOCS, built independently of harvest.ts. */
function windows(ctx: number): number[][] {
  const bos = model.bosTokenId;
  const stream: number[] = [];
  for (const d of DOCS) {
    if (d.text.trim() === "") continue;
    if (stream.length > 0) stream.push(bos);
    stream.push(...model.toTokens(d.text, { prependBos: false }));
  }
  const out: number[][] = [];
  for (let i = 0; i < stream.length; i += ctx - 1) out.push([bos, ...stream.slice(i, i + ctx - 1)]);
  if (out.length > 0 && out[out.length - 1]!.length < 2) out.pop();
  return out;
}

async function collect(it: AsyncIterable<Float32Array>): Promise<{ rows: Float32Array; batches: number[] }> {
  const parts: Float32Array[] = [];
  for await (const b of it) parts.push(b.slice());
  const rows = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    rows.set(p, o);
    o += p.length;
  }
  return { rows, batches: parts.map((p) => p.length) };
}

/** Expected rows of `hook`: each window traced alone, positions from `first` on. */
async function expectedRows(hook: string, ctx: number, first: number): Promise<{ trace: number[]; ref: number[] }> {
  const trace: number[] = [];
  const ref: number[] = [];
  for (const w of windows(ctx)) {
    const a = (await model.trace([w], { hooks: [hook as never] })).cache.get(hook);
    const r = gpt2Reference(tm.arch, tm.weights, [w]).cache.get(hook)!;
    const per = a.data.length / w.length;
    expect(r.data.length).toBe(a.data.length);
    trace.push(...a.data.subarray(first * per));
    ref.push(...r.data.subarray(first * per));
  }
  return { trace, ref };
}

describe("harvestActivations", () => {
  it("yields, in order, the hook rows of the hand-built windows (mlp_out, hook_z flattened, mlp post), BOS position left out", async () => {
    const ctx = 8;
    expect(windows(ctx).length).toBeGreaterThan(5); // several batches, a short last window
    for (const [hook, width] of [
      ["blocks.1.hook_mlp_out", 64],
      ["blocks.0.attn.hook_z", 4 * 16],
      ["blocks.1.mlp.hook_post", 256],
    ] as const) {
      expect(saeHookWidth(hook, model.config)).toBe(width);
      const got = await collect(harvestActivations(model, DOCS, { hook, contextLength: ctx, promptsPerBatch: 3 }));
      const want = await expectedRows(hook, ctx, 1);
      expect(got.rows.length).toBe(want.trace.length);
      expect(got.rows.length % width).toBe(0);
      expect(maxAbsDiff(got.rows, want.trace)).toBeLessThan(1e-5);
      expect(maxAbsDiff(got.rows, want.ref)).toBeLessThan(1e-4);
      // Full batches hold 3 windows of 7 rows; only the last two batches may be smaller.
      expect(got.batches[0]).toBe(3 * 7 * width);
    }
  });

  it("keeps position 0 with skipBos: false, stops at the token budget exactly, and skips rows for a resume", async () => {
    const hook = "blocks.0.hook_resid_post";
    const ctx = 6;
    const all = await collect(harvestActivations(model, DOCS, { hook, contextLength: ctx, skipBos: false, promptsPerBatch: 2 }));
    const want = await expectedRows(hook, ctx, 0);
    expect(maxAbsDiff(all.rows, want.trace)).toBeLessThan(1e-5);
    const d = 64;
    const skipped = (await collect(harvestActivations(model, DOCS, { hook, contextLength: ctx, promptsPerBatch: 2 }))).rows;
    // Budget: 17 rows, the first 17 of the full stream.
    const some = await collect(harvestActivations(model, DOCS, { hook, contextLength: ctx, tokens: 17, promptsPerBatch: 2 }));
    expect(some.rows.length).toBe(17 * d);
    expect(maxAbsDiff(some.rows, skipped.subarray(0, 17 * d))).toBeLessThan(1e-5);
    // Skipping 13 rows (two whole windows of 5, then 3 rows) and taking 9: rows 13..21.
    const later = await collect(harvestActivations(model, DOCS, { hook, contextLength: ctx, tokens: 9, skipRows: 13, promptsPerBatch: 2 }));
    expect(later.rows.length).toBe(9 * d);
    expect(maxAbsDiff(later.rows, skipped.subarray(13 * d, 22 * d))).toBeLessThan(1e-5);
  });

  it("takes plain strings and a ModelRuntime (structural model interface)", async () => {
    const hook = "blocks.1.hook_resid_pre";
    const fromDocs = await collect(harvestActivations(model, DOCS, { hook, contextLength: 8 }));
    const fromStrings = await collect(harvestActivations(runtimeOf(model), DOCS.map((d) => d.text), { hook, contextLength: 8 }));
    expect(maxAbsDiff(fromStrings.rows, fromDocs.rows)).toBe(0);
  });

  it("rejects bad hooks and options with what is allowed", async () => {
    const e1 = await rejected(collect(harvestActivations(model, DOCS, { hook: "blocks.0.hook_nope" })));
    expect(e1.code).toBe("E_UNKNOWN_HOOK");
    expect(e1.value).toBe("blocks.0.hook_nope");
    const e2 = await rejected(collect(harvestActivations(model, DOCS, { hook: "blocks.5.hook_mlp_out" })));
    expect([e2.code, e2.value]).toEqual(["E_LAYER_RANGE", 5]);
    const e3 = thrown(() => saeHookWidth("blocks.0.attn.hook_pattern", model.config));
    expect([e3.code, e3.value]).toEqual(["E_BAD_OPTION", "blocks.0.attn.hook_pattern"]);
    const e4 = await rejected(collect(harvestActivations(model, DOCS, { hook: "blocks.0.hook_mlp_out", contextLength: 65 })));
    expect([e4.code, e4.value, e4.allowed]).toEqual(["E_BAD_OPTION", 65, "an integer in [2, 64]"]);
    const e5 = await rejected(collect(harvestActivations(model, "one text" as never, { hook: "blocks.0.hook_mlp_out" })));
    expect(e5.code).toBe("E_BAD_INPUT");
  });
});

describe("trainSae on a model, a hook and a corpus", () => {
  const corpus = Array.from({ length: 30 }, (_, i) => `Document ${i}: ${DOCS[i % DOCS.length]!.text} and then some ${i * 7} more words.`);

  it("reads d_in from the hook, trains on the harvested rows, and names the hook", async () => {
    const sae = await trainSae({ model, hook: "blocks.0.attn.hook_z", corpus, dSae: 32, steps: 6, batchSize: 16, harvest: { contextLength: 16 }, bufferRows: 64 });
    expect(sae.dIn).toBe(64);
    expect(sae.hook).toBe("blocks.0.attn.hook_z");
    expect(sae.steps).toBe(6);
    expect(sae.weights.W_enc.dims).toEqual([64, 32]);
    // A budget smaller than the run: the stream ends, training stops early (40 rows: 16 + 24 in the buffer).
    const short = await trainSae({ model, hook: "blocks.1.hook_mlp_out", corpus, dSae: 16, steps: 50, batchSize: 8, harvest: { tokens: 40 }, bufferRows: 16 });
    expect(short.steps).toBeLessThan(50);
    expect(short.steps).toBeGreaterThan(0);
  });

  it("resumes from a checkpoint past the rows it read (whole windows skipped without running the model)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tdb-sae-harvest-"));
    try {
      const path = join(dir, "run.ckpt");
      const opts = { model, hook: "blocks.1.hook_resid_post", corpus, dSae: 16, steps: 6, batchSize: 16, bufferRows: 16, harvest: { contextLength: 9, promptsPerBatch: 2 }, threads: 1 };
      const stopped = await trainSae({ ...opts, checkpoint: { path, every: 2 }, onProgress: (p) => {
        if (p.step === 3) throw new Error("stop");
      } }).catch((e: unknown) => e);
      expect(stopped).toBeInstanceOf(Error);
      // Buffer of 16 filled (16 rows), then each step's 16 draws read 16 more: 48 rows after step 2.
      expect((await readSaeCheckpoint(path))!.data).toEqual({ streamRows: 48 });
      let traced = 0;
      const counting = { ...model, config: model.config, bosTokenId: model.bosTokenId, toTokens: model.toTokens.bind(model), trace: (w: readonly (readonly number[])[], o: never) => {
        traced += w.length;
        return model.trace(w, o);
      } };
      const resumed = await trainSae({ ...opts, model: counting, checkpoint: { path, every: 2, resume: true } });
      expect([resumed.resumedFrom, resumed.steps]).toEqual([2, 6]);
      // After the resume: 48 rows skipped, the buffer refilled (16), four steps of 16: 128.
      expect((await readSaeCheckpoint(path))!.data).toEqual({ streamRows: 128 });
      // 8 rows per window, 2 windows per pass: rows 48..127 are windows 6..15; the first 6 windows were not run again.
      expect(traced).toBe(10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects a d_in that does not match the hook, an unknown hook, and a mix of data sources", async () => {
    const e1 = await rejected(trainSae({ model, hook: "blocks.0.hook_mlp_out", corpus, dIn: 32, dSae: 8, steps: 1 }));
    expect([e1.code, e1.value, e1.allowed]).toEqual(["E_BAD_OPTION", 32, 64]);
    const e2 = await rejected(trainSae({ model, hook: "blocks.0.mlp.hook_nope", corpus, dSae: 8, steps: 1 }));
    expect(e2.code).toBe("E_UNKNOWN_HOOK");
    const e3 = await rejected(trainSae({ model, hook: "blocks.0.hook_mlp_out", corpus, activations: new Float32Array(64), dSae: 8, steps: 1 }));
    expect(e3.code).toBe("E_BAD_OPTION");
    const e4 = await rejected(trainSae({ model, corpus, dSae: 8, steps: 1 }));
    expect([e4.code, e4.value]).toEqual(["E_BAD_OPTION", undefined]);
  });
});
