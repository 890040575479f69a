/**
 * SAE training: the training graph's gradients against central finite differences of a float64
 * loss written out here; ground-truth recovery (MMCS, dead latents) on synthetic features in
 * superposition; streamed input; bad input.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { createSession } from "../../src/backend/ort.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { deadFraction, mmcs } from "../../src/sae/metrics.js";
import { syntheticFeatures } from "../../src/sae/synthetic.js";
import { saeLearningRate, trainSae, type TrainedSae } from "../../src/sae/train.js";
import { buildSaeTrainGraph } from "../../src/sae/train-graph.js";
import { rejected } from "../helpers/errors.js";

interface Params {
  wEnc: Float64Array; // [d, S]
  bEnc: Float64Array;
  wDec: Float64Array; // [S, d]
  bDec: Float64Array;
}

/**
 * Float64 reference loss. Standard: mean over rows of ||x_hat - x||^2 + l1 * sum_i f_i ||W_dec_i||.
 * TopK: mean of ||x_hat - x||^2 + auxCoef * mean of ||e_hat - e0||^2, e0 the residual at `fixed`
 * weights (held constant), e_hat the decoder (no bias) over the kAux largest pre-activations of dead latents.
 */
function refLoss(p: Params, x: Float64Array, B: number, d: number, S: number, o: { arch: "standard" | "topk"; l1?: number; k?: number; kAux?: number; auxCoef?: number; dead?: boolean[]; e0?: Float64Array }): { loss: number; e: Float64Array } {
  let loss = 0;
  const eAll = new Float64Array(B * d);
  for (let b = 0; b < B; b++) {
    const pre = new Float64Array(S);
    for (let i = 0; i < S; i++) {
      let s = p.bEnc[i]!;
      for (let j = 0; j < d; j++) s += (x[b * d + j]! - p.bDec[j]!) * p.wEnc[j * S + i]!;
      pre[i] = s;
    }
    const f = new Float64Array(S);
    if (o.arch === "standard") for (let i = 0; i < S; i++) f[i] = Math.max(0, pre[i]!);
    else {
      const order = [...pre.keys()].sort((a, c) => pre[c]! - pre[a]!);
      for (const i of order.slice(0, o.k)) f[i] = Math.max(0, pre[i]!);
    }
    for (let j = 0; j < d; j++) {
      let s = p.bDec[j]!;
      for (let i = 0; i < S; i++) s += f[i]! * p.wDec[i * d + j]!;
      eAll[b * d + j] = x[b * d + j]! - s;
      loss += (s - x[b * d + j]!) ** 2 / B;
    }
    if (o.arch === "standard") {
      for (let i = 0; i < S; i++) {
        let n = 0;
        for (let j = 0; j < d; j++) n += p.wDec[i * d + j]! ** 2;
        loss += (o.l1! * f[i]! * Math.sqrt(n)) / B;
      }
    } else if (o.e0) {
      const deadIdx = [...pre.keys()].filter((i) => o.dead![i]).sort((a, c) => pre[c]! - pre[a]!);
      const fa = new Float64Array(S);
      for (const i of deadIdx.slice(0, o.kAux)) fa[i] = Math.max(0, pre[i]!);
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let i = 0; i < S; i++) s += fa[i]! * p.wDec[i * d + j]!;
        loss += (o.auxCoef! * (s - o.e0[b * d + j]!) ** 2) / B;
      }
    }
  }
  return { loss, e: eAll };
}

