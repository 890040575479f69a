/**
 * The embedded default model: a tiny GPT-2 generated on first use (seeded, so every machine
 * gets the same weights) into a cache directory. It lets `tdb` and the examples run with no
 * network and no download. Node.js and Deno (the GPT-2 BPE data is bundled, so no package files
 * are looked up); browsers load models from URLs instead.
 *
 * @module
 */
import { join } from "node:path";
import { TdbError } from "../base/errors.js";
import { tdbHome } from "../io/home.js";
import { fileSystemError } from "../io/node-files.js";
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
 * Generates the default tiny GPT-2 if it is not there yet and returns its directory. A
 * directory that cannot be written (an unwritable `TDB_HOME`, a file in the way) is
 * `E_FILE_SYSTEM` naming `dir` and the errno.
 *
 * @example
 * ```ts
 * const model = await Model.load(await ensureDefaultModel());
 * ```
 */
export async function ensureDefaultModel(dir: string = defaultModelDir()): Promise<string> {
  try {
    await ensureGpt2Model(dir, { config: DEFAULT_MODEL_CONFIG, seed: DEFAULT_MODEL_SEED });
  } catch (e) {
    if (e instanceof TdbError || typeof (e as { code?: unknown } | null)?.code !== "string") throw e;
    throw fileSystemError(e, dir, "write the default model to");
  }
  return dir;
}
