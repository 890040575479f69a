/**
 * `trainSae`: trains a sparse autoencoder on activations given directly (a Float32Array of rows x
 * d_in, or a stream of such batches) or harvested from a model's hook over a text corpus
 * (`harvest.ts`), on onnxruntime, with atomic checkpoints and resuming (`checkpoint.ts`).
 *
 * One training step is one onnxruntime run of the graph from `train-graph.ts` (forward, losses
 * and a hand-written backward pass as ONNX ops); the weights are graph inputs fed as the
 * trainer's own Float32Arrays, which Adam (`src/autodiff/adam.ts`) then updates in place.
 *
 * Architectures:
 * - `"standard"`: Anthropic's form, `f = ReLU(W_enc^T (x - b_dec) + b_enc)`, `x_hat = W_dec^T f + b_dec`,
 *   loss `||x - x_hat||^2 + l1 * sum_i f_i ||W_dec_i||` (mean over rows): the L1 of each latent is
 *   weighted by its decoder row norm (Anthropic, April 2024 update), so the decoder is not
 *   renormalised. Dead latents are resampled as Anthropic describes ("Towards Monosemanticity"):
 *   inputs drawn from a fresh sample of several batches by their squared reconstruction loss, see
 *   {@link TrainSaeOptions.resample}.
 * - `"topk"`: `f = ReLU(TopK_k(pre))` (Gao et al. 2024), decoder rows renormalised to unit norm after
 *   every step, the component of each decoder row's gradient along the row removed before the Adam
 *   step (Gao et al.'s parallel-gradient projection; see {@link TrainSaeOptions.projectDecoderGradients}),
 *   and the AuxK loss on dead latents (the `kAux` largest dead pre-activations reconstruct the
 *   residual `x - x_hat`, weighted by `auxK.coefficient`).
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
import { harvestResolved, resolveHarvest, type HarvestModel, type HarvestOptions, type ResolvedHarvest, type SaeCorpus } from "./harvest.js";
import { arraySource, streamSource, type RowSource, type RowSourcePosition, type SaeActivations } from "./train-data.js";
import { buildSaeTrainGraph } from "./train-graph.js";

export type { SaeActivations, RowSourcePosition } from "./train-data.js";

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

/** Checkpoints of a {@link trainSae} run (Node.js and Deno: files). */
export interface SaeCheckpointOptions {
  /** Checkpoint file. */
  path: string;
  /** Write one every this many steps (and at the end). [default: 0: at the end only] */
  every?: number;
  /**
   * Continue from `path` when it exists (a missing file starts a fresh run). A checkpoint of a run
   * with other options or other array data is `E_CHECKPOINT_MISMATCH`. [default: false]
   */
  resume?: boolean;
}

/**
 * Options of {@link trainSae}. The data is either `activations` (with `dIn`) or `model` + `hook` +
 * `corpus` (activations harvested as `harvestActivations` does; `dIn` read from the hook).
 */
export interface TrainSaeOptions {
  /** Activations, rows x dIn: one Float32Array (reshuffled every epoch) or a stream of batches. */
  activations?: SaeActivations;
  /** Input width d_in: required with `activations`; with `model`, when given, it must equal the hook's width. */
  dIn?: number;
  /** A model to harvest activations from (a `Model` or `ModelRuntime`), with `hook` and `corpus`. */
  model?: HarvestModel;
  /** The hook to train on (TransformerLens name; `hook_z` flattened to n_heads * d_head). */
  hook?: string;
  /** The text corpus the model reads: documents `{ id, text }` or strings. */
  corpus?: SaeCorpus;
  /** How activations are harvested (context length, row budget, BOS position, windows per pass). */
  harvest?: Omit<HarvestOptions, "hook" | "skipRows">;
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
   * Standard: dead-latent resampling at steps `every, 2 every, ...` up to `until`, or false. When
   * latents are dead, `sampleRows` fresh rows (rounded up to whole batches; they are not trained
   * on) are drawn from the data and their squared reconstruction errors computed with the current
   * weights (with `sampleRows` 0: the current batch and its errors). Each dead latent gets one of
   * these rows drawn with probability proportional to the square of its squared error: decoder
   * row = that row minus b_dec, unit norm; encoder column = the same direction times 0.2 times the
   * mean encoder column norm of live latents; b_enc 0; its Adam moments reset.
   * [default: { every: steps / 8, until: steps / 2, sampleRows: 4 batchSize }]
   */
  resample?: { every: number; until?: number; sampleRows?: number } | false;
  /** Seed of the initial weights and the data order. [default: 0] */
  seed?: number;
  /** Streamed and harvested input: rows held in the shuffle buffer. [default: 16 x batchSize] */
  bufferRows?: number;
  /**
   * TopK: remove from each decoder row's gradient its component along the row before the Adam
   * step (the rows are unit norm; Gao et al. 2024), so that the update does not fight the
   * renormalisation. [default: true]
   */
  projectDecoderGradients?: boolean;
  /** onnxruntime intra-op threads (0: its default). [default: 0] */
  threads?: number;
  /** Atomic checkpoints and resuming. */
  checkpoint?: SaeCheckpointOptions;
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
  /** The hook trained on (harvested runs). */
  hook?: string;
  /** The step this run resumed at from a checkpoint (0: a fresh run). */
  resumedFrom: number;
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
  /** Per-step MSE (per element), L1 (mean weighted L1 per row; standard) and L0, before each update (from step 1, also across a resume). */
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
  sampleRows: number;
  seed: number;
  bufferRows: number;
  threads: number;
  project: boolean;
  harvest: ResolvedHarvest | undefined;
  ckptEvery: number;
}

