/**
 * The embedded default model: a tiny GPT-2 generated on first use (seeded, so every machine
 * gets the same weights) into a cache directory. It lets `tdb` and the examples run with no
 * network and no download. Node.js only.
 *
 * @module
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { TINY_GPT2 } from "./fixtures/config.js";
import { ensureGpt2Model } from "./fixtures/write.js";

/** Seed of the default model's weights. */
export const DEFAULT_MODEL_SEED = 20261126;

/**
 * Where the default model lives: `$TDB_HOME/models/tiny-gpt2`, else
 * `~/.cache/tdb-js/models/tiny-gpt2`.
 */
export function defaultModelDir(): string {
  const home = process.env.TDB_HOME ?? join(homedir(), ".cache", "tdb-js");
  return join(home, "models", "tiny-gpt2");
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
  await ensureGpt2Model(dir, { config: TINY_GPT2, seed: DEFAULT_MODEL_SEED });
  return dir;
}
