/**
 * Byte-level BPE: merges worked out by hand on a small corpus, the incremental trainer against a
 * naive one (full recount every merge), round trips on the Brown text, and our encoder against
 * transformers.js reading the written tokenizer.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brownCorpus } from "../../src/corpus/node.js";
import { BpeTokenizer, END_OF_TEXT, PreTokenCounts, byteChar, preTokenize, trainBpe, trainBpeFromCounts, type BpeModel } from "../../src/train/bpe.js";
import { thrown } from "../helpers/errors.js";

env.allowRemoteModels = false;
const root = mkdtempSync(join(tmpdir(), "tdb-bpe-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** GPT-2's byte-token id of an ASCII letter: printable bytes from "!" (33) come first. */
const id = (ch: string) => ch.charCodeAt(0) - 33;

const train: string[] = [];
const valid: string[] = [];
beforeAll(async () => {
  for await (const d of brownCorpus({ split: "train" })) train.push(d.text);
  for await (const d of brownCorpus({ split: "valid" })) valid.push(d.text);
});

describe("BPE training by hand", () => {
  // The word counts of Hugging Face's course example, each occurrence its own text (no spaces).
  const corpus = [...Array(10).fill("hug"), ...Array(5).fill("pug"), ...Array(12).fill("pun"), ...Array(4).fill("bun"), ...Array(5).fill("hugs")];

  it("merges the most frequent pair, ties to the smaller first id", async () => {
    // Pairs: ug 20, pu 17, un 16, hu 15, ... -> "ug". Then un 16 (pun 12 + bun 4) -> "un";
    // h+ug 15 -> "hug"; p+un 12 -> "pun"; then p+ug 5 and hug+s 5 tie: "p" (id 79) is smaller
    // than "hug" (id 258) -> "pug", then "hugs"; last b+un 4 -> "bun". Then no pair is left.
    const model = await trainBpe(corpus, { vocabSize: 1000 });
    const ug = 256, un = 257, hug = 258, pun = 259, pug = 260, hugs = 261, bun = 262;
    expect(model.merges).toEqual([
      [id("u"), id("g")],
      [id("u"), id("n")],
      [id("h"), ug],
      [id("p"), un],
      [id("p"), ug],
      [hug, id("s")],
      [id("b"), un],
    ]);
    expect(model.tokens.slice(256)).toEqual(["ug", "un", "hug", "pun", "pug", "hugs", "bun", END_OF_TEXT]);
    expect(model.eosId).toBe(263);
    const tok = new BpeTokenizer(model);
    expect(tok.encode("hugs")).toEqual([hugs]);
    expect(tok.encode("bugs")).toEqual([id("b"), ug, id("s")]);
    // " hug": the space is byte 32, GPT-2's id 220 ("Ġ"); no merge joins it.
    expect(tok.encode("pun hug")).toEqual([pun, 220, hug]);
    expect(byteChar(32)).toBe("Ġ");
    expect(tok.encode("pugbun")).toEqual([pug, bun]);
  });

  it("stops at vocabSize or below minFrequency", async () => {
    const five = await trainBpe(corpus, { vocabSize: 256 + 5 + 1 });
    expect(five.merges.length).toBe(5);
    expect(five.tokens.length).toBe(262);
    const freq5 = await trainBpe(corpus, { vocabSize: 1000, minFrequency: 5 });
    expect(freq5.tokens.slice(256, -1)).toEqual(["ug", "un", "hug", "pun", "pug", "hugs"]);
    expect(thrown(() => trainBpeFromCounts(new PreTokenCounts(), { vocabSize: 256 })).code).toBe("E_BAD_OPTION");
    expect(thrown(() => trainBpeFromCounts(new PreTokenCounts(), { vocabSize: 70000 })).code).toBe("E_BAD_OPTION");
  });

  it("rewrites overlapping occurrences left to right", async () => {
    // "aaa" x 3 and "aa" x 1: a+a counts 2*3 + 1 = 7 -> "aa"; "aaa" becomes "aa a" (3), then aa+a 3.
    const model = await trainBpe(["aaa", "aaa", "aaa", "aa"], { vocabSize: 300 });
    expect(model.tokens.slice(256, -1)).toEqual(["aa", "aaa"]);
    // Encoding merges one pair at a time, lowest rank first, leftmost on ties (as transformers.js):
    // a a a a a -> aa a a a -> aa aa a -> (no aa+aa merge) aa aaa.
    expect(new BpeTokenizer(model).encode("aaaaa")).toEqual([256, 257]);
  });
});