function resolve(o: TrainSaeOptions): Resolved {
  if (o === null || typeof o !== "object") badOption("options", o, "an object { activations, dIn, dSae, steps } or { model, hook, corpus, dSae, steps }");
  const arch = o.architecture ?? "standard";
  if (!SAE_TRAIN_ARCHITECTURES.includes(arch)) badOption("architecture", arch, SAE_TRAIN_ARCHITECTURES);
  let harvest: ResolvedHarvest | undefined;
  let dIn: number;
  if (o.model !== undefined) {
    if (o.activations !== undefined) badOption("activations", "given with model", "absent when model, hook and corpus are given (one source of data)");
    if (o.hook === undefined) badOption("hook", undefined, "a hook name such as blocks.2.hook_mlp_out (with model)");
    if (o.corpus === undefined) badOption("corpus", undefined, "an iterable of documents { id, text } or strings (with model)");
    harvest = resolveHarvest(o.model, { ...(o.harvest ?? {}), hook: o.hook });
    if (o.dIn !== undefined && o.dIn !== harvest.dIn) {
      throw new TdbError("E_BAD_OPTION", `trainSae: dIn ${String(o.dIn)} does not match ${harvest.hook}, whose width is ${harvest.dIn}`, { value: o.dIn, allowed: harvest.dIn });
    }
    dIn = harvest.dIn;
  } else {
    if (o.activations === undefined) badOption("activations", undefined, "a Float32Array or a stream of them (or model, hook and corpus)");
    dIn = int("dIn", o.dIn, 1, 1 << 20);
  }
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
    sampleRows: resample ? Math.ceil(int("resample.sampleRows", resample.sampleRows ?? 4 * batch, 0, 1 << 26) / batch) * batch : 0,
    seed: int("seed", o.seed ?? 0, -(2 ** 31), 2 ** 32),
    bufferRows: int("bufferRows", o.bufferRows ?? 16 * batch, batch),
    threads: int("threads", o.threads ?? 0, 0, 1024),
    project: arch === "topk" && bool("projectDecoderGradients", o.projectDecoderGradients ?? true),
    harvest,
    ckptEvery: o.checkpoint === undefined ? 0 : checkpointEvery(o.checkpoint),
  };
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") badOption(name, v, [true, false]);
  return v;
}

function checkpointEvery(c: SaeCheckpointOptions): number {
  if (c === null || typeof c !== "object") badOption("checkpoint", c, "{ path, every?, resume? }");
  if (typeof c.path !== "string" || c.path.trim() === "") badOption("checkpoint.path", c.path, "a file path");
  if (c.resume !== undefined) bool("checkpoint.resume", c.resume);
  return int("checkpoint.every", c.every ?? 0, 0);
}

/** Learning rate of `step` (0-based): linear warm-up, constant, linear decay to 0 over the end. */
export function saeLearningRate(lr: number, step: number, steps: number, warmup: number, decayFrom: number): number {
  let f = 1;
  if (step < warmup) f = (step + 1) / warmup;
  if (step >= decayFrom && steps > decayFrom) f = Math.min(f, (steps - step) / (steps - decayFrom));
  return lr * f;
}

