/**
 * Ground-truth data for sparse autoencoder tests: `nFeatures` known unit directions in `dIn`
 * dimensions (more features than dimensions: superposition), and samples that are sparse
 * nonnegative combinations of them, so that a trained SAE can be scored against the truth
 * (see `mmcs` in `metrics.ts`).
 *
 * The setup follows Sharkey, Braun and Millidge, "Taking features out of superposition with
 * sparse autoencoders" (2022) and the toy models of Elhage et al. (2022):
 *
 * - feature directions: i.i.d. standard normal vectors, normalised to unit length (random
 *   directions in 64 dims overlap by about 1/8 in cosine, so 512 of them are in superposition);
 * - each feature fires independently on each sample with probability `p_i`; by default every
 *   `p_i` is `expectedL0 / nFeatures`; with `frequencies: { decay: λ }`, `p_i ∝ λ^i` (Sharkey et
 *   al. used λ = 0.99), with `{ zipf: s }`, `p_i ∝ (i + 1)^-s`; either way scaled so that
 *   `Σ p_i = expectedL0` (the mean number of active features per sample), each capped at 1;
 * - optionally, groups of features fire together (`correlation`), keeping each one's `p_i`;
 * - a firing feature's coefficient is drawn from `magnitudes`: `"uniform"` (default, U(0, 1],
 *   as Sharkey et al.), `"exponential"` (mean 1) or `"one"` (always 1); silent features are 0;
 * - the sample is `x = codes @ features` (accumulated in float64, stored as float32).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";

/** How often each feature fires: see {@link SyntheticOptions.frequencies}. */
export type FeatureFrequencies = "uniform" | { decay: number } | { zipf: number };

/** How large a firing feature's coefficient is: see {@link SyntheticOptions.magnitudes}. */
export type FeatureMagnitudes = "uniform" | "exponential" | "one";

/** Options of {@link syntheticFeatures}. */
export interface SyntheticOptions {
  /** Number of true features (e.g. 512). */
  nFeatures: number;
  /** Dimension of the samples (e.g. 64). */
  dIn: number;
  /** Seed of the feature directions and of the sample stream. */
  seed: number;
  /** Mean number of active features per sample, `Σ p_i` (default 5, as Sharkey et al.); at most `nFeatures`. */
  expectedL0?: number;
  /**
   * Relative firing frequencies (default `"uniform"`): `{ decay: λ }` with `0 < λ <= 1` gives
   * `p_i ∝ λ^i`; `{ zipf: s }` with `s >= 0` gives `p_i ∝ (i + 1)^-s` (power law). Feature 0 is
   * the most frequent. Scaled to sum to `expectedL0`, each capped at 1 (so the sum can fall short
   * when the law is very steep: read {@link SyntheticFeatures.probabilities}).
   */
  frequencies?: FeatureFrequencies;
  /** Coefficient of a firing feature (default `"uniform"`: U(0, 1]; `"exponential"`: mean 1; `"one"`: 1). */
  magnitudes?: FeatureMagnitudes;
  /**
   * Correlated firing (default none: every feature fires independently). Features are cut into
   * consecutive groups of `groupSize`; on each sample, with probability `strength` a group's
   * features share one uniform draw `u` (feature i fires when `u < p_i`, so they fire together,
   * the rarer ones on a subset of the samples of the more frequent ones), otherwise each draws
   * its own. Each feature's firing probability stays `p_i`; within a group
   * `P(i and j fire) = strength * min(p_i, p_j) + (1 - strength) * p_i * p_j`.
   */
  correlation?: FeatureCorrelation;
}

/** Groups of features that tend to fire together: see {@link SyntheticOptions.correlation}. */
export interface FeatureCorrelation {
  /** Features per group (consecutive indices; the last group may be smaller), at least 1. */
  groupSize: number;
  /** Probability in [0, 1] that a group's features share their draw on a sample. */
  strength: number;
}

/** One batch of samples from {@link SyntheticFeatures.sample}. */
export interface SyntheticBatch {
  /** Samples, rows x dIn: `codes @ features`. */
  x: Float32Array;
  /** The true sparse coefficients, rows x nFeatures (0 where a feature is silent, > 0 where it fires). */
  codes: Float32Array;
  /** Number of rows. */
  rows: number;
}

/** A ground-truth feature set and its sample stream, from {@link syntheticFeatures}. */
export interface SyntheticFeatures {
  /** Number of true features. */
  readonly nFeatures: number;
  /** Sample dimension. */
  readonly dIn: number;
  /** Unit-norm feature directions, nFeatures x dIn (row i is feature i). */
  readonly features: Float32Array;
  /** Firing probability of each feature, `nFeatures` values in [0, 1]. */
  readonly probabilities: Float64Array;
  /**
   * The next `rows` samples of the stream. The stream is fixed by the seed: the same seed and
   * the same sequence of calls give the same batches (`sample(2)` then `sample(3)` gives the
   * same five rows as `sample(5)`).
   */
  sample(rows: number): SyntheticBatch;
}

function badOption(name: string, v: unknown, allowed: string): never {
  throw new TdbError("E_BAD_OPTION", `${name} must be ${allowed}, got ${typeof v === "object" ? JSON.stringify(v) : String(v)}`, { value: v, allowed });
}

function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) badOption(name, v, `an integer in [${min}, ${max}]`);
  return v;
}

