/**
 * The hot loop of harvesting (`scanWindow`: eight columns at a time, branch-free maximum and
 * positive count, top-k heaps offered after each block of eight, values copied from a tile),
 * checked against a plain per-node scan written here: for every node, windows in arrival order,
 * `if (v > max) max = v`, `if (v > 0) positive++`, float64 sums in token order rounded to the
 * fixed point, sketch bins of the float32 bit patterns, and the top-k as a full sort of the
 * windows by (peak descending, document then offset ascending). Planted: NaN, +0 / -0 mixes whose
 * maximum is a zero, windows of negative values only, infinities, equal peaks across windows
 * (ties at the heap's minimum, with windows arriving out of order), nodes in a non-contiguous,
 * unordered column order with a count that is not a multiple of eight.
 */
import { describe, expect, it } from "vitest";
import { compareWindows, emptyGroup, SUM_SCALE, type WindowRef } from "../../src/explainer/records-data.js";
import { placeTop, scanWindow, type TopHeaps } from "../../src/explainer/records-scan.js";
import { SKETCH_BINS, sketchBin } from "../../src/explainer/sketch.js";
import type { NeuronNode } from "../../src/explainer/types.js";
import { uniform } from "../helpers/uniform.js";

const W = 40; // batch width (columns)
const LEN = 6; // tokens per window
const ROWS = LEN + 1; // a BOS row first, as in a harvest batch
const K = 3;
const C = 8; // slot size (context tokens >= LEN)
const R = 2; // random-window candidate slots
/** Columns of the nodes: unordered, with gaps, 19 nodes (two blocks of eight and a tail of three). */
const COLS = [3, 4, 5, 6, 7, 8, 9, 10, 0, 39, 21, 22, 12, 30, 1, 2, 33, 17, 25];
/** Windows in arrival order (not the tie order: "b" before "a", offsets descending). */
const WINDOWS: WindowRef[] = [
  { doc: "b", offset: 0 },
  { doc: "a", offset: 12 },
  { doc: "a", offset: 6 },
  { doc: "c", offset: 0 },
  { doc: "a", offset: 0 },
  { doc: "b", offset: 6 },
  { doc: "d", offset: 0 },
].map((w) => ({ ...w, ids: Int32Array.from({ length: LEN }, (_, i) => i) }));
const NW = WINDOWS.length;

/** The activations: window b, token p, column c at (b * ROWS + 1 + p) * W + c; float32 values with the planted cases. */
function batch(): Float32Array {
  const u = uniform(11);
  const d = new Float32Array(NW * ROWS * W);
  for (let i = 0; i < d.length; i++) d[i] = u() * 3;
  const set = (b: number, p: number, c: number, v: number): void => {
    d[(b * ROWS + 1 + p) * W + c] = v;
  };
  const column = (b: number, c: number, vs: readonly number[]): void => vs.forEach((v, p) => set(b, p, c, v));
  // Zeros of both signs in every column (not positive; sketch bin 0).
  for (let c = 0; c < W; c++) {
    set(6, 3, c, 0);
    set(5, 2, c, -0);
  }
  // Column 3 (node 0, block path): every window's peak is 2.5 (ties everywhere).
  for (let b = 0; b < NW; b++) {
    column(b, 3, [-1, 0.5, -2, 1, 0, -0.5]);
    set(b, (b * 2) % LEN, 3, 2.5);
  }
  // Column 4 (node 1): only negative values; two windows tie at the largest peak.
  for (let b = 0; b < NW; b++) column(b, 4, [-3 - b, -2.25 - (b % 3), -5, -4, -6, -7]);
  // Column 5 (node 2): zeros of both signs as maxima, in both orders, and an all -0 window; the
  // other windows negative, so that the top 3 are zeros of both signs tied (peaks -0, +0, -0).
  for (let b = 4; b < NW; b++) column(b, 5, [-1, -2, -1, -3, -1, -1]);
  column(0, 5, [-1, -0, -2, 0, -3, -4]);
  column(1, 5, [-1, 0, -2, -0, -3, -4]);
  column(2, 5, [-0, -0, -0, -0, -0, -0]);
  column(3, 5, [0, -1, -0, -2, 0, -1]);
  // Column 6 (node 3): NaN in some windows (skipped by the maximum, not positive), with an infinity.
  set(1, 2, 6, NaN);
  set(3, 0, 6, NaN);
  set(3, 4, 6, 7);
  set(5, 5, 6, Infinity);
  // Column 0 (node 8, block path): -Infinity and a NaN-only-and-negative window.
  column(4, 0, [NaN, -Infinity, -1, NaN, -2, -3]);
  set(2, 3, 0, -Infinity);
  // Column 21 (node 10): tiny values and exact zeros (sketch bin 0, positives that are tiny).
  column(2, 21, [2 ** -30, -(2 ** -30), 0, -0, 1e-40, -1e-40]);
  // Column 33 (node 16, tail path): ties and a NaN.
  for (let b = 0; b < NW; b++) column(b, 33, [1, 1, b % 2 === 0 ? 4 : 1, 0, -0, 1]);
  set(6, 1, 33, NaN);
  // Column 25 (node 18, tail path): zeros of both signs as maxima, the other windows negative.
  for (let b = 2; b < NW; b++) column(b, 25, [-1, -2, -1, -3, -1, -1]);
  column(0, 25, [-0, 0, -1, -1, -1, -1]);
  column(1, 25, [0, -0, -1, -1, -1, -1]);
  return d;
}

