/**
 * Byte-level BPE tokenizers, GPT-2 style: training, encoding, decoding, and the Hugging Face
 * `tokenizer.json` / `tokenizer_config.json` that transformers.js loads.
 *
 * - Pre-tokenization: GPT-2's regex (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 *   ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), the one transformers.js's `ByteLevel` pre-tokenizer uses.
 *   Merges never cross pre-token boundaries.
 * - Bytes: each pre-token's UTF-8 bytes are shown as GPT-2's byte characters (printable bytes as
 *   themselves, the others as U+0100 + n, so a space is `Ġ`). Token ids 0..255 are the byte
 *   tokens in GPT-2's order (the printable bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` first, then the
 *   others), so id i is the same byte as in GPT-2.
 * - Training ({@link trainBpe}): count the unique pre-tokens; then repeatedly merge the adjacent
 *   pair of tokens with the highest count, summed over pre-tokens weighted by their counts. Ties
 *   go to the pair with the smaller first token id, then the smaller second token id (ids are
 *   assigned in creation order, so the choice is deterministic). A merge rewrites every
 *   occurrence in a pre-token left to right without overlaps (`a a a` with merge `a a` becomes
 *   `aa a`). Pair counts are updated incrementally, only in the pre-tokens that hold the merged
 *   pair, with a lazily corrected max-heap. Training stops when the vocabulary (bytes, merged
 *   tokens, end-of-text) has `vocabSize` tokens or no pair occurs `minFrequency` times.
 *   A merge whose result already is a token (the same bytes reached through another split) adds
 *   the merge rule but no new id, as Hugging Face's trainer does.
 * - The end-of-text token (`<|endoftext|>`) comes last (id `vocabSize - 1`), as in GPT-2.
 * - Encoding ({@link BpeTokenizer.encode}) applies merges as transformers.js and Hugging Face
 *   tokenizers do: in a pre-token, repeatedly merge the adjacent pair of lowest merge rank
 *   (leftmost on ties) until no pair has a rank. Results are cached per pre-token, so bulk
 *   encoding costs about one regex pass over the text.
 *
 * @module
 */
import { BYTE_TO_CHAR, GPT2_SPLIT } from "../runtime/bpe-tokenizer.js";
import { gpt2TokenizerConfig } from "../synthetic/tokenizer-config.js";
import { TdbError } from "../base/errors.js";

/** The end-of-text token's text. */
export const END_OF_TEXT = "<|endoftext|>";

/** GPT-2's pre-tokenizer pattern (global, unicode); the one the runtime's tokenizer uses. */
export const GPT2_PRETOKENIZE = GPT2_SPLIT;

/** Largest vocabulary: ids must fit the `Uint16Array` token streams. */
export const MAX_BPE_VOCAB = 65536;

/**
 * Byte values in GPT-2's token-id order (printable bytes first, then the others: ascending by the
 * character each maps to), and each byte's character.
 */
function gpt2Bytes(): { order: number[]; char: readonly string[] } {
  const order = Array.from({ length: 256 }, (_, b) => b).sort((a, b) => BYTE_TO_CHAR[a]!.charCodeAt(0) - BYTE_TO_CHAR[b]!.charCodeAt(0));
  return { order, char: BYTE_TO_CHAR };
}

const BYTES = gpt2Bytes();
/** Token id of each byte value. */
const BYTE_ID = new Uint16Array(256);
BYTES.order.forEach((b, id) => (BYTE_ID[b] = id));
/** Byte value of each byte character (by char code), for decoding. */
const CHAR_BYTE = new Map<string, number>(BYTES.char.map((c, b) => [c, b]));

/**
 * GPT-2's byte-to-character map: the character byte `b` is shown as in byte-level BPE tokens.
 *
 * @example
 * ```ts
 * byteChar(32); // "Ġ"
 * ```
 */
export function byteChar(b: number): string {
  return BYTES.char[b]!;
}

const UTF8 = new TextEncoder();

/** The pre-tokens of `text`, by {@link GPT2_PRETOKENIZE}. */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_PRETOKENIZE) ?? [];
}

