/**
 * `trainSae`: trains a sparse autoencoder on activations given directly (a Float32Array of rows x
 * d_in, or a stream of such batches), on onnxruntime.
 *
 * One training step is one onnxruntime run of the graph from `train-graph.ts` (forward, losses
 * and a hand-written backward pass as ONNX ops); the weights are graph inputs fed as the
 * trainer's own Float32Arrays, which Adam (`src/autodiff/adam.ts`) then updates in place.
 *
 * Architectures:
 * - `"standard"`: Anthropic's form, `f = ReLU(W_enc^T (x - b_dec) + b_enc)`, `x_hat = W_dec^T f + b_dec`,
 *   loss `||x - x_hat||^2 + l1 * sum_i f_i ||W_dec_i||` (mean over rows): the L1 of each latent is
 *   weighted by its decoder row norm (Anthropic, April 2024 update), so the decoder is not
 *   renormalised. Dead latents are resampled (Anthropic, "Towards Monosemanticity", simplified:
 *   inputs are drawn from the current batch, see {@link TrainSaeOptions.resample}).
 * - `"topk"`: `f = ReLU(TopK_k(pre))` (Gao et al. 2024), decoder rows renormalised to unit norm after
 *   every step, and the AuxK loss on dead latents (the `kAux` largest dead pre-activations
 *   reconstruct the residual `x - x_hat`, weighted by `auxK.coefficient`).
 *
 * Schedules: learning rate linear warm-up, constant, then linear decay to 0 over the last
 * `lrDecayFraction` of the steps; L1 coefficient linear warm-up from 0.
 *
 * @module
 */
import { adamwUpdate } from "../autodiff/adam.js";
import { createSession, type Session } from "../backend/ort.js";
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";
import type { HostTensor } from "../onnx/tensor.js";
import { encodeModel } from "../onnx/proto.js";
import { arraySource, streamSource, type RowSource, type SaeActivations } from "./train-data.js";
import { buildSaeTrainGraph } from "./train-graph.js";

export type { SaeActivations } from "./train-data.js";

/** Trainable SAE architectures. */
export const SAE_TRAIN_ARCHITECTURES = Object.freeze(["standard", "topk"] as const);

/** One of {@link SAE_TRAIN_ARCHITECTURES}. */
export type SaeTrainArchitecture = (typeof SAE_TRAIN_ARCHITECTURES)[number];

/** Progress of one step, given to {@link TrainSaeOptions.onProgress}. */
export interface SaeTrainProgress {
  /** Steps done (1-based). */
  step: number;
  /** Steps planned. */
  steps: number;
  /** Mean squared error per element of this step's batch (before the update). */
  mse: number;
  /** Mean over rows of `sum_i f_i ||W_dec_i||` (standard; 0 for topk). */
  l1: number;
  /** Mean number of nonzero latents per row. */
  l0: number;
  /** Learning rate used for this step. */
  lr: number;
  /** L1 coefficient used for this step (standard). */
  l1Coefficient: number;
  /** Fraction of latents that did not fire within the dead window. */
  deadFraction: number;
  /** Latents resampled at this step (standard). */
  resampled: number;
  /** Rows per second so far. */
  rowsPerSecond: number;
  /** Seconds since training started, and of them inside onnxruntime runs. */
  seconds: { total: number; onnxruntime: number };
}

