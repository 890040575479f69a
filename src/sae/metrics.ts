/**
 * Evaluation metrics for sparse autoencoders, as pure functions over row-major matrices
 * (`Float32Array` or `Float64Array` of `rows x d`): reconstruction (MSE, normalised MSE,
 * explained variance), sparsity (L0, dead and dense fractions, the log10 feature-density
 * histogram as data and as an SVG), ground-truth recovery (mean max cosine similarity) and
 * cross-entropy loss recovered. Sums accumulate in float64.
 *
 * Definitions follow SAELens (`sae_lens/evals.py`) where it has one; each function says which.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** A row-major matrix of `rows x d` numbers. */
export type Matrix = Float32Array | Float64Array;

function describe(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  if (typeof a === "object") return (a as object).constructor?.name ?? "an object";
  return typeof a;
}

/**
 * Checks that `a` is a non-empty `rows x d` matrix of finite numbers and returns `rows`.
 * `E_BAD_INPUT` for a wrong type, an empty array or a length that is not a multiple of `d`;
 * `E_BAD_OPTION` for a bad `d`; `E_NON_FINITE` for NaN or an infinity (naming the index).
 */
export function matrixRows(name: string, a: unknown, d: unknown): number {
  if (typeof d !== "number" || !Number.isInteger(d) || d < 1) {
    throw new TdbError("E_BAD_OPTION", `the width of ${name} must be an integer >= 1, got ${String(d)}`, { value: d, allowed: "an integer >= 1" });
  }
  if (!(a instanceof Float32Array) && !(a instanceof Float64Array)) {
    throw new TdbError("E_BAD_INPUT", `${name} must be a Float32Array or Float64Array, got ${describe(a)}`, {
      value: describe(a),
      allowed: "Float32Array | Float64Array",
    });
  }
  if (a.length === 0) throw new TdbError("E_BAD_INPUT", `${name} is empty`, { value: 0, allowed: `a multiple of ${d} elements, at least ${d}` });
  if (a.length % d !== 0) {
    throw new TdbError("E_BAD_INPUT", `${name} has ${a.length} elements, not a whole number of rows of ${d}`, {
      value: a.length,
      allowed: `a multiple of ${d}`,
    });
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new TdbError("E_NON_FINITE", `${name}[${i}] (row ${Math.floor(i / d)}, column ${i % d}) is ${a[i]}`, {
        value: { index: i, element: a[i] },
        allowed: "finite numbers",
      });
    }
  }
  return a.length / d;
}

function samePair(xName: string, x: unknown, yName: string, y: unknown, d: unknown): number {
  const rows = matrixRows(xName, x, d);
  const rowsY = matrixRows(yName, y, d);
  if (rowsY !== rows) {
    throw new TdbError("E_BAD_INPUT", `${yName} has ${rowsY} rows of ${String(d)}, ${xName} has ${rows}`, {
      value: (y as Matrix).length,
      allowed: `${(x as Matrix).length} elements, the shape of ${xName}`,
    });
  }
  return rows;
}

/** Σ over rows and columns of (x - xHat)², in float64. */
function residualSumOfSquares(x: Matrix, xHat: Matrix): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    const r = x[i]! - xHat[i]!;
    s += r * r;
  }
  return s;
}

/** Per-column means of `x` (rows x d), in float64. */
function columnMeans(x: Matrix, rows: number, d: number): Float64Array {
  const mu = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mu[j]! += x[r * d + j]!;
  for (let j = 0; j < d; j++) mu[j]! /= rows;
  return mu;
}

/** Σ over rows and columns of (x - column mean)², in float64 (two passes). */
function totalSumOfSquares(x: Matrix, rows: number, d: number, mu = columnMeans(x, rows, d)): number {
  let s = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) {
      const c = x[r * d + j]! - mu[j]!;
      s += c * c;
    }
  }
  return s;
}

function constantInput(total: number): void {
  if (!(total > 0)) {
    throw new TdbError("E_BAD_INPUT", "x has zero variance (every row is the same), so variance ratios are undefined", {
      value: total,
      allowed: "x whose rows are not all equal",
    });
  }
}

/**
 * Mean squared error over every element: `Σ (x - xHat)² / (rows * d)`.
 *
 * (SAELens trains on the per-row sum `Σ_j (x - xHat)²` averaged over rows, which is `d` times
 * this value.)
 *
 * @param x inputs, rows x d
 * @param xHat reconstructions, the same shape
 * @param d the row width (d_in)
 *
 * @example
 * ```ts
 * mse(new Float32Array([1, 2]), new Float32Array([1, 0]), 2); // 2
 * ```
 */
