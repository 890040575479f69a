/**
 * The file adapter: how tdb-js reads a model's files. The core only sees this interface, so it
 * runs wherever something can hand it bytes (a local directory in Node, the Hugging Face hub,
 * an in-memory map in a browser tool).
 *
 * @module
 */

/**
 * Read access to the files of one model directory, by path relative to its root
 * (`config.json`, `onnx/model.onnx`, ...).
 */
export interface ModelFiles {
  /** A human-readable description of where the files come from (a path or a hub id). */
  readonly origin: string;
  /** The file's bytes, or `null` when it does not exist. */
  read(relPath: string): Promise<Uint8Array | null>;
}

/**
 * Model files held in memory.
 *
 * @example
 * ```ts
 * const files = memoryFiles("demo", { "config.json": new TextEncoder().encode("{}") });
 * ```
 */
export function memoryFiles(origin: string, entries: Record<string, Uint8Array>): ModelFiles {
  return {
    origin,
    read: async (p) => entries[p] ?? null,
  };
}

/** Reads a file as UTF-8 text, or `null`. */
export async function readText(files: ModelFiles, relPath: string): Promise<string | null> {
  const b = await files.read(relPath);
  return b === null ? null : new TextDecoder().decode(b);
}
