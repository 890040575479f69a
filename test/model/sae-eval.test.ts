/**
 * `model.evaluateSae` on a generated 2-layer model: the three cross-entropy losses against the
 * float64 reference forward (clean, hook replaced by the SAE's float64 reconstruction, hook
 * zeroed) and against an independent log-softmax of the traced logits; reconstruction and
 * sparsity statistics against float64 sums written here; chunking does not change the result.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import type { Model } from "../../src/model/model.js";
import { Sae } from "../../src/sae/sae.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { rejected } from "../helpers/errors.js";
import { useTestModel, type TestModel } from "../helpers/models.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";

const C = TINY_GPT2;
const POST0 = "blocks.0.mlp.hook_post";
const D = C.n_inner!;
const M = 96;

let tm: TestModel;
let model: Model;
useTestModel({ config: C, seed: 5 }, (t, m) => ((tm = t), (model = m)));

function makeSae(seed: number, hookName?: string): Sae {
  const rng = new Rng(seed);
  const u = (n: number, s: number, o = 0) => Float32Array.from({ length: n }, () => o + s * (2 * rng.uniform() - 1));
  return Sae.create(
    { architecture: "standard", dIn: D, dSae: M, ...(hookName ? { hookName } : {}) },
    { W_enc: u(D * M, 2 / Math.sqrt(D)), W_dec: u(M * D, 0.05), b_enc: u(M, 0.1, 0.02), b_dec: u(D, 0.05) },
  );
}

/** Float64 encode and decode of one row at `off` (standard SAE, written from its definition). */
function f64(sae: Sae, x: ArrayLike<number>, off: number): { z: Float64Array; r: Float64Array } {
  const { W_enc, W_dec, b_enc, b_dec } = sae.weights;
  const z = new Float64Array(M);
  for (let j = 0; j < M; j++) {
    let s = b_enc![j]!;
    for (let i = 0; i < D; i++) s += (x[off + i]! - b_dec[i]!) * W_enc[i * M + j]!;
    z[j] = Math.max(0, s);
  }
  const r = Float64Array.from(b_dec);
  for (let j = 0; j < M; j++) if (z[j] !== 0) for (let i = 0; i < D; i++) r[i]! += z[j]! * W_dec[j * D + i]!;
  return { z, r };
}

/** Mean next-token cross-entropy of [B, S, V] logits over real positions, float64 log-softmax. */
function meanCe(logits: ArrayLike<number>, rows: number[][], S: number): number {
  const V = C.vocab_size;
  let sum = 0;
  let n = 0;
  rows.forEach((row, b) => {
    for (let p = 0; p + 1 < row.length; p++) {
      const o = (b * S + p) * V;
      let max = -Infinity;
      for (let i = 0; i < V; i++) max = Math.max(max, logits[o + i]!);
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(logits[o + i]! - max);
      sum += Math.log(s) + max - logits[o + row[p + 1]!]!;
      n++;
    }
  });
  return sum / n;
}

