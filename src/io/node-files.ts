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
import { isPackagedId, packagedModelDir } from "./packaged.js";
import { fileSystemError } from "./fs-error.js";

export { fileSystemError };

/** Reads model files from a directory on disk. */
export function directoryFiles(dir: string): ModelFiles {
  return {
    origin: dir,
    async read(relPath) {
      const path = join(dir, relPath);
      try {
        const b = await readFile(path);
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "ENOENT" || code === "ENOTDIR") return null;
        throw fileSystemError(e, path, "read");
      }
    },
  };
}

/**
 * True for a directory, false when nothing is there; a file, a symlink loop or a path that
 * cannot be looked at is `E_FILE_SYSTEM` (a hub id never names an existing file).
 */
async function isDirectory(p: string): Promise<boolean> {
  let s;
  try {
    s = await stat(p);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") return false;
    // ENOTDIR: a component of the path is a file, as when the path is one.
    throw fileSystemError(e, p, "open the model directory");
  }
  if (s.isDirectory()) return true;
  throw fileSystemError(Object.assign(new Error(`${p} is not a directory`), { code: "ENOTDIR" }), p, "open the model directory");
}

/**
 * The Node entry's default adapter: a packaged model (`tdb:<name>`), an existing directory, else a hub id (downloaded into
 * `opts.cacheDir`), else `E_MISSING_FILE`. A path that exists but is no directory (a file, a
 * symlink loop, no permission) is `E_FILE_SYSTEM`.
 *
 * @example
 * ```ts
 * const files = await nodeDefaultFiles("./models/tiny-gpt2", {});
 * ```
 */
export async function nodeDefaultFiles(idOrDir: string, opts: DefaultFilesOptions = {}): Promise<ModelFiles> {
  // A model shipped in the package: tdb:<name> is models/<name>/ at the package root.
  if (isPackagedId(idOrDir)) return directoryFiles(await packagedModelDir(idOrDir));
  if (await isDirectory(idOrDir)) return directoryFiles(idOrDir);
  if (!isHubId(idOrDir)) {
    throw new TdbError("E_MISSING_FILE", `${JSON.stringify(idOrDir)} is neither an existing directory nor a hub id (owner/name)`, {
      value: idOrDir,
      allowed: ["a local model directory", "a hub id like onnx-community/gpt2-ONNX"],
    });
  }
  return hubFiles(idOrDir, { ...opts.hub, cacheDir: opts.cacheDir, revision: opts.revision });
}
