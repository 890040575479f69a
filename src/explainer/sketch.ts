/**
 * A bounded, mergeable quantile sketch for activations: a histogram over logarithmic bins read
 * straight from the float32 bit pattern (sign, exponent and the top 3 mantissa bits), so that
 * binning a value costs a shift and two compares, and merging two sketches is adding counts
 * (exact and associative: shards give the same sketch as one pass).
 *
 * Bins ({@link SKETCH_BINS} of them): bin 0 holds values with |v| < 2^-20 (and 0); bins 1..256
 * the positive values in [2^-20, 2^12), each a range [2^e (1 + m/8), 2^e (1 + (m+1)/8)) for
 * e in -20..11 and m in 0..7; bins 257..512 the negative values mirrored. Values of magnitude
 * 2^12 and more fall into the outermost bin of their sign.
 *
 * Error: a quantile's rank is exact; its value is the geometric middle of the bin holding the
 * element of that rank, within a relative error of sqrt(9/8) - 1 < 6.1% for |v| in
 * [2^-20, 2^12), reported as 0 for |v| < 2^-20 (absolute error < 2^-20), and clamped to the
 * exact maximum (so the top bin never reports more than the largest value seen).
 *
 * @module
 */

/** Mantissa bits kept per bin: 8 bins per power of two. */
const SUB_BITS = 3;
/** Smallest exponent with its own bins: |v| < 2^EXP_MIN goes to bin 0. */
const EXP_MIN = -20;
/** Powers of two with their own bins: [2^EXP_MIN, 2^(EXP_MIN + EXP_SPAN)). */
const EXP_SPAN = 32;
/** Bins per sign. */
const SIDE = EXP_SPAN << SUB_BITS;
/** `bits >> (23 - SUB_BITS)` of 2^EXP_MIN, minus one: positive bin = key - KEY0. */
const KEY0 = ((127 + EXP_MIN) << SUB_BITS) - 1;

/** Bins of one sketch: the near-zero bin, 256 positive and 256 negative bins. */
export const SKETCH_BINS = 2 * SIDE + 1;

/** Largest relative error of a quantile whose value lies in [2^-20, 2^12) in magnitude: sqrt(1 + 1/8) - 1. */
export const SKETCH_RELATIVE_ERROR = Math.sqrt(1 + 1 / (1 << SUB_BITS)) - 1;

/**
 * The bin of a float32 value given as its bit pattern (an `Int32Array` view of the activations).
 * NaN falls in an outermost bin.
 */
export function sketchBin(bits: number): number {
  let k = ((bits & 0x7fffffff) >> (23 - SUB_BITS)) - KEY0;
  if (k <= 0) return 0;
  if (k > SIDE) k = SIDE;
  return bits < 0 ? SIDE + k : k;
}

/**
 * {@link sketchBin} as a table indexed by the top 12 bits of the pattern (`bits >>> 20`: sign,
 * exponent and the top 3 mantissa bits, all the bin depends on): `SKETCH_BIN_OF_TOP12[bits >>> 20]
 * === sketchBin(bits)` for every pattern, one load instead of compares and branches.
 */
export const SKETCH_BIN_OF_TOP12: Uint16Array = Uint16Array.from({ length: 1 << 12 }, (_, top) => sketchBin((top << 20) | 0));

const F32 = new Float32Array(1);
const I32 = new Int32Array(F32.buffer);

/** The bin of a number (rounded to float32 first). */
export function sketchBinOf(v: number): number {
  F32[0] = v;
  return sketchBin(I32[0]!);
}

/** The representative value of bin `bin`: the geometric middle of its range (0 for bin 0). */
export function sketchBinValue(bin: number): number {
  if (bin === 0) return 0;
  const neg = bin > SIDE;
  const k = (neg ? bin - SIDE : bin) - 1;
  const e = EXP_MIN + (k >> SUB_BITS);
  const m = k & ((1 << SUB_BITS) - 1);
  const lo = 2 ** e * (1 + m / (1 << SUB_BITS));
  const hi = 2 ** e * (1 + (m + 1) / (1 << SUB_BITS));
  const mid = Math.sqrt(lo * hi);
  return neg ? -mid : mid;
}

/** Bins in ascending order of value: the negative bins from the most negative, bin 0, the positive bins. */
const ORDER: readonly number[] = [
  ...Array.from({ length: SIDE }, (_, i) => 2 * SIDE - i),
  0,
  ...Array.from({ length: SIDE }, (_, i) => i + 1),
];

/**
 * Quantiles of a sketch at `levels` (each in [0, 1]): for level q, the representative value of
 * the bin holding the element of rank max(1, ceil(q n)) (1-based, ascending) of the n values
 * counted, clamped to `max`. `counts` is one sketch's {@link SKETCH_BINS} counts starting at
 * `offset`. NaN for every level when nothing was counted.
 */
export function sketchQuantiles(counts: ArrayLike<number>, offset: number, levels: readonly number[], max: number): number[] {
  let n = 0;
  for (let i = 0; i < SKETCH_BINS; i++) n += counts[offset + i]!;
  if (n === 0) return levels.map(() => NaN);
  return levels.map((q) => {
    const rank = Math.max(1, Math.ceil(q * n));
    let seen = 0;
    for (const bin of ORDER) {
      seen += counts[offset + bin]!;
      if (seen >= rank) return Math.min(sketchBinValue(bin), max);
    }
    return max;
  });
}
