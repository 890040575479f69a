/**
 * tdb-js's own byte-level BPE tokenizer (the fast path of `loadTokenizer`) against
 * transformers.js's tokenizer built from the same files: ids and decoded text must be identical
 * for the full GPT-2 vocabulary and for models/brown-small, on Brown sentences and on edge-case
 * strings (unicode, whitespace, contractions, digits, special tokens); decoding of every id and
 * of random id sequences. WordLevel (models/toy-induction) and every unsupported setting take
 * transformers.js; the fast path imports nothing from it.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { brownCorpus } from "../../src/corpus/node.js";
import { memoryFiles } from "../../src/io/files.js";
import { byteLevelBpeUnsupported } from "../../src/runtime/bpe-tokenizer.js";
import { loadTokenizer, tokenizerImplementation, type Tokenizer } from "../../src/runtime/tokenizer.js";
import { buildGpt2Tokenizer } from "../../src/synthetic/tokenizer.js";

const ROOT = resolve(import.meta.dirname, "../..");
const EOT = "<|endoftext|>";
const enc = new TextEncoder();

type Json = Record<string, unknown>;

function files(json: Json, config: Json) {
  return memoryFiles("test", { "tokenizer.json": enc.encode(JSON.stringify(json)), "tokenizer_config.json": enc.encode(JSON.stringify(config)) });
}

function modelFiles(name: string): { json: Json; config: Json } {
  const read = (f: string) => JSON.parse(readFileSync(join(ROOT, "models", name, f), "utf8")) as Json;
  return { json: read("tokenizer.json"), config: read("tokenizer_config.json") };
}

/** transformers.js's tokenizer of the same files: the class loadTokenizer built before the fast path. */
async function reference(json: Json, config: Json): Promise<Tokenizer> {
  const tf = (await import("@huggingface/transformers")) as unknown as Record<string, new (j: unknown, c: unknown) => Tokenizer>;
  const name = typeof config.tokenizer_class === "string" ? config.tokenizer_class.replace(/Fast$/, "") : "PreTrainedTokenizer";
  return new (tf[name] ?? tf.PreTrainedTokenizer!)(structuredClone(json), structuredClone(config));
}

/** Hand-written edge cases. */
const EDGE = [
  "",
  " ",
  "  ",
  "\n",
  "\n\n\n",
  "\t",
  " \t \n ",
  "a",
  " leading space",
  "   three leading spaces",
  "trailing spaces   ",
  "tabs\tand\t\ttabs",
  "lines\nand\r\nlines\n\n",
  "mixed   spaces \t\n  and  words",
  "It's, they're, we've, I'm, you'll, he'd, don't, can't.",
  "IT'S THEY'RE 'S 'T 're 've",
  "spaced clean-up: do n't , he 's , we 're . what ? wow ! a ' b I 'm I 've",
  "'s's's 'll 'd",
  "digits 1234567890 and 3.14159, 1,000,000 and 2024-11-30",
  "١٢٣ arabic digits ٤٥٦ and ½ ² ⅔",
  "café naïve résumé Æsir Øre ß straße",
  "e\u0301 combining a\u0300\u0301\u0302 marks \u0308o",
  "中文字符和日本語のテキスト、한국어 텍스트",
  "emoji 😀👍🏽👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 and ❤️",
  "math ∑∫√∞ ≠ ≤ ≥ and arrows →←↑",
  "Ελληνικά кириллица עברית العربية हिन्दी ไทย",
  "zero\u200bwidth\u200dspace\ufeffbom",
  "nbsp\u00a0here\u2003em\u3000ideographic",
  "lone surrogate \ud800 and \udfff",
  `before${EOT}after`,
  `${EOT}`,
  `${EOT}${EOT}`,
  ` ${EOT} `,
  `text ${EOT} more text`,
  `${EOT}start`,
  `end${EOT}`,
  `<|endoftext|`,
  `<|endoftext|>>`,
  `<<|endoftext|>`,
  `<|endo${EOT}ftext|>`,
  "<|notatoken|> <| |>",
  "punctuation!!! ??? ... ;;; --- ___ *** ### @@@ $$$ %%%",
  "URLs https://example.com/path?q=1&r=2#frag and e-mail a.b@c.de",
  "code: const x = (a, b) => { return a + b; }; // comment",
  "'quotes' \"double\" `back` «guillemets» „low“",
  "   \n   \n",
  "a\u0000b\u0001c\u007fd",
  "x".repeat(300),
  "ab ".repeat(200),
  " ".repeat(50) + "word" + "\n".repeat(20),
];

