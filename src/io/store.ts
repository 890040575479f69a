/**
 * A small key-value store for results worth keeping between runs (explanations, keyed by model,
 * node, prompt version and LLM). The core only sees this interface; where files exist (Node.js,
 * Deno), the entry point registers {@link directoryStore}'s implementation (`node-store.ts`), and
 * tools in a browser pass their own (IndexedDB, a server, a Map).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** Strings stored under string keys. */
export interface KeyValueStore {
  /** The value stored under `key`, or undefined. */
  get(key: string): Promise<string | undefined>;
  /** Stores `value` under `key` (replacing any value; never leaves a half-written value). */
  set(key: string, value: string): Promise<void>;
}

let directoryFactory: ((dir: string) => KeyValueStore) | undefined;

/** Registers how {@link directoryStore} makes a store in a directory. The Node.js entry point calls it. */
export function setDirectoryStoreFactory(f: (dir: string) => KeyValueStore): void {
  directoryFactory = f;
}

/**
 * A store whose values are files in `dir` (created on first write; one file per key, written
 * atomically). Needs a platform with files: elsewhere `E_NO_RUNTIME`.
 *
 * @example
 * ```ts
 * const cache = directoryStore("./.tdb-explanations");
 * await model.explainNeuron({ kind: "mlp_neuron", layer: 1, index: 7 }, "offline", { corpus, cache });
 * ```
 */
export function directoryStore(dir: string): KeyValueStore {
  if (typeof dir !== "string" || dir === "") throw new TdbError("E_BAD_INPUT", "directoryStore needs a directory path", { value: dir, allowed: "a non-empty path" });
  if (!directoryFactory) {
    throw new TdbError("E_NO_RUNTIME", "no file system here: pass a KeyValueStore instead of a directory", { value: dir, allowed: "a KeyValueStore object" });
  }
  return directoryFactory(dir);
}

/** A store in memory (tests, browser sessions). */
export function memoryStore(): KeyValueStore & { readonly size: number } {
  const m = new Map<string, string>();
  return {
    get: async (k) => m.get(k),
    set: async (k, v) => void m.set(k, v),
    get size() {
      return m.size;
    },
  };
}
