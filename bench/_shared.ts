/**
 * What every benchmark shares: the generated GPT-2-small-shaped model (cached in bench/out),
 * a prompt of ordinary English (Brown corpus, first sentences) cut to n tokens, and statistics.
 */
import { join } from "node:path";
import { GPT2_SMALL_SHAPES } from "../src/synthetic/config.js";
import { ensureGpt2Model } from "../src/synthetic/write.js";
import type { LoadOptions } from "../src/runtime/options.js";
import { Model } from "../src/model/model.js";

const TEXT =
  "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced no evidence that any irregularities took place. The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.";

/** Where the GPT-2-small-shaped benchmark model lives (see {@link ensureBenchModel}). */
export const benchModelDir = (): string => join(import.meta.dirname, "out", "gpt2-small-shapes");

/** Generates the GPT-2-small-shaped model with the real GPT-2 tokenizer, unless it is there already. */
export async function ensureBenchModel(): Promise<string> {
  const dir = benchModelDir();
  await ensureGpt2Model(dir, { config: GPT2_SMALL_SHAPES, seed: 1, tokenizer: "gpt2" });
  return dir;
}

/**
 * Loads (generating once) the GPT-2-small-shaped model with the real GPT-2 tokenizer.
 * `TDB_BENCH_WEIGHTS=memory` loads with `weightsDir: false` (every session copies the weights
 * instead of mapping the shared file), to compare the two.
 */
export async function benchModel(opts: LoadOptions = {}): Promise<{ model: Model; dir: string }> {
  const dir = await ensureBenchModel();
  const weights: LoadOptions = process.env.TDB_BENCH_WEIGHTS === "memory" ? { weightsDir: false } : {};
  return { model: await Model.load(dir, { ...weights, ...opts }), dir };
}

/** BOS + the first n - 1 tokens of the English prompt. */
export function englishTokens(model: Model, n: number): number[] {
  const tokens = model.toTokens(TEXT).slice(0, n);
  if (tokens.length !== n) throw new Error(`prompt has ${tokens.length} tokens, need ${n}`);
  return tokens;
}

/** The value of a `--name N` flag. */
export function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Peak resident set size of this process, MiB. */
export const peakRssMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
