/**
 * Documents, document sources and held-out splits.
 *
 * A corpus is an async iterable of {@link CorpusDocument}s (`{ id, text }`): the Brown corpus
 * (`brown.ts`), plain text and JSONL (`text.ts`), or anything a caller writes. Held-out splits
 * are chosen by document, from a hash of the seed and the document id alone, so the choice is the
 * same on every run, platform and JavaScript engine, and does not depend on the order documents
 * arrive in.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** One document of a corpus: a stable id and its text. */
export interface CorpusDocument {
  /** Stable identifier (a file id such as `ca01`, `file.jsonl:17`, ...). */
  readonly id: string;
  /** The document's text. */
  readonly text: string;
}

/** A corpus: documents in a fixed order. */
export type DocumentSource<D extends CorpusDocument = CorpusDocument> = AsyncIterable<D> | Iterable<D>;

const UTF8 = new TextEncoder();

/**
 * 32-bit FNV-1a of the UTF-8 bytes of `text` (offset basis 0x811c9dc5, prime 0x01000193), as an
 * unsigned integer.
 *
 * @example
 * ```ts
 * fnv1a32("a"); // 0xe40c292c
 * ```
 */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of UTF8.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finalizer: spreads FNV-1a's weak low-order mixing over all bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The split hash of a document: `fmix32(fnv1a32(seed + ":" + id))`, an unsigned 32-bit integer.
 * Integer arithmetic only (`Math.imul`), so every platform computes the same value.
 *
 * @example
 * ```ts
 * splitHash("ca01", 0) / 2 ** 32; // a fixed number in [0, 1)
 * ```
 */
export function splitHash(id: string, seed: number): number {
  return fmix32(fnv1a32(`${seed}:${id}`));
}

/** How to choose held-out documents. */
export interface SplitOptions {
  /** Share of documents held out, in (0, 1). [default: 0.1] */
  fraction?: number;
  /** Seed mixed into the hash; another seed gives another split. [default: 0] */
  seed?: number;
}

function checkSplit(opts: SplitOptions): { fraction: number; seed: number } {
  const fraction = opts.fraction ?? 0.1;
  const seed = opts.seed ?? 0;
  if (!(typeof fraction === "number" && fraction > 0 && fraction < 1)) {
    throw new TdbError("E_BAD_OPTION", `held-out fraction must be a number in (0, 1), got ${String(fraction)}`, {
      value: fraction,
      allowed: "(0, 1)",
    });
  }
  if (!Number.isSafeInteger(seed)) {
    throw new TdbError("E_BAD_OPTION", `split seed must be a safe integer, got ${String(seed)}`, { value: seed, allowed: "an integer" });
  }
  return { fraction, seed };
}

/**
 * Streaming held-out test: true when `splitHash(id, seed) < fraction * 2^32`. Each document is
 * decided alone, so about `fraction` of a large corpus is held out (not exactly); use
 * {@link heldOutIds} when all ids are known in advance and the count must be exact.
 *
 * @example
 * ```ts
 * for await (const doc of jsonlDocuments(chunks)) if (!isHeldOut(doc.id, { fraction: 0.05 })) train(doc);
 * ```
 */
export function isHeldOut(id: string, opts: SplitOptions = {}): boolean {
  const { fraction, seed } = checkSplit(opts);
  return splitHash(id, seed) < fraction * 2 ** 32;
}

/**
 * The held-out documents among `entries`, exactly: within each `group` (all one group when
 * absent) of n documents, the `max(1, round(fraction * n))` with the smallest
 * {@link splitHash} (ties, which need a 32-bit collision, by id) are held out; a group of one
 * document stays in training. Stratifying by group (Brown's genres) keeps the held-out set's mix
 * of genres that of the corpus.
 *
 * @example
 * ```ts
 * const valid = heldOutIds(catalog.map((e) => ({ id: e.id, group: e.category })), { fraction: 0.1, seed: 0 });
 * ```
 */
export function heldOutIds(entries: Iterable<{ id: string; group?: string }>, opts: SplitOptions = {}): Set<string> {
  const { fraction, seed } = checkSplit(opts);
  const groups = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.id)) {
      throw new TdbError("E_BAD_INPUT", `document id ${JSON.stringify(e.id)} appears twice; a split needs unique ids`, {
        value: e.id,
        allowed: "unique document ids",
      });
    }
    seen.add(e.id);
    const g = e.group ?? "";
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(e.id);
  }
  const out = new Set<string>();
  for (const ids of groups.values()) {
    if (ids.length < 2) continue;
    const take = Math.max(1, Math.round(fraction * ids.length));
    const ranked = ids
      .map((id) => ({ id, h: splitHash(id, seed) }))
      .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const r of ranked.slice(0, take)) out.add(r.id);
  }
  return out;
}

/**
 * Number of Unicode code points of `text`: the "characters" of bits-per-character figures (for
 * ASCII text, its length).
 */
export function charCount(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/**
 * Collects a source's documents into an array.
 *
 * @example
 * ```ts
 * const docs = await collectDocuments(textDocuments([bytes], { id: "notes.txt", split: "paragraph" }));
 * ```
 */
export async function collectDocuments<D extends CorpusDocument>(source: DocumentSource<D>): Promise<D[]> {
  const out: D[] = [];
  for await (const d of source) out.push(d);
  return out;
}