interface Reference {
  sum: number[];
  positive: number[];
  max: number[];
  hist: number[];
  /** Top windows per node: indices into WINDOWS with their peaks. */
  top: { w: number; peak: number }[][];
}

/** The plain per-node scan. */
function reference(d: Float32Array): Reference {
  const bits = new Int32Array(d.buffer);
  const n = COLS.length;
  const ref: Reference = { sum: [], positive: [], max: [], hist: new Array<number>(n * SKETCH_BINS).fill(0), top: [] };
  COLS.forEach((c, j) => {
    let sum = 0;
    let positive = 0;
    let max = -Infinity;
    const peaks: { w: number; peak: number }[] = [];
    for (let b = 0; b < NW; b++) {
      let ws = 0;
      let wm = -Infinity;
      for (let p = 0; p < LEN; p++) {
        const i = (b * ROWS + 1 + p) * W + c;
        const v = d[i]!;
        ws += v;
        if (v > wm) wm = v;
        if (v > 0) positive++;
        ref.hist[j * SKETCH_BINS + sketchBin(bits[i]!)]!++;
      }
      sum += Math.round(ws * SUM_SCALE);
      if (wm > max) max = wm;
      peaks.push({ w: b, peak: wm });
    }
    ref.sum.push(sum);
    ref.positive.push(positive);
    ref.max.push(max);
    ref.top.push(peaks.sort((x, y) => y.peak - x.peak || compareWindows(WINDOWS[x.w]!, WINDOWS[y.w]!)).slice(0, K));
  });
  return ref;
}

/** Runs scanWindow over every window; window `keep` is a random-window candidate kept in slot 1. */
function scan(d: Float32Array, keep: number): { heaps: TopHeaps; keepAct: Float32Array } {
  const n = COLS.length;
  const nodes: NeuronNode[] = COLS.map((index) => ({ kind: "mlp_neuron", layer: 0, index }));
  const g = emptyGroup("mlp.0", "mlp", "blocks.0.mlp.hook_post", nodes, { contextTokens: C, topK: K, randomK: R, seed: 0 });
  const heaps: TopHeaps = { g, heap: new Int32Array(n * K), slotWin: new Array<WindowRef | undefined>(n * K).fill(undefined), thresh: new Float32Array(n).fill(-Infinity) };
  const keepAct = new Float32Array(n * R * C).fill(-99);
  const cols = Int32Array.from(COLS);
  const bits = new Int32Array(d.buffer);
  for (let b = 0; b < NW; b++) {
    const kept = b === keep;
    scanWindow({
      data: d,
      bits,
      keys: undefined,
      width: W,
      r0: (b * ROWS + 1) * W,
      len: LEN,
      cols,
      top: heaps,
      win: WINDOWS[b]!,
      K,
      C,
      keepAct: kept ? keepAct : undefined,
      keepKeys: undefined,
      keepAt: kept ? 1 * C : 0,
      keepStride: R * C,
    });
  }
  return { heaps, keepAct };
}