/** Options of {@link trainSae}. */
export interface TrainSaeOptions {
  /** Activations, rows x dIn: one Float32Array (reshuffled every epoch) or a stream of batches. */
  activations: SaeActivations;
  /** Input width d_in. */
  dIn: number;
  /** Number of latents d_sae. */
  dSae: number;
  /** [default: "standard"] */
  architecture?: SaeTrainArchitecture;
  /** TopK: latents kept per row (required for "topk"). */
  k?: number;
  /** Training steps (a stream may end sooner). */
  steps: number;
  /** Rows per step. [default: 4096] */
  batchSize?: number;
  /** Adam learning rate. [default: 1e-3] */
  lr?: number;
  /** Linear learning-rate warm-up steps. [default: 5% of steps] */
  lrWarmupSteps?: number;
  /** Fraction of the steps at the end over which the learning rate decays linearly to 0. [default: 0.2] */
  lrDecayFraction?: number;
  /** Adam beta1 / beta2 / eps. [default: 0.9 / 0.999 / 1e-8] */
  adam?: { beta1?: number; beta2?: number; eps?: number };
  /** Standard: L1 coefficient. [default: 5] */
  l1Coefficient?: number;
  /** Standard: linear L1 warm-up steps. [default: 5% of steps] */
  l1WarmupSteps?: number;
  /** TopK: AuxK latents and coefficient, or false. [default: { k: min(dSae, max(2k, dIn/2)), coefficient: 1/32 }] */
  auxK?: { k?: number; coefficient?: number } | false;
  /** A latent is dead when it did not fire in this many steps. [default: max(10, ceil(100 dSae / batchSize))] */
  deadWindowSteps?: number;
  /**
   * Standard: dead-latent resampling at steps `every, 2 every, ...` up to `until`, or false. A dead
   * latent gets a row of the current batch drawn with probability proportional to the square of its
   * squared reconstruction error: decoder row = that row minus b_dec, unit norm; encoder column =
   * the same direction times 0.2 times the mean encoder column norm of live latents; b_enc 0; its
   * Adam moments reset. (Anthropic draws from a larger sample of inputs.)
   * [default: { every: steps / 8, until: steps / 2 }]
   */
  resample?: { every: number; until?: number } | false;
  /** Seed of the initial weights and the data order. [default: 0] */
  seed?: number;
  /** Stream input: rows held in the shuffle buffer. [default: 16 x batchSize] */
  bufferRows?: number;
  /** onnxruntime intra-op threads (0: its default). [default: 0] */
  threads?: number;
  /** Called after every step. */
  onProgress?: (p: SaeTrainProgress) => void;
}

/** A weight as a plain array with its dims. */
export interface TrainedSaeTensor {
  /** Row-major values. */
  data: Float32Array;
  /** Dimensions. */
  dims: number[];
}

/** What {@link trainSae} returns. */
export interface TrainedSae {
  /** Architecture trained. */
  architecture: SaeTrainArchitecture;
  /** TopK: latents kept per row. */
  k?: number;
  /** Input width. */
  dIn: number;
  /** Number of latents. */
  dSae: number;
  /** Weights (SAELens layout). */
  weights: { W_enc: TrainedSaeTensor; W_dec: TrainedSaeTensor; b_enc: TrainedSaeTensor; b_dec: TrainedSaeTensor };
  /** Steps run. */
  steps: number;
  /** Per-step MSE (per element), L1 (mean weighted L1 per row; standard) and L0, before each update. */
  losses: { mse: Float64Array; l1: Float64Array; l0: Float64Array };
  /** Fraction of latents dead (no firing within the dead window) at the end. */
  deadFraction: number;
  /** Latents resampled in all. */
  resampled: number;
  /** Wall-clock seconds of the training loop, of which inside onnxruntime runs. */
  seconds: { total: number; onnxruntime: number };
  /** Rows per second. */
  rowsPerSecond: number;
}

function badOption(name: string, value: unknown, allowed: unknown): never {
  const what = Array.isArray(allowed) ? `one of ${allowed.join(", ")}` : String(allowed);
  throw new TdbError("E_BAD_OPTION", `trainSae: ${name} must be ${what}, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`, {
    value,
    allowed,
  });
}

function int(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) badOption(name, v, `an integer in [${min}, ${max}]`);
  return v;
}

function num(name: string, v: unknown, min: number, max: number, openMin = false): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || (openMin && v === min) || v > max) {
    badOption(name, v, `a number in ${openMin ? "(" : "["}${min}, ${max}]`);
  }
  return v;
}

interface Resolved {
  arch: SaeTrainArchitecture;
  dIn: number;
  dSae: number;
  k: number;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  decayFrom: number;
  beta1: number;
  beta2: number;
  eps: number;
  l1: number;
  l1Warmup: number;
  kAux: number;
  auxCoef: number;
  deadWindow: number;
  resampleEvery: number;
  resampleUntil: number;
  seed: number;
  bufferRows: number;
  threads: number;
}