async function checkGradients(arch: "standard" | "topk"): Promise<void> {
  const B = 6;
  const d = 5;
  const S = 9;
  const k = 3;
  const kAux = 2;
  const auxCoef = 0.5;
  const l1 = 0.7;
  const rng = new Rng(arch === "standard" ? 11 : 12);
  const f32 = (n: number, std: number): Float32Array => rng.fillNormal(new Float32Array(n), 0, std) as Float32Array;
  const x = f32(B * d, 1);
  const w = { W_enc: f32(d * S, 0.6), b_enc: f32(S, 0.2), W_dec: f32(S * d, 0.6), b_dec: f32(d, 0.3) };
  const dead = Array.from({ length: S }, (_, i) => i % 3 === 0);
  const penalty = Float32Array.from(dead, (z) => (z ? 0 : -1e9));
  const graph = buildSaeTrainGraph({ architecture: arch, batch: B, dIn: d, dSae: S, k, kAux, auxCoef });
  const s = await createSession(encodeModel(graph));
  const feeds = {
    x: { type: "float32" as const, data: x, dims: [B, d] },
    W_enc: { type: "float32" as const, data: w.W_enc, dims: [d, S] },
    b_enc: { type: "float32" as const, data: w.b_enc, dims: [S] },
    W_dec: { type: "float32" as const, data: w.W_dec, dims: [S, d] },
    b_dec: { type: "float32" as const, data: w.b_dec, dims: [d] },
    ...(arch === "standard" ? { l1: { type: "float32" as const, data: new Float32Array([l1 / B]), dims: [1] } } : { dead_penalty: { type: "float32" as const, data: penalty, dims: [S] } }),
  };
  const out = await s.run(feeds);
  await s.release();

  const p: Params = { wEnc: Float64Array.from(w.W_enc), bEnc: Float64Array.from(w.b_enc), wDec: Float64Array.from(w.W_dec), bDec: Float64Array.from(w.b_dec) };
  const xd = Float64Array.from(x);
  const e0 = refLoss(p, xd, B, d, S, { arch, k }).e;
  const opts = { arch, l1, k, kAux, auxCoef, dead, e0 };
  // The graph's reported loss terms against the reference.
  const sq = refLoss(p, xd, B, d, S, { arch, l1: 0, k }).loss * B;
  expect((out.sq_err!.data as Float32Array)[0]).toBeCloseTo(sq, 4);
  const h = 1e-5;
  const names: [keyof Params, string][] = [
    ["wEnc", "g_W_enc"],
    ["bEnc", "g_b_enc"],
    ["wDec", "g_W_dec"],
    ["bDec", "g_b_dec"],
  ];
  let worst = 0;
  for (const [key, gname] of names) {
    const g = out[gname]!.data as Float32Array;
    const arr = p[key];
    expect(g.length).toBe(arr.length);
    for (let i = 0; i < arr.length; i++) {
      const v0 = arr[i]!;
      arr[i] = v0 + h;
      const lp = refLoss(p, xd, B, d, S, opts).loss;
      arr[i] = v0 - h;
      const lm = refLoss(p, xd, B, d, S, opts).loss;
      arr[i] = v0;
      const fd = (lp - lm) / (2 * h);
      const err = Math.abs(fd - g[i]!) / Math.max(1, Math.abs(fd));
      worst = Math.max(worst, err);
      expect(err, `${gname}[${i}]: graph ${g[i]} vs finite difference ${fd}`).toBeLessThan(1e-3);
    }
  }
  expect(worst).toBeLessThan(1e-3);
}

describe("SAE training graph gradients", () => {
  it("standard (ReLU + decoder-norm-weighted L1): every gradient matches finite differences", async () => {
    await checkGradients("standard");
  });
  it("topk with AuxK on dead latents: every gradient matches finite differences", async () => {
    await checkGradients("topk");
  });
});

describe("trainSae schedules", () => {
  it("learning rate: linear warm-up, constant, linear decay to 0; L1 coefficient: linear warm-up", async () => {
    // 100 steps, warm-up 10, decay over the last 20 (from step 80): lr * min((s + 1) / 10, 1, (100 - s) / 20).
    for (const s of [0, 4, 9, 10, 50, 79, 80, 90, 99]) {
      const want = 0.01 * Math.min((s + 1) / 10, 1, (100 - s) / 20);
      expect(saeLearningRate(0.01, s, 100, 10, 80)).toBeCloseTo(want, 12);
    }
    const seen: { lr: number; l1: number }[] = [];
    const x = new Rng(9).fillNormal(new Float32Array(64 * 8)) as Float32Array;
    await trainSae({ activations: x, dIn: 8, dSae: 16, steps: 40, batchSize: 16, lr: 0.002, lrWarmupSteps: 4, lrDecayFraction: 0.25, l1Coefficient: 3, l1WarmupSteps: 8, onProgress: (p) => seen.push({ lr: p.lr, l1: p.l1Coefficient }) });
    expect(seen.length).toBe(40);
    seen.forEach((e, s) => {
      expect(e.lr).toBeCloseTo(0.002 * Math.min((s + 1) / 4, 1, (40 - s) / 10), 12);
      expect(e.l1).toBeCloseTo(3 * Math.min(1, (s + 1) / 8), 12);
    });
  });
});