/** Seeded random strings over a mix of ASCII, whitespace, accents, CJK, emoji and the special token. */
function randomStrings(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const parts = ["a", "b", "the", " ", "  ", "\n", "\t", "'s", "'t", "'re", "0", "42", ".", ",", "!", "é", "e\u0301", "中", "文", "😀", "👍🏽", "\u200b", EOT, "ñ", "Ω", "-", "“", "\u00a0", " The", "ing"];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = rng.int(12);
    let s = "";
    for (let j = 0; j < len; j++) s += parts[rng.int(parts.length)];
    out.push(s);
  }
  return out;
}

/** Sentences (lines and `.`-split pieces) of the first Brown documents. */
async function brownStrings(limit: number): Promise<string[]> {
  const out: string[] = [];
  for await (const doc of brownCorpus()) {
    for (const para of doc.text.split("\n")) {
      out.push(para);
      for (const s of para.split(/(?<=[.?!])\s+/)) out.push(s);
      if (out.length >= limit) return out.slice(0, limit);
    }
  }
  return out;
}

async function compare(json: Json, config: Json, strings: string[], seed: number): Promise<{ strings: number; decodes: number }> {
  const fast = await loadTokenizer(files(json, config));
  expect(tokenizerImplementation(fast)).toBe("tdb-bpe");
  const ref = await reference(json, config);
  expect(tokenizerImplementation(ref)).toBe("transformers.js");
  expect(fast.bos_token_id).toBe(ref.bos_token_id);
  let decodes = 0;
  for (const s of strings) {
    for (const add of [false, true]) {
      const ids = fast.encode(s, { add_special_tokens: add });
      const want = ref.encode(s, { add_special_tokens: add });
      if (JSON.stringify(ids) !== JSON.stringify(want)) expect({ s, add, ids }).toEqual({ s, add, ids: want });
    }
    const ids = fast.encode(s);
    if (ids.length > 0) {
      for (const o of [{}, { skip_special_tokens: true }, { clean_up_tokenization_spaces: true }, { skip_special_tokens: false, clean_up_tokenization_spaces: false }]) {
        const got = fast.decode(ids, o);
        if (got !== ref.decode(ids, o)) expect({ s, o, got }).toEqual({ s, o, got: ref.decode(ids, o) });
        decodes++;
      }
    }
  }
  // Every id alone, and random sequences (with special tokens, out-of-range ids), both skip modes.
  const vocabSize = Object.keys((json.model as Json).vocab as Json).length + 1;
  for (let id = 0; id < vocabSize; id++) {
    const got = fast.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    if (got !== ref.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false })) expect({ id, got }).toEqual({ id, got: ref.decode([id], {}) });
    decodes++;
  }
  const rng = new Rng(seed);
  const eot = (json.added_tokens as { id: number }[])[0]!.id;
  for (let i = 0; i < 1000; i++) {
    const ids = Array.from({ length: 1 + rng.int(20) }, () => (rng.int(8) === 0 ? eot : rng.int(vocabSize)));
    if (i % 100 === 0) ids.push(vocabSize + 5);
    for (const o of [{ skip_special_tokens: true }, { skip_special_tokens: false }, {}]) {
      const got = fast.decode(ids, o);
      if (got !== ref.decode(ids, o)) expect({ ids, o, got }).toEqual({ ids, o, got: ref.decode(ids, o) });
      decodes++;
    }
  }
  expect(() => fast.decode([])).toThrow(/non-empty/);
  return { strings: strings.length, decodes };
}