function resolve(o: TrainSaeOptions): Resolved {
  if (o === null || typeof o !== "object") badOption("options", o, "an object { activations, dIn, dSae, steps }");
  const arch = o.architecture ?? "standard";
  if (!SAE_TRAIN_ARCHITECTURES.includes(arch)) badOption("architecture", arch, SAE_TRAIN_ARCHITECTURES);
  const dIn = int("dIn", o.dIn, 1, 1 << 20);
  const dSae = int("dSae", o.dSae, 1, 1 << 24);
  const steps = int("steps", o.steps, 1);
  const batch = int("batchSize", o.batchSize ?? 4096, 1, 1 << 20);
  const k = arch === "topk" ? int("k", o.k, 1, dSae) : 0;
  if (arch !== "topk" && o.k !== undefined) badOption("k", o.k, 'undefined (k is for architecture "topk")');
  const warmup = int("lrWarmupSteps", o.lrWarmupSteps ?? Math.floor(steps / 20), 0);
  const decay = num("lrDecayFraction", o.lrDecayFraction ?? 0.2, 0, 1);
  const aux = arch === "topk" && o.auxK !== false ? (o.auxK ?? {}) : undefined;
  const kAux = aux ? int("auxK.k", aux.k ?? Math.min(dSae, Math.max(2 * k, Math.floor(dIn / 2))), 1, dSae) : 0;
  const resample = arch === "standard" && o.resample !== false ? (o.resample ?? { every: Math.max(1, Math.floor(steps / 8)), until: Math.floor(steps / 2) }) : undefined;
  return {
    arch,
    dIn,
    dSae,
    k,
    steps,
    batch,
    lr: num("lr", o.lr ?? 1e-3, 0, 10, true),
    warmup,
    decayFrom: Math.floor(steps * (1 - decay)),
    beta1: num("adam.beta1", o.adam?.beta1 ?? 0.9, 0, 0.999999),
    beta2: num("adam.beta2", o.adam?.beta2 ?? 0.999, 0, 0.999999999),
    eps: num("adam.eps", o.adam?.eps ?? 1e-8, 0, 1, true),
    l1: num("l1Coefficient", o.l1Coefficient ?? 5, 0, 1e9),
    l1Warmup: int("l1WarmupSteps", o.l1WarmupSteps ?? Math.floor(steps / 20), 0),
    kAux,
    auxCoef: aux ? num("auxK.coefficient", aux.coefficient ?? 1 / 32, 0, 1e6) : 0,
    deadWindow: int("deadWindowSteps", o.deadWindowSteps ?? Math.max(10, Math.ceil((100 * dSae) / batch)), 1),
    resampleEvery: resample ? int("resample.every", resample.every, 1) : 0,
    resampleUntil: resample ? int("resample.until", resample.until ?? steps, 0) : 0,
    seed: int("seed", o.seed ?? 0, -(2 ** 31), 2 ** 32),
    bufferRows: int("bufferRows", o.bufferRows ?? 16 * batch, batch),
    threads: int("threads", o.threads ?? 0, 0, 1024),
  };
}

/** Learning rate of `step` (0-based): linear warm-up, constant, linear decay to 0 over the end. */
export function saeLearningRate(lr: number, step: number, steps: number, warmup: number, decayFrom: number): number {
  let f = 1;
  if (step < warmup) f = (step + 1) / warmup;
  if (step >= decayFrom && steps > decayFrom) f = Math.min(f, (steps - step) / (steps - decayFrom));
  return lr * f;
}

function sourceOf(o: TrainSaeOptions, r: Resolved): RowSource {
  const a = o.activations;
  if (a instanceof Float32Array) {
    if (a.length % r.dIn === 0 && a.length / r.dIn < r.batch) badOption("batchSize", r.batch, `at most the ${a.length / r.dIn} rows given`);
    return arraySource(a, r.dIn, r.seed + 1);
  }
  if (a !== null && typeof a === "object" && (Symbol.asyncIterator in a || Symbol.iterator in a)) return streamSource(a, r.dIn, r.bufferRows, r.seed + 1);
  throw new TdbError("E_BAD_INPUT", "trainSae: activations must be a Float32Array or an (async) iterable of Float32Arrays", {
    value: Object.prototype.toString.call(a),
    allowed: "Float32Array | AsyncIterable<Float32Array>",
  });
}

function normaliseRows(w: Float32Array, rows: number, d: number): void {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += w[i * d + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) w[i * d + j]! *= inv;
  }
}

/**
 * Trains a sparse autoencoder on activations given directly.
 *
 * @example
 * ```ts
 * const sae = await trainSae({ activations: x, dIn: 64, dSae: 1024, architecture: "topk", k: 4, steps: 2000, batchSize: 1024 });
 * sae.weights.W_dec.data; // Float32Array(1024 * 64)
 * ```
 */