describe("scanWindow, the hot loop of harvesting", () => {
  it("gives the statistics, peaks and top-k heaps of a plain per-node scan, NaN, zeros of both signs and ties included", () => {
    const d = batch();
    const ref = reference(d);
    const { heaps } = scan(d, -1);
    const g = heaps.g;
    const n = COLS.length;
    for (let j = 0; j < n; j++) {
      expect(Object.is(g.sum[j], ref.sum[j]) || (Number.isNaN(g.sum[j]) && Number.isNaN(ref.sum[j])), `sum ${j}: ${g.sum[j]} vs ${ref.sum[j]}`).toBe(true);
      expect(g.positive[j], `positive ${j}`).toBe(ref.positive[j]);
      expect(Object.is(g.max[j], Math.fround(ref.max[j]!)), `max ${j}: ${g.max[j]} vs ${ref.max[j]}`).toBe(true);
    }
    expect(Array.from(g.hist)).toEqual(ref.hist);
    // The planted zeros: the plain loop keeps the sign of the first zero; ties by window order.
    expect(ref.top[2]!.map((t) => [t.w, Object.is(t.peak, -0) ? "-0" : String(t.peak)])).toEqual([
      [2, "-0"],
      [1, "0"],
      [0, "-0"],
    ]);
    expect(Object.is(ref.max[2], -0) && Object.is(ref.max[18], -0)).toBe(true);
    expect(ref.top[18]!.map((t) => t.w)).toEqual([1, 0, 4]); // zeros: "a" before "b"; then the first of the tied -1 windows in window order (a/0)
    // Top-k: the heap's slots are the K best windows (peak descending, then window order), each with its peak (sign of zero included) and values.
    for (let j = 0; j < n; j++) {
      const size = g.topSize[j]!;
      expect(size).toBe(Math.min(K, NW));
      const got = Array.from({ length: size }, (_, s) => ({ w: WINDOWS.indexOf(heaps.slotWin[j * K + s]!), peak: g.topPeak[j * K + s]!, slot: s }));
      got.sort((x, y) => y.peak - x.peak || compareWindows(WINDOWS[x.w]!, WINDOWS[y.w]!));
      expect(got.map((x) => x.w), `top windows of node ${j} (column ${COLS[j]})`).toEqual(ref.top[j]!.map((t) => t.w));
      got.forEach((x, r) => {
        expect(Object.is(x.peak, Math.fround(ref.top[j]![r]!.peak)), `peak ${j}/${r}: ${x.peak}`).toBe(true);
        const at = (j * K + x.slot) * C;
        const want = Array.from({ length: LEN }, (_, p) => d[(x.w * ROWS + 1 + p) * W + COLS[j]!]!);
        const have = Array.from(g.topAct.subarray(at, at + LEN));
        have.forEach((v, p) => expect(Object.is(v, want[p]) || (Number.isNaN(v) && Number.isNaN(want[p])), `values ${j}/${r}/${p}`).toBe(true));
      });
      // The threshold is the last-ranked kept peak once the heap is full.
      expect(heaps.thresh[j], `threshold of node ${j}`).toBe(got[size - 1]!.peak);
    }
  });

  it("skips a window below the heap minimum and one that ties with it but comes later; takes one that ties and comes earlier", () => {
    const n = 1;
    const nodes: NeuronNode[] = [{ kind: "mlp_neuron", layer: 0, index: 0 }];
    const g = emptyGroup("mlp.0", "mlp", "blocks.0.mlp.hook_post", nodes, { contextTokens: C, topK: 2, randomK: 0, seed: 0 });
    const heaps: TopHeaps = { g, heap: new Int32Array(n * 2), slotWin: [undefined, undefined], thresh: new Float32Array(n).fill(-Infinity) };
    const win = (doc: string): WindowRef => ({ doc, offset: 0, ids: new Int32Array(1) });
    expect(placeTop(heaps, 0, -2, win("m"), 2)).toBe(0);
    expect(placeTop(heaps, 0, -1, win("n"), 2)).toBe(1);
    expect(heaps.thresh[0]).toBe(-2);
    // Equal to the minimum, later window ("z" > "m"): loses; equal and earlier ("a" < "m"): evicts "m".
    expect(placeTop(heaps, 0, -2, win("z"), 2)).toBe(-1);
    expect(placeTop(heaps, 0, -2, win("a"), 2)).toBe(0);
    expect(heaps.slotWin.map((w) => w!.doc).sort()).toEqual(["a", "n"]);
    expect(heaps.thresh[0]).toBe(-2);
  });

  it("keeps a random-window candidate's values in its slot (node j at keepAt + j x keepStride), and nothing else", () => {
    const d = batch();
    const { keepAct } = scan(d, 4);
    COLS.forEach((c, j) => {
      for (let slot = 0; slot < R; slot++) {
        const at = (j * R + slot) * C;
        for (let p = 0; p < C; p++) {
          const v = keepAct[at + p]!;
          if (slot === 1 && p < LEN) {
            const want = d[(4 * ROWS + 1 + p) * W + c]!;
            expect(Object.is(v, want) || (Number.isNaN(v) && Number.isNaN(want)), `node ${j} p ${p}`).toBe(true);
          } else {
            expect(v).toBe(-99);
          }
        }
      }
    });
  });
});