export function mse(x: Matrix, xHat: Matrix, d: number): number {
  samePair("x", x, "xHat", xHat, d);
  return residualSumOfSquares(x, xHat) / x.length;
}

/**
 * Normalised MSE (fraction of variance unexplained): the MSE divided by the variance of `x`
 * around its per-column mean, `Σ (x - xHat)² / Σ (x - mean_rows(x))²`. Equals
 * `1 - explainedVariance(x, xHat, d)`. 0 is a perfect reconstruction, 1 is as good as
 * predicting the mean. `E_BAD_INPUT` when every row of `x` is the same.
 *
 * @example
 * ```ts
 * normalizedMse(x, sae.decode(sae.encode(x)), 768);
 * ```
 */
export function normalizedMse(x: Matrix, xHat: Matrix, d: number): number {
  const rows = samePair("x", x, "xHat", xHat, d);
  const total = totalSumOfSquares(x, rows, d);
  constantInput(total);
  return residualSumOfSquares(x, xHat) / total;
}

/**
 * Explained variance as SAELens computes it now (`explained_variance` in `sae_lens/evals.py`):
 * `1 - residual variance / total variance`, both pooled over all rows and columns, i.e.
 * `1 - Σ ||x - xHat||² / Σ ||x - mean_rows(x)||²`. Use
 * {@link explainedVarianceLegacy} for SAELens's older per-row mean. `E_BAD_INPUT` when every
 * row of `x` is the same.
 *
 * @example
 * ```ts
 * explainedVariance(x, xHat, 64); // 1 for a perfect reconstruction
 * ```
 */
export function explainedVariance(x: Matrix, xHat: Matrix, d: number): number {
  return 1 - normalizedMse(x, xHat, d);
}

/**
 * SAELens's legacy explained variance (`explained_variance_legacy`): the mean over rows of
 * `1 - ||x_i - xHat_i||² / ||x_i - mean_rows(x)||²`. Rows that sit exactly on the mean make it
 * undefined (`E_BAD_INPUT`, naming the row). Kept for comparing with published numbers.
 *
 * @example
 * ```ts
 * explainedVarianceLegacy(x, xHat, 64);
 * ```
 */
export function explainedVarianceLegacy(x: Matrix, xHat: Matrix, d: number): number {
  const rows = samePair("x", x, "xHat", xHat, d);
  const mu = columnMeans(x, rows, d);
  let acc = 0;
  for (let r = 0; r < rows; r++) {
    let res = 0;
    let tot = 0;
    for (let j = 0; j < d; j++) {
      const v = x[r * d + j]!;
      const e = v - xHat[r * d + j]!;
      const c = v - mu[j]!;
      res += e * e;
      tot += c * c;
    }
    if (!(tot > 0)) {
      throw new TdbError("E_BAD_INPUT", `row ${r} of x equals the mean of x, so its explained variance is undefined`, {
        value: r,
        allowed: "rows that differ from the mean row",
      });
    }
    acc += 1 - res / tot;
  }
  return acc / rows;
}

/**
 * L0: the mean over rows of the number of nonzero latents (`acts !== 0`; for ReLU, TopK and
 * JumpReLU activations, which are >= 0, the same as SAELens's `acts > 0`).
 *
 * @param acts latent activations, rows x dSae
 * @param dSae the number of latents
 *
 * @example
 * ```ts
 * l0(new Float32Array([0, 1, 2, 0, 0, 0]), 3); // 1
 * ```
 */
export function l0(acts: Matrix, dSae: number): number {
  const rows = matrixRows("acts", acts, dSae);
  let n = 0;
  for (let i = 0; i < acts.length; i++) if (acts[i] !== 0) n++;
  return n / rows;
}

/**
 * Feature density: for each latent, the fraction of rows on which it is nonzero
 * (SAELens's `feature_density`, over the rows given).
 *
 * @example
 * ```ts
 * featureDensity(acts, 2048); // Float64Array(2048), values in [0, 1]
 * ```
 */
export function featureDensity(acts: Matrix, dSae: number): Float64Array {
  const rows = matrixRows("acts", acts, dSae);
  const counts = new Float64Array(dSae);
  for (let r = 0; r < rows; r++) {
    const o = r * dSae;
    for (let j = 0; j < dSae; j++) if (acts[o + j] !== 0) counts[j]!++;
  }
  for (let j = 0; j < dSae; j++) counts[j]! /= rows;
  return counts;
}

