/**
 * The file adapter: how tdb-js reads a model's files. The core only sees this interface, so it
 * runs wherever something can hand it bytes (a local directory in Node, the Hugging Face hub,
 * URLs, `File`s or an in-memory map in a browser).
 *
 * Which adapter a plain `Model.load(idOrDir)` uses is up to the entry point: the Node entry
 * registers directories and the hub with a disk cache (`node-files.ts`), the browser entry URLs
 * and the hub over `fetch` (`web-files.ts`), through {@link setDefaultFiles}.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { ensureNodePlatform } from "../backend/ort.js";

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

/** A `fetch`-like function: tests and proxies pass their own. */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/** What `Model.load` passes on to the default file adapter (a subset of its options). */
export interface DefaultFilesOptions {
  /** Download cache directory for hub ids (Node). [default: `$TDB_HOME/hub`, else `~/.cache/tdb-js/hub`] */
  cacheDir?: string;
  /** Hub revision. [default: "main"] */
  revision?: string;
  /** Hub download settings. */
  hub?: { timeoutMs?: number; fetch?: FetchLike };
}

/** Turns what a user passed to `Model.load` (a directory, a URL, a hub id) into {@link ModelFiles}. */
export type FilesResolver = (idOrDir: string, opts: DefaultFilesOptions) => Promise<ModelFiles>;

let resolver: FilesResolver | undefined;

/** Sets the adapter {@link defaultFiles} uses. The entry points call it. */
export function setDefaultFiles(r: FilesResolver): void {
  resolver = r;
}

/** The adapter registered with {@link setDefaultFiles}, if any. */
export function registeredDefaultFiles(): FilesResolver | undefined {
  return resolver;
}

/**
 * The files of `idOrDir` through the registered adapter: under Node a directory or a hub id
 * (disk-cached), in a browser a URL or a hub id. With none registered (modules imported below the
 * entry points) Node and Deno use the Node adapter.
 *
 * @example
 * ```ts
 * const files = await defaultFiles("onnx-community/gpt2-ONNX", { revision: "main" });
 * ```
 */
export async function defaultFiles(idOrDir: string, opts: DefaultFilesOptions = {}): Promise<ModelFiles> {
  if (!resolver) await ensureNodePlatform();
  if (!resolver) {
    throw new TdbError("E_NO_RUNTIME", "no file adapter registered: import tdb-js through an entry point, or pass `files`", {
      value: idOrDir,
      allowed: ["opts.files"],
    });
  }
  return resolver(idOrDir, opts);
}
