/**
 * Plain text and JSONL readers: chunk boundaries anywhere (inside UTF-8 characters, between \r
 * and \n), document splitting, ids, errors; the Node file readers on temporary files.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { collectDocuments } from "../../src/corpus/document.js";
import { jsonlFileDocuments, textFileDocuments } from "../../src/corpus/node.js";
import { fileBytes, jsonlDocuments, textDocuments, textLines } from "../../src/corpus/text.js";
import { memoryFiles } from "../../src/io/files.js";
import { rejected } from "../helpers/errors.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dir = mkdtempSync(join(tmpdir(), "tdb-corpus-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `bytes` cut into chunks of `size` bytes. */
function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.slice(i, i + size));
  return out;
}

async function lines(chunks: Uint8Array[]): Promise<string[]> {
  const out: string[] = [];
  for await (const l of textLines(chunks)) out.push(l);
  return out;
}

describe("textLines", () => {
  it("gives the same lines for every chunking", async () => {
    const text = "\ufeffcafé 🙂\r\nsecond line\n\nlast without newline ü";
    const expected = ["café 🙂", "second line", "", "last without newline ü"];
    for (const size of [1, 2, 3, 5, 7, 1000]) expect(await lines(chunked(enc(text), size))).toEqual(expected);
    expect(await lines([])).toEqual([]);
    expect(await lines([enc("a\n")])).toEqual(["a"]);
  });
});

describe("textDocuments", () => {
  const text = "First para\nstill first.\n\n\n  Second para.  \n\nThird\n";
  it("splits by file, paragraph or line", async () => {
    const bytes = chunked(enc(text), 4);
    expect(await collectDocuments(textDocuments(bytes, { id: "t.txt" }))).toEqual([{ id: "t.txt", text: text.slice(0, -1) }]);
    expect(await collectDocuments(textDocuments(bytes, { id: "t.txt", split: "paragraph" }))).toEqual([
      { id: "t.txt:0", text: "First para\nstill first." },
      { id: "t.txt:1", text: "Second para." },
      { id: "t.txt:2", text: "Third" },
    ]);
    expect((await collectDocuments(textDocuments(bytes, { split: "line" }))).map((d) => d.text)).toEqual([
      "First para",
      "still first.",
      "Second para.",
      "Third",
    ]);
    expect(await collectDocuments(textDocuments([enc(" \n\n ")]))).toEqual([]);
    expect((await rejected(textDocuments([], { split: "word" as "line" }).next())).code).toBe("E_BAD_OPTION");
  });

  it("reads files by path (Node) and through ModelFiles", async () => {
    const p = join(dir, "a.txt");
    writeFileSync(p, text);
    expect((await collectDocuments(textFileDocuments(p, { split: "paragraph" }))).map((d) => d.id)).toEqual([`${p}:0`, `${p}:1`, `${p}:2`]);
    const files = memoryFiles("mem", { "b.txt": enc("x\n\ny") });
    expect((await collectDocuments(textDocuments(await fileBytes(files, "b.txt"), { split: "paragraph" }))).map((d) => d.text)).toEqual(["x", "y"]);
    expect((await rejected(fileBytes(files, "nope.txt"))).code).toBe("E_MISSING_FILE");
    const err = await rejected(collectDocuments(textFileDocuments(join(dir, "missing.txt"))));
    expect(err.code).toBe("E_FILE_SYSTEM");
    expect((err.value as { errno: string }).errno).toBe("ENOENT");
  });
});

describe("jsonlDocuments", () => {
  const jsonl = '{"text": "one 🙂", "id": 5}\n\n{"text": "two", "body": "B", "id": "x"}\r\n{"text": "", "id": 9}\n{"text":"three","id":7}';
  it("reads a field, with ids from a field or from line numbers, for every chunking", async () => {
    for (const size of [1, 3, 64]) {
      const chunks = chunked(enc(jsonl), size);
      expect(await collectDocuments(jsonlDocuments(chunks, { id: "d.jsonl" }))).toEqual([
        { id: "d.jsonl:1", text: "one 🙂" },
        { id: "d.jsonl:3", text: "two" },
        { id: "d.jsonl:5", text: "three" },
      ]);
      expect((await collectDocuments(jsonlDocuments(chunks, { idField: "id" }))).map((d) => d.id)).toEqual(["5", "x", "7"]);
    }
  });

  it("names the bad line", async () => {
    const bad = async (text: string, opts = {}) => rejected(collectDocuments(jsonlDocuments([enc(text)], { id: "f.jsonl", ...opts })));
    let err = await bad('{"text": "ok"}\n{"text": oops}\n');
    expect(err.code).toBe("E_BAD_INPUT");
    expect(err.message).toContain("f.jsonl line 2");
    err = await bad('["text"]');
    expect(err.code).toBe("E_BAD_INPUT");
    err = await bad('{"text": "a"}', { field: "body" });
    expect(err.message).toContain('"body"');
    expect((err.value as { fields: string[] }).fields).toEqual(["text"]);
    err = await bad('{"text": "a"}', { idField: "id" });
    expect(err.code).toBe("E_BAD_INPUT");
  });

  it("reads a file by path (Node), with a field option", async () => {
    const p = join(dir, "c.jsonl");
    writeFileSync(p, '{"content": "alpha"}\n{"content": "beta"}\n');
    expect(await collectDocuments(jsonlFileDocuments(p, { field: "content" }))).toEqual([
      { id: `${p}:1`, text: "alpha" },
      { id: `${p}:2`, text: "beta" },
    ]);
  });
});