/**
 * Dead fraction: the share of latents that are zero on every row evaluated. A latent dead here
 * may fire on other data; evaluate enough rows (SAELens's training counts a latent dead after a
 * window of steps without firing).
 *
 * @example
 * ```ts
 * deadFraction(new Float32Array([0, 1, 0, 2]), 2); // 0.5: latent 0 never fires
 * ```
 */
export function deadFraction(acts: Matrix, dSae: number): number {
  const density = featureDensity(acts, dSae);
  let n = 0;
  for (const p of density) if (p === 0) n++;
  return n / dSae;
}

/** Default `threshold` of {@link denseFraction}: a latent active on more than 10% of rows is dense. */
export const DENSE_THRESHOLD = 0.1;

/**
 * Dense fraction: the share of latents active on strictly more than `threshold` of the rows
 * (default {@link DENSE_THRESHOLD}, 10%). Dense latents are usually uninterpretable.
 *
 * @example
 * ```ts
 * denseFraction(acts, 2048);       // share of latents firing on > 10% of rows
 * denseFraction(acts, 2048, 0.01); // > 1%
 * ```
 */
export function denseFraction(acts: Matrix, dSae: number, threshold: number = DENSE_THRESHOLD): number {
  if (typeof threshold !== "number" || !(threshold >= 0 && threshold < 1)) {
    throw new TdbError("E_BAD_OPTION", `threshold must be a number in [0, 1), got ${String(threshold)}`, { value: threshold, allowed: "[0, 1)" });
  }
  const density = featureDensity(acts, dSae);
  let n = 0;
  for (const p of density) if (p > threshold) n++;
  return n / dSae;
}

/** The log10 feature-density histogram: see {@link densityHistogram}. */
export interface DensityHistogram {
  /** `bins + 1` bin edges in log10(density), from `min` to `max`. */
  edges: number[];
  /** Latents per bin; bin `i` holds `edges[i] <= log10(density) < edges[i + 1]` (the last bin also holds `max`). */
  counts: number[];
  /** Latents that never fired (density 0, log10 = -Infinity), not in any bin. */
  dead: number;
  /** Live latents with log10(density) below `min`, not in any bin. */
  below: number;
  /** Number of latents. */
  latents: number;
}

/** Options of {@link densityHistogram}. */
export interface DensityHistogramOptions {
  /** Number of bins (default 40). */
  bins?: number;
  /** Lower edge in log10(density) (default -8). */
  min?: number;
  /** Upper edge in log10(density) (default 0, a latent active on every row). */
  max?: number;
}

/**
 * The histogram of log10(feature density) over latents, the usual SAE health plot: a bump
 * around 1e-3..1e-2 is healthy, a pile below 1e-5 suggests dying latents, mass near 0 (density
 * 1) dense ones. Takes the latent activations (rows x dSae) or densities already computed (a
 * `Float64Array` of dSae values in [0, 1], with `dSae` omitted). Dead latents are counted apart.
 *
 * @example
 * ```ts
 * const h = densityHistogram(acts, 2048, { bins: 32 });
 * h.counts.reduce((a, b) => a + b) + h.dead + h.below; // 2048
 * ```
 */
export function densityHistogram(actsOrDensity: Matrix, dSae?: number, options: DensityHistogramOptions = {}): DensityHistogram {
  let density: Float64Array;
  if (dSae === undefined) {
    matrixRows("density", actsOrDensity, 1);
    density = actsOrDensity instanceof Float64Array ? actsOrDensity : Float64Array.from(actsOrDensity);
    for (let i = 0; i < density.length; i++) {
      const p = density[i]!;
      if (!(p >= 0 && p <= 1)) throw new TdbError("E_BAD_INPUT", `density[${i}] is ${p}, not in [0, 1]`, { value: p, allowed: "[0, 1]" });
    }
  } else {
    density = featureDensity(actsOrDensity, dSae);
  }
  const bins = options.bins ?? 40;
  const min = options.min ?? -8;
  const max = options.max ?? 0;
  if (!Number.isInteger(bins) || bins < 1 || bins > 10_000) {
    throw new TdbError("E_BAD_OPTION", `bins must be an integer in [1, 10000], got ${String(bins)}`, { value: bins, allowed: "an integer in [1, 10000]" });
  }
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(min < max)) {
    throw new TdbError("E_BAD_OPTION", `min and max must be finite with min < max, got ${String(min)} and ${String(max)}`, {
      value: { min, max },
      allowed: "finite numbers, min < max",
    });
  }
  const width = (max - min) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? max : min + i * width));
  const counts = new Array<number>(bins).fill(0);
  let dead = 0;
  let below = 0;
  for (const p of density) {
    if (p === 0) {
      dead++;
      continue;
    }
    const v = Math.log10(p);
    if (v < min) {
      below++;
      continue;
    }
    let b = Math.floor((v - min) / width);
    if (b >= bins) b = bins - 1; // log10 <= max always holds for p <= 1 and max >= 0; clamp the top edge
    // Float rounding at an edge: keep the documented `edges[b] <= v < edges[b + 1]`.
    while (b > 0 && v < edges[b]!) b--;
    while (b < bins - 1 && v >= edges[b + 1]!) b++;
    counts[b]!++;
  }
  return { edges, counts, dead, below, latents: density.length };
}

