/**
 * {@link directoryStore} on Node.js and Deno: one JSON file per key, named by the SHA-256 of the
 * key and holding the key itself (so a hash collision or a foreign file reads as a miss), written
 * atomically. Importing this module registers it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileSystemError } from "./fs-error.js";
import { setDirectoryStoreFactory, type KeyValueStore } from "./store.js";
import { writeAtomic } from "./write-atomic.js";

function fileOf(dir: string, key: string): string {
  return join(dir, `${createHash("sha256").update(key).digest("hex").slice(0, 32)}.json`);
}

/** A {@link KeyValueStore} of files in `dir`. */
export function nodeDirectoryStore(dir: string): KeyValueStore {
  return {
    async get(key) {
      let text: string;
      try {
        text = await readFile(fileOf(dir, key), "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw fileSystemError(e, fileOf(dir, key), "read the cached value");
      }
      try {
        const entry = JSON.parse(text) as { key?: unknown; value?: unknown };
        return entry.key === key && typeof entry.value === "string" ? entry.value : undefined;
      } catch {
        return undefined; // not ours, or damaged: a miss, overwritten by the next set
      }
    },
    async set(key, value) {
      try {
        await mkdir(dir, { recursive: true });
      } catch (e) {
        throw fileSystemError(e, dir, "create the cache directory");
      }
      await writeAtomic(fileOf(dir, key), JSON.stringify({ key, value }), "write the cached value to");
    },
  };
}

setDirectoryStoreFactory(nodeDirectoryStore);
