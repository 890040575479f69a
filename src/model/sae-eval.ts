/**
 * Evaluating an SAE on a model over given prompts or token rows: reconstruction (MSE, normalised
 * MSE, explained variance), sparsity (L0, dead and dense fractions, the log10 feature-density
 * histogram) and cross-entropy loss recovered, from three runs of every chunk of rows (clean,
 * the hook replaced by the SAE's reconstruction without the error term, the hook zero-ablated).
 * Rows run in chunks and only running sums are kept, so a few hundred prompts of 128 tokens stay
 * within a small memory budget.
 *
 * @module
 */
import { boolean, finiteNumber, options, positiveInt, positiveNumber } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import { intervene } from "../intervene/intervene.js";
import type { ModelInput } from "../runtime/options.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import { ceLossRecovered, densityHistogram, DENSE_THRESHOLD, type CeLosses, type DensityHistogram, type DensityHistogramOptions } from "../sae/metrics.js";
import type { Sae } from "../sae/sae.js";
import { Activation } from "../trace/activation.js";
import type { Trace } from "../trace/trace.js";
import { attachSae, noClean, sourceTrace } from "./sae-splice.js";

/** Options of {@link Model.evaluateSae}. */
export interface EvaluateSaeOptions {
  /** The hook the SAE reads. [default: `sae.config.hookName`] */
  hook?: string;
  /** Prepend BOS to string prompts. [default: true] */
  prependBos?: boolean;
  /**
   * Reconstruction and sparsity statistics leave out position 0 when it holds the BOS token
   * (its activations are outliers in most models, and SAELens's evaluations leave it out too).
   * Cross-entropy is unaffected: see {@link SaeEvaluation.ce}. [default: true]
   */
  excludeBos?: boolean;
  /**
   * Rows (prompts) per chunk; each chunk runs three times. [default: as many as keep one run's
   * logits within 32 MiB, at least 1]
   */
  batchSize?: number;
  /** Memory budget of each run, as in `intervene`. [default: intervene's] */
  maxBatchBytes?: number;
  /** A latent is dense when active on more than this fraction of positions. [default: 0.1] */
  denseThreshold?: number;
  /** Bins and range of the density histogram. [default: 40 bins over log10 density -8..0] */
  histogram?: DensityHistogramOptions;
  /** Called after each chunk with the rows done so far and the total. */
  onProgress?: (rowsDone: number, rows: number) => void;
}

/** What {@link Model.evaluateSae} measures. */
export interface SaeEvaluation {
  /** The hook evaluated. */
  hook: HookName;
  /** Prompts (token rows) evaluated. */
  rows: number;
  /** Activation rows (real positions, BOS excluded by default) in the reconstruction and sparsity statistics. */
  positions: number;
  /** Next-token predictions in each cross-entropy mean. */
  predictions: number;
  /** Mean number of active latents per position. */
  l0: number;
  /** Mean squared error per element, Σ (x - x̂)² / (positions · d_in). */
  mse: number;
  /** Σ (x - x̂)² / Σ (x - column mean)², pooled over positions and columns. */
  normalizedMse: number;
  /** 1 - normalizedMse (SAELens's current `explained_variance`). */
  explainedVariance: number;
  /** Share of latents never active on the positions evaluated. */
  deadFraction: number;
  /** Share of latents active on more than `denseThreshold` of the positions. */
  denseFraction: number;
  /** Per latent, the fraction of positions on which it is active. */
  density: Float64Array;
  /** The log10 feature-density histogram (see `densityHistogram`; `densityHistogramSvg` draws it). */
  histogram: DensityHistogram;
  /**
   * Mean next-token cross-entropy (nats) of the three runs: over every real position p but a
   * row's last, the prediction of token p+1, averaged over all predictions of all rows (rows
   * weigh by their length; padding never counts). The prediction made at position 0 (BOS)
   * counts. The SAE is spliced in, and the hook zero-ablated, at every position, BOS included.
   */
  ce: CeLosses;
  /** (ce.zeroAblated - ce.spliced) / (ce.zeroAblated - ce.clean); see `ceLossRecovered`. */
  ceLossRecovered: number;
}