/** Options of {@link densityHistogramSvg}. */
export interface HistogramSvgOptions {
  /** Picture width in pixels (default 480). */
  width?: number;
  /** Picture height in pixels (default 240). */
  height?: number;
  /** Title drawn at the top (default "log10 feature density"). */
  title?: string;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function fmt(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/**
 * The histogram as a small self-contained SVG (bars, x axis labelled in log10 density, the
 * tallest count, dead and below-range counts in a caption). The same histogram always gives the
 * same string, so it can be stored in a card or compared in a test.
 *
 * @example
 * ```ts
 * await writeFile("density.svg", densityHistogramSvg(densityHistogram(acts, 2048)));
 * ```
 */
export function densityHistogramSvg(hist: DensityHistogram, options: HistogramSvgOptions = {}): string {
  const width = options.width ?? 480;
  const height = options.height ?? 240;
  for (const [k, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 100 || v > 10_000) {
      throw new TdbError("E_BAD_OPTION", `${k} must be an integer in [100, 10000], got ${String(v)}`, { value: v, allowed: "an integer in [100, 10000]" });
    }
  }
  const title = options.title ?? "log10 feature density";
  const left = 40;
  const right = 10;
  const top = 24;
  const bottom = 40;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const bins = hist.counts.length;
  const peak = Math.max(1, ...hist.counts);
  const barW = plotW / bins;
  const min = hist.edges[0]!;
  const max = hist.edges[bins]!;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="10">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="14" text-anchor="middle" font-size="12">${esc(title)}</text>`);
  hist.counts.forEach((c, i) => {
    if (c === 0) return;
    const h = (c / peak) * plotH;
    parts.push(`<rect x="${fmt(left + i * barW)}" y="${fmt(top + plotH - h)}" width="${fmt(Math.max(barW - 1, 0.5))}" height="${fmt(h)}" fill="#4477aa"><title>${c}</title></rect>`);
  });
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="black"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="black"/>`);
  parts.push(`<text x="${left - 4}" y="${top + 4}" text-anchor="end">${peak}</text>`);
  parts.push(`<text x="${left - 4}" y="${top + plotH}" text-anchor="end">0</text>`);
  // Integer ticks of log10 density, at most about 10 labels.
  const span = max - min;
  const step = Math.max(1, Math.ceil(span / 10));
  for (let t = Math.ceil(min); t <= max; t += step) {
    const x = left + ((t - min) / span) * plotW;
    parts.push(`<line x1="${fmt(x)}" y1="${top + plotH}" x2="${fmt(x)}" y2="${top + plotH + 4}" stroke="black"/>`);
    parts.push(`<text x="${fmt(x)}" y="${top + plotH + 14}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<text x="${width / 2}" y="${height - 6}" text-anchor="middle">${hist.latents} latents; dead ${hist.dead}; below ${fmt(min)}: ${hist.below}</text>`);
  parts.push("</svg>");
  return parts.join("\n");
}

/** Rows of `m` (rows x d) scaled to unit norm, in float64; zero rows stay zero. */
function unitRows(name: string, m: Matrix, rows: number, d: number, allowZero: boolean): Float64Array {
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += m[r * d + j]! * m[r * d + j]!;
    if (s === 0) {
      if (allowZero) continue;
      throw new TdbError("E_BAD_INPUT", `row ${r} of ${name} is zero, so it has no direction`, { value: r, allowed: "rows with a nonzero norm" });
    }
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < d; j++) out[r * d + j] = m[r * d + j]! * inv;
  }
  return out;
}

/** Options of {@link maxCosineSimilarities} and {@link mmcs}. */
export interface MmcsOptions {
  /**
   * Which side the maximum is taken for (default `"true"`): `"true"`: for each true feature, the
   * best cosine over learned directions (how well the truth is recovered; extra learned latents
   * cost nothing); `"learned"`: for each learned direction, the best cosine over true features
   * (Sharkey et al.'s form: how much of the dictionary is real).
   */
  over?: "true" | "learned";
}

