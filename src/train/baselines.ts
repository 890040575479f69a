/**
 * N-gram baselines on token streams, and the conversion of a model's loss to bits per character.
 *
 * Token streams are laid out as `prepareBrown` writes them: documents each preceded by the
 * end-of-text token (`eos d1 eos d2 ... eos dn`). A baseline is scored on every position of the
 * held-out stream but the first (which is only context): it predicts tokens 1..N-1, including the
 * end-of-text tokens between documents, each from the token before it. Counts come from the
 * training stream the same way (positions 1..M-1 for the unigram, adjacent pairs for the bigram).
 *
 * - Unigram: add-k (Laplace for k = 1) over the whole vocabulary:
 *   `P(w) = (c(w) + k) / (M - 1 + k V)`.
 * - Bigram: interpolated Kneser-Ney (Chen and Goodman, 1998) with one absolute discount per
 *   order, set by Ney's closed form `D = n1 / (n1 + 2 n2)` from the training counts (n1, n2:
 *   how many bigram types occur once, twice; for the lower order, how many tokens follow one, two
 *   distinct tokens; 0.75 when n1 is 0), so nothing is tuned on held-out data:
 *   `P(w | v) = max(c(v w) - D2, 0) / c(v) + D2 N1+(v •) / c(v) Pcont(w)` where `c(v)` counts `v`
 *   as a context, and `Pcont(w) = max(N1+(• w) - D1, 0) / N1+(• •) + D1 |{w: N1+(• w) > 0}| /
 *   N1+(• •) / V`, the continuation unigram interpolated with the uniform distribution; an
 *   unseen context uses `Pcont` alone. Both sum to 1 over the vocabulary.
 *
 * Bits per character = total nats / ln 2 / characters of the held-out text (its documents'
 * Unicode code points, end-of-text tokens not counted as characters).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** A cross-entropy figure on held-out tokens. */
export interface HeldOutLoss {
  /** Mean negative log-likelihood per predicted token, in nats. */
  natsPerToken: number;
  /** Total nats / ln 2 / characters of the held-out text. */
  bitsPerChar: number;
  /** Predicted tokens (held-out stream length - 1). */
  tokens: number;
  /** Characters of the held-out text. */
  chars: number;
}

/**
 * A model's held-out loss in nats per token as bits per character: `natsPerToken * tokens / ln 2
 * / chars`, where `tokens` is how many tokens the mean was taken over and `chars` the number of
 * characters of the text those tokens encode.
 *
 * @example
 * ```ts
 * natsPerTokenToBitsPerChar(3.2, 150_000, 617_245); // ≈ 1.12
 * ```
 */
export function natsPerTokenToBitsPerChar(natsPerToken: number, tokens: number, chars: number): number {
  if (!(Number.isFinite(natsPerToken) && tokens > 0 && chars > 0)) {
    throw new TdbError("E_BAD_INPUT", "bits per character needs a finite loss and positive token and character counts", {
      value: { natsPerToken, tokens, chars },
      allowed: "finite natsPerToken, tokens > 0, chars > 0",
    });
  }
  return (natsPerToken * tokens) / Math.LN2 / chars;
}

function checkIds(name: string, s: ArrayLike<number>, vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new TdbError("E_BAD_OPTION", `vocabSize must be a positive integer, got ${String(vocabSize)}`, { value: vocabSize, allowed: ">= 1" });
  }
  for (let i = 0; i < s.length; i++) {
    const t = s[i]!;
    if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) {
      throw new TdbError("E_BAD_INPUT", `${name}[${i}] = ${t} is not a token id`, { value: t, allowed: `0..${vocabSize - 1}` });
    }
  }
}

function checkStreams(train: ArrayLike<number>, valid: ArrayLike<number>, vocabSize: number, validChars: number): void {
  checkIds("train", train, vocabSize);
  checkIds("valid", valid, vocabSize);
  if (train.length < 2 || valid.length < 2) {
    throw new TdbError("E_BAD_INPUT", "n-gram baselines need at least 2 tokens in the training and the held-out stream", {
      value: { train: train.length, valid: valid.length },
      allowed: ">= 2 tokens each",
    });
  }
  if (!(validChars > 0)) throw new TdbError("E_BAD_INPUT", "validChars must be positive", { value: validChars, allowed: "> 0" });
}

function result(nats: number, tokens: number, chars: number): HeldOutLoss {
  return { natsPerToken: nats / tokens, bitsPerChar: nats / Math.LN2 / chars, tokens, chars };
}

/**
 * Held-out cross-entropy of an add-k unigram model (see the module description).
 *
 * @example
 * ```ts
 * const u = unigramLoss(trainIds, validIds, 8192, validChars); // u.natsPerToken, u.bitsPerChar
 * ```
 */
