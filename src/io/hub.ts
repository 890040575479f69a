/**
 * {@link ModelFiles} from the Hugging Face hub, with an on-disk cache (Node.js). Uses the hub
 * host and path template of transformers.js's `env`, so a user's transformers.js settings
 * (mirror hosts, revision templates) apply here too.
 *
 * Offline, the first request fails within `timeoutMs` with `E_OFFLINE`; it never hangs.
 *
 * @module
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { env } from "@huggingface/transformers";
import { TdbError } from "../base/errors.js";
import type { ModelFiles } from "./files.js";

/** Options for {@link hubFiles}. */
export interface HubOptions {
  /** Where downloaded files are kept. [default: transformers.js `env.cacheDir`, else `.tdb-cache`] */
  cacheDir?: string;
  /** Git revision. [default: "main"] */
  revision?: string;
  /** Per-request timeout in milliseconds. [default: 15000] */
  timeoutMs?: number;
  /** Custom fetch (tests, proxies). [default: transformers.js `env.fetch`, else global fetch] */
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$|^[A-Za-z0-9][\w.-]*$/;

/** True when `s` looks like a hub model id (`owner/name`). */
export function isHubId(s: string): boolean {
  return HUB_ID.test(s) && !s.startsWith(".") && s.includes("/");
}

/** Model files of hub repository `id`, downloaded on first read and cached on disk. */
export function hubFiles(id: string, options: HubOptions = {}): ModelFiles {
  const revision = options.revision ?? "main";
  const cacheDir = options.cacheDir ?? env.cacheDir ?? ".tdb-cache";
  const timeoutMs = options.timeoutMs ?? 15_000;
  const doFetch = options.fetch ?? ((url: string, init?: RequestInit) => (env.fetch ?? fetch)(url, init) as Promise<Response>);
  const host = (env.remoteHost ?? "https://huggingface.co/").replace(/\/?$/, "/");
  const template = env.remotePathTemplate ?? "{model}/resolve/{revision}/";
  const base = host + template.replaceAll("{model}", id).replaceAll("{revision}", encodeURIComponent(revision));
  return {
    origin: `hub:${id}@${revision}`,
    async read(relPath) {
      const local = join(cacheDir, id, revision, relPath);
      try {
        const b = await readFile(local);
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch {
        // not cached yet
      }
      let res: Response;
      try {
        res = await doFetch(base + relPath, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (cause) {
        throw new TdbError(
          "E_OFFLINE",
          `cannot reach the hub for ${id} (${(cause as Error).message}); pass a local model directory instead, or check the network`,
          { value: id, cause },
        );
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new TdbError("E_OFFLINE", `hub answered ${res.status} for ${id}/${relPath}`, { value: res.status });
      const bytes = new Uint8Array(await res.arrayBuffer());
      await mkdir(dirname(local), { recursive: true });
      const tmp = `${local}.tmp-${process.pid}`;
      await writeFile(tmp, bytes);
      await rename(tmp, local);
      return bytes;
    },
  };
}