/**
 * For each true feature (or each learned direction, see {@link MmcsOptions.over}) the largest
 * cosine similarity with the other set. Signed: a learned direction opposite to a feature scores
 * -1 (decoder directions are read with nonnegative activations). Learned rows of zero norm
 * (dead latents with zeroed decoders) score 0; a zero true feature is `E_BAD_INPUT`.
 *
 * @param learned learned decoder directions `W_dec`, dSae x d
 * @param truth true feature directions, nFeatures x d
 * @param d the shared width (d_in)
 *
 * @example
 * ```ts
 * const best = maxCosineSimilarities(sae.wDec, data.features, 64); // Float64Array(512)
 * ```
 */
export function maxCosineSimilarities(learned: Matrix, truth: Matrix, d: number, options: MmcsOptions = {}): Float64Array {
  const over = options.over ?? "true";
  if (over !== "true" && over !== "learned") {
    throw new TdbError("E_BAD_OPTION", `over must be "true" or "learned", got ${String(over)}`, { value: over, allowed: ["true", "learned"] });
  }
  const nL = matrixRows("learned", learned, d);
  const nT = matrixRows("truth", truth, d);
  const L = unitRows("learned", learned, nL, d, true);
  const T = unitRows("truth", truth, nT, d, false);
  const [A, nA, B, nB] = over === "true" ? [T, nT, L, nL] : [L, nL, T, nT];
  const best = new Float64Array(nA).fill(-Infinity);
  // Blocks of rows of A against all of B keep the B rows in cache; the inner loop is a dot product.
  const block = 16;
  for (let a0 = 0; a0 < nA; a0 += block) {
    const a1 = Math.min(nA, a0 + block);
    for (let b = 0; b < nB; b++) {
      const ob = b * d;
      for (let a = a0; a < a1; a++) {
        const oa = a * d;
        let s = 0;
        for (let j = 0; j < d; j++) s += A[oa + j]! * B[ob + j]!;
        if (s > best[a]!) best[a] = s;
      }
    }
  }
  return best;
}

/**
 * Mean max cosine similarity (MMCS): the mean of {@link maxCosineSimilarities}; by default for
 * each true feature the best signed cosine over learned decoder directions, averaged over true
 * features. 1 when every true feature has a learned direction pointing exactly along it.
 *
 * @example
 * ```ts
 * mmcs(sae.wDec, data.features, 64); // >= 0.9 for a good SAE on the synthetic benchmark
 * ```
 */
export function mmcs(learned: Matrix, truth: Matrix, d: number, options: MmcsOptions = {}): number {
  const best = maxCosineSimilarities(learned, truth, d, options);
  let s = 0;
  for (const v of best) s += v;
  return s / best.length;
}

/** The three mean cross-entropy losses {@link ceLossRecovered} compares. */
export interface CeLosses {
  /** The model as is. */
  clean: number;
  /** The SAE reconstruction spliced in at its hook. */
  spliced: number;
  /** The hook's activation replaced by zeros. */
  zeroAblated: number;
}

/**
 * Cross-entropy loss recovered (SAELens's `ce_loss_score`):
 * `(zeroAblated - spliced) / (zeroAblated - clean)`. 1 when splicing the SAE costs nothing,
 * 0 when it is as bad as zero-ablation; it can leave [0, 1]. `E_BAD_INPUT` when the
 * zero-ablated and clean losses are equal (the hook does not matter, the ratio is undefined);
 * `E_NON_FINITE` for a loss that is not finite.
 *
 * @example
 * ```ts
 * ceLossRecovered({ clean: 3.0, spliced: 3.2, zeroAblated: 5.0 }); // 0.9
 * ```
 */
export function ceLossRecovered(losses: CeLosses): number {
  if (losses === null || typeof losses !== "object") {
    throw new TdbError("E_BAD_INPUT", "losses must be an object { clean, spliced, zeroAblated }", { value: losses, allowed: "{ clean, spliced, zeroAblated }" });
  }
  for (const k of ["clean", "spliced", "zeroAblated"] as const) {
    const v = losses[k];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TdbError("E_NON_FINITE", `losses.${k} must be a finite number, got ${String(v)}`, { value: v, allowed: "a finite number" });
    }
  }
  const den = losses.zeroAblated - losses.clean;
  if (den === 0) {
    throw new TdbError("E_BAD_INPUT", `the zero-ablated loss equals the clean loss (${losses.clean}), so the loss recovered is undefined`, {
      value: { clean: losses.clean, zeroAblated: losses.zeroAblated },
      allowed: "zeroAblated !== clean",
    });
  }
  return (losses.zeroAblated - losses.spliced) / den;
}