describe("tdb-js's byte-level BPE tokenizer matches transformers.js", () => {
  let corpus: string[] = [];
  const getCorpus = async () => (corpus.length > 0 ? corpus : (corpus = [...EDGE, ...(await brownStrings(2500)), ...randomStrings(1500, 7)]));

  it("full GPT-2 vocabulary (tdb-js/synthetic): identical ids and text", async () => {
    const g = buildGpt2Tokenizer();
    const n = await compare(g.tokenizer, g.tokenizerConfig, await getCorpus(), 1);
    expect(n.strings).toBeGreaterThan(4000);
  });

  it("models/brown-small: identical ids and text", async () => {
    const { json, config } = modelFiles("brown-small");
    const n = await compare(json, config, await getCorpus(), 2);
    expect(n.strings).toBeGreaterThan(4000);
  });

  it("known GPT-2 ids: an independent check of the reference itself", async () => {
    const g = buildGpt2Tokenizer();
    const t = await loadTokenizer(files(g.tokenizer, g.tokenizerConfig));
    // Published GPT-2 ids: "Hello" 15496, " world" 995, "<|endoftext|>" 50256.
    expect(t.encode(`Hello world${EOT}`)).toEqual([15496, 995, 50256]);
    expect(t.bos_token_id).toBe(50256);
  });

  it("settings: add_prefix_space, use_regex false, merges as pairs, lstrip/rstrip added tokens, extra special tokens", async () => {
    const g = buildGpt2Tokenizer({ vocabSize: 2000 });
    const base = g.tokenizer;
    const model = base.model as Json;
    const pairs = (model.merges as string[]).map((m) => m.split(" "));
    const variants: [string, Json, Json][] = [
      ["add_prefix_space", { ...base, pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true } }, g.tokenizerConfig],
      ["use_regex false", { ...base, pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: false } }, g.tokenizerConfig],
      ["pair merges", { ...base, model: { ...model, merges: pairs } }, g.tokenizerConfig],
      ["no post_processor", { ...base, post_processor: null }, g.tokenizerConfig],
      ["ignore_merges", { ...base, model: { ...model, ignore_merges: true } }, g.tokenizerConfig],
      [
        "lstrip/rstrip and a non-special added token",
        {
          ...base,
          added_tokens: [
            { ...(base.added_tokens as Json[])[0], lstrip: true, rstrip: true },
            { id: 1998, content: "<mask>", single_word: false, lstrip: true, rstrip: false, normalized: false, special: false },
          ],
        },
        { ...g.tokenizerConfig, clean_up_tokenization_spaces: true, additional_special_tokens: ["<mask>"] },
      ],
      ["no bos", base, { ...g.tokenizerConfig, bos_token: null, tokenizer_class: "PreTrainedTokenizerFast" }],
    ];
    const strings = [...EDGE, ...randomStrings(300, 3), " <mask> x<mask>y <mask>  ", `a ${EOT}  <mask>${EOT} b`];
    for (const [what, json, config] of variants) {
      expect(byteLevelBpeUnsupported(json, config), what).toBeNull();
      const fast = await loadTokenizer(files(json, config));
      expect(tokenizerImplementation(fast), what).toBe("tdb-bpe");
      const ref = await reference(json, config);
      expect(fast.bos_token_id, what).toBe(ref.bos_token_id);
      for (const s of strings) {
        const ids = fast.encode(s);
        expect({ what, s, ids }).toEqual({ what, s, ids: ref.encode(s) });
        if (ids.length > 0) for (const o of [{}, { skip_special_tokens: true }]) expect({ what, s, o, t: fast.decode(ids, o) }).toEqual({ what, s, o, t: ref.decode(ids, o) });
      }
    }
  });
});

