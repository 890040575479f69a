/**
 * Writing SAEs to disk in SAELens's layout (Node.js and Deno).
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileSystemError } from "../io/fs-error.js";
import { writeAtomic } from "../io/write-atomic.js";
import { setSaeSaver, type Sae } from "./sae.js";
import { SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, saeFiles } from "./saelens.js";

/**
 * Writes `sae` to `dir` (created if needed) as `cfg.json` and `sae_weights.safetensors`, each
 * file atomically (a reader sees the old file or the new one, never half of one). The weights
 * file is written first, so a complete cfg.json never points at missing weights. File-system
 * failures are `E_FILE_SYSTEM`.
 *
 * @example
 * ```ts
 * await saveSae(sae, "./saes/blocks.2.hook_mlp_out");
 * const again = await loadSae("./saes/blocks.2.hook_mlp_out");
 * ```
 */
export async function saveSae(sae: Sae, dir: string): Promise<void> {
  const files = saeFiles(sae);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw fileSystemError(e, dir, "create the SAE directory");
  }
  await writeAtomic(join(dir, SAE_WEIGHTS_FILENAME), files[SAE_WEIGHTS_FILENAME], "write the SAE weights to");
  await writeAtomic(join(dir, SAE_CFG_FILENAME), files[SAE_CFG_FILENAME], "write the SAE config to");
}

setSaeSaver(saveSae);