/** A trained (or loaded) byte-level BPE: everything needed to encode, decode and save it. */
export interface BpeModel {
  /** Token texts in byte-level form (`Ġthe`), by id; the last is the end-of-text token. */
  readonly tokens: readonly string[];
  /** Merge rules in rank order, as pairs of token ids. */
  readonly merges: readonly (readonly [number, number])[];
  /** Id of the end-of-text token (`tokens.length - 1`). */
  readonly eosId: number;
}

/** Options of {@link trainBpe}. */
export interface BpeTrainOptions {
  /** Vocabulary size including the 256 byte tokens and the end-of-text token, 257..65536. */
  vocabSize: number;
  /** A pair occurring fewer times (weighted by pre-token counts) is never merged. [default: 2] */
  minFrequency?: number;
  /** Text of the end-of-text token. [default: "<|endoftext|>"] */
  endOfText?: string;
}

/** Counts of unique pre-tokens: the input of BPE training. */
export class PreTokenCounts {
  /** Pre-token text -> number of occurrences. */
  readonly counts = new Map<string, number>();

  /** Adds the pre-tokens of `text`. */
  add(text: string): void {
    const c = this.counts;
    for (const m of text.matchAll(GPT2_PRETOKENIZE)) {
      const p = m[0];
      c.set(p, (c.get(p) ?? 0) + 1);
    }
  }
}

/** A max-heap of (count, pair key): higher count first, then the smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

const KEY = 65536;

function checkTrainOptions(opts: BpeTrainOptions): { vocabSize: number; minFrequency: number; endOfText: string } {
  const { vocabSize } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > MAX_BPE_VOCAB) {
    throw new TdbError("E_BAD_OPTION", `BPE vocabSize must be an integer in [257, ${MAX_BPE_VOCAB}], got ${String(vocabSize)}`, {
      value: vocabSize,
      allowed: `257..${MAX_BPE_VOCAB}`,
    });
  }
  const minFrequency = opts.minFrequency ?? 2;
  if (!(Number.isFinite(minFrequency) && minFrequency >= 1)) {
    throw new TdbError("E_BAD_OPTION", `BPE minFrequency must be a number >= 1, got ${String(minFrequency)}`, { value: minFrequency, allowed: ">= 1" });
  }
  const endOfText = opts.endOfText ?? END_OF_TEXT;
  if (typeof endOfText !== "string" || endOfText === "") {
    throw new TdbError("E_BAD_OPTION", "BPE endOfText must be a non-empty string", { value: endOfText, allowed: "a non-empty string" });
  }
  return { vocabSize, minFrequency, endOfText };
}

/**
 * Learns a byte-level BPE from counted pre-tokens (see the module description for the rules).
 *
 * @example
 * ```ts
 * const counts = new PreTokenCounts();
 * for (const text of texts) counts.add(text);
 * const model = trainBpeFromCounts(counts, { vocabSize: 8192 });
 * ```
 */
export function trainBpeFromCounts(counts: PreTokenCounts, opts: BpeTrainOptions): BpeModel {
  const { vocabSize, minFrequency, endOfText } = checkTrainOptions(opts);
  const tokens: string[] = BYTES.order.map((b) => BYTES.char[b]!);
  const tokenId = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const merges: [number, number][] = [];

  // Words: the unique pre-tokens as token-id arrays, with their counts.
  const words: Int32Array[] = [];
  const wordCount: number[] = [];
  for (const [text, count] of counts.counts) {
    const bytes = UTF8.encode(text);
    if (bytes.length < 2) continue; // nothing to merge, never changes a pair count
    const w = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) w[i] = BYTE_ID[bytes[i]!]!;
    words.push(w);
    wordCount.push(count);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1, onlyWith: number) => {
    const w = words[wi]!;
    const c = wordCount[wi]! * sign;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i]! * KEY + w[i + 1]!;
      const n = (pairCount.get(key) ?? 0) + c;
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign > 0 && (onlyWith < 0 || w[i] === onlyWith || w[i + 1] === onlyWith)) {
        let s = where.get(key);
        if (!s) where.set(key, (s = new Set()));
        s.add(wi);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1, -1);

  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  // Bytes and end-of-text are tokens too.
  while (tokens.length + 1 < vocabSize && heap.size > 0) {
    const [c, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== c) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (c < minFrequency) break;
    const a = Math.floor(key / KEY);
    const b = key % KEY;
    const text = tokens[a]! + tokens[b]!;
    let id = tokenId.get(text);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(text);
      tokenId.set(text, id);
    }
    merges.push([a, b]);

    const affected = where.get(key);
    where.delete(key);
    const touched = new Set<number>();
    for (const wi of affected ?? []) {
      const w = words[wi]!;
      let found = false;
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === a && w[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue; // stale entry: an earlier merge removed the pair from this word
      addPairs(wi, -1, -1);
      const out = new Int32Array(w.length);
      let n = 0;
      for (let i = 0; i < w.length; ) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out[n++] = id;
          i += 2;
        } else {
          out[n++] = w[i++]!;
        }
      }
      words[wi] = out.subarray(0, n);
      addPairs(wi, 1, id);
      const nw = words[wi]!;
      for (let i = 0; i + 1 < nw.length; i++) if (nw[i] === id || nw[i + 1] === id) touched.add(nw[i]! * KEY + nw[i + 1]!);
    }
    // Pairs with the new token are the only ones whose counts grew: give them heap entries.
    // Every other pair only lost counts; its stale entry is corrected when popped.
    for (const k of touched) {
      const n = pairCount.get(k);
      if (n !== undefined && n > 0) heap.push(n, k);
    }
  }
  tokens.push(endOfText);
  return { tokens, merges, eosId: tokens.length - 1 };
}

