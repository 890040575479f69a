/**
 * {@link ModelFiles} for browsers (and any runtime with `fetch`): the browser entry's default
 * adapter (URLs and hub ids), and `File`s a user picked.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { DefaultFilesOptions, ModelFiles } from "./files.js";
import { hubBaseUrl, isHubId, urlFiles } from "./remote.js";

/** What tdb-js needs of a DOM `File` (a picked file, or one from a drop). */
export interface FileLike {
  /** The file's name. */
  readonly name: string;
  /** Path under the picked folder (`<input webkitdirectory>`), e.g. `gpt2/onnx/model.onnx`. */
  readonly webkitRelativePath?: string;
  /** The contents. */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * Model files from `File`s: a picked folder (`<input type="file" webkitdirectory>`, paths
 * relative to it) or loose files (`config.json`, `tokenizer.json`, `tokenizer_config.json`,
 * `model.onnx`; a path is then matched by its last segment).
 *
 * @example
 * ```ts
 * input.onchange = async () => {
 *   const model = await Model.load("picked", { files: fileListFiles(input.files!) });
 * };
 * ```
 */
export function fileListFiles(files: Iterable<FileLike> | ArrayLike<FileLike>, origin = "picked files"): ModelFiles {
  const byPath = new Map<string, FileLike>();
  const byName = new Map<string, FileLike>();
  for (const f of Array.from(files as ArrayLike<FileLike>)) {
    const rel = f.webkitRelativePath ? f.webkitRelativePath.split("/").slice(1).join("/") : f.name;
    byPath.set(rel, f);
    if (!byName.has(f.name)) byName.set(f.name, f);
  }
  return {
    origin,
    async read(relPath) {
      const f = byPath.get(relPath) ?? byName.get(relPath.slice(relPath.lastIndexOf("/") + 1));
      return f ? new Uint8Array(await f.arrayBuffer()) : null;
    },
  };
}

function baseHref(): string | undefined {
  const loc = (globalThis as { location?: { href?: string } }).location;
  return loc?.href;
}

/**
 * The browser entry's default adapter: an `http(s):` URL, or a path relative to the page
 * (`./models/gpt2/`, `/models/gpt2/`), is fetched from there; a hub id (`owner/name`) from the
 * Hugging Face hub. The browser's HTTP cache keeps what was downloaded.
 *
 * @example
 * ```ts
 * const files = await webDefaultFiles("./models/tiny-gpt2/", {});
 * ```
 */
export async function webDefaultFiles(idOrUrl: string, opts: DefaultFilesOptions = {}): Promise<ModelFiles> {
  const hub = opts.hub ?? {};
  if (idOrUrl.startsWith("tdb:")) {
    throw new TdbError("E_MISSING_FILE", `${idOrUrl} is a model shipped in the tdb-js package, read from disk under Node.js and Deno; in a browser, serve its directory (models/${idOrUrl.slice(4)}/ in the package) and pass that URL`, {
      value: idOrUrl,
      allowed: ["an absolute URL", "a path relative to the page (./ or /)", "a hub id owner/name"],
    });
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(idOrUrl) || /^\.{0,2}\//.test(idOrUrl)) {
    let href: string;
    try {
      href = new URL(idOrUrl, baseHref()).href;
    } catch (cause) {
      throw new TdbError("E_MISSING_FILE", `${JSON.stringify(idOrUrl)} is not a URL this page can resolve`, {
        value: idOrUrl,
        allowed: ["an absolute URL", "a path relative to the page (./ or /)", "a hub id owner/name"],
        cause,
      });
    }
    return urlFiles(href, { fetch: hub.fetch, timeoutMs: hub.timeoutMs });
  }
  if (isHubId(idOrUrl)) {
    const revision = opts.revision ?? "main";
    return urlFiles(hubBaseUrl(idOrUrl, { revision }), {
      fetch: hub.fetch,
      timeoutMs: hub.timeoutMs,
      origin: `hub:${idOrUrl}@${revision}`,
      name: `the hub for ${idOrUrl}`,
    });
  }
  throw new TdbError("E_MISSING_FILE", `${JSON.stringify(idOrUrl)} is neither a URL (http(s)://, ./ or /) nor a hub id (owner/name)`, {
    value: idOrUrl,
    allowed: ["an absolute URL", "a path relative to the page (./ or /)", "a hub id like onnx-community/gpt2-ONNX", "opts.files"],
  });
}
