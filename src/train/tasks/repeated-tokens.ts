/**
 * The toy induction task: sequences of random tokens in which a segment repeats, so that the
 * only way to predict the repeated half is to copy from context (a previous-token head in one
 * layer and an induction head in the next).
 *
 * Each sequence of `seqLen` tokens is
 *
 * ```text
 * BOS, filler (a tokens), x_1 .. x_k, x_1 .. x_k, filler (to seqLen)
 * ```
 *
 * with `k` drawn uniformly from `[minRepeat, maxRepeat]`, the offset `a` uniformly from the
 * positions that leave room, the segment's tokens distinct, and the filler drawn from the tokens
 * not in the segment. Because `k` and `a` vary, neither the position of the repeat nor its
 * distance to the first occurrence is fixed: a positional shortcut cannot predict it, copying
 * can. Token `x_j` of the repeat (j >= 2) follows `x_{j-1}`, whose earlier occurrence is followed
 * by `x_j`: those are the copy targets. The first repeated token is unpredictable (the token
 * before it never occurred earlier), and so is the filler.
 *
 * Optionally ({@link RepeatedTokensOptions.trigram}) the filler follows a fixed seeded trigram
 * table: with that probability the next filler token is `table[t_{i-2}][t_{i-1}]`. Predicting it
 * needs the token before the current one at the current position, which is what a
 * previous-token head provides; training on those targets too makes the previous-token head
 * exact (on uniform filler alone a model may copy through heads that look 2-4 tokens back).
 *
 * Deterministic in the seed (the project's {@link Rng}), so that scripts reproduce.
 *
 * @module
 */
import { TdbError } from "../../base/errors.js";
import { Rng } from "../../base/random.js";

/** Options of {@link repeatedTokenSequences} and {@link repeatedTokensData}. */
export interface RepeatedTokensOptions {
  /** Vocabulary size, BOS included: content tokens are every id except {@link RepeatedTokensOptions.bosId}. */
  vocabSize: number;
  /** Id of the BOS token that starts each sequence. Default 0. */
  bosId?: number;
  /** Tokens per sequence, BOS included. */
  seqLen: number;
  /** Shortest repeated segment. Default 4. */
  minRepeat?: number;
  /** Longest repeated segment. Default `floor((seqLen - 1) / 2)`. */
  maxRepeat?: number;
  /** Number of sequences. */
  count: number;
  /** Seed. */
  seed: number;
  /** Probability that a filler token follows the trigram table instead of being uniform. Default 0. */
  trigram?: number;
  /** Seed of the trigram table; keep it equal across training and held-out data. Default 0. */
  tableSeed?: number;
}

/** One sequence of the task and where its segment and repeat are. */
export interface RepeatedSequence {
  /** The `seqLen` token ids, `tokens[0]` = BOS. */
  tokens: number[];
  /** Index of the first occurrence's first token (`x_1`). */
  first: number;
  /** Index of the repeat's first token (`first + length`). */
  repeat: number;
  /** Segment length `k`. */
  length: number;
}

interface Resolved {
  vocabSize: number;
  bosId: number;
  seqLen: number;
  minRepeat: number;
  maxRepeat: number;
  count: number;
  seed: number;
  trigram: number;
  tableSeed: number;
}

function resolve(o: RepeatedTokensOptions): Resolved {
  const int = (name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new TdbError("E_BAD_OPTION", `repeated tokens: ${name} must be an integer in [${min}, ${max}], got ${String(v)}`, { value: v, allowed: [min, max] });
    }
    return v;
  };
  const seqLen = int("seqLen", o.seqLen, 5);
  const maxFit = Math.floor((seqLen - 1) / 2);
  const minRepeat = int("minRepeat", o.minRepeat ?? 4, 2, maxFit);
  const maxRepeat = int("maxRepeat", o.maxRepeat ?? maxFit, minRepeat, maxFit);
  // Distinct segment tokens plus at least one other token for the filler.
  const vocabSize = int("vocabSize", o.vocabSize, maxRepeat + 2);
  const bosId = int("bosId", o.bosId ?? 0, 0, vocabSize - 1);
  const count = int("count", o.count, 1);
  const seed = int("seed", o.seed, 0, 2 ** 32 - 1);
  const trigram = o.trigram ?? 0;
  if (typeof trigram !== "number" || !(trigram >= 0 && trigram < 1)) {
    throw new TdbError("E_BAD_OPTION", `repeated tokens: trigram must be a probability in [0, 1), got ${String(trigram)}`, { value: trigram, allowed: "[0, 1)" });
  }
  const tableSeed = int("tableSeed", o.tableSeed ?? 0, 0, 2 ** 32 - 1);
  return { vocabSize, bosId, seqLen, minRepeat, maxRepeat, count, seed, trigram, tableSeed };
}