/**
 * Trains a byte-level BPE on documents' texts (each text pre-tokenized on its own: no merge
 * crosses a document boundary).
 *
 * @example
 * ```ts
 * const model = await trainBpe(brownCorpus({ split: "train" }), { vocabSize: 8192 });
 * const tok = new BpeTokenizer(model);
 * ```
 */
export async function trainBpe(
  texts: AsyncIterable<string | { text: string }> | Iterable<string | { text: string }>,
  opts: BpeTrainOptions,
): Promise<BpeModel> {
  checkTrainOptions(opts);
  const counts = new PreTokenCounts();
  for await (const t of texts) counts.add(typeof t === "string" ? t : t.text);
  return trainBpeFromCounts(counts, opts);
}

/** Hugging Face tokenizer files, as JSON-serializable objects. */
export interface TokenizerFiles {
  /** Contents of `tokenizer.json`. */
  tokenizer: Record<string, unknown>;
  /** Contents of `tokenizer_config.json`. */
  tokenizerConfig: Record<string, unknown>;
}

/**
 * Encoder and decoder of a {@link BpeModel}, and its Hugging Face files.
 *
 * @example
 * ```ts
 * const tok = new BpeTokenizer(model);
 * tok.decode(tok.encode("Hello world")) === "Hello world"; // true
 * ```
 */
export class BpeTokenizer {
  /** The model. */
  readonly model: BpeModel;
  /** Vocabulary size (the end-of-text token included). */
  readonly vocabSize: number;
  /** Id of the end-of-text token. */
  readonly eosId: number;
  /** Merge rank by pair key. */
  private readonly rank = new Map<number, number>();
  /** Merged token id by pair key. */
  private readonly result = new Map<number, number>();
  private readonly cache = new Map<string, Uint16Array>();
  /** Bytes of each token (the end-of-text token: its text's UTF-8). */
  private readonly tokenBytes: Uint8Array[];

  /** Checks `model` (ids in range, merges naming tokens whose texts concatenate) and indexes it. */
  constructor(model: BpeModel) {
    const n = model.tokens.length;
    if (n < 257 || n > MAX_BPE_VOCAB || model.eosId !== n - 1) {
      throw new TdbError("E_BAD_INPUT", `a BPE model needs 257..${MAX_BPE_VOCAB} tokens with end-of-text last, got ${n} (eos ${model.eosId})`, {
        value: { tokens: n, eosId: model.eosId },
        allowed: "tokens 0..255 the bytes, end-of-text last",
      });
    }
    const ids = new Map<string, number>();
    model.tokens.forEach((t, i) => ids.set(t, i));
    model.merges.forEach(([a, b], r) => {
      const merged = a < n - 1 && b < n - 1 ? ids.get(model.tokens[a]! + model.tokens[b]!) : undefined;
      if (merged === undefined || merged === model.eosId) {
        throw new TdbError("E_BAD_INPUT", `BPE merge ${r} (${a}, ${b}) does not produce a token of the vocabulary`, {
          value: [a, b],
          allowed: "pairs of token ids whose concatenation is a token",
        });
      }
      const key = a * KEY + b;
      if (!this.rank.has(key)) {
        this.rank.set(key, r);
        this.result.set(key, merged);
      }
    });
    this.model = model;
    this.vocabSize = n;
    this.eosId = model.eosId;
    this.tokenBytes = model.tokens.map((t, i) =>
      i === model.eosId ? UTF8.encode(t) : Uint8Array.from(Array.from(t, (ch) => CHAR_BYTE.get(ch) ?? 0x3f)),
    );
  }

