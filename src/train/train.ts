/**
 * `train()`: next-token training of a GPT-2-architecture model (or any differentiable graph) on
 * onnxruntime, with tdb-js's own autodiff for the gradients and AdamW in JavaScript.
 *
 * One step: a batch of windows is written into reused feed buffers, one run of the training
 * session returns the loss and every parameter's gradient, the global gradient norm is clipped,
 * and AdamW updates the parameter arrays in place (the same Float32Arrays are fed again next
 * step, without copies). Node-only (checkpoints and the model directory go to disk).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { TdbError } from "../base/errors.js";
import { createSession, type Session } from "../backend/ort.js";
import { encodeModel } from "../onnx/proto.js";
import type { HostTensor } from "../onnx/tensor.js";
import { adamwUpdate, clipScale, learningRate, resolveOptimizer, type ResolvedOptimizer } from "./adamw.js";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import type { ProgressEvent, ProgressSink, TrainConfig, TrainResult } from "./config.js";
import { checkTokens, evalBatches, windowCount, WindowSampler, type Batch } from "./data.js";
import { tokenizerFiles, writeTrainedModel } from "./export.js";
import { buildLossGraph, GRAD_SQUARED_NORM, LOSS, LOSS_WEIGHTS, resolveModel, TARGETS, type Param, type ResolvedModel } from "./graph.js";
import { ProgressReporter } from "./progress.js";

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new TdbError("E_BAD_OPTION", `${name} must be a positive integer`, { value: v, allowed: ">= 1" });
  return v;
}

function nonNegativeInt(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new TdbError("E_BAD_OPTION", `${name} must be a non-negative integer`, { value: v, allowed: ">= 0" });
  return v;
}

function checkOptimizer(o: ResolvedOptimizer): void {
  const bad = (k: keyof ResolvedOptimizer, allowed: string) => {
    throw new TdbError("E_BAD_OPTION", `optimizer.${k} must be ${allowed}`, { value: o[k], allowed });
  };
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) bad("lr", "a positive finite number");
  if (!(o.minLrRatio >= 0 && o.minLrRatio <= 1)) bad("minLrRatio", "in [0, 1]");
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) bad("warmupSteps", "a non-negative integer");
  if (!(o.beta1 >= 0 && o.beta1 < 1)) bad("beta1", "in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) bad("beta2", "in [0, 1)");
  if (!(o.eps > 0)) bad("eps", "positive");
  if (!(o.weightDecay >= 0)) bad("weightDecay", "non-negative");
  if (!(o.clipNorm >= 0)) bad("clipNorm", "non-negative (0: no clipping)");
}

/** SHA-256 over the config parts that determine the trajectory: a checkpoint from another run is refused. */
function configHash(m: ResolvedModel, c: TrainConfig, seqLen: number, seed: number, o: ResolvedOptimizer): string {
  const h = createHash("sha256");
  const spec = c.model.kind === "gpt2" ? { kind: "gpt2", config: m.gpt2, graph: c.model.graph ?? {} } : { kind: "graph", logits: m.logits };
  h.update(JSON.stringify({ v: 1, spec, steps: c.steps, batchSize: c.batchSize, seqLen, seed, optimizer: o, params: m.params.map((p) => [p.name, p.dims, p.decay]) }));
  for (const p of m.params) h.update(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength));
  const bytes = (a: ArrayLike<number>) => {
    const i = Int32Array.from(a);
    return new Uint8Array(i.buffer);
  };
  h.update("train");
  h.update(bytes(c.data.train));
  if (c.data.trainMask) h.update(c.data.trainMask);
  return h.digest("hex");
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Feeds of a loss graph: the parameters (fed as they are), and the batch buffers. */
function lossFeeds(m: ResolvedModel, params: readonly Param[], b: Batch, seqLen: number, ones: BigInt64Array): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const p of params) feeds[p.name] = { type: "float32", data: p.data, dims: p.dims };
  const dims = [b.rows, seqLen];
  feeds.input_ids = { type: "int64", data: b.inputIds, dims };
  if (m.attentionMask) feeds.attention_mask = { type: "int64", data: ones.subarray(0, b.rows * seqLen), dims };
  feeds[TARGETS] = { type: "int64", data: b.targets, dims };
  feeds[LOSS_WEIGHTS] = { type: "float32", data: b.weights, dims };
  return feeds;
}

