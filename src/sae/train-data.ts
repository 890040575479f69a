/**
 * Training rows for {@link trainSae}: from one Float32Array (seeded shuffles, epoch after epoch)
 * or from an async iterable of batches through a shuffled buffer of bounded size.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";

/** Activations given directly: rows x d_in, or a stream of such batches. */
export type SaeActivations = Float32Array | AsyncIterable<Float32Array> | Iterable<Float32Array>;

/**
 * Where a source stands, for checkpoints: an array source's epoch and the next row's index in
 * that epoch's order, or the number of rows a stream source has read from its stream.
 */
export type RowSourcePosition = { epoch: number; cursor: number } | { streamRows: number };

/** A source of training batches. */
export interface RowSource {
  /** Fills `out` (batch x d) with the next batch; false when the data is exhausted. */
  next(out: Float32Array): Promise<boolean>;
  /** The current position (see {@link RowSourcePosition}). */
  position(): RowSourcePosition;
}

/** The row order of `epoch` over `rows` rows: a Fisher-Yates shuffle seeded by (seed, epoch) alone. */
export function epochOrder(rows: number, seed: number, epoch: number): Uint32Array {
  const rng = new Rng((Math.imul(seed | 0, 0x2c1b3c6d) ^ Math.imul(epoch + 1, 0x297a2d39)) >>> 0);
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  for (let i = rows - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** The index of the first row of `data` (d wide) holding a NaN or infinity, or -1. */
export function firstNonFiniteRow(data: Float32Array, d: number): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) return Math.floor(i / d);
  }
  return -1;
}

function nonFinite(row: number): TdbError {
  return new TdbError("E_NON_FINITE", `activation row ${row} holds a NaN or infinite value`, { value: row, allowed: "finite activations" });
}

function checkChunk(chunk: unknown, d: number, where: string): Float32Array {
  if (!(chunk instanceof Float32Array)) {
    throw new TdbError("E_BAD_INPUT", `${where} must be a Float32Array, got ${Object.prototype.toString.call(chunk)}`, {
      value: Object.prototype.toString.call(chunk),
      allowed: "Float32Array",
    });
  }
  if (chunk.length % d !== 0 || chunk.length === 0) {
    throw new TdbError("E_BAD_INPUT", `${where} has ${chunk.length} values, not a positive multiple of d_in ${d}`, {
      value: chunk.length,
      allowed: `a positive multiple of d_in = ${d}`,
    });
  }
  return chunk;
}

/**
 * Rows of one Float32Array in a seeded random order, a new order every epoch (epoch `e`'s order
 * depends only on the seed and `e`, so the position is two integers and a resumed run draws the
 * same rows); never ends. Throws `E_NON_FINITE` naming the first bad row before training starts.
 */
export function arraySource(data: Float32Array, d: number, seed: number, start: { epoch: number; cursor: number } = { epoch: 0, cursor: 0 }): RowSource {
  checkChunk(data, d, "activations");
  const bad = firstNonFiniteRow(data, d);
  if (bad >= 0) throw nonFinite(bad);
  const rows = data.length / d;
  let epoch = start.epoch;
  let pos = start.cursor;
  let order = epochOrder(rows, seed, epoch);
  return {
    next(out) {
      const b = out.length / d;
      for (let r = 0; r < b; r++) {
        if (pos >= rows) {
          order = epochOrder(rows, seed, ++epoch);
          pos = 0;
        }
        const src = order[pos++]! * d;
        out.set(data.subarray(src, src + d), r * d);
      }
      return Promise.resolve(true);
    },
    position: () => ({ epoch, cursor: pos }),
  };
}

/**
 * Rows of a stream of batches through a buffer of `bufferRows` rows: the buffer is filled first;
 * each drawn row is a uniformly random buffer slot, refilled with the next incoming row (or, once
 * the stream ends, with the buffer's last row, shrinking it). Ends when fewer rows are left than a
 * batch needs. Throws `E_NON_FINITE` naming the bad row's index in the stream. Resuming after
 * a checkpoint: `resume.skipRows` rows at the start of the stream are read and dropped;
 * `resume.rowsBefore` rows were dropped upstream already (counted in the position).
 */
export function streamSource(
  stream: AsyncIterable<Float32Array> | Iterable<Float32Array>,
  d: number,
  bufferRows: number,
  seed: number,
  resume: { skipRows?: number; rowsBefore?: number } = {},
): RowSource {
  const it: AsyncIterator<Float32Array> | Iterator<Float32Array> =
    Symbol.asyncIterator in stream ? (stream as AsyncIterable<Float32Array>)[Symbol.asyncIterator]() : (stream as Iterable<Float32Array>)[Symbol.iterator]();
  const rng = new Rng(seed);
  const buf = new Float32Array(bufferRows * d);
  let count = 0;
  let chunk: Float32Array | undefined;
  let chunkPos = 0;
  let seen = resume.rowsBefore ?? 0;
  let ended = false;
  let skip = resume.skipRows ?? 0;

  /** Copies the next incoming row into buffer slot `slot`; false when the stream has ended. */
  async function incoming(slot: number): Promise<boolean> {
    for (;;) {
      while (!ended && (chunk === undefined || chunkPos === chunk.length)) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        chunk = checkChunk(r.value, d, `activation batch (stream row ${seen})`);
        chunkPos = 0;
      }
      if (ended) return false;
      if (skip === 0) break;
      // Resuming: rows the run read before its checkpoint are dropped.
      const n = Math.min(skip, (chunk!.length - chunkPos) / d);
      chunkPos += n * d;
      skip -= n;
      seen += n;
    }
    const row = chunk!.subarray(chunkPos, chunkPos + d);
    chunkPos += d;
    const bad = firstNonFiniteRow(row, d);
    if (bad >= 0) throw nonFinite(seen);
    seen++;
    buf.set(row, slot * d);
    return true;
  }

  return {
    async next(out) {
      while (count < bufferRows && (await incoming(count))) count++;
      const b = out.length / d;
      if (count < b) return false;
      for (let r = 0; r < b; r++) {
        const j = rng.int(count);
        out.set(buf.subarray(j * d, j * d + d), r * d);
        if (!(await incoming(j))) {
          count--;
          if (j !== count) buf.copyWithin(j * d, count * d, count * d + d);
        }
      }
      return true;
    },
    position: () => ({ streamRows: seen }),
  };
}