describe("trainSae input checks", () => {
  const base = { dIn: 4, dSae: 8, steps: 2, batchSize: 4 };
  const good = new Rng(3).fillNormal(new Float32Array(16 * 4)) as Float32Array;

  it("rejects a NaN in activations naming the row (array and stream)", async () => {
    const bad = good.slice();
    bad[9 * 4 + 2] = NaN;
    const e1 = await rejected(trainSae({ ...base, activations: bad }));
    expect(e1.code).toBe("E_NON_FINITE");
    expect(e1.value).toEqual({ step: 0, row: 9 }); // found before training
    expect(e1.message).toContain("row 9");
    const chunk2 = good.slice(0, 8 * 4);
    chunk2[3 * 4] = Infinity;
    async function* stream(): AsyncGenerator<Float32Array> {
      yield good.slice(0, 8 * 4);
      yield chunk2;
    }
    const e2 = await rejected(trainSae({ ...base, activations: stream(), bufferRows: 8 }));
    expect(e2.code).toBe("E_NON_FINITE");
    // Row 3 of the second chunk of 8: the buffer of 8 fills with rows 0-7, drawing step 1's 4 rows refills it with rows 8-11.
    expect(e2.value).toEqual({ step: 1, row: 11 });
    expect(e2.message).toContain("step 1");
  });

  it("rejects batches whose size is not a multiple of d_in, and bad options, with what is allowed", async () => {
    const e1 = await rejected(trainSae({ ...base, activations: new Float32Array(4 * 4 + 1) }));
    expect(e1.code).toBe("E_BAD_INPUT");
    expect(e1.value).toBe(17);
    const e2 = await rejected(trainSae({ ...base, activations: [good.slice(0, 8), new Float32Array(6)] }));
    expect(e2.code).toBe("E_BAD_INPUT");
    expect(e2.value).toBe(6);
    const e3 = await rejected(trainSae({ ...base, activations: good, architecture: "gated" as never }));
    expect(e3.code).toBe("E_BAD_OPTION");
    expect(e3.value).toBe("gated");
    expect(e3.allowed).toEqual(["standard", "topk"]);
    expect(e3.message).toContain("one of standard, topk");
    const e4 = await rejected(trainSae({ ...base, activations: good, architecture: "topk" }));
    expect([e4.code, e4.value]).toEqual(["E_BAD_OPTION", undefined]);
    const e5 = await rejected(trainSae({ ...base, activations: good, architecture: "topk", k: 9 }));
    expect([e5.code, e5.value, e5.allowed]).toEqual(["E_BAD_OPTION", 9, "an integer in [1, 8]"]);
    const e6 = await rejected(trainSae({ ...base, activations: good, lr: -1 }));
    expect([e6.code, e6.value]).toEqual(["E_BAD_OPTION", -1]);
    const e7 = await rejected(trainSae({ ...base, activations: good.slice(0, 8) }));
    expect([e7.code, e7.value]).toEqual(["E_BAD_OPTION", 4]); // 2 rows, fewer than one batch
  });
});

/** Latent activations of `x` (rows x d) under trained weights, computed here in float64. */
function encodeRef(sae: TrainedSae, x: Float32Array): Float64Array {
  const { dIn: d, dSae: S } = sae;
  const { W_enc, b_enc, b_dec } = sae.weights;
  const rows = x.length / d;
  const acts = new Float64Array(rows * S);
  const pre = new Float64Array(S);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < S; i++) pre[i] = b_enc.data[i]!;
    for (let j = 0; j < d; j++) {
      const xc = x[r * d + j]! - b_dec.data[j]!;
      for (let i = 0; i < S; i++) pre[i] = pre[i]! + xc * W_enc.data[j * S + i]!;
    }
    if (sae.architecture === "topk") {
      const keep = [...pre.keys()].sort((a, b) => pre[b]! - pre[a]!).slice(0, sae.k);
      for (const i of keep) acts[r * S + i] = Math.max(0, pre[i]!);
    } else for (let i = 0; i < S; i++) acts[r * S + i] = Math.max(0, pre[i]!);
  }
  return acts;
}