  /** Token ids of one pre-token (cached). */
  private encodePiece(piece: string): Uint16Array {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const bytes = UTF8.encode(piece);
    let w: number[] = Array.from(bytes, (b) => BYTE_ID[b]!);
    while (w.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < w.length; i++) {
        const r = this.rank.get(w[i]! * KEY + w[i + 1]!);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const merged = this.result.get(w[best]! * KEY + w[best + 1]!)!;
      w = [...w.slice(0, best), merged, ...w.slice(best + 2)];
    }
    const out = Uint16Array.from(w);
    if (this.cache.size < 1 << 20) this.cache.set(piece, out);
    return out;
  }

  /**
   * Token ids of `text`. The text is plain text: `<|endoftext|>` in it is encoded as its
   * characters, never as the special token (join documents with {@link eosId} instead).
   */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const m of text.matchAll(GPT2_PRETOKENIZE)) for (const id of this.encodePiece(m[0])) out.push(id);
    return out;
  }

  /**
   * Documents as one token stream, each preceded by the end-of-text token:
   * `eos d1 eos d2 ... eos dn`.
   *
   * @example
   * ```ts
   * const ids = tok.encodeDocuments(["First doc.", "Second doc."]); // Uint16Array [eos, ..., eos, ...]
   * ```
   */
  encodeDocuments(texts: Iterable<string>): Uint16Array {
    if (this.vocabSize > MAX_BPE_VOCAB) throw new TdbError("E_BAD_INPUT", "vocabulary too large for Uint16Array", { value: this.vocabSize, allowed: `<= ${MAX_BPE_VOCAB} tokens` });
    const parts: Uint16Array[] = [];
    let total = 0;
    let chunk: number[] = [];
    const flush = () => {
      const a = Uint16Array.from(chunk);
      parts.push(a);
      total += a.length;
      chunk = [];
    };
    for (const text of texts) {
      chunk.push(this.eosId);
      for (const m of text.matchAll(GPT2_PRETOKENIZE)) for (const id of this.encodePiece(m[0])) chunk.push(id);
      if (chunk.length > 1 << 16) flush();
    }
    flush();
    const out = new Uint16Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** The text of token ids (the end-of-text token as its text); invalid UTF-8 becomes U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    const chunks: Uint8Array[] = [];
    let len = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]!];
      if (!b) {
        throw new TdbError("E_INDEX_RANGE", `token id ${ids[i]} is outside the vocabulary`, { value: ids[i], allowed: `0..${this.vocabSize - 1}` });
      }
      chunks.push(b);
      len += b.length;
    }
    const all = new Uint8Array(len);
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    return new TextDecoder().decode(all);
  }

  /**
   * `tokenizer.json` (a `BPE` model with `ByteLevel` pre-tokenizer, post-processor and decoder,
   * the end-of-text token as a special added token) and `tokenizer_config.json`
   * (`GPT2Tokenizer`; bos = eos = unk = end-of-text; no BOS added), as the hub's GPT-2 has them.
   *
   * @example
   * ```ts
   * const { tokenizer, tokenizerConfig } = tok.toHuggingFace({ modelMaxLength: 128 });
   * ```
   */
  toHuggingFace(options: { modelMaxLength?: number } = {}): TokenizerFiles {
    const { tokens, merges, eosId } = this.model;
    const eos = tokens[eosId]!;
    const vocab: Record<string, number> = {};
    tokens.forEach((t, i) => (vocab[t] = i));
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
    const tokenizer = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [{ id: eosId, content: eos, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: merges.map(([a, b]) => `${tokens[a]!} ${tokens[b]!}`),
      },
    };
    const tokenizerConfig = gpt2TokenizerConfig(eos, eosId, options.modelMaxLength);
    return { tokenizer, tokenizerConfig };
  }
}