/** The training rows of `o`, from the start or from a checkpoint's position. */
function sourceOf(o: TrainSaeOptions, r: Resolved, at?: RowSourcePosition): RowSource {
  if (r.harvest) {
    // Resuming skips the rows read before (whole windows without running the model).
    const rowsBefore = at && "streamRows" in at ? at.streamRows : 0;
    return streamSource(harvestResolved(o.model!, o.corpus!, { ...r.harvest, skipRows: rowsBefore }), r.dIn, r.bufferRows, r.seed + 1, { rowsBefore });
  }
  const a = o.activations;
  if (a instanceof Float32Array) {
    if (a.length % r.dIn === 0 && a.length / r.dIn < r.batch) badOption("batchSize", r.batch, `at most the ${a.length / r.dIn} rows given`);
    return arraySource(a, r.dIn, r.seed + 1, at && "epoch" in at ? at : undefined);
  }
  if (a !== null && typeof a === "object" && (Symbol.asyncIterator in a || Symbol.iterator in a)) {
    return streamSource(a, r.dIn, r.bufferRows, r.seed + 1, { skipRows: at && "streamRows" in at ? at.streamRows : 0 });
  }
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

/** What `checkpoint.ts` provides to {@link trainSae} (Node.js and Deno: hashing and files). */
export interface SaeCheckpointIo {
  /** SHA-256 (hex) of a run's identity JSON and, for array data, the data. */
  hash(identity: string, data?: Float32Array): string;
  /** Writes a checkpoint atomically. */
  write(path: string, state: SaeCheckpointData): Promise<void>;
  /** Reads a checkpoint; undefined when the file does not exist. */
  read(path: string): Promise<SaeCheckpointData | undefined>;
}

/** The contents of an SAE checkpoint (see `checkpoint.ts` for the file layout). */
export interface SaeCheckpointData {
  /** Hash of the run's options and array data. */
  configHash: string;
  /** Steps done. */
  step: number;
  /** Data position after the last step. */
  data: RowSourcePosition;
  /** Latents resampled so far. */
  resampled: number;
  /** Weights, Adam moments (`m.W_enc`, `v.W_enc`, ...), `last_fired`, `loss.mse`, `loss.l1`, `loss.l0`. */
  arrays: Record<string, Float32Array | Float64Array | Int32Array>;
}

let checkpointIo: SaeCheckpointIo | undefined;

/** Registers the checkpoint reader and writer behind {@link TrainSaeOptions.checkpoint} (`checkpoint.ts` does, when loaded). */
export function setSaeCheckpointIo(io: SaeCheckpointIo): void {
  checkpointIo = io;
}

async function loadCheckpointIo(path: string): Promise<SaeCheckpointIo> {
  if (!checkpointIo) {
    const specifier = "./checkpoint.js"; // not a literal import: browser bundlers must not follow it
    try {
      await import(/* @vite-ignore */ specifier);
    } catch (cause) {
      throw new TdbError("E_NO_RUNTIME", "trainSae checkpoints are files, which needs Node.js or Deno (tdb-js's Node entry)", { value: path, allowed: ["Node.js", "Deno"], cause });
    }
  }
  return checkpointIo!;
}

/** The options and data that shape a run's trajectory, as JSON (threads and checkpoint cadence left out). */
function identityOf(o: TrainSaeOptions, r: Resolved): string {
  const { threads: _t, ckptEvery: _c, harvest, ...rest } = r;
  const kind = harvest ? "harvest" : o.activations instanceof Float32Array ? "array" : "stream";
  const model = harvest ? o.model!.config : undefined;
  const dims = model ? { nLayers: model.nLayers, nCtx: model.nCtx, nHeads: model.nHeads, dHead: model.dHead, dModel: model.dModel, dMlp: model.dMlp } : undefined;
  return JSON.stringify({ v: 1, kind, ...rest, harvest: harvest ? { ...harvest, tokens: Number.isFinite(harvest.tokens) ? harvest.tokens : null } : null, model: dims ?? null });
}

function nonFiniteData(step: number, cause: TdbError, path: string | undefined): TdbError {
  const row = cause.value as number;
  return new TdbError("E_NON_FINITE", `trainSae: ${cause.message}${step > 0 ? ` (step ${step})` : " (before training)"}${path ? `; the last good checkpoint (${path}) is kept` : ""}`, {
    value: { step, row },
    allowed: "finite activations",
    cause,
  });
}

/**
 * Trains a sparse autoencoder on activations given directly (`activations` + `dIn`) or harvested
 * from a model's hook over a text corpus (`model` + `hook` + `corpus`).
 *
 * Errors: `E_BAD_OPTION` for bad options, `E_BAD_INPUT` for bad data, `E_UNKNOWN_HOOK` /
 * `E_LAYER_RANGE` for a bad hook, `E_NON_FINITE` (value `{ step, row }` or `{ step, loss }`) when
 * the activations or the loss hold a NaN or infinity (training stops; the last checkpoint written
 * stays as it was), `E_CHECKPOINT` / `E_CHECKPOINT_MISMATCH` for a corrupt checkpoint or one of
 * another run.
 *
 * @example
 * ```ts
 * const sae = await trainSae({ activations: x, dIn: 64, dSae: 1024, architecture: "topk", k: 4, steps: 2000, batchSize: 1024 });
 * sae.weights.W_dec.data; // Float32Array(1024 * 64)
 * const onModel = await trainSae({ model, hook: "blocks.2.hook_mlp_out", corpus: brownCorpus(), dSae: 2048, steps: 500,
 *   checkpoint: { path: "sae.ckpt", every: 50, resume: true } });
 * ```
 */
export async function trainSae(options: TrainSaeOptions): Promise<TrainedSae> {
  const r = resolve(options);
  const { dIn: d, dSae: S, batch: B } = r;
  const ckpt = options.checkpoint;
  const io = ckpt ? await loadCheckpointIo(ckpt.path) : undefined;
  const hash = io ? io.hash(identityOf(options, r), options.activations instanceof Float32Array && !r.harvest ? options.activations : undefined) : "";

  const wDec = new Float32Array(S * d);
  const wEnc = new Float32Array(d * S);
  const bEnc = new Float32Array(S);
  const bDec = new Float32Array(d);
  const params = [wEnc, bEnc, wDec, bDec];
  const names = ["W_enc", "b_enc", "W_dec", "b_dec"];
  const grads = ["g_W_enc", "g_b_enc", "g_W_dec", "g_b_dec"];
  const m = params.map((p) => new Float32Array(p.length));
  const v = params.map((p) => new Float32Array(p.length));
  const lastFired = new Int32Array(S); // step at which each latent last fired (0 = start)
  const losses = { mse: new Float64Array(r.steps), l1: new Float64Array(r.steps), l0: new Float64Array(r.steps) };
  let resampledTotal = 0;
  let start = 0;

  const ck = io && ckpt!.resume ? await io.read(ckpt!.path) : undefined;
  if (ck) {
    if (ck.configHash !== hash) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", `SAE checkpoint ${ckpt!.path} was written by a run with other options or other data`, { value: ck.configHash, allowed: hash });
    }
    const want: [string, number][] = names.flatMap((n, i) => [[n, params[i]!.length], [`m.${n}`, params[i]!.length], [`v.${n}`, params[i]!.length]] as [string, number][]);
    want.push(["last_fired", S], ["loss.mse", ck.step], ["loss.l1", ck.step], ["loss.l0", ck.step]);
    const bad = want.find(([n, len]) => ck.arrays[n]?.length !== len);
    if (bad || ck.step < 1 || ck.step > r.steps) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", `SAE checkpoint ${ckpt!.path} does not hold this run's arrays${bad ? ` (${bad[0]})` : ` (step ${ck.step})`}`, {
        value: Object.keys(ck.arrays),
        allowed: want.map(([n]) => n),
      });
    }
    names.forEach((n, i) => {
      params[i]!.set(ck.arrays[n]!);
      m[i]!.set(ck.arrays[`m.${n}`]!);
      v[i]!.set(ck.arrays[`v.${n}`]!);
    });
    lastFired.set(ck.arrays.last_fired!);
    losses.mse.set(ck.arrays["loss.mse"]!);
    losses.l1.set(ck.arrays["loss.l1"]!);
    losses.l0.set(ck.arrays["loss.l0"]!);
    resampledTotal = ck.resampled;
    start = ck.step;
  }

  let source: RowSource;
  try {
    source = sourceOf(options, r, ck?.data);
  } catch (e) {
    throw e instanceof TdbError && e.code === "E_NON_FINITE" ? nonFiniteData(0, e, undefined) : e;
  }
  const x = new Float32Array(B * d);
  /** The next batch into `x`; false when the data ended. `step` (1-based) is the step it is for. */
  const nextBatch = async (step: number): Promise<boolean> => {
    try {
      return await source.next(x);
    } catch (e) {
      throw e instanceof TdbError && e.code === "E_NON_FINITE" ? nonFiniteData(step, e, ckpt?.path) : e;
    }
  };

  let haveBatch = false;
  if (!ck) {
    // Initial weights: unit-norm random decoder rows, encoder its transpose, b_dec the first batch's mean.
    const rng = new Rng(r.seed);
    rng.fillNormal(wDec);
    normaliseRows(wDec, S, d);
    for (let i = 0; i < S; i++) for (let j = 0; j < d; j++) wEnc[j * S + i] = wDec[i * d + j]!;
    if (!(await nextBatch(1))) {
      throw new TdbError("E_BAD_INPUT", `trainSae: fewer activation rows than one batch (${B})`, { value: B, allowed: "at least batchSize rows" });
    }
    for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) bDec[j]! += x[b * d + j]! / B;
    haveBatch = true;
  }
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

  let ortSeconds = 0;
  let done = start;
  const writeCheckpoint = async (): Promise<void> => {
    if (!io) return;
    const arrays: SaeCheckpointData["arrays"] = {};
    names.forEach((n, i) => {
      arrays[n] = params[i]!;
      arrays[`m.${n}`] = m[i]!;
      arrays[`v.${n}`] = v[i]!;
    });
    arrays.last_fired = lastFired;
    arrays["loss.mse"] = losses.mse.subarray(0, done);
    arrays["loss.l1"] = losses.l1.subarray(0, done);
    arrays["loss.l0"] = losses.l0.subarray(0, done);
    await io.write(ckpt!.path, { configHash: hash, step: done, data: source.position(), resampled: resampledTotal, arrays });
  };
  const t0 = performance.now();
  try {
    for (let step = start; step < r.steps; step++) {
      if (!haveBatch && !(await nextBatch(step + 1))) break;
      haveBatch = false;
      const lr = saeLearningRate(r.lr, step, r.steps, r.warmup, r.decayFrom);
      const l1Coef = r.l1Warmup > 0 ? r.l1 * Math.min(1, (step + 1) / r.l1Warmup) : r.l1;
      l1Feed[0] = l1Coef / B;
      if (r.kAux > 0) for (let i = 0; i < S; i++) penalty[i] = step - lastFired[i]! >= r.deadWindow ? 0 : -1e9;

      const ta = performance.now();
      const out = await session.run(feeds);
      ortSeconds += (performance.now() - ta) / 1000;

      const sq = (out.sq_err!.data as Float32Array)[0]!;
      const l1Sum = r.arch === "standard" ? (out.l1_sum!.data as Float32Array)[0]! : 0;
      const auxSq = r.kAux > 0 ? (out.aux_sq!.data as Float32Array)[0]! : 0;
      if (!Number.isFinite(sq) || !Number.isFinite(l1Sum) || !Number.isFinite(auxSq)) {
        const loss = !Number.isFinite(sq) ? sq : !Number.isFinite(l1Sum) ? l1Sum : auxSq;
        throw new TdbError(
          "E_NON_FINITE",
          `trainSae: the loss is not finite at step ${step + 1} (diverged; try a smaller lr)${ckpt ? `; the last good checkpoint (${ckpt.path}) is kept` : ""}`,
          { value: { step: step + 1, loss }, allowed: "a finite loss" },
        );
      }
      losses.mse[step] = sq / (B * d);
      losses.l1[step] = l1Sum / B;
      losses.l0[step] = (out.active!.data as Float32Array)[0]! / B;
      const fired = out.fired!.data as Float32Array;
      for (let i = 0; i < S; i++) if (fired[i]! > 0) lastFired[i] = step + 1;

      if (r.project) projectOutRows(out.g_W_dec!.data as Float32Array, wDec, S, d);
      for (let p = 0; p < 4; p++) adamwUpdate(params[p]!, out[grads[p]!]!.data as Float32Array, m[p]!, v[p]!, hyper, lr, step + 1, 1, false);
      if (r.arch === "topk") normaliseRows(wDec, S, d);

      let resampled = 0;
      if (r.resampleEvery > 0 && (step + 1) % r.resampleEvery === 0 && step + 1 <= r.resampleUntil && step + 1 < r.steps) {
        // A generator seeded by (seed, step) alone: a resumed run draws what the uninterrupted one did.
        const rng = new Rng((Math.imul(r.seed | 0, 0x85ebca6b) ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0);
        const dead: number[] = [];
        for (let i = 0; i < S; i++) if (step + 1 - lastFired[i]! >= r.deadWindow) dead.push(i);
        if (dead.length > 0) {
          let pool = { x, err: out.row_err!.data as Float32Array, rows: B };
          if (r.sampleRows > 0) {
            // Fresh rows, and their errors under the current weights (the training graph's row_err).
            const px = new Float32Array(r.sampleRows * d);
            const pe = new Float32Array(r.sampleRows);
            let rows = 0;
            while (rows < r.sampleRows && (await nextBatch(step + 1))) {
              const ta2 = performance.now();
              const o2 = await session.run(feeds);
              ortSeconds += (performance.now() - ta2) / 1000;
              px.set(x, rows * d);
              pe.set(o2.row_err!.data as Float32Array, rows);
              rows += B;
            }
            if (rows > 0) pool = { x: px, err: pe, rows };
          }
          resampled = resampleLatents(dead, pool.x, pool.err, pool.rows, { W_enc: wEnc, b_enc: bEnc, W_dec: wDec, b_dec: bDec }, m, v, rng);
          for (const i of dead) lastFired[i] = step + 1;
          resampledTotal += resampled;
        }
      }
      done = step + 1;
      if (options.onProgress) {
        let dead = 0;
        for (let i = 0; i < S; i++) if (step + 1 - lastFired[i]! >= r.deadWindow) dead++;
        const seconds = (performance.now() - t0) / 1000;
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
          rowsPerSecond: ((done - start) * B) / seconds,
          seconds: { total: seconds, onnxruntime: ortSeconds },
        });
      }
      if (r.ckptEvery > 0 && done % r.ckptEvery === 0 && done < r.steps) await writeCheckpoint();
    }
    if (done > start) await writeCheckpoint();
  } finally {
    await session.release();
  }
  const total = (performance.now() - t0) / 1000;
  let dead = 0;
  for (let i = 0; i < S; i++) if (done - lastFired[i]! >= r.deadWindow) dead++;
  return {
    architecture: r.arch,
    ...(r.harvest ? { hook: r.harvest.hook } : {}),
    resumedFrom: start,
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
    rowsPerSecond: ((done - start) * B) / total,
  };
}