/** Relative frequencies, scaled to sum to `l0`, capped at 1. */
function firingProbabilities(n: number, l0: number, freq: FeatureFrequencies): Float64Array {
  const w = new Float64Array(n);
  if (freq === "uniform") w.fill(1);
  else if (typeof freq === "object" && freq !== null && "decay" in freq) {
    const lambda = freq.decay;
    if (typeof lambda !== "number" || !(lambda > 0 && lambda <= 1)) badOption("frequencies.decay", lambda, "a number in (0, 1]");
    for (let i = 0; i < n; i++) w[i] = Math.pow(lambda, i);
  } else if (typeof freq === "object" && freq !== null && "zipf" in freq) {
    const s = freq.zipf;
    if (typeof s !== "number" || !(s >= 0 && s <= 10)) badOption("frequencies.zipf", s, "a number in [0, 10]");
    for (let i = 0; i < n; i++) w[i] = Math.pow(i + 1, -s);
  } else {
    badOption("frequencies", freq, `"uniform", { decay: λ } or { zipf: s }`);
  }
  let sum = 0;
  for (const v of w) sum += v;
  for (let i = 0; i < n; i++) w[i] = Math.min(1, (w[i]! * l0) / sum);
  return w;
}

/**
 * A seeded ground-truth feature set in superposition and its sample stream.
 *
 * @example
 * ```ts
 * const data = syntheticFeatures({ nFeatures: 512, dIn: 64, seed: 1 });
 * const { x, codes } = data.sample(4096); // x: 4096 x 64, codes: 4096 x 512 (about 5 nonzero a row)
 * // train an SAE on x, then: mmcs(sae.wDec, data.features, 64)
 * ```
 */
export function syntheticFeatures(options: SyntheticOptions): SyntheticFeatures {
  if (options === null || typeof options !== "object") badOption("options", options, "an object { nFeatures, dIn, seed }");
  const nFeatures = checkInt("nFeatures", options.nFeatures, 1, 1 << 20);
  const dIn = checkInt("dIn", options.dIn, 1, 1 << 16);
  if (nFeatures * dIn > 1 << 28) badOption("nFeatures * dIn", nFeatures * dIn, `at most ${1 << 28}`);
  const seed = options.seed;
  if (typeof seed !== "number" || !Number.isInteger(seed)) badOption("seed", seed, "an integer");
  const expectedL0 = options.expectedL0 ?? 5;
  if (typeof expectedL0 !== "number" || !(expectedL0 > 0 && expectedL0 <= nFeatures)) badOption("expectedL0", expectedL0, `a number in (0, ${nFeatures}]`);
  const magnitudes = options.magnitudes ?? "uniform";
  if (magnitudes !== "uniform" && magnitudes !== "exponential" && magnitudes !== "one") badOption("magnitudes", magnitudes, `"uniform", "exponential" or "one"`);
  const probabilities = firingProbabilities(nFeatures, expectedL0, options.frequencies ?? "uniform");
  const corr = options.correlation;
  let groupSize = 1;
  let strength = 0;
  if (corr !== undefined) {
    if (corr === null || typeof corr !== "object") badOption("correlation", corr, "an object { groupSize, strength }");
    groupSize = checkInt("correlation.groupSize", corr.groupSize, 1, nFeatures);
    strength = corr.strength;
    if (typeof strength !== "number" || !(strength >= 0 && strength <= 1)) badOption("correlation.strength", strength, "a number in [0, 1]");
  }

  // Directions: normal draws from the seed, each row normalised in float64.
  const dirRng = new Rng(seed);
  const raw = new Float64Array(nFeatures * dIn);
  dirRng.fillNormal(raw);
  const features = new Float32Array(nFeatures * dIn);
  for (let f = 0; f < nFeatures; f++) {
    const o = f * dIn;
    let s = 0;
    for (let j = 0; j < dIn; j++) s += raw[o + j]! * raw[o + j]!;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dIn; j++) features[o + j] = raw[o + j]! * inv;
  }

  // The sample stream has its own generator, so sampling never changes the directions.
  const rng = new Rng((seed ^ 0x5a3c96e1) + 1);
  const active: number[] = [];
  const acc = new Float64Array(dIn);

  const sample = (rows: number): SyntheticBatch => {
    checkInt("rows", rows, 1, Math.floor(2 ** 31 / Math.max(nFeatures, dIn)));
    const x = new Float32Array(rows * dIn);
    const codes = new Float32Array(rows * nFeatures);
    for (let r = 0; r < rows; r++) {
      active.length = 0;
      const oc = r * nFeatures;
      let shared = -1; // the group's shared uniform draw, or -1 when its features draw their own
      for (let f = 0; f < nFeatures; f++) {
        if (strength > 0 && f % groupSize === 0) shared = rng.uniform() < strength ? rng.uniform() : -1;
        const u0 = shared >= 0 ? shared : rng.uniform();
        if (u0 < probabilities[f]!) {
          // 1 - U[0, 1) is in (0, 1]: a firing feature is never exactly 0.
          const u = 1 - rng.uniform();
          const m = magnitudes === "uniform" ? u : magnitudes === "exponential" ? -Math.log(u) || 2 ** -32 : 1; // -log(1) = 0: keep it positive
          codes[oc + f] = m;
          active.push(f);
        }
      }
      acc.fill(0);
      for (const f of active) {
        const c = codes[oc + f]!; // the float32 coefficient, so x is exactly codes @ features
        const o = f * dIn;
        for (let j = 0; j < dIn; j++) acc[j]! += c * features[o + j]!;
      }
      x.set(acc, r * dIn);
    }
    return { x, codes, rows };
  };

  return { nFeatures, dIn, features, probabilities, sample };
}
