/**
 * Model files over HTTP(S), for every platform: a base URL, or a Hugging Face hub repository
 * (`https://huggingface.co/{id}/resolve/{revision}/`). Offline, a request fails within
 * `timeoutMs` with `E_OFFLINE`; it never hangs.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { FetchLike, ModelFiles } from "./files.js";

/** Options for `hubFiles` (Node) and {@link urlFiles}. */
export interface HubOptions {
  /** Where downloaded files are kept (Node only). [default: `$TDB_HOME/hub`, else `~/.cache/tdb-js/hub`] */
  cacheDir?: string;
  /** Git revision. [default: "main"] */
  revision?: string;
  /** Per-request timeout in milliseconds. [default: 15000] */
  timeoutMs?: number;
  /** Custom fetch (tests, proxies). [default: global fetch] */
  fetch?: FetchLike;
  /** Hub host. [default: `$HF_ENDPOINT` under Node, else https://huggingface.co] */
  host?: string;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$|^[A-Za-z0-9][\w.-]*$/;

/** True when `s` looks like a hub model id (`owner/name`). */
export function isHubId(s: string): boolean {
  return HUB_ID.test(s) && !s.startsWith(".") && s.includes("/");
}

/** The hub URL under which repository `id`'s files are (ends with `/`). */
export function hubBaseUrl(id: string, options: Pick<HubOptions, "host" | "revision"> = {}): string {
  const host = (options.host ?? "https://huggingface.co").replace(/\/?$/, "/");
  return `${host}${id}/resolve/${encodeURIComponent(options.revision ?? "main")}/`;
}

/** Where a fetched file may be kept between runs (the Node hub adapter's disk cache). */
export interface FileCache {
  /** The cached bytes, or `null`. */
  get(relPath: string): Promise<Uint8Array | null>;
  /** Stores the bytes. */
  put(relPath: string, bytes: Uint8Array): Promise<void>;
}

/** Options for {@link urlFiles}. */
export interface UrlFilesOptions {
  /** Per-request timeout in milliseconds. [default: 15000] */
  timeoutMs?: number;
  /** Custom fetch. [default: global fetch] */
  fetch?: FetchLike;
  /** `origin` of the returned files. [default: the base URL] */
  origin?: string;
  /** Cache consulted before fetching and filled after. */
  cache?: FileCache;
  /** What the model is called in messages. [default: the base URL] */
  name?: string;
}

/**
 * Model files under a base URL (`https://host/models/gpt2/` or, in a page, `./models/gpt2/`):
 * file `p` is fetched from `base + p`; 404 means missing.
 *
 * @example
 * ```ts
 * const model = await Model.load("gpt2", { files: urlFiles(new URL("./models/gpt2/", location.href).href) });
 * ```
 */
export function urlFiles(base: string, options: UrlFilesOptions = {}): ModelFiles {
  const root = base.endsWith("/") ? base : `${base}/`;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const name = options.name ?? root;
  return {
    origin: options.origin ?? root,
    async read(relPath) {
      const hit = await options.cache?.get(relPath);
      if (hit) return hit;
      let res: Response;
      try {
        res = await doFetch(root + relPath, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (cause) {
        throw new TdbError(
          "E_OFFLINE",
          `cannot reach ${name} (${(cause as Error).message}); pass a local model directory instead, or check the network`,
          { value: name, allowed: "a local model directory, or a hub id reachable over the network or already cached", cause },
        );
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new TdbError("E_OFFLINE", `${root + relPath} answered ${res.status}`, { value: res.status, allowed: "HTTP 200 (or 404 for optional files)" });
      const bytes = new Uint8Array(await res.arrayBuffer());
      await options.cache?.put(relPath, bytes);
      return bytes;
    },
  };
}
