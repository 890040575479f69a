/**
 * {@link ModelFiles} over a local directory (Node.js).
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ModelFiles } from "./files.js";

/** Reads model files from a directory on disk. */
export function directoryFiles(dir: string): ModelFiles {
  return {
    origin: dir,
    async read(relPath) {
      try {
        const b = await readFile(join(dir, relPath));
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
    },
  };
}