export function unigramLoss(train: ArrayLike<number>, valid: ArrayLike<number>, vocabSize: number, validChars: number, opts: { k?: number } = {}): HeldOutLoss {
  checkStreams(train, valid, vocabSize, validChars);
  const k = opts.k ?? 1;
  if (!(k > 0 && Number.isFinite(k))) throw new TdbError("E_BAD_OPTION", `add-k needs k > 0, got ${String(k)}`, { value: k, allowed: "> 0" });
  const counts = new Float64Array(vocabSize);
  for (let i = 1; i < train.length; i++) counts[train[i]!]!++;
  const denom = train.length - 1 + k * vocabSize;
  let nats = 0;
  for (let i = 1; i < valid.length; i++) nats -= Math.log((counts[valid[i]!]! + k) / denom);
  return result(nats, valid.length - 1, validChars);
}

/** Ney's discount n1 / (n1 + 2 n2) from the values of a count table (0.75, the usual default, when n1 is 0). */
function neyDiscount(values: Iterable<number>): number {
  let n1 = 0;
  let n2 = 0;
  for (const c of values) {
    if (c === 1) n1++;
    else if (c === 2) n2++;
  }
  return n1 === 0 ? 0.75 : n1 / (n1 + 2 * n2);
}

/** A fitted interpolated Kneser-Ney bigram model (see the module description). */
export interface KneserNeyBigram {
  /** Vocabulary size. */
  readonly vocabSize: number;
  /** The bigram discount D2. */
  readonly d2: number;
  /** The continuation-unigram discount D1. */
  readonly d1: number;
  /** `P(w | v)`. */
  prob(v: number, w: number): number;
}

/**
 * Fits an interpolated Kneser-Ney bigram model on a token stream.
 *
 * @example
 * ```ts
 * const lm = kneserNeyBigram(trainIds, 8192);
 * lm.prob(eos, theId);
 * ```
 */
export function kneserNeyBigram(train: ArrayLike<number>, vocabSize: number): KneserNeyBigram {
  checkIds("train", train, vocabSize);
  const V = vocabSize;
  const pair = new Map<number, number>();
  for (let i = 1; i < train.length; i++) {
    const key = train[i - 1]! * V + train[i]!;
    pair.set(key, (pair.get(key) ?? 0) + 1);
  }
  const context = new Float64Array(V); // c(v): v as a context
  const follow = new Float64Array(V); // N1+(v •)
  const precede = new Float64Array(V); // N1+(• w)
  for (const [key, c] of pair) {
    const v = Math.floor(key / V);
    const w = key % V;
    context[v]! += c;
    follow[v]!++;
    precede[w]!++;
  }
  const types = pair.size; // N1+(• •)
  const d2 = neyDiscount(pair.values());
  const d1 = neyDiscount(Array.from(precede).filter((x) => x > 0));
  let seenContinuations = 0;
  for (const x of precede) if (x > 0) seenContinuations++;
  const pcont = (w: number) => Math.max(precede[w]! - d1, 0) / types + (d1 * seenContinuations) / types / V;
  return {
    vocabSize: V,
    d1,
    d2,
    prob(v: number, w: number): number {
      const cv = context[v]!;
      if (cv === 0) return pcont(w);
      const c = pair.get(v * V + w) ?? 0;
      return Math.max(c - d2, 0) / cv + ((d2 * follow[v]!) / cv) * pcont(w);
    },
  };
}

/**
 * Held-out cross-entropy of an interpolated Kneser-Ney bigram model fitted on `train` (see the
 * module description).
 *
 * @example
 * ```ts
 * const b = bigramLoss(trainIds, validIds, 8192, validChars); // b.natsPerToken, b.bitsPerChar
 * ```
 */
export function bigramLoss(train: ArrayLike<number>, valid: ArrayLike<number>, vocabSize: number, validChars: number): HeldOutLoss {
  checkStreams(train, valid, vocabSize, validChars);
  const lm = kneserNeyBigram(train, vocabSize);
  let nats = 0;
  for (let i = 1; i < valid.length; i++) nats -= Math.log(lm.prob(valid[i - 1]!, valid[i]!));
  return result(nats, valid.length - 1, validChars);
}

/** Unigram and bigram baselines on one split. */
export interface NgramBaselines {
  /** Add-one unigram. */
  unigram: HeldOutLoss;
  /** Interpolated Kneser-Ney bigram. */
  bigram: HeldOutLoss;
}

/**
 * Both baselines on the same split.
 *
 * @example
 * ```ts
 * const { unigram, bigram } = ngramBaselines(train, valid, 8192, validChars);
 * ```
 */
export function ngramBaselines(train: ArrayLike<number>, valid: ArrayLike<number>, vocabSize: number, validChars: number): NgramBaselines {
  return { unigram: unigramLoss(train, valid, vocabSize, validChars), bigram: bigramLoss(train, valid, vocabSize, validChars) };
}