/** Sum over real positions but each row's last of -log softmax(logits)[next token], and their count. */
function crossEntropySum(t: Trace, rows: readonly (readonly number[])[]): { sum: number; n: number } {
  const V = t.logits.dims[2]!;
  if (V === 0) t.logitsAt(); // no logits output: E_NO_LOGITS
  let sum = 0;
  let n = 0;
  rows.forEach((row, b) => {
    for (let p = 0; p + 1 < row.length; p++) {
      const l = t.logits.row(b, p);
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (l[i]! > max) max = l[i]!;
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(l[i]! - max);
      sum += max + Math.log(s) - l[row[p + 1]!]!;
      n++;
    }
  });
  return { sum, n };
}

/** Implementation of {@link Model.evaluateSae}. */
export async function evaluateSae(rt: ModelRuntime, sae: Sae, input: ModelInput, opts?: EvaluateSaeOptions): Promise<SaeEvaluation> {
  const o = options<EvaluateSaeOptions>("evaluateSae options", opts);
  const a = attachSae(rt, sae, o.hook, "sae");
  if (a.hook.endsWith("attn.hook_result")) {
    throw new TdbError("E_BAD_OPTION", `${a.hook} cannot be spliced (hook_result is computed beside the model); evaluate an SAE on hook_z or hook_attn_out`, { value: a.hook, allowed: "an editable hook" });
  }
  const excludeBos = boolean("excludeBos", o.excludeBos ?? true);
  const denseThreshold = finiteNumber("denseThreshold", o.denseThreshold ?? DENSE_THRESHOLD, 0);
  if (denseThreshold >= 1) throw new TdbError("E_BAD_OPTION", `denseThreshold must be in [0, 1), got ${denseThreshold}`, { value: denseThreshold, allowed: "[0, 1)" });
  if (o.maxBatchBytes !== undefined) positiveNumber("maxBatchBytes", o.maxBatchBytes);
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") throw new TdbError("E_BAD_OPTION", "onProgress must be a function", { value: typeof o.onProgress, allowed: "a function" });
  const batch = rt.toBatch(input, { prependBos: o.prependBos });
  const R = batch.rows.length;
  const S = batch.seqLen;
  const V = rt.config.dVocab;
  const chunk = o.batchSize !== undefined ? positiveInt("batchSize", o.batchSize) : Math.max(1, Math.floor(2 ** 25 / (S * V * 4)));
  const { dIn, dSae } = sae;
  const bos = rt.bosTokenId;
  // Running sums (float64): counts, squared error, per-column mean and M2 (Chan et al.'s merge).
  let n = 0;
  let active = 0;
  let rss = 0;
  const counts = new Float64Array(dSae);
  const mean = new Float64Array(dIn);
  const m2 = new Float64Array(dIn);
  const ce = { clean: 0, spliced: 0, zeroAblated: 0 };
  let predictions = 0;
  for (let start = 0; start < R; start += chunk) {
    const end = Math.min(R, start + chunk);
    const rows = batch.rows.slice(start, end);
    const run = { maxBatchBytes: o.maxBatchBytes };
    // Zero-ablated and clean in one call; the clean run caches the hook.
    const zero = await intervene(rt, rows, [{ hook: a.hook, kind: "zero" }], { ...run, hooks: [a.hook] });
    const x = zero.clean.cache.get(a.hook);
    const Sc = x.dims[1]!; // the chunk is padded to its own longest row
    // The SAE on every real position; statistics on those not excluded.
    const real: number[] = [];
    const counted: boolean[] = [];
    rows.forEach((row, b) => {
      for (let p = 0; p < row.length; p++) {
        real.push(b * Sc + p);
        counted.push(!(excludeBos && p === 0 && row[0] === bos));
      }
    });
    const xr = new Float32Array(real.length * dIn);
    real.forEach((r, i) => xr.set(x.data.subarray(r * dIn, (r + 1) * dIn), i * dIn));
    const { latents, reconstruction } = await sae.forward(xr, real.length);
    const spliced = x.data.slice();
    real.forEach((r, i) => spliced.set(reconstruction.subarray(i * dIn, (i + 1) * dIn), r * dIn));
    // Statistics of this chunk, merged into the running ones.
    const cMean = new Float64Array(dIn);
    let c = 0;
    counted.forEach((k, i) => {
      if (!k) return;
      c++;
      for (let j = 0; j < dIn; j++) {
        const v = xr[i * dIn + j]!;
        cMean[j]! += v;
        const e = v - reconstruction[i * dIn + j]!;
        rss += e * e;
      }
      for (let j = 0; j < dSae; j++) {
        if (latents[i * dSae + j] !== 0) {
          counts[j]!++;
          active++;
        }
      }
    });
    if (c > 0) {
      for (let j = 0; j < dIn; j++) cMean[j]! /= c;
      const cM2 = new Float64Array(dIn);
      counted.forEach((k, i) => {
        if (!k) return;
        for (let j = 0; j < dIn; j++) cM2[j]! += (xr[i * dIn + j]! - cMean[j]!) ** 2;
      });
      const total = n + c;
      for (let j = 0; j < dIn; j++) {
        const d = cMean[j]! - mean[j]!;
        m2[j]! += cM2[j]! + (d * d * n * c) / total;
        mean[j]! += (d * c) / total;
      }
      n = total;
    }
    // The spliced run: the hook's value replaced by the reconstruction (padding left as it was).
    const patched = await intervene(rt, rows, [{ hook: a.hook, kind: "patch", source: sourceTrace(rt, rows, a.hook, new Activation(a.hook, spliced, x.dims, x.labels)) }], { ...run, clean: noClean(rt, rows) });
    const clean = crossEntropySum(zero.clean, rows);
    ce.clean += clean.sum;
    ce.zeroAblated += crossEntropySum(zero.edited, rows).sum;
    ce.spliced += crossEntropySum(patched.edited, rows).sum;
    predictions += clean.n;
    o.onProgress?.(end, R);
  }
  if (n === 0) throw new TdbError("E_BAD_INPUT", "no positions to evaluate (every row is only a BOS token)", { value: R, allowed: "rows with tokens after BOS" });
  if (predictions === 0) throw new TdbError("E_BAD_INPUT", "no next-token predictions: every row has fewer than 2 tokens", { value: R, allowed: "rows of at least 2 tokens" });
  let tss = 0;
  for (let j = 0; j < dIn; j++) tss += m2[j]!;
  if (!(tss > 0)) throw new TdbError("E_BAD_INPUT", "the hook's activations have zero variance over the positions evaluated, so explained variance is undefined", { value: tss, allowed: "varied activations" });
  const losses: CeLosses = { clean: ce.clean / predictions, spliced: ce.spliced / predictions, zeroAblated: ce.zeroAblated / predictions };
  const density = counts.map((k) => k / n);
  let dead = 0;
  let dense = 0;
  for (const p of density) {
    if (p === 0) dead++;
    if (p > denseThreshold) dense++;
  }
  return {
    hook: a.hook,
    rows: R,
    positions: n,
    predictions,
    l0: active / n,
    mse: rss / (n * dIn),
    normalizedMse: rss / tss,
    explainedVariance: 1 - rss / tss,
    deadFraction: dead / dSae,
    denseFraction: dense / dSae,
    density,
    histogram: densityHistogram(density, undefined, o.histogram),
    ce: losses,
    ceLossRecovered: ceLossRecovered(losses),
  };
}