function stderrSink(): ProgressSink {
  const g = globalThis as { process?: { stderr?: ProgressSink } };
  return g.process?.stderr ?? { write: () => undefined };
}

/**
 * Trains a model (see {@link TrainConfig}): AdamW with warm-up and cosine decay, global-norm
 * clipping, seeded data order, periodic held-out evaluation, atomic checkpoints and resuming
 * (bit-identical to an uninterrupted run), and the trained model written as a model directory
 * that `Model.load` and transformers.js read.
 *
 * Errors: `E_BAD_OPTION` / `E_BAD_INPUT` for a bad config or data, `E_CHECKPOINT` for a corrupt
 * checkpoint, `E_CHECKPOINT_MISMATCH` for one of another config, `E_NON_FINITE` when the loss or
 * the gradient norm is NaN or infinite (training stops; the last checkpoint written stays).
 *
 * @example
 * ```ts
 * const r = await train({
 *   model: { kind: "gpt2", config: { n_layer: 2, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 512 } },
 *   data: { train: tokens, valid: heldOut }, steps: 300, batchSize: 8, optimizer: { lr: 3e-3 },
 *   outDir: "./my-model",
 * });
 * console.log(r.validLoss);
 * ```
 */
export async function train(config: TrainConfig): Promise<TrainResult> {
  if (typeof config !== "object" || config === null) throw new TdbError("E_BAD_OPTION", "train() needs a config object", { value: config === null ? null : typeof config, allowed: "a TrainConfig object" });
  const steps = positiveInt("steps", config.steps);
  const batchSize = positiveInt("batchSize", config.batchSize);
  const seed = config.seed ?? 0;
  if (!Number.isInteger(seed)) throw new TdbError("E_BAD_OPTION", "seed must be an integer", { value: seed, allowed: "an integer" });
  const threads = config.threads === undefined ? 2 : positiveInt("threads", config.threads);
  const evalInterval = nonNegativeInt("evalInterval", config.evalInterval, 0);
  const ckptInterval = nonNegativeInt("checkpointInterval", config.checkpointInterval, 0);
  const stopAfter = config.stopAfter === undefined ? Infinity : positiveInt("stopAfter", config.stopAfter);
  const maxEvalBatches = config.evalBatches === undefined ? 64 : positiveInt("evalBatches", config.evalBatches);
  if (!config.data || !(config.data.train instanceof Int32Array || config.data.train instanceof Uint16Array || config.data.train instanceof Uint32Array)) {
    throw new TdbError("E_BAD_INPUT", "data.train must be an Int32Array, Uint16Array or Uint32Array of token ids", { value: typeof config.data?.train, allowed: "Int32Array | Uint16Array | Uint32Array" });
  }
  if (config.resume && !config.checkpoint) throw new TdbError("E_BAD_OPTION", "resume needs a checkpoint path", { value: config.resume, allowed: "resume with a checkpoint path" });

  const m = resolveModel(config.model, seed);
  const seqLen = config.seqLen === undefined ? m.nCtx : positiveInt("seqLen", config.seqLen);
  if (seqLen > m.nCtx) throw new TdbError("E_BAD_OPTION", `seqLen ${seqLen} exceeds the model's context ${m.nCtx}`, { value: seqLen, allowed: `<= ${m.nCtx}` });
  const opt = resolveOptimizer(config.optimizer, steps);
  checkOptimizer(opt);
  checkTokens(config.data.train, m.vocabSize, "data.train");
  if (config.data.valid) checkTokens(config.data.valid, m.vocabSize, "data.valid");
  const valid = config.data.valid;
  if (valid && windowCount(valid.length, seqLen) === 0) {
    throw new TdbError("E_BAD_INPUT", `data.valid holds ${valid.length} tokens, less than one window of ${seqLen + 1}`, { value: valid.length, allowed: `>= ${seqLen + 1} tokens` });
  }
  if (config.data.validMask && (!valid || config.data.validMask.length !== valid.length)) {
    throw new TdbError("E_BAD_INPUT", `data.validMask has ${config.data.validMask.length} entries for ${valid?.length ?? 0} held-out tokens`, { value: config.data.validMask.length, allowed: valid?.length ?? 0 });
  }
  if (config.outDir && !m.hfConfig) {
    throw new TdbError("E_BAD_OPTION", "writing a model directory (outDir) of a graph model needs model.hfConfig (its config.json)", { value: config.outDir, allowed: "model.hfConfig, or no outDir" });
  }
  // The tokenizer of the written model, read (or built) before training so that a bad one fails early.
  const tokFiles = config.outDir ? await tokenizerFiles(config.tokenizer ?? "gpt2", m.vocabSize, m.nCtx) : undefined;
  const sampler = new WindowSampler(config.data.train, config.data.trainMask, seqLen, batchSize, seed);
  const hash = configHash(m, config, seqLen, seed, opt);
  const params = m.params;
  const moments = params.map((p) => ({ m: new Float32Array(p.data.length), v: new Float32Array(p.data.length) }));

  let step = 0;
  let resumed = false;
  let resumedLoss = NaN;
  if (config.resume && config.checkpoint && (await exists(config.checkpoint))) {
    const ck = await readCheckpoint(config.checkpoint);
    if (ck.configHash !== hash) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", `checkpoint ${config.checkpoint} was written by a run with another config (model, data, steps, batch, optimizer or seed differ)`, {
        value: ck.configHash,
        allowed: hash,
      });
    }
    if (ck.params.length !== params.length || ck.params.some((p, i) => p.name !== params[i]!.name || p.data.length !== params[i]!.data.length)) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", `checkpoint ${config.checkpoint} holds other parameters`, { value: ck.params.map((p) => p.name), allowed: params.map((p) => p.name) });
    }
    ck.params.forEach((p, i) => {
      params[i]!.data.set(p.data);
      moments[i]!.m.set(p.m);
      moments[i]!.v.set(p.v);
    });
    step = ck.step;
    sampler.pos = { ...ck.data };
    resumedLoss = ck.loss;
    resumed = true;
  }

  const reporter = new ProgressReporter(config.progress ?? "auto", config.progressSink ?? stderrSink(), config.onProgress, Math.max(1, Math.floor(steps / 200)));
  const ones = new BigInt64Array(batchSize * seqLen).fill(1n);
  const sessions: Session[] = [];
  const tokensPerStep = batchSize * seqLen;
  const losses: number[] = [];
  const evals: { step: number; loss: number }[] = [];
  let runMs = 0;
  let stepMs = 0;
  let stepsHere = 0;
  let lastLoss = resumedLoss;
  let lastLr = 0;
  let lastNorm = 0;
  let validLoss: number | undefined;
  const rate = () => (stepMs > 0 ? (stepsHere * tokensPerStep * 1000) / stepMs : 0);
  const event = (kind: ProgressEvent["kind"], loss: number, extra: Partial<ProgressEvent> = {}): ProgressEvent => ({
    kind,
    step,
    steps,
    loss,
    lr: lastLr,
    gradNorm: lastNorm,
    tokensPerSecond: rate(),
    etaSeconds: stepsHere > 0 ? ((steps - step) * stepMs) / stepsHere / 1000 : Infinity,
    ...extra,
  });

  let evalSession: Session | undefined;
  const evaluate = async (): Promise<number | undefined> => {
    const valid = config.data.valid;
    if (!valid) return undefined;
    if (!evalSession) {
      evalSession = await createSession(encodeModel(buildLossGraph(m, false, { batch: batchSize, seq: seqLen }).model), { intraOpThreads: threads });
      sessions.push(evalSession);
    }
    let sum = 0;
    let count = 0;
    for (const b of evalBatches(valid, config.data.validMask, seqLen, batchSize, maxEvalBatches)) {
      if (b.count === 0) continue;
      const out = await evalSession.run(lossFeeds(m, params, b, seqLen, ones), [LOSS]);
      sum += (out[LOSS]!.data as Float32Array)[0]! * b.count;
      count += b.count;
    }
    if (count === 0) throw new TdbError("E_BAD_INPUT", `data.valid holds no window of ${seqLen + 1} tokens with a counted target`, { value: valid.length, allowed: `>= ${seqLen + 1} tokens` });
    const loss = sum / count;
    if (!Number.isFinite(loss)) throw new TdbError("E_NON_FINITE", `the held-out loss is ${loss} at step ${step}`, { value: loss, allowed: "a finite loss" });
    validLoss = loss;
    evals.push({ step, loss });
    reporter.report(event("eval", loss));
    return loss;
  };
  const checkpoint = async () => {
    if (!config.checkpoint) return;
    await writeCheckpoint(config.checkpoint, {
      configHash: hash,
      step,
      data: { ...sampler.pos },
      loss: lastLoss,
      params: params.map((p, i) => ({ name: p.name, dims: p.dims, data: p.data, m: moments[i]!.m, v: moments[i]!.v })),
    });
    reporter.report(event("checkpoint", lastLoss, { path: config.checkpoint }));
  };

  try {
    const lg = buildLossGraph(m, true, { batch: batchSize, seq: seqLen });
    const session = await createSession(encodeModel(lg.model), { intraOpThreads: threads });
    sessions.push(session);
    const gradNames = params.map((p) => lg.grads.get(p.name)!);
    const fetches = [LOSS, GRAD_SQUARED_NORM, ...gradNames];
    while (step < steps && stepsHere < stopAfter) {
      const t0 = performance.now();
      const batch = sampler.next();
      const feeds = lossFeeds(m, params, batch, seqLen, ones);
      const r0 = performance.now();
      const out = await session.run(feeds, fetches);
      const thisRun = performance.now() - r0;
      runMs += thisRun;
      const loss = (out[LOSS]!.data as Float32Array)[0]!;
      const grads = gradNames.map((n) => out[n]!.data as Float32Array);
      const norm = Math.sqrt((out[GRAD_SQUARED_NORM]!.data as Float32Array)[0]!);
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        throw new TdbError("E_NON_FINITE", `training diverged at step ${step + 1}: loss ${loss}, gradient norm ${norm}${config.checkpoint ? `; the last good checkpoint (${config.checkpoint}) is kept` : ""}`, {
          value: { step: step + 1, loss, gradNorm: norm },
          allowed: "finite loss and gradients (lower the learning rate?)",
        });
      }
      const lr = learningRate(opt, step, steps);
      const scale = clipScale(norm, opt.clipNorm);
      for (let i = 0; i < params.length; i++) {
        const p = params[i]!;
        adamwUpdate(p.data, grads[i]!, moments[i]!.m, moments[i]!.v, opt, lr, step + 1, scale, p.decay);
      }
      step++;
      stepsHere++;
      const thisStep = performance.now() - t0;
      stepMs += thisStep;
      lastLoss = loss;
      lastLr = lr;
      lastNorm = norm;
      losses.push(loss);
      reporter.report(event("step", loss, { stepMs: thisStep, runMs: thisRun }));
      if (evalInterval > 0 && step % evalInterval === 0 && step < steps) await evaluate();
      if (ckptInterval > 0 && step % ckptInterval === 0 && step < steps) await checkpoint();
    }
    if (step === steps && (evals.length === 0 || evals[evals.length - 1]!.step !== step)) await evaluate();
    await checkpoint();
    const values = new Map(params.map((p) => [p.name, p.data]));
    if (config.outDir && tokFiles && step === steps) await writeTrainedModel(config.outDir, m, values, tokFiles);
    reporter.report(event("done", lastLoss));
    const result: TrainResult = {
      step,
      loss: lastLoss,
      losses,
      evals,
      weights: new Map(params.map((p) => [p.name, { data: p.data, dims: p.dims }])),
      tokensPerSecond: rate(),
      jsShare: stepMs > 0 ? 1 - runMs / stepMs : 0,
      resumed,
    };
    if (validLoss !== undefined) result.validLoss = validLoss;
    if (config.outDir && step === steps) result.outDir = config.outDir;
    return result;
  } finally {
    for (const s of sessions) await s.release();
  }
}
