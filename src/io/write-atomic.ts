/**
 * Atomic file writes (Node.js and Deno): the data goes to a temporary file beside the target,
 * which is then renamed over it, so a reader never sees a half-written file and an interrupted
 * write leaves the old file (or none) in place.
 *
 * @module
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { fileSystemError } from "./fs-error.js";

/**
 * Writes `data` (text, bytes, or byte chunks written in order) to `path` atomically. A failure
 * removes the temporary file and is `E_FILE_SYSTEM` with the errno and the path; `what` names
 * the file in the message ("write the checkpoint to").
 *
 * @example
 * ```ts
 * await writeAtomic(join(dir, "config.json"), JSON.stringify(config));
 * ```
 */
export async function writeAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], what = "write"): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(tmp, typeof data === "string" || data instanceof Uint8Array ? data : data.values());
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw fileSystemError(e, path, what);
  }
}