/** Removes from each row of `g` (rows x d) its component along the same row of `w` (unit-norm rows). */
export function projectOutRows(g: Float32Array, w: Float32Array, rows: number, d: number): void {
  for (let i = 0; i < rows; i++) {
    const o = i * d;
    let dot = 0;
    for (let j = 0; j < d; j++) dot += g[o + j]! * w[o + j]!;
    for (let j = 0; j < d; j++) g[o + j]! -= dot * w[o + j]!;
  }
}

/**
 * Anthropic's resampling of `dead` latents from a pool of input rows (`pool`: rows x d_in, `err`:
 * each row's squared reconstruction error): each dead latent draws a row with probability
 * proportional to `err^2` (uniformly when all errors are 0); its decoder row becomes that row minus
 * `b_dec`, unit norm, its encoder column the same direction times 0.2 times the mean encoder
 * column norm of the live latents, its encoder bias 0, and its Adam moments (`m`, `v`: W_enc,
 * b_enc, W_dec, b_dec in that order) are reset. Returns how many latents were resampled.
 */
export function resampleLatents(
  dead: readonly number[],
  pool: Float32Array,
  err: Float32Array,
  rows: number,
  w: { W_enc: Float32Array; b_enc: Float32Array; W_dec: Float32Array; b_dec: Float32Array },
  m: readonly Float32Array[],
  v: readonly Float32Array[],
  rng: Rng,
): number {
  if (dead.length === 0) return 0;
  const d = w.b_dec.length;
  const S = w.b_enc.length;
  const { W_enc: wEnc, b_enc: bEnc, W_dec: wDec, b_dec: bDec } = w;
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
  const cum = new Float64Array(rows);
  let acc = 0;
  for (let b = 0; b < rows; b++) cum[b] = acc += Number(err[b]!) ** 2;
  const dir = new Float64Array(d);
  for (const i of dead) {
    let row: number;
    if (acc > 0) {
      const u = rng.uniform() * acc;
      let lo = 0;
      let hi = rows - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      row = lo;
    } else row = rng.int(rows);
    let s = 0;
    for (let j = 0; j < d; j++) s += (dir[j] = pool[row * d + j]! - bDec[j]!) ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) {
      const u = dir[j]! * inv;
      wDec[i * d + j] = u;
      wEnc[j * S + i] = u * encNorm;
    }
    bEnc[i] = 0;
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