describe("evaluateSae", () => {
  const lengths = [10, 7, 12, 3, 9];
  const S = 12;
  let rows: number[][];
  const sae = makeSae(1, POST0);

  function refRun(onHook?: (name: string, t: RefTensor) => void) {
    const padded = rows.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]);
    const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]);
    return gpt2Reference(C, tm.weights, padded, mask, { onHook });
  }

  it("cross-entropy of the clean, spliced and zero-ablated runs equals the float64 reference", async () => {
    const rng = new Rng(21);
    rows = lengths.map((n) => [model.bosTokenId, ...Array.from({ length: n - 1 }, () => rng.int(C.vocab_size - 1))]);
    const ev = await model.evaluateSae(sae, rows, { batchSize: 2 });
    const clean = meanCe(refRun().logits.data, rows, S);
    const spliced = meanCe(
      refRun((name, t) => {
        if (name === POST0) for (let p = 0; p < t.data.length / D; p++) t.data.set(f64(sae, t.data, p * D).r, p * D);
      }).logits.data,
      rows,
      S,
    );
    const zero = meanCe(refRun((name, t) => name === POST0 && t.data.fill(0)).logits.data, rows, S);
    expect(ev.predictions).toBe(lengths.reduce((a, n) => a + n - 1, 0));
    expect(Math.abs(ev.ce.clean - clean)).toBeLessThan(1e-4);
    expect(Math.abs(ev.ce.spliced - spliced)).toBeLessThan(1e-4);
    expect(Math.abs(ev.ce.zeroAblated - zero)).toBeLessThan(1e-4);
    // the three differ, so the comparison means something
    expect(Math.abs(spliced - clean)).toBeGreaterThan(1e-3);
    expect(Math.abs(zero - clean)).toBeGreaterThan(1e-3);
    expect(Math.abs(ev.ceLossRecovered - (zero - spliced) / (zero - clean))).toBeLessThan(1e-2 * Math.abs(ev.ceLossRecovered) + 1e-3);
    // and the clean loss is the traced logits' own log-softmax (independent of the reference)
    const t = await model.trace(rows, { hooks: [] });
    expect(Math.abs(ev.ce.clean - meanCe(t.logits.data, rows, S))).toBeLessThan(1e-9);
  });

  it("reconstruction and sparsity statistics equal float64 sums over real positions (BOS left out)", async () => {
    const t = await model.trace(rows, { hooks: [POST0] });
    const x = t.cache.get(POST0).data;
    const picked: number[] = [];
    rows.forEach((r, b) => {
      for (let p = 1; p < r.length; p++) picked.push((b * S + p) * D);
    });
    const n = picked.length;
    const mean = new Float64Array(D);
    for (const o of picked) for (let i = 0; i < D; i++) mean[i]! += x[o + i]! / n;
    let rss = 0;
    let tss = 0;
    let active = 0;
    const count = new Float64Array(M);
    for (const o of picked) {
      const { z, r } = f64(sae, x, o);
      for (let i = 0; i < D; i++) {
        rss += (x[o + i]! - r[i]!) ** 2;
        tss += (x[o + i]! - mean[i]!) ** 2;
      }
      z.forEach((v, j) => v > 0 && (active++, count[j]!++));
    }
    const ev = await model.evaluateSae(sae, rows, { batchSize: 2, denseThreshold: 0.3 });
    expect(ev.positions).toBe(n);
    expect(ev.rows).toBe(5);
    expect(ev.hook).toBe(POST0);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(rel(ev.l0, active / n)).toBeLessThan(1e-3);
    expect(rel(ev.mse, rss / (n * D))).toBeLessThan(1e-4);
    expect(rel(ev.normalizedMse, rss / tss)).toBeLessThan(1e-4);
    expect(Math.abs(ev.explainedVariance - (1 - rss / tss))).toBeLessThan(1e-4);
    const density = Array.from(count, (c) => c / n);
    expect(Math.max(...density.map((d, j) => Math.abs(d - ev.density[j]!)))).toBeLessThan(1.5 / n); // one flip at most
    expect(ev.deadFraction).toBeCloseTo(density.filter((d) => d === 0).length / M, 1);
    expect(ev.denseFraction).toBeCloseTo(density.filter((d) => d > 0.3).length / M, 1);
    expect(ev.l0).toBeGreaterThan(1);
    expect(ev.l0).toBeLessThan(M / 2);
    const h = ev.histogram;
    expect(h.counts.reduce((a, b) => a + b, 0) + h.dead + h.below).toBe(M);
    // chunking changes nothing; keeping BOS counts more positions
    const one = await model.evaluateSae(sae, rows, { batchSize: 5, denseThreshold: 0.3 });
    for (const k of ["l0", "mse", "normalizedMse", "explainedVariance", "deadFraction", "denseFraction", "ceLossRecovered"] as const) expect(rel(one[k] + 1, ev[k] + 1)).toBeLessThan(1e-9);
    expect(one.ce.spliced).toBeCloseTo(ev.ce.spliced, 9);
    const withBos = await model.evaluateSae(sae, rows, { batchSize: 3, excludeBos: false });
    expect(withBos.positions).toBe(n + rows.length);
    expect(withBos.ce.clean).toBeCloseTo(ev.ce.clean, 9);
  });

  it("an SAE on hook_z reads the heads flattened", async () => {
    const rng = new Rng(4);
    const dIn = C.n_embd;
    const u = (n: number, sc: number, o = 0) => Float32Array.from({ length: n }, () => o + sc * (2 * rng.uniform() - 1));
    const z = Sae.create({ architecture: "standard", dIn, dSae: 32, hookName: "blocks.1.attn.hook_z" }, { W_enc: u(dIn * 32, 0.5), W_dec: u(32 * dIn, 0.1), b_enc: u(32, 0.1), b_dec: u(dIn, 0.05) });
    const ev = await model.evaluateSae(z, rows, { batchSize: 3, excludeBos: false });
    const zeroed = await model.intervene(rows, [{ hook: "blocks.1.attn.hook_z", kind: "zero" }]);
    expect(Math.abs(ev.ce.zeroAblated - meanCe(zeroed.edited.logits.data, rows, S))).toBeLessThan(1e-9);
    const x = (await model.trace(rows, { hooks: ["blocks.1.attn.hook_z"] })).cache.get("blocks.1.attn.hook_z").data;
    let active = 0;
    let n = 0;
    rows.forEach((r, b) => {
      for (let p = 0; p < r.length; p++, n++) {
        for (let j = 0; j < 32; j++) {
          let acc = z.weights.b_enc![j]!;
          for (let i = 0; i < dIn; i++) acc += (x[(b * S + p) * dIn + i]! - z.weights.b_dec[i]!) * z.weights.W_enc[i * 32 + j]!;
          if (acc > 0) active++;
        }
      }
    });
    expect(ev.positions).toBe(n);
    expect(Math.abs(ev.l0 - active / n)).toBeLessThan(2 / n);
    expect(ev.l0).toBeGreaterThan(1);
  });

  it("bad input is a typed error", async () => {
    expect((await rejected(model.evaluateSae(makeSae(2), rows))).code).toBe("E_BAD_OPTION"); // no hook
    expect((await rejected(model.evaluateSae(makeSae(2), rows, { hook: "blocks.0.hook_mlp_out" }))).code).toBe("E_SAE_CONFIG");
    expect((await rejected(model.evaluateSae(sae, rows, { batchSize: 0 }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(model.evaluateSae(sae, rows, { denseThreshold: 1 }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(model.evaluateSae(sae, [[model.bosTokenId], [model.bosTokenId]]))).code).toBe("E_BAD_INPUT");
    expect((await rejected(model.evaluateSae(sae, [[3]], { excludeBos: false }))).code).toBe("E_BAD_INPUT");
  });
});
