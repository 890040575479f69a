/**
 * prepareBrown: the streams are the split's documents joined by end-of-text, character counts and
 * baselines agree with independent recomputation, and the tokenizer files load in transformers.js.
 */
import { describe, expect, it } from "vitest";
import { PreTrainedTokenizer } from "@huggingface/transformers";
import { brownCorpus } from "../../src/corpus/node.js";
import { natsPerTokenToBitsPerChar } from "../../src/train/baselines.js";
import { prepareBrown } from "../../src/train/brown-data.js";

describe("prepareBrown", () => {
  it("builds the split's token streams, tokenizer files and baselines", async () => {
    const data = await prepareBrown({ vocabSize: 2048, seed: 0 });
    const validTexts: string[] = [];
    for await (const d of brownCorpus({ split: "valid", seed: 0 })) validTexts.push(d.text);
    expect(data.validDocs.length).toBe(validTexts.length);
    expect(data.trainDocs.length + data.validDocs.length).toBe(500);
    expect(data.vocabSize).toBe(2048);
    expect(data.eosTokenId).toBe(2047);
    // eos d1 eos d2 ...: decoding gives the texts joined by the end-of-text text.
    expect(data.tokenizer.decode(data.valid)).toBe(validTexts.map((t) => `<|endoftext|>${t}`).join(""));
    expect(data.validChars).toBe([...validTexts.join("")].length);
    expect(data.train.filter((t) => t === 2047).length).toBe(data.trainDocs.length);
    // The bigram baseline beats the unigram; bits/char follow from nats/token by the helper.
    const { unigram, bigram } = data.baselines;
    expect(bigram.natsPerToken).toBeLessThan(unigram.natsPerToken);
    expect(bigram.tokens).toBe(data.valid.length - 1);
    expect(bigram.bitsPerChar).toBeCloseTo(natsPerTokenToBitsPerChar(bigram.natsPerToken, bigram.tokens, data.validChars), 12);
    // A unigram model cannot do better than the held-out stream's own empirical entropy.
    const freq = new Map<number, number>();
    for (let i = 1; i < data.valid.length; i++) freq.set(data.valid[i]!, (freq.get(data.valid[i]!) ?? 0) + 1);
    let entropy = 0;
    for (const c of freq.values()) entropy -= (c / (data.valid.length - 1)) * Math.log(c / (data.valid.length - 1));
    expect(unigram.natsPerToken).toBeGreaterThan(entropy);
    expect(unigram.natsPerToken).toBeLessThan(entropy + 0.2);

    const hf = new PreTrainedTokenizer(data.tokenizerFiles.tokenizer, data.tokenizerFiles.tokenizerConfig);
    const sample = validTexts[0]!.slice(0, 2000);
    expect(hf.encode(sample, { add_special_tokens: false })).toEqual(data.tokenizer.encode(sample));
  });
});