// Ground truth: 512 unit feature directions in 64 dimensions (8x superposition), about 4 firing per
// row with magnitudes U(0, 1]. Standard: 1024 latents (duplicates of a feature still fire under a
// ReLU); TopK: 512 latents (with k = 4 and 1024 latents about half cannot win a slot: measured 48%
// dead, a property of data with 512 features, not of training). Figures (2-core machine, load ~1):
// standard 2500 steps of 512 rows ~12 s, topk 3000 steps of 256 rows ~8 s.
describe("trainSae recovers known features in superposition (issue 9 acceptance)", () => {
  const dIn = 64;
  const dSae = 1024;
  const synOpts = { nFeatures: 512, dIn, seed: 1, expectedL0: 4 };

  function score(sae: TrainedSae, truth: Float32Array, held: Float32Array): { mmcs: number; dead: number } {
    return { mmcs: mmcs(sae.weights.W_dec.data, truth, dIn), dead: deadFraction(encodeRef(sae, held), sae.dSae) };
  }

  it("standard (ReLU + L1): MMCS >= 0.9, <= 5% dead latents", async () => {
    const syn = syntheticFeatures(synOpts);
    const train = syn.sample(65536).x;
    const held = syn.sample(4096).x;
    const sae = await trainSae({ activations: train, dIn, dSae, steps: 2500, batchSize: 512, lr: 0.01, l1Coefficient: 0.3, seed: 2 });
    expect(sae.steps).toBe(2500);
    expect(sae.weights.W_dec.dims).toEqual([dSae, dIn]);
    expect(sae.weights.W_enc.dims).toEqual([dIn, dSae]);
    const s = score(sae, syn.features, held);
    expect(s.mmcs).toBeGreaterThanOrEqual(0.9);
    expect(s.dead).toBeLessThanOrEqual(0.05);
    // The losses fell, and the last step's reported L0 is that of the reference encoder (+-30%: another batch).
    expect(sae.losses.mse[2499]!).toBeLessThan(sae.losses.mse[0]! / 2);
    const acts = encodeRef(sae, held);
    let nz = 0;
    for (const a of acts) if (a > 0) nz++;
    expect(sae.losses.l0[2499]! / (nz / 4096)).toBeGreaterThan(0.7);
    expect(sae.losses.l0[2499]! / (nz / 4096)).toBeLessThan(1.3);
  }, 60_000);

  it("topk with AuxK, from a stream through a bounded shuffle buffer: MMCS >= 0.9, <= 5% dead latents", async () => {
    const syn = syntheticFeatures(synOpts);
    const held = syntheticFeatures(synOpts).sample(4096).x; // the same rows as the stream's first 4096
    const steps = 3000;
    const batchSize = 256;
    let chunks = 0;
    async function* stream(): AsyncGenerator<Float32Array> {
      for (; chunks < (steps * batchSize) / 1024 + 8; chunks++) yield syn.sample(1024).x;
    }
    const progress: number[] = [];
    const sae = await trainSae({ activations: stream(), dIn, dSae: 512, architecture: "topk", k: 4, steps, batchSize, lr: 3e-3, deadWindowSteps: 25, bufferRows: 4096, seed: 3, onProgress: (p) => progress.push(p.step) });
    expect(sae.k).toBe(4);
    expect(progress).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(Math.max(...sae.losses.l0)).toBeLessThanOrEqual(4);
    const s = score(sae, syn.features, held);
    expect(s.mmcs).toBeGreaterThanOrEqual(0.9);
    expect(s.dead).toBeLessThanOrEqual(0.05);
  }, 60_000);

  it("standard: dead latents are resampled at the scheduled steps only, and none is dead right after", async () => {
    const syn = syntheticFeatures({ nFeatures: 32, dIn: 16, seed: 5, expectedL0: 2 });
    const events: { step: number; resampled: number; dead: number }[] = [];
    const sae = await trainSae({
      activations: syn.sample(4096).x,
      dIn: 16,
      dSae: 128,
      steps: 200,
      batchSize: 128,
      lr: 0.01,
      l1Coefficient: 2, // strong enough that latents die
      deadWindowSteps: 20,
      resample: { every: 50, until: 150 },
      onProgress: (p) => events.push({ step: p.step, resampled: p.resampled, dead: p.deadFraction }),
    });
    const at = events.filter((e) => e.resampled > 0);
    expect(at.length).toBeGreaterThan(0);
    for (const e of at) {
      expect([50, 100, 150]).toContain(e.step);
      expect(e.dead).toBe(0);
    }
    expect(sae.resampled).toBe(at.reduce((a, e) => a + e.resampled, 0));
  });

  it("a stream that ends stops training early", async () => {
    const syn = syntheticFeatures({ nFeatures: 32, dIn: 8, seed: 4 });
    const sae = await trainSae({ activations: [syn.sample(100).x, syn.sample(100).x], dIn: 8, dSae: 16, steps: 50, batchSize: 20, bufferRows: 40 });
    // 200 rows of 20: the buffer yields full batches while 20 rows are left: 10 steps.
    expect(sae.steps).toBe(10);
    expect(sae.losses.mse.length).toBe(10);
  });
});
