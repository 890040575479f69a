/**
 * {@link ModelFiles} from the Hugging Face hub with an on-disk cache (Node.js and Deno): files are
 * fetched from `{host}/{id}/resolve/{revision}/` once, then read from
 * `{cacheDir}/{id}/{revision}/`. Offline, the first request fails within `timeoutMs` with
 * `E_OFFLINE`; it never hangs.
 *
 * @module
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ModelFiles } from "./files.js";
import { tdbHome } from "./home.js";
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
      try {
        const b = await readFile(join(dir, relPath));
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch {
        return null;
      }
    },
    async put(relPath, bytes) {
      const local = join(dir, relPath);
      await mkdir(dirname(local), { recursive: true });
      const tmp = `${local}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      await writeFile(tmp, bytes);
      await rename(tmp, local);
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
