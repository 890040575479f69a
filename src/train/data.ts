/**
 * Batches from a token stream: non-overlapping windows of `seqLen + 1` tokens, in a seeded
 * shuffled order per epoch. The order of epoch `e` depends only on the seed and `e`, so a data
 * position is two integers (epoch, cursor) and resuming continues the same order.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";
import type { TokenArray } from "./config.js";

/** A data position: epoch and the next window's index in that epoch's order. */
export interface DataPosition {
  epoch: number;
  cursor: number;
}

/** One batch as fed to the loss graph (buffers reused between batches). */
export interface Batch {
  /** int64 `[rows, seqLen]`. */
  inputIds: BigInt64Array;
  /** int64 `[rows, seqLen]`. */
  targets: BigInt64Array;
  /** float `[rows, seqLen]`: mask / (number of counted targets), so that the loss is their mean. */
  weights: Float32Array;
  /** Rows in this batch. */
  rows: number;
  /** Targets that count in the loss. */
  count: number;
}

/** Checks token ids against the vocabulary (`E_BAD_INPUT` naming the first bad one). */
export function checkTokens(tokens: TokenArray, vocabSize: number, what: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!(t >= 0 && t < vocabSize)) {
      throw new TdbError("E_BAD_INPUT", `${what}[${i}] = ${t} is not a token id of the model's vocabulary`, { value: t, allowed: `0..${vocabSize - 1}` });
    }
  }
}

/** Writes window `w` of `tokens` into row `r` of `b`; returns the number of counted targets. */
function fillRow(b: Batch, r: number, tokens: TokenArray, mask: Uint8Array | undefined, w: number, seqLen: number): number {
  const start = w * seqLen;
  const o = r * seqLen;
  let count = 0;
  for (let t = 0; t < seqLen; t++) {
    b.inputIds[o + t] = BigInt(tokens[start + t]!);
    b.targets[o + t] = BigInt(tokens[start + t + 1]!);
    const on = !mask || mask[start + t + 1] !== 0;
    b.weights[o + t] = on ? 1 : 0;
    if (on) count++;
  }
  return count;
}

function newBatch(rows: number, seqLen: number): Batch {
  return { inputIds: new BigInt64Array(rows * seqLen), targets: new BigInt64Array(rows * seqLen), weights: new Float32Array(rows * seqLen), rows, count: 0 };
}

function normalize(b: Batch): Batch {
  if (b.count > 0) {
    const inv = 1 / b.count;
    for (let i = 0; i < b.weights.length; i++) b.weights[i] = b.weights[i]! * inv;
  }
  return b;
}

/** Number of whole `seqLen + 1` windows (sharing no target) in `n` tokens. */
export function windowCount(n: number, seqLen: number): number {
  return n < seqLen + 1 ? 0 : Math.floor((n - 1) / seqLen);
}

/** Training batches in a seeded order (see the module comment). */
export class WindowSampler {
  private readonly windows: number;
  private order: Int32Array | undefined;
  private orderEpoch = -1;
  private readonly batch: Batch;
  /** Current position. */
  pos: DataPosition = { epoch: 0, cursor: 0 };

  /** Batches of `rows` windows of `seqLen` tokens from `tokens`. */
  constructor(
    private readonly tokens: TokenArray,
    private readonly mask: Uint8Array | undefined,
    private readonly seqLen: number,
    private readonly rows: number,
    private readonly seed: number,
  ) {
    this.windows = windowCount(tokens.length, seqLen);
    if (this.windows < rows) {
      throw new TdbError("E_BAD_INPUT", `the training tokens hold ${this.windows} windows of ${seqLen + 1} tokens, fewer than one batch of ${rows}`, {
        value: tokens.length,
        allowed: `>= ${rows * seqLen + 1} tokens`,
      });
    }
    if (mask && mask.length !== tokens.length) {
      throw new TdbError("E_BAD_INPUT", `the training mask has ${mask.length} entries for ${tokens.length} tokens`, { value: mask.length, allowed: tokens.length });
    }
    this.batch = newBatch(rows, seqLen);
  }

  /** The window order of `epoch`: a Fisher-Yates shuffle seeded by (seed, epoch). */
  private orderOf(epoch: number): Int32Array {
    if (this.orderEpoch === epoch && this.order) return this.order;
    const rng = new Rng((Math.imul(this.seed | 0, 0x2c1b3c6d) ^ Math.imul(epoch + 1, 0x297a2d39)) >>> 0);
    const o = new Int32Array(this.windows);
    for (let i = 0; i < o.length; i++) o[i] = i;
    for (let i = o.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = o[i]!;
      o[i] = o[j]!;
      o[j] = t;
    }
    this.order = o;
    this.orderEpoch = epoch;
    return o;
  }

  /** The next batch (its buffers are reused by the following call). */
  next(): Batch {
    const b = this.batch;
    b.count = 0;
    for (let r = 0; r < this.rows; r++) {
      if (this.pos.cursor >= this.windows) this.pos = { epoch: this.pos.epoch + 1, cursor: 0 };
      const w = this.orderOf(this.pos.epoch)[this.pos.cursor++]!;
      b.count += fillRow(b, r, this.tokens, this.mask, w, this.seqLen);
    }
    return normalize(b);
  }
}

/**
 * Evaluation batches: the first `maxBatches * rows` windows of `tokens`, in order. Every batch
 * has `rows` rows (the graphs have static shapes); rows past the last window have zero weight.
 */
export function* evalBatches(tokens: TokenArray, mask: Uint8Array | undefined, seqLen: number, rows: number, maxBatches: number): Generator<Batch> {
  const windows = Math.min(windowCount(tokens.length, seqLen), maxBatches * rows);
  for (let w0 = 0; w0 < windows; w0 += rows) {
    const n = Math.min(rows, windows - w0);
    const b = newBatch(rows, seqLen);
    for (let r = 0; r < n; r++) b.count += fillRow(b, r, tokens, mask, w0 + r, seqLen);
    yield normalize(b);
  }
}
