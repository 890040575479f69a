/**
 * N-gram baselines against probabilities worked out by hand on a tiny stream (fractions written
 * in the comments), normalisation, and the bits-per-character conversion.
 */
import { describe, expect, it } from "vitest";
import { bigramLoss, kneserNeyBigram, natsPerTokenToBitsPerChar, ngramBaselines, unigramLoss } from "../../src/train/baselines.js";
import { Rng } from "../../src/base/random.js";
import { thrown } from "../helpers/errors.js";

// Ids: 0 = end-of-text, 1 = a, 2 = b, 3 = c (never in training). V = 4.
const train = [0, 1, 2, 0, 1, 1, 2]; // E a b E a a b
const valid = [0, 1, 2, 3, 0]; // predicts a, b, c, E
const chars = 10;

describe("unigram", () => {
  it("is add-one over the vocabulary, on positions 1..", () => {
    // Counts over positions 1..6: E 1, a 3, b 2, c 0; P(w) = (c + 1) / (6 + 4).
    const expected = -(Math.log(4 / 10) + Math.log(3 / 10) + Math.log(1 / 10) + Math.log(2 / 10));
    const u = unigramLoss(train, valid, 4, chars);
    expect(u.tokens).toBe(4);
    expect(u.chars).toBe(10);
    expect(u.natsPerToken).toBeCloseTo(expected / 4, 12);
    expect(u.bitsPerChar).toBeCloseTo(expected / Math.LN2 / 10, 12);
    // add-k with k = 0.5: (c + 0.5) / (6 + 2)
    const half = -(Math.log(3.5 / 8) + Math.log(2.5 / 8) + Math.log(0.5 / 8) + Math.log(1.5 / 8));
    expect(unigramLoss(train, valid, 4, chars, { k: 0.5 }).natsPerToken).toBeCloseTo(half / 4, 12);
  });
});

describe("interpolated Kneser-Ney bigram", () => {
  it("matches the hand computation", () => {
    // Bigram types: (E,a) 2, (a,b) 2, (b,E) 1, (a,a) 1 -> n1 = 2, n2 = 2, D2 = 2 / (2 + 4) = 1/3.
    // Distinct predecessors: E {b} 1, a {E, a} 2, b {a} 1 -> n1 = 2, n2 = 1, D1 = 2 / (2 + 2) = 1/2.
    // Pcont(w) = max(N(w) - 1/2, 0) / 4 + (1/2 * 3 / 4) / 4: E 7/32, a 15/32, b 7/32, c 3/32.
    // c(E) = 2 with 1 follower, c(a) = 3 with 2, c(b) = 1 with 1, c(c) = 0.
    // P(a|E) = (2 - 1/3)/2 + (1/3 * 1/2) * 15/32 = 175/192
    // P(b|a) = (2 - 1/3)/3 + (1/3 * 2/3) * 7/32 = 174/288
    // P(c|b) = 0 + (1/3 * 1/1) * 3/32 = 1/32
    // P(E|c) = Pcont(E) = 7/32 (unseen context)
    const lm = kneserNeyBigram(train, 4);
    expect(lm.d2).toBeCloseTo(1 / 3, 15);
    expect(lm.d1).toBeCloseTo(1 / 2, 15);
    expect(lm.prob(0, 1)).toBeCloseTo(175 / 192, 14);
    expect(lm.prob(1, 2)).toBeCloseTo(174 / 288, 14);
    expect(lm.prob(2, 3)).toBeCloseTo(1 / 32, 14);
    expect(lm.prob(3, 0)).toBeCloseTo(7 / 32, 14);
    const expected = -(Math.log(175 / 192) + Math.log(174 / 288) + Math.log(1 / 32) + Math.log(7 / 32));
    const b = bigramLoss(train, valid, 4, chars);
    expect(b.natsPerToken).toBeCloseTo(expected / 4, 12);
    expect(b.bitsPerChar).toBeCloseTo(expected / Math.LN2 / chars, 12);
    expect(ngramBaselines(train, valid, 4, chars)).toEqual({ unigram: unigramLoss(train, valid, 4, chars), bigram: b });
  });

  it("sums to one over the vocabulary in every context", () => {
    const rng = new Rng(5);
    const V = 50;
    // Zipf-ish random stream, so that some tokens never occur and some contexts are unseen.
    const stream = Array.from({ length: 3000 }, () => Math.min(V - 1, Math.floor(1 / (rng.uniform() + 0.02))));
    const lm = kneserNeyBigram(stream, V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let w = 0; w < V; w++) {
        const p = lm.prob(v, w);
        expect(p).toBeGreaterThan(0);
        s += p;
      }
      expect(s).toBeCloseTo(1, 12);
    }
  });

  it("rejects bad streams", () => {
    expect(thrown(() => bigramLoss([0], valid, 4, 1)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => kneserNeyBigram([0, -1, 2], 4)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => bigramLoss(train, [0, 9], 4, 1)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => unigramLoss(train, valid, 4, 0)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => unigramLoss(train, valid, 4, 1, { k: 0 })).code).toBe("E_BAD_OPTION");
  });
});

describe("natsPerTokenToBitsPerChar", () => {
  it("is total nats / ln 2 / characters", () => {
    // 2 nats/token over 10 tokens = 20 nats = 20 / ln 2 bits, over 20 characters.
    expect(natsPerTokenToBitsPerChar(2, 10, 20)).toBeCloseTo(1 / Math.LN2, 15);
    expect(natsPerTokenToBitsPerChar(Math.LN2, 4, 1)).toBeCloseTo(4, 15);
    expect(thrown(() => natsPerTokenToBitsPerChar(NaN, 1, 1)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => natsPerTokenToBitsPerChar(1, 1, 0)).code).toBe("E_BAD_INPUT");
  });
});
