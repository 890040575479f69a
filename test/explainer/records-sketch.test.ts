/**
 * The quantile sketch of activation records: bins are ordered by value and each value's bin
 * representative is within the documented relative error; quantiles of random samples match a
 * sort within that error; merging is adding counts.
 */
import { describe, expect, it } from "vitest";
import { SKETCH_BINS, SKETCH_RELATIVE_ERROR, sketchBinOf, sketchBinValue, sketchQuantiles } from "../../src/explainer/sketch.js";

/** A small deterministic generator (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

describe("activation sketch", () => {
  it("puts every value in a bin whose representative is within the documented error", () => {
    expect(SKETCH_BINS).toBe(513);
    expect(SKETCH_RELATIVE_ERROR).toBeCloseTo(Math.sqrt(1.125) - 1, 12);
    const r = rng(3);
    for (let i = 0; i < 20000; i++) {
      const mag = 2 ** (-20 + 32 * r());
      const v = Math.fround((r() < 0.5 ? -1 : 1) * mag);
      const rep = sketchBinValue(sketchBinOf(v));
      expect(Math.abs(rep - v) / Math.abs(v)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR + 1e-12);
      expect(Math.sign(rep)).toBe(Math.sign(v));
    }
    // Near zero and out of range.
    expect(sketchBinOf(0)).toBe(0);
    expect(sketchBinOf(-0)).toBe(0);
    expect(sketchBinOf(2 ** -21)).toBe(0);
    expect(sketchBinOf(2 ** 20)).toBe(sketchBinOf(2 ** 12 - 1));
    // Bin boundaries: 1 and 1.125 differ, 1 and 1.1 share a bin.
    expect(sketchBinOf(1)).toBe(sketchBinOf(1.1));
    expect(sketchBinOf(1)).not.toBe(sketchBinOf(1.125));
  });

  it("gives quantiles of a sample within the error (rank exact), and merges by adding counts", () => {
    const r = rng(11);
    const xs = Array.from({ length: 5000 }, () => Math.fround(r() < 0.3 ? -0.17 * r() : Math.exp(4 * r() - 3)));
    const counts = new Uint32Array(SKETCH_BINS);
    for (const x of xs) counts[sketchBinOf(x)]!++;
    const levels = [0, 0.1, 0.5, 0.9, 0.99, 0.999, 1];
    const max = Math.max(...xs);
    const sorted = [...xs].sort((a, b) => a - b);
    const q = sketchQuantiles(counts, 0, levels, max);
    levels.forEach((level, i) => {
      const exact = sorted[Math.max(1, Math.ceil(level * xs.length)) - 1]!;
      expect(Math.abs(q[i]! - exact)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR * Math.abs(exact) + 1e-12);
    });
    expect(q[q.length - 1]).toBeLessThanOrEqual(max);
    // Two halves' counts added = the whole.
    const a = new Uint32Array(SKETCH_BINS);
    const b = new Uint32Array(SKETCH_BINS);
    xs.forEach((x, i) => (i % 2 ? a : b)[sketchBinOf(x)]!++);
    const merged = a.map((c, i) => c + b[i]!);
    expect(sketchQuantiles(merged, 0, levels, max)).toEqual(q);
    expect(sketchQuantiles(new Uint32Array(SKETCH_BINS), 0, [0.5], 0)).toEqual([NaN]);
  });
});
