/**
 * {@link ModelFiles} over a local directory, and the Node entry's default adapter (directories,
 * else hub ids). Node.js and Deno.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { TdbError } from "../base/errors.js";
import type { DefaultFilesOptions, ModelFiles } from "./files.js";
import { hubFiles, isHubId } from "./hub.js";

/** Reads model files from a directory on disk. */
export function directoryFiles(dir: string): ModelFiles {
  return {
    origin: dir,
    async read(relPath) {
      try {
        const b = await readFile(join(dir, relPath));
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "ENOENT" || code === "ENOTDIR") return null;
        throw e;
      }
    },
  };
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The Node entry's default adapter: an existing directory, else a hub id (downloaded into
 * `opts.cacheDir`), else `E_MISSING_FILE`.
 *
 * @example
 * ```ts
 * const files = await nodeDefaultFiles("./models/tiny-gpt2", {});
 * ```
 */
export async function nodeDefaultFiles(idOrDir: string, opts: DefaultFilesOptions = {}): Promise<ModelFiles> {
  if (await isDirectory(idOrDir)) return directoryFiles(idOrDir);
  if (!isHubId(idOrDir)) {
    throw new TdbError("E_MISSING_FILE", `${JSON.stringify(idOrDir)} is neither an existing directory nor a hub id (owner/name)`, {
      value: idOrDir,
      allowed: ["a local model directory", "a hub id like onnx-community/gpt2-ONNX"],
    });
  }
  return hubFiles(idOrDir, { ...opts.hub, cacheDir: opts.cacheDir, revision: opts.revision });
}