describe("fallback to transformers.js", () => {
  it("models/toy-induction (WordLevel) takes transformers.js and still tokenizes", async () => {
    const { json, config } = modelFiles("toy-induction");
    expect(byteLevelBpeUnsupported(json, config)).toMatch(/BPE/);
    const t = await loadTokenizer(files(json, config));
    expect(tokenizerImplementation(t)).toBe("transformers.js");
    const vocab = (json.model as Json).vocab as Record<string, number>;
    const words = Object.keys(vocab).filter((w) => w !== EOT).slice(0, 5);
    expect(t.encode(words.join(" "))).toEqual(words.map((w) => vocab[w]));
  });

  it("every setting it does not implement falls back", async () => {
    const g = buildGpt2Tokenizer({ vocabSize: 600 });
    const b = g.tokenizer;
    const m = b.model as Json;
    const c = g.tokenizerConfig;
    const cases: [Json, Json][] = [
      [{ ...b, normalizer: { type: "NFC" } }, c],
      [{ ...b, model: { ...m, byte_fallback: true } }, c],
      [{ ...b, model: { ...m, dropout: 0.1 } }, c],
      [{ ...b, model: { ...m, end_of_word_suffix: "</w>" } }, c],
      [{ ...b, model: { ...m, continuing_subword_prefix: "##" } }, c],
      [{ ...b, model: { ...m, fuse_unk: true } }, c],
      [{ ...b, pre_tokenizer: { type: "Sequence", pretokenizers: [b.pre_tokenizer] } }, c],
      [{ ...b, decoder: { type: "BPEDecoder" } }, c],
      [{ ...b, post_processor: { type: "TemplateProcessing", single: [], pair: [], special_tokens: {} } }, c],
      [{ ...b, added_tokens: [{ ...(b.added_tokens as Json[])[0], single_word: true }] }, c],
      [b, { ...c, tokenizer_class: "LlamaTokenizerFast" }],
      [b, { ...c, remove_space: true }],
    ];
    for (const [json, config] of cases) {
      const why = byteLevelBpeUnsupported(json, config);
      expect(why).not.toBeNull();
      const t = await loadTokenizer(files(json, config)).catch(() => null);
      if (t !== null) expect(tokenizerImplementation(t), why!).toBe("transformers.js");
    }
  });

  it("the fast path does not import transformers.js (fresh process whose resolver refuses it)", () => {
    const hook = `data:text/javascript,${encodeURIComponent(
      "export async function resolve(s, c, next) { if (s.includes('@huggingface/transformers')) throw new Error('transformers.js imported'); return next(s, c); }",
    )}`;
    const script = `
      import { register } from "node:module";
      register(${JSON.stringify(hook)});
      const { loadTokenizer, tokenizerImplementation } = await import(${JSON.stringify(join(ROOT, "src/runtime/tokenizer.ts"))});
      const { directoryFiles } = await import(${JSON.stringify(join(ROOT, "src/io/node-files.ts"))});
      const t = await loadTokenizer(directoryFiles(${JSON.stringify(join(ROOT, "models/brown-small"))}));
      let fallback = "ok";
      try { await loadTokenizer(directoryFiles(${JSON.stringify(join(ROOT, "models/toy-induction"))})); } catch (e) { fallback = e.message; }
      console.log(JSON.stringify({ impl: tokenizerImplementation(t), ids: t.encode("The jury"), fallback }));
    `;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8" });
    const r = JSON.parse(out.trim().split("\n").pop()!) as { impl: string; ids: number[]; fallback: string };
    expect(r.impl).toBe("tdb-bpe");
    expect(r.ids.length).toBeGreaterThan(0);
    // The hook works: the WordLevel model, which needs transformers.js, is refused in that process.
    expect(r.fallback).toMatch(/transformers\.js imported/);
  });
});
