/**
 * The embedded default model: a tiny GPT-2 generated on first use (seeded, so every machine
 * gets the same weights) into a cache directory. It lets `tdb` and the examples run with no
 * network and no download. Node.js and Deno (the GPT-2 BPE data is bundled, so no package files
 * are looked up); browsers load models from URLs instead.
 *
 * @module
 */
import { join } from "node:path";
import { tdbHome } from "../io/home.js";
import { gpt2Config, TINY_GPT2, type Gpt2Config } from "./config.js";
import { ensureGpt2Model } from "./write.js";

/**
 * The default model's architecture: {@link TINY_GPT2}'s 2 layers x 4 heads x 64 wide, with the
 * full GPT-2 vocabulary and tokenizer (so " Mary" is one token, as in GPT-2) and a 128-token
 * context.
 */
export const DEFAULT_MODEL_CONFIG: Readonly<Gpt2Config> = Object.freeze(gpt2Config({ ...TINY_GPT2, vocab_size: 50257, n_positions: 128 }));

/** Seed of the default model's weights. */
export const DEFAULT_MODEL_SEED = 20261126;

/**
 * Where the default model lives: `$TDB_HOME/models/tiny-gpt2`, else
 * `~/.cache/tdb-js/models/tiny-gpt2`.
 */
export function defaultModelDir(): string {
  return join(tdbHome(), "models", "tiny-gpt2");
}

/**
 * Generates the default tiny GPT-2 if it is not there yet and returns its directory.
 *
 * @example
 * ```ts
 * const model = await Model.load(await ensureDefaultModel());
 * ```
 */
export async function ensureDefaultModel(dir: string = defaultModelDir()): Promise<string> {
  await ensureGpt2Model(dir, { config: DEFAULT_MODEL_CONFIG, seed: DEFAULT_MODEL_SEED });
  return dir;
}