/** A plain BPE trainer: recount every pair of every word before each merge. */
function naiveTrain(texts: string[], vocabSize: number): [string, string][] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const p of preTokenize(t)) counts.set(p, (counts.get(p) ?? 0) + 1);
  const ids = new Map<string, number>();
  for (let b = 33; b < 256; b++) if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) ids.set(String.fromCharCode(b), ids.size);
  for (let b = 0, n = 0; b < 256; b++) if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) ids.set(String.fromCharCode(256 + n++), ids.size);
  const words = [...counts].map(([w, c]) => ({ syms: Array.from(Buffer.from(w, "utf8"), (b) => byteChar(b)), c }));
  const merges: [string, string][] = [];
  while (ids.size + 1 < vocabSize) {
    const pc = new Map<string, number>();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) {
      const k = `${syms[i]}\u0000${syms[i + 1]}`;
      pc.set(k, (pc.get(k) ?? 0) + c);
    }
    let best: string | undefined;
    let bestKey: [number, number] = [0, 0];
    let bestC = 0;
    for (const [k, c] of pc) {
      const [a, b] = k.split("\u0000") as [string, string];
      const key: [number, number] = [ids.get(a)!, ids.get(b)!];
      if (c > bestC || (c === bestC && (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])))) {
        best = k;
        bestC = c;
        bestKey = key;
      }
    }
    if (best === undefined || bestC < 2) break;
    const [a, b] = best.split("\u0000") as [string, string];
    merges.push([a, b]);
    if (!ids.has(a + b)) ids.set(a + b, ids.size);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; ) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i += 2;
        } else out.push(w.syms[i++]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

describe("BPE on the Brown corpus", () => {
  it("learns the same merges as a naive recounting trainer", async () => {
    const texts = train.slice(0, 6);
    const model = await trainBpe(texts, { vocabSize: 600 });
    const merges = model.merges.map(([a, b]) => [model.tokens[a], model.tokens[b]]);
    expect(merges).toEqual(naiveTrain(texts, 600));
    expect(merges.length).toBe(600 - 257);
  });

  let big: BpeModel;
  it("trains 8192 tokens on the training split quickly, and round-trips every document", async () => {
    const t0 = performance.now();
    big = await trainBpe(train, { vocabSize: 8192 });
    const seconds = (performance.now() - t0) / 1000;
    expect(seconds).toBeLessThan(60);
    expect(big.tokens.length).toBe(8192);
    expect(new Set(big.tokens).size).toBe(8192);
    const tok = new BpeTokenizer(big);
    for (const text of [...valid, ...train.slice(0, 50)]) expect(tok.decode(tok.encode(text))).toBe(text);
    const ids = tok.encodeDocuments(valid);
    expect(ids[0]).toBe(8191);
    expect(ids.filter((x) => x === 8191).length).toBe(valid.length);
    const chars = valid.reduce((s, t) => s + t.length, 0);
    // Byte-level BPE with 8k tokens on English: about 4 characters per token.
    expect(ids.length / chars).toBeGreaterThan(0.2);
    expect(ids.length / chars).toBeLessThan(0.3);
  });

  it("encodes exactly as transformers.js reading the written tokenizer.json", async () => {
    const model = await trainBpe(train.slice(0, 40), { vocabSize: 1200 });
    const tok = new BpeTokenizer(model);
    const dir = join(root, "brown-1200");
    const files = tok.toHuggingFace({ modelMaxLength: 128 });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizer));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig));
    env.localModelPath = dirname(dir) + "/";
    const hf = await AutoTokenizer.from_pretrained(basename(dir));

    const sentences = valid.flatMap((t) => t.split(/(?<=[.?!"]) (?=[A-Z"])|\n\n/)).slice(0, 3000);
    expect(sentences.length).toBe(3000);
    const extra = [
      "Ünïcödé, emoji 🙂 and tabs\tand CJK 日本語",
      "  leading spaces and trailing   ",
      "we'll they're I'm you've she'd don't 1961's 3.14159",
      "a\n\n\nb \n c",
    ];
    let mismatches = 0;
    for (const s of [...sentences, ...extra]) {
      const ours = tok.encode(s);
      const theirs = hf.encode(s, { add_special_tokens: false });
      if (ours.join(",") !== theirs.join(",")) mismatches++;
      expect(hf.decode(ours)).toBe(s);
    }
    expect(mismatches).toBe(0);
    expect(hf.encode(`a${END_OF_TEXT}b`, { add_special_tokens: false })).toEqual([...tok.encode("a"), tok.eosId, ...tok.encode("b")]);
    expect(hf.eos_token_id).toBe(tok.eosId);
    expect(hf.decode([tok.eosId])).toBe(END_OF_TEXT);
  });

  it("rejects inconsistent models and unknown ids", () => {
    const base = { tokens: [...Array.from({ length: 256 }, (_, i) => byteChar(i)), END_OF_TEXT], merges: [], eosId: 256 };
    expect(thrown(() => new BpeTokenizer({ ...base, merges: [[0, 1]] })).code).toBe("E_BAD_INPUT");
    expect(thrown(() => new BpeTokenizer({ ...base, eosId: 3 })).code).toBe("E_BAD_INPUT");
    expect(thrown(() => new BpeTokenizer(base).decode([257])).code).toBe("E_INDEX_RANGE");
  });
});