export async function trainSae(options: TrainSaeOptions): Promise<TrainedSae> {
  const r = resolve(options);
  const { dIn: d, dSae: S, batch: B } = r;
  const source = sourceOf(options, r);
  const rng = new Rng(r.seed);

  // Initial weights: unit-norm random decoder rows, encoder its transpose, b_dec the first batch's mean.
  const wDec = rng.fillNormal(new Float32Array(S * d)) as Float32Array;
  normaliseRows(wDec, S, d);
  const wEnc = new Float32Array(d * S);
  for (let i = 0; i < S; i++) for (let j = 0; j < d; j++) wEnc[j * S + i] = wDec[i * d + j]!;
  const bEnc = new Float32Array(S);
  const bDec = new Float32Array(d);
  const x = new Float32Array(B * d);
  if (!(await source.next(x))) {
    throw new TdbError("E_BAD_INPUT", `trainSae: fewer activation rows than one batch (${B})`, { value: B, allowed: "at least batchSize rows" });
  }
  for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) bDec[j]! += x[b * d + j]! / B;

  const params = [wEnc, bEnc, wDec, bDec];
  const grads = ["g_W_enc", "g_b_enc", "g_W_dec", "g_b_dec"];
  const m = params.map((p) => new Float32Array(p.length));
  const v = params.map((p) => new Float32Array(p.length));
  const hyper = { beta1: r.beta1, beta2: r.beta2, eps: r.eps, weightDecay: 0 };

  const graph = buildSaeTrainGraph({ architecture: r.arch, batch: B, dIn: d, dSae: S, k: r.k, kAux: r.kAux, auxCoef: r.auxCoef });
  const session: Session = await createSession(encodeModel(graph), { intraOpThreads: r.threads });
  const feeds: Record<string, HostTensor> = {
    x: { type: "float32", data: x, dims: [B, d] },
    W_enc: { type: "float32", data: wEnc, dims: [d, S] },
    b_enc: { type: "float32", data: bEnc, dims: [S] },
    W_dec: { type: "float32", data: wDec, dims: [S, d] },
    b_dec: { type: "float32", data: bDec, dims: [d] },
  };
  const l1Feed = new Float32Array(1);
  if (r.arch === "standard") feeds.l1 = { type: "float32", data: l1Feed, dims: [1] };
  const penalty = new Float32Array(S);
  if (r.kAux > 0) feeds.dead_penalty = { type: "float32", data: penalty, dims: [S] };

  const lastFired = new Int32Array(S); // step at which each latent last fired (0 = start)
  const losses = { mse: new Float64Array(r.steps), l1: new Float64Array(r.steps), l0: new Float64Array(r.steps) };
  let ortSeconds = 0;
  let resampledTotal = 0;
  let done = 0;
  const t0 = performance.now();
  try {
    for (let step = 0; step < r.steps; step++) {
      if (step > 0 && !(await source.next(x))) break;
      const lr = saeLearningRate(r.lr, step, r.steps, r.warmup, r.decayFrom);
      const l1Coef = r.l1Warmup > 0 ? (r.l1 * Math.min(1, (step + 1) / r.l1Warmup)) : r.l1;
      l1Feed[0] = l1Coef / B;
      if (r.kAux > 0) for (let i = 0; i < S; i++) penalty[i] = step - lastFired[i]! >= r.deadWindow ? 0 : -1e9;

      const ta = performance.now();
      const out = await session.run(feeds);
      ortSeconds += (performance.now() - ta) / 1000;

      const sq = (out.sq_err!.data as Float32Array)[0]!;
      if (!Number.isFinite(sq)) {
        throw new TdbError("E_NON_FINITE", `trainSae: the loss is not finite at step ${step + 1} (diverged; try a smaller lr)`, {
          value: sq,
          allowed: "a finite loss",
        });
      }
      losses.mse[step] = sq / (B * d);
      losses.l1[step] = r.arch === "standard" ? (out.l1_sum!.data as Float32Array)[0]! / B : 0;
      losses.l0[step] = (out.active!.data as Float32Array)[0]! / B;
      const fired = out.fired!.data as Float32Array;
      for (let i = 0; i < S; i++) if (fired[i]! > 0) lastFired[i] = step + 1;

      for (let p = 0; p < 4; p++) adamwUpdate(params[p]!, out[grads[p]!]!.data as Float32Array, m[p]!, v[p]!, hyper, lr, step + 1, 1, false);
      if (r.arch === "topk") normaliseRows(wDec, S, d);

      let resampled = 0;
      if (r.resampleEvery > 0 && (step + 1) % r.resampleEvery === 0 && step + 1 <= r.resampleUntil && step + 1 < r.steps) {
        resampled = resampleDead(r, step + 1, lastFired, x, out.row_err!.data as Float32Array, params, m, v, rng);
        resampledTotal += resampled;
      }
      done = step + 1;
      if (options.onProgress) {
        let dead = 0;
        for (let i = 0; i < S; i++) if (step + 1 - lastFired[i]! >= r.deadWindow) dead++;
        options.onProgress({
          step: step + 1,
          steps: r.steps,
          mse: losses.mse[step]!,
          l1: losses.l1[step]!,
          l0: losses.l0[step]!,
          lr,
          l1Coefficient: r.arch === "standard" ? l1Coef : 0,
          deadFraction: dead / S,
          resampled,
          rowsPerSecond: (done * B) / ((performance.now() - t0) / 1000),
          seconds: { total: (performance.now() - t0) / 1000, onnxruntime: ortSeconds },
        });
      }
    }
  } finally {
    await session.release();
  }
  const total = (performance.now() - t0) / 1000;
  let dead = 0;
  for (let i = 0; i < S; i++) if (done - lastFired[i]! >= r.deadWindow) dead++;
  return {
    architecture: r.arch,
    ...(r.arch === "topk" ? { k: r.k } : {}),
    dIn: d,
    dSae: S,
    weights: {
      W_enc: { data: wEnc, dims: [d, S] },
      W_dec: { data: wDec, dims: [S, d] },
      b_enc: { data: bEnc, dims: [S] },
      b_dec: { data: bDec, dims: [d] },
    },
    steps: done,
    losses: { mse: losses.mse.slice(0, done), l1: losses.l1.slice(0, done), l0: losses.l0.slice(0, done) },
    deadFraction: dead / S,
    resampled: resampledTotal,
    seconds: { total, onnxruntime: ortSeconds },
    rowsPerSecond: (done * B) / total,
  };
}

