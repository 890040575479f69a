/**
 * A local file as a stream of byte chunks (Node.js and Deno), for readers that must not hold a
 * whole large file in memory (text corpora). Nothing reachable from the browser entry imports
 * this file; browsers stream a `File` or a `fetch` body instead (both are async iterables of
 * `Uint8Array` chunks, or become one through `getReader()`).
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { fileSystemError } from "./node-files.js";

/**
 * The bytes of the file at `path`, in chunks of about `chunkBytes` (default 1 MiB). A missing or
 * unreadable file is `E_FILE_SYSTEM` (`value.errno` says why, e.g. `ENOENT`).
 *
 * @example
 * ```ts
 * for await (const chunk of fileChunks("corpus.jsonl")) total += chunk.byteLength;
 * ```
 */
export async function* fileChunks(path: string, chunkBytes = 1 << 20): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(path, { highWaterMark: chunkBytes });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } catch (e) {
    throw fileSystemError(e, path, "read");
  } finally {
    stream.destroy();
  }
}
