/**
 * `tdb train --config <file.json> [--json] [--resume]`: trains a model as `train()` does and
 * writes its model directory.
 *
 * The config file is a {@link TrainConfig} in JSON (no callbacks; the model is a `"gpt2"` spec),
 * whose `data.train` and `data.valid` are each one of
 * - an array of token ids,
 * - `{ "tokens": "file.bin", "dtype": "uint16" | "int32" }`: raw little-endian token ids,
 * - `{ "text": "file.txt" }`: text, tokenized with the config's tokenizer.
 *
 * Relative paths (data, `checkpoint`, `outDir`, a tokenizer `dir`) are relative to the config
 * file. Progress goes to stderr: a live line on a terminal, else (and with `--json`) one JSON
 * object per line. stdout gets the result: with `--json` exactly one JSON object
 * (`{"schema": "tdb.train/1", ...}`), otherwise a short summary.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { TdbError } from "../base/errors.js";
import { memoryFiles } from "../io/files.js";
import { loadTokenizer } from "../runtime/tokenizer.js";
import type { TokenArray, TokenizerSource, TrainConfig } from "../train/config.js";
import { tokenizerFiles } from "../train/export.js";
import { train } from "../train/train.js";

/** Parsed arguments of `tdb train`. */
export interface TrainCommandArgs {
  config: string;
  json: boolean;
  resume: boolean;
}

type DataFile = number[] | { tokens: string; dtype?: "uint16" | "int32" } | { text: string };

function badConfig(path: string, message: string, value?: unknown, allowed?: unknown): TdbError {
  return new TdbError("E_BAD_OPTION", `${path}: ${message}`, { value, allowed });
}

async function readData(spec: DataFile, base: string, what: string, cfgPath: string, tok: () => Promise<(text: string) => number[]>): Promise<TokenArray> {
  if (Array.isArray(spec)) return Int32Array.from(spec);
  if (spec && typeof spec === "object" && "tokens" in spec && typeof spec.tokens === "string") {
    const p = isAbsolute(spec.tokens) ? spec.tokens : resolve(base, spec.tokens);
    const buf = await readOrThrow(p);
    const dtype = spec.dtype ?? "uint16";
    const width = dtype === "int32" ? 4 : dtype === "uint16" ? 2 : 0;
    if (width === 0) throw badConfig(cfgPath, `${what}.dtype must be "uint16" or "int32"`, dtype, ["uint16", "int32"]);
    if (buf.length % width !== 0) throw new TdbError("E_BAD_INPUT", `${p} has ${buf.length} bytes, not a multiple of ${width} (${dtype})`, { value: buf.length });
    const copy = new Uint8Array(buf);
    return dtype === "int32" ? new Int32Array(copy.buffer) : new Uint16Array(copy.buffer);
  }
  if (spec && typeof spec === "object" && "text" in spec && typeof spec.text === "string") {
    const p = isAbsolute(spec.text) ? spec.text : resolve(base, spec.text);
    const text = (await readOrThrow(p)).toString("utf8");
    return Int32Array.from((await tok())(text));
  }
  throw badConfig(cfgPath, `${what} must be an array of token ids, { "tokens": file, "dtype" } or { "text": file }`, spec);
}

async function readOrThrow(p: string): Promise<Buffer> {
  try {
    return await readFile(p);
  } catch (cause) {
    throw new TdbError("E_MISSING_FILE", `cannot read ${p}: ${(cause as Error).message}`, { value: p, cause });
  }
}

/** Reads a `tdb train` config file into a {@link TrainConfig} (paths resolved, data loaded). */
export async function readTrainConfig(path: string): Promise<TrainConfig> {
  const text = (await readOrThrow(path)).toString("utf8");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `${path} is not valid JSON: ${(cause as Error).message}`, { value: path, cause });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new TdbError("E_BAD_INPUT", `${path} must hold a JSON object`, { value: path });
  const base = dirname(resolve(path));
  const rel = (p: unknown, key: string): string | undefined => {
    if (p === undefined) return undefined;
    if (typeof p !== "string") throw badConfig(path, `${key} must be a path`, p);
    return isAbsolute(p) ? p : resolve(base, p);
  };
  const model = raw.model as TrainConfig["model"] | undefined;
  if (!model || typeof model !== "object" || model.kind !== "gpt2") throw badConfig(path, 'model must be { "kind": "gpt2", "config": {...} }', model?.kind, ["gpt2"]);
  let tokenizer = (raw.tokenizer ?? "gpt2") as TokenizerSource;
  if (typeof tokenizer === "object" && tokenizer !== null && "dir" in tokenizer) tokenizer = { dir: rel(tokenizer.dir, "tokenizer.dir")! };
  const data = raw.data as { train?: DataFile; valid?: DataFile } | undefined;
  if (!data || typeof data !== "object" || data.train === undefined) throw badConfig(path, "data.train is missing", data);
  let encode: ((text: string) => number[]) | undefined;
  const tok = async () => {
    if (!encode) {
      const c = model.config as { vocab_size?: number; n_positions?: number };
      const files = await tokenizerFiles(tokenizer, c.vocab_size ?? 50257, c.n_positions ?? 1024);
      const enc = new TextEncoder();
      const t = await loadTokenizer(memoryFiles("tokenizer", { "tokenizer.json": enc.encode(files.tokenizerJson), "tokenizer_config.json": enc.encode(files.tokenizerConfigJson) }));
      encode = (s) => t.encode(s, { add_special_tokens: false });
    }
    return encode;
  };
  const cfg: TrainConfig = {
    ...(raw as Partial<TrainConfig>),
    model,
    tokenizer,
    data: { train: await readData(data.train, base, "data.train", path, tok) },
    steps: raw.steps as number,
    batchSize: raw.batchSize as number,
  };
  if (data.valid !== undefined) cfg.data.valid = await readData(data.valid, base, "data.valid", path, tok);
  const checkpoint = rel(raw.checkpoint, "checkpoint");
  const outDir = rel(raw.outDir, "outDir");
  if (checkpoint) cfg.checkpoint = checkpoint;
  if (outDir) cfg.outDir = outDir;
  return cfg;
}

/** Runs `tdb train`; returns the exit code. */
export async function runTrain(args: TrainCommandArgs): Promise<number> {
  const cfg = await readTrainConfig(args.config);
  if (args.resume) cfg.resume = true;
  // Progress goes to stderr (a live line on a terminal, JSON lines otherwise or with --json), so
  // that stdout holds only the result: one JSON object with --json, as every command.
  cfg.progress = args.json ? "json" : (cfg.progress ?? "auto");
  const r = await train({ ...cfg, progressSink: process.stderr });
  const summary = {
    schema: "tdb.train/1",
    step: r.step,
    loss: r.loss,
    validLoss: r.validLoss ?? null,
    tokensPerSecond: Math.round(r.tokensPerSecond),
    jsShare: Number(r.jsShare.toFixed(4)),
    resumed: r.resumed,
    outDir: r.outDir ?? null,
    checkpoint: cfg.checkpoint ?? null,
  };
  if (args.json) console.log(JSON.stringify(summary));
  else {
    console.log(`trained ${r.step} steps: loss ${r.loss.toFixed(4)}${r.validLoss !== undefined ? `, held-out loss ${r.validLoss.toFixed(4)}` : ""}, ${summary.tokensPerSecond} tokens/s`);
    if (r.outDir) console.log(`model written to ${r.outDir}`);
  }
  return 0;
}