/**
 * `count` sequences of the task (see the module comment), deterministic in `seed`.
 *
 * @example
 * ```ts
 * const seqs = repeatedTokenSequences({ vocabSize: 64, seqLen: 48, count: 2, seed: 1 });
 * seqs[0].tokens.slice(seqs[0].first, seqs[0].repeat); // equals the next `length` tokens
 * ```
 */
export function repeatedTokenSequences(options: RepeatedTokensOptions): RepeatedSequence[] {
  const o = resolve(options);
  const rng = new Rng(o.seed);
  const content: number[] = [];
  for (let t = 0; t < o.vocabSize; t++) if (t !== o.bosId) content.push(t);
  const out: RepeatedSequence[] = [];
  const inSegment = new Uint8Array(o.vocabSize);
  const table = o.trigram > 0 ? trigramTable(o) : undefined;
  for (let s = 0; s < o.count; s++) {
    const k = o.minRepeat + rng.int(o.maxRepeat - o.minRepeat + 1);
    const first = 1 + rng.int(o.seqLen - 2 * k); // 1 .. seqLen - 2k
    // k distinct tokens: a partial Fisher-Yates shuffle of the content tokens.
    const pool = content.slice();
    for (let i = 0; i < k; i++) {
      const j = i + rng.int(pool.length - i);
      const t = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = t;
    }
    const segment = pool.slice(0, k);
    const filler = pool.slice(k);
    inSegment.fill(0);
    for (const t of segment) inSegment[t] = 1;
    const tokens = new Array<number>(o.seqLen);
    tokens[0] = o.bosId;
    for (let j = 0; j < k; j++) {
      tokens[first + j] = segment[j]!;
      tokens[first + k + j] = segment[j]!;
    }
    for (let i = 1; i < o.seqLen; i++) {
      if (i >= first && i < first + 2 * k) continue;
      // Two random draws per token whatever the branch, so that the stream of draws is fixed.
      const u = rng.uniform();
      const uniform = filler[rng.int(filler.length)]!;
      const next = table && i >= 2 && u < o.trigram ? table[tokens[i - 2]! * o.vocabSize + tokens[i - 1]!]! : -1;
      tokens[i] = next >= 0 && !inSegment[next] ? next : uniform;
    }
    out.push({ tokens, first, repeat: first + k, length: k });
  }
  return out;
}

/** The seeded trigram table: `table[a * vocabSize + b]` is the filler token that follows `a, b` (never BOS). */
function trigramTable(o: Resolved): Int32Array {
  const rng = new Rng(o.tableSeed ^ 0x5f3759df);
  const t = new Int32Array(o.vocabSize * o.vocabSize);
  for (let i = 0; i < t.length; i++) {
    let c = rng.int(o.vocabSize - 1);
    if (c >= o.bosId) c++;
    t[i] = c;
  }
  return t;
}

/**
 * The positions `p` of a sequence whose next token `tokens[p + 1]` is a copy target: the
 * repeat's tokens `x_2 .. x_k` (predicted at positions `repeat .. repeat + k - 2`).
 */
export function copyPositions(s: RepeatedSequence): number[] {
  return Array.from({ length: s.length - 1 }, (_, j) => s.repeat + j);
}

/** The task as training data: one token stream and its loss mask (see {@link repeatedTokensData}). */
export interface RepeatedTokensData {
  /** The sequences one after another, then one BOS (so that the last window is whole). */
  tokens: Int32Array;
  /** 1 at the copy targets (`x_2 .. x_k` of each repeat), 0 elsewhere. */
  mask: Uint8Array;
  /**
   * The loss mask to train with: {@link RepeatedTokensData.mask}, plus, when the filler follows
   * the trigram table, every filler token from a sequence's third position on.
   */
  lossMask: Uint8Array;
  /** The sequences. */
  sequences: RepeatedSequence[];
}

