/**
 * Plain text and JSONL corpora from byte chunks.
 *
 * The readers take the bytes as an iterable or async iterable of `Uint8Array` chunks, so a file
 * of any size streams through in bounded memory: under Node `fileChunks(path)` (`tdb-js`'s Node
 * entry, `io/node-stream.ts`) or the Node-only wrappers in `node.ts`; in a browser a `File`'s or
 * a `fetch` response's stream; in memory `[bytes]`. Chunk boundaries may fall anywhere, even
 * inside a UTF-8 character. Text is decoded as UTF-8 (invalid bytes become U+FFFD), a leading
 * byte-order mark is dropped, and `\r\n` line ends count as `\n`.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ModelFiles } from "../io/files.js";
import type { CorpusDocument } from "./document.js";

/** Bytes in chunks: an array of `Uint8Array`s, a generator, a stream. */
export type ByteChunks = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * The lines of UTF-8 text arriving in chunks, without their `\n` (or `\r\n`). A final line
 * without a line end is yielded too; an empty input yields nothing.
 *
 * @example
 * ```ts
 * for await (const line of textLines([new TextEncoder().encode("a\nb\n")])) console.log(line); // "a", "b"
 * ```
 */
export async function* textLines(chunks: ByteChunks): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: false });
  let rest = "";
  const split = function* (final: boolean): Generator<string> {
    let start = 0;
    for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n", start)) {
      const end = nl > start && rest.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      yield rest.slice(start, end);
      start = nl + 1;
    }
    rest = rest.slice(start);
    if (final && rest !== "") {
      yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
      rest = "";
    }
  };
  for await (const chunk of chunks) {
    rest += decoder.decode(chunk, { stream: true });
    yield* split(false);
  }
  rest += decoder.decode();
  yield* split(true);
}

/** How {@link textDocuments} cuts text into documents. */
export interface TextOptions {
  /** Id of the text (a file name): documents are `id` (`"file"`) or `id:n` (n from 0). [default: "text"] */
  id?: string;
  /**
   * `"file"`: the whole text is one document; `"paragraph"`: blocks separated by blank lines
   * (lines inside a block keep their `\n`); `"line"`: every non-blank line. [default: "file"]
   */
  split?: "file" | "paragraph" | "line";
}

/**
 * Plain UTF-8 text as documents. Blank documents are skipped; paragraph and line documents are
 * trimmed of surrounding whitespace, a whole-file document is kept as it is (line ends as `\n`).
 *
 * @example
 * ```ts
 * const docs = textDocuments([new TextEncoder().encode("one\n\ntwo\n")], { id: "a.txt", split: "paragraph" });
 * // { id: "a.txt:0", text: "one" }, { id: "a.txt:1", text: "two" }
 * ```
 */
export async function* textDocuments(chunks: ByteChunks, opts: TextOptions = {}): AsyncGenerator<CorpusDocument> {
  const id = opts.id ?? "text";
  const split = opts.split ?? "file";
  if (split !== "file" && split !== "paragraph" && split !== "line") {
    throw new TdbError("E_BAD_OPTION", `text split must be "file", "paragraph" or "line", got ${JSON.stringify(split)}`, {
      value: split,
      allowed: ["file", "paragraph", "line"],
    });
  }
  let n = 0;
  if (split === "file") {
    const lines: string[] = [];
    for await (const line of textLines(chunks)) lines.push(line);
    const text = lines.join("\n");
    if (text.trim() !== "") yield { id, text };
    return;
  }
  let block: string[] = [];
  for await (const line of textLines(chunks)) {
    const blank = line.trim() === "";
    if (split === "line") {
      if (!blank) yield { id: `${id}:${n++}`, text: line.trim() };
    } else if (blank) {
      if (block.length > 0) yield { id: `${id}:${n++}`, text: block.join("\n").trim() };
      block = [];
    } else {
      block.push(line);
    }
  }
  if (block.length > 0) yield { id: `${id}:${n++}`, text: block.join("\n").trim() };
}

/** Which fields of a JSONL record {@link jsonlDocuments} reads. */
export interface JsonlOptions {
  /** Name of the file, for ids and error messages. [default: "jsonl"] */
  id?: string;
  /** Field holding the text (a string). [default: "text"] */
  field?: string;
  /**
   * Field holding the document id (a string or number); without it a document's id is
   * `name:line` (line numbers from 1).
   */
  idField?: string;
}

/**
 * JSON Lines records as documents: every non-blank line must be a JSON object whose `field` is a
 * string, else `E_BAD_INPUT` naming the line. Records whose text is empty are skipped.
 *
 * @example
 * ```ts
 * const docs = jsonlDocuments(fileChunks("data.jsonl"), { id: "data.jsonl", field: "content" });
 * ```
 */
export async function* jsonlDocuments(chunks: ByteChunks, opts: JsonlOptions = {}): AsyncGenerator<CorpusDocument> {
  const name = opts.id ?? "jsonl";
  const field = opts.field ?? "text";
  let lineNo = 0;
  for await (const line of textLines(chunks)) {
    lineNo++;
    if (line.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (cause) {
      throw new TdbError("E_BAD_INPUT", `${name} line ${lineNo} is not valid JSON: ${(cause as Error).message}`, {
        value: { line: lineNo, text: line.length > 80 ? `${line.slice(0, 80)}…` : line },
        allowed: "one JSON object per line",
        cause,
      });
    }
    if (typeof record !== "object" || record === null || Array.isArray(record)) {
      throw new TdbError("E_BAD_INPUT", `${name} line ${lineNo} is not a JSON object`, { value: { line: lineNo }, allowed: "one JSON object per line" });
    }
    const rec = record as Record<string, unknown>;
    const text = rec[field];
    if (typeof text !== "string") {
      throw new TdbError("E_BAD_INPUT", `${name} line ${lineNo} has no string field ${JSON.stringify(field)}`, {
        value: { line: lineNo, fields: Object.keys(rec) },
        allowed: `a string in field ${JSON.stringify(field)} (option \`field\`)`,
      });
    }
    let id = `${name}:${lineNo}`;
    if (opts.idField !== undefined) {
      const v = rec[opts.idField];
      if (typeof v !== "string" && typeof v !== "number") {
        throw new TdbError("E_BAD_INPUT", `${name} line ${lineNo} has no string or number field ${JSON.stringify(opts.idField)}`, {
          value: { line: lineNo, fields: Object.keys(rec) },
          allowed: `a string or number in field ${JSON.stringify(opts.idField)} (option \`idField\`)`,
        });
      }
      id = String(v);
    }
    if (text !== "") yield { id, text };
  }
}

/**
 * The bytes of `relPath` from a {@link ModelFiles} adapter as one chunk (for the readers above);
 * a missing file is `E_MISSING_FILE`.
 *
 * @example
 * ```ts
 * const docs = jsonlDocuments(await fileBytes(urlFiles("https://example.org/data/"), "train.jsonl"));
 * ```
 */
export async function fileBytes(files: ModelFiles, relPath: string): Promise<Uint8Array[]> {
  const b = await files.read(relPath);
  if (b === null) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has no ${relPath}`, { value: relPath, allowed: "an existing file" });
  }
  return [b];
}