/** Resamples latents dead at `stepDone` (see {@link TrainSaeOptions.resample}); returns how many. */
function resampleDead(
  r: Resolved,
  stepDone: number,
  lastFired: Int32Array,
  x: Float32Array,
  rowErr: Float32Array,
  params: Float32Array[],
  m: Float32Array[],
  v: Float32Array[],
  rng: Rng,
): number {
  const { dIn: d, dSae: S, batch: B } = r;
  const [wEnc, bEnc, wDec, bDec] = params as [Float32Array, Float32Array, Float32Array, Float32Array];
  const dead: number[] = [];
  for (let i = 0; i < S; i++) if (stepDone - lastFired[i]! >= r.deadWindow) dead.push(i);
  if (dead.length === 0) return 0;
  // Mean encoder column norm of live latents.
  let normSum = 0;
  let live = 0;
  const isDead = new Uint8Array(S);
  for (const i of dead) isDead[i] = 1;
  for (let i = 0; i < S; i++) {
    if (isDead[i]) continue;
    let s = 0;
    for (let j = 0; j < d; j++) s += wEnc[j * S + i]! ** 2;
    normSum += Math.sqrt(s);
    live++;
  }
  const encNorm = 0.2 * (live > 0 ? normSum / live : 1);
  // Cumulative weights proportional to the squared per-row loss.
  const cum = new Float64Array(B);
  let acc = 0;
  for (let b = 0; b < B; b++) cum[b] = acc += Number(rowErr[b]!) ** 2;
  const dir = new Float64Array(d);
  for (const i of dead) {
    let row = B - 1;
    if (acc > 0) {
      const u = rng.uniform() * acc;
      let lo = 0;
      let hi = B - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      row = lo;
    } else row = rng.int(B);
    let s = 0;
    for (let j = 0; j < d; j++) s += (dir[j] = x[row * d + j]! - bDec[j]!) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) {
      const u = dir[j]! * inv;
      wDec[i * d + j] = u;
      wEnc[j * S + i] = u * encNorm;
    }
    bEnc[i] = 0;
    lastFired[i] = stepDone;
    for (let j = 0; j < d; j++) {
      m[2]![i * d + j] = 0;
      v[2]![i * d + j] = 0;
      m[0]![j * S + i] = 0;
      v[0]![j * S + i] = 0;
    }
    m[1]![i] = 0;
    v[1]![i] = 0;
  }
  return dead.length;
}
