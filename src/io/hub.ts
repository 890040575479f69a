/**
 * {@link ModelFiles} from the Hugging Face hub with an on-disk cache (Node.js and Deno): files are
 * fetched from `{host}/{id}/resolve/{revision}/` once, then read from
 * `{cacheDir}/{id}/{revision}/`. Offline, the first request fails within `timeoutMs` with
 * `E_OFFLINE`; it never hangs.
 *
 * @module
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ModelFiles } from "./files.js";
import { tdbHome } from "./home.js";
import { fileSystemError } from "./fs-error.js";
import { writeAtomic } from "./write-atomic.js";
import { hubBaseUrl, urlFiles, type FileCache, type HubOptions } from "./remote.js";

export { isHubId, type HubOptions } from "./remote.js";

/** The default hub cache: `$TDB_HOME/hub`, else `~/.cache/tdb-js/hub`. */
export function defaultHubCacheDir(): string {
  return join(tdbHome(), "hub");
}

/** A {@link FileCache} in directory `dir` (writes go to a temporary name, then are renamed). */
export function diskCache(dir: string): FileCache {
  return {
    async get(relPath) {
      const path = join(dir, relPath);
      try {
        const b = await readFile(path);
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        // Not cached yet: fetch it. Anything else (a directory there, no permission) is the
        // user's to fix, and typed.
        if ((e as { code?: string }).code === "ENOENT") return null;
        throw fileSystemError(e, path, "read from the hub cache");
      }
    },
    async put(relPath, bytes) {
      const local = join(dir, relPath);
      try {
        await mkdir(dirname(local), { recursive: true });
      } catch (e) {
        throw fileSystemError(e, (e as { path?: string }).path ?? dirname(local), "create the hub cache directory (cacheDir or $TDB_HOME)");
      }
      await writeAtomic(local, bytes, "write to the hub cache (cacheDir or $TDB_HOME)");
    },
  };
}

/**
 * Model files of hub repository `id`, downloaded on first read and cached on disk.
 *
 * @example
 * ```ts
 * const model = await Model.load("onnx-community/gpt2-ONNX", { files: hubFiles("onnx-community/gpt2-ONNX", { timeoutMs: 5000 }) });
 * ```
 */
export function hubFiles(id: string, options: HubOptions = {}): ModelFiles {
  const revision = options.revision ?? "main";
  const host = options.host ?? process.env.HF_ENDPOINT;
  return urlFiles(hubBaseUrl(id, { host, revision }), {
    timeoutMs: options.timeoutMs,
    fetch: options.fetch,
    origin: `hub:${id}@${revision}`,
    name: `the hub for ${id}`,
    cache: diskCache(join(options.cacheDir ?? defaultHubCacheDir(), id, revision)),
  });
}