/**
 * The sequences as one stream for the trainer (`TrainData.train` with `trainMask`): with the
 * trainer's `seqLen` equal to the sequence length, window `w` holds sequence `w` as inputs, and
 * the mask keeps only the copy targets in the loss.
 *
 * @example
 * ```ts
 * const d = repeatedTokensData({ vocabSize: 64, seqLen: 48, count: 4096, seed: 1 });
 * await train({ model, data: { train: d.tokens, trainMask: d.mask }, seqLen: 48, ... });
 * ```
 */
export function repeatedTokensData(options: RepeatedTokensOptions): RepeatedTokensData {
  const o = resolve(options);
  const sequences = repeatedTokenSequences(options);
  const tokens = new Int32Array(o.count * o.seqLen + 1);
  const mask = new Uint8Array(tokens.length);
  const lossMask = new Uint8Array(tokens.length);
  sequences.forEach((s, i) => {
    const base = i * o.seqLen;
    tokens.set(s.tokens, base);
    for (const p of copyPositions(s)) mask[base + p + 1] = 1;
    if (o.trigram > 0) {
      for (let p = 2; p < o.seqLen; p++) if (p < s.first || p >= s.repeat + s.length) lossMask[base + p] = 1;
    }
  });
  for (let i = 0; i < mask.length; i++) lossMask[i] = lossMask[i]! | mask[i]!;
  tokens[tokens.length - 1] = o.bosId;
  return { tokens, mask, lossMask, sequences };
}

/** The BOS token's text in {@link repeatedTokensTokenizer}. */
export const TOY_BOS = "<|endoftext|>";

/**
 * The word of each content token of a toy vocabulary of `vocabSize` ids (BOS at 0): `a`..`z`,
 * `A`..`Z`, `0`..`9`, then `t62`, `t63`, ... ; index 0 is {@link TOY_BOS}.
 */
export function toyVocabulary(vocabSize: number): string[] {
  if (!Number.isInteger(vocabSize) || vocabSize < 2) {
    throw new TdbError("E_BAD_OPTION", `a toy vocabulary needs an integer size >= 2, got ${String(vocabSize)}`, { value: vocabSize, allowed: ">= 2" });
  }
  const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return Array.from({ length: vocabSize }, (_, i) => (i === 0 ? TOY_BOS : i <= chars.length ? chars[i - 1]! : `t${i}`));
}

/**
 * Hugging Face tokenizer files for the toy vocabulary: a word-level model over whitespace-split
 * words (`"a b c a b"`), id 0 = {@link TOY_BOS} (BOS, EOS and the unknown word), as
 * `tokenizer.json` and `tokenizer_config.json` texts that transformers.js loads.
 *
 * @example
 * ```ts
 * const tok = repeatedTokensTokenizer(63, 64);
 * await train({ ..., tokenizer: { tokenizerJson: tok.tokenizerJson, tokenizerConfigJson: tok.tokenizerConfigJson } });
 * ```
 */
export function repeatedTokensTokenizer(vocabSize: number, modelMaxLength: number): { tokenizerJson: string; tokenizerConfigJson: string; vocabulary: string[] } {
  const words = toyVocabulary(vocabSize);
  const vocab: Record<string, number> = {};
  words.forEach((w, i) => {
    vocab[w] = i;
  });
  const special = { id: 0, content: TOY_BOS, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special],
    normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: TOY_BOS },
  };
  const config = {
    added_tokens_decoder: { "0": { content: TOY_BOS, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true } },
    bos_token: TOY_BOS,
    clean_up_tokenization_spaces: false,
    eos_token: TOY_BOS,
    model_max_length: modelMaxLength,
    pad_token: null,
    tokenizer_class: "PreTrainedTokenizerFast",
    unk_token: TOY_BOS,
  };
  return { tokenizerJson: JSON.stringify(tokenizer, null, 1) + "\n", tokenizerConfigJson: JSON.stringify(config, null, 2) + "\n", vocabulary: words };
}
