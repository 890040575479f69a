/**
 * The hot loop of harvesting, one context window of one group at a time: per-token statistics,
 * the window's peak per node, its place in each node's top excerpts, and the copies of its
 * activations (top excerpts it enters, random-window candidate), all read straight from the
 * batch's row-major activations (tokens x width), without transposing them.
 *
 * Nodes are taken eight at a time: the eight nodes' columns are read row by row (neighbouring
 * columns share cache lines), each with its own running sum, maximum, positive count and sketch
 * bin, held in locals, and the values are also written to a small tile (eight columns of one
 * window, in L1 cache). Nothing in the loop branches on a value: the maximum is `Math.max` and
 * the positive count adds the comparison `v > 0` as a number. After a block of eight, each
 * node's window is offered to its top-k heap when its peak reaches the heap's minimum (the only
 * per-window, per-node test), and its values are copied from the tile where they go (a top slot,
 * a random-window candidate's slot) instead of being gathered from the batch's strided rows.
 *
 * Results are exactly those of the plain per-node loop (`v > wm`, `v > 0`, sums in token order),
 * which the tests compare against: sums are each node's own float64 chain in token order; a
 * window whose maximum could differ from the plain loop's (`Math.max` returns NaN when a NaN is
 * present and +0 for a mix of +0 and -0, where the plain loop skips NaN and keeps the first of
 * equal values) is recomputed the plain way: that is any window whose sum is not finite or whose
 * maximum is zero.
 *
 * @module
 */
import { compareWindows, SUM_SCALE, type RecordGroup, type WindowRef } from "./records-data.js";
import { SKETCH_BINS, SKETCH_BIN_OF_TOP12 } from "./sketch.js";

/**
 * A group's running top excerpts: per node (n), a bounded min-heap of K slots over the group's
 * `topPeak` / `topAct` / `topKeys` arrays.
 */
export interface TopHeaps {
  /** The group: statistics and the top slots' peaks, activations, keys and sizes. */
  readonly g: RecordGroup;
  /** Heap of slot numbers per node (n x K): a min-heap by peak (ties: the later window is smaller). */
  readonly heap: Int32Array;
  /** Window of each slot (n x K). */
  readonly slotWin: (WindowRef | undefined)[];
  /** The heap's minimum peak when full, -Infinity before. */
  readonly thresh: Float32Array;
}

/** Slot a ranks below slot b (smaller peak; equal peaks: later window). */
function below(st: TopHeaps, base: number, a: number, b: number): boolean {
  const pa = st.g.topPeak[base + a]!;
  const pb = st.g.topPeak[base + b]!;
  return pa < pb || (pa === pb && compareWindows(st.slotWin[base + a]!, st.slotWin[base + b]!) > 0);
}

function siftUp(st: TopHeaps, base: number, i: number): void {
  const h = st.heap;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!below(st, base, h[base + i]!, h[base + parent]!)) break;
    const t = h[base + i]!;
    h[base + i] = h[base + parent]!;
    h[base + parent] = t;
    i = parent;
  }
}

function siftDown(st: TopHeaps, base: number, size: number): void {
  const h = st.heap;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) return;
    const r = l + 1;
    const c = r < size && below(st, base, h[base + r]!, h[base + l]!) ? r : l;
    if (!below(st, base, h[base + c]!, h[base + i]!)) return;
    const t = h[base + i]!;
    h[base + i] = h[base + c]!;
    h[base + c] = t;
    i = c;
  }
}

/**
 * Offers window `w` (peak v) to node j's heap (K slots): the slot its activations go to (the
 * evicted minimum's, or a free one), or -1 when it loses a tie with the minimum.
 */
export function placeTop(st: TopHeaps, j: number, v: number, w: WindowRef, K: number): number {
  const g = st.g;
  const base = j * K;
  const size = g.topSize[j]!;
  if (size === K) {
    const root = st.heap[base]!;
    if (v === st.thresh[j] && compareWindows(w, st.slotWin[base + root]!) >= 0) return -1; // tie lost
  }
  const slot = size < K ? size : st.heap[base]!;
  g.topPeak[base + slot] = v;
  st.slotWin[base + slot] = w;
  if (size < K) {
    st.heap[base + size] = slot;
    g.topSize[j] = size + 1;
    siftUp(st, base, size);
  } else {
    siftDown(st, base, K);
  }
  if (g.topSize[j] === K) st.thresh[j] = g.topPeak[base + st.heap[base]!]!;
  return slot;
}

/** One window of one group's batch, as {@link scanWindow} reads it. */
export interface WindowScan {
  /** The batch, row-major, rows of `width` values. */
  readonly data: Float32Array;
  /** `data`'s Int32 view (float32 bit patterns). */
  readonly bits: Int32Array;
  /** Attention heads: the key position of each value (same layout as `data`). */
  readonly keys: Int16Array | undefined;
  /** Values per row. */
  readonly width: number;
  /** Index in `data` of the window's first row (token p's row starts at `r0 + p * width`). */
  readonly r0: number;
  /** Tokens of the window. */
  readonly len: number;
  /** Column of each node. */
  readonly cols: Int32Array;
  /** The group's statistics and top heaps. */
  readonly top: TopHeaps;
  /** The window. */
  readonly win: WindowRef;
  /** Top slots per node. */
  readonly K: number;
  /** Values per slot (context tokens). */
  readonly C: number;
  /** Random-window candidate: node j's activations go to `keepAct` at `keepAt + j * keepStride` (and keys to `keepKeys`); undefined when the window is not one. */
  readonly keepAct: Float32Array | undefined;
  /** Attention heads: where a candidate's keys go (like `keepAct`). */
  readonly keepKeys: Int16Array | undefined;
  /** Offset of node 0 in `keepAct`. */
  readonly keepAt: number;
  /** Distance between two nodes in `keepAct`. */
  readonly keepStride: number;
}

/**
 * The largest value of `len` values `data[at], data[at + stride], ...` as the plain loop finds
 * it (NaN skipped, the first of equal values kept; -Infinity when every value is NaN).
 */
function plainMax(data: Float32Array, at: number, stride: number, len: number): number {
  let wm = -Infinity;
  for (let p = 0; p < len; p++) {
    const v = data[at + p * stride]!;
    if (v > wm) wm = v;
  }
  return wm;
}

/** Copies `len` values `src[at], src[at + stride], ...` to `dst[to ..]`. */
function copyColumn<A extends Float32Array | Int16Array>(src: A, at: number, stride: number, len: number, dst: A, to: number): void {
  for (let p = 0; p < len; p++) dst[to + p] = src[at + p * stride]!;
}

/**
 * Ends node j's window: `s`, `m`, `ps` are its sum, `Math.max` maximum and positive count; its
 * values are `src[at], src[at + stride], ...` (`job.len` of them: the block's tile, or the batch
 * itself). Adds them to the statistics; a window whose peak reaches the heap's minimum, or a
 * random-window candidate, goes on to {@link keepWindow}. (Small, so that it is inlined.)
 */
function finish(job: WindowScan, g: RecordGroup, thresh: Float32Array, j: number, src: Float32Array, at: number, stride: number, s: number, m: number, ps: number): void {
  // Math.max differs from the plain loop only on NaN (then the sum is NaN) and on zeros of both signs.
  const wm = s - s === 0 && m !== 0 ? m : plainMax(src, at, stride, job.len);
  // Fixed point per window: the window's float64 sum (token order) rounded, so totals are exact
  // integers whatever the order windows arrive in.
  g.sum[j] = g.sum[j]! + Math.round(s * SUM_SCALE);
  g.positive[j] = g.positive[j]! + ps;
  if (wm > g.max[j]!) g.max[j] = wm;
  if (wm >= thresh[j]! || job.keepAct !== undefined) keepWindow(job, g, j, wm, src, at, stride);
}

/** Offers node j's window (peak `wm`) to its top excerpts and keeps a random-window candidate's values. */
function keepWindow(job: WindowScan, g: RecordGroup, j: number, wm: number, src: Float32Array, at: number, stride: number): void {
  const len = job.len;
  if (wm >= job.top.thresh[j]!) {
    const slot = placeTop(job.top, j, wm, job.win, job.K);
    if (slot >= 0) {
      const to = (j * job.K + slot) * job.C;
      copyColumn(src, at, stride, len, g.topAct, to);
      if (g.topKeys) copyColumn(job.keys!, job.r0 + job.cols[j]!, job.width, len, g.topKeys, to);
    }
  }
  if (job.keepAct) {
    const to = job.keepAt + j * job.keepStride;
    copyColumn(src, at, stride, len, job.keepAct, to);
    if (job.keepKeys) copyColumn(job.keys!, job.r0 + job.cols[j]!, job.width, len, job.keepKeys, to);
  }
}

/** The values of the current block of eight nodes, row by row (token p, node k at 8p + k). */
let tile = new Float32Array(0);

/**
 * Adds one context window to a group: for every node (column `cols[j]` of the window's rows),
 * the window's sum (float64, token order) rounded to fixed point is added to `sum`, its
 * positive count to `positive`, its values to the sketch, its maximum to `max`; the window is
 * offered to the node's top excerpts (see {@link placeTop}) and, for a random-window
 * candidate, its activations are kept.
 */
export function scanWindow(job: WindowScan): void {
  const { data, bits, width, r0, len, cols } = job;
  const g = job.top.g;
  const thresh = job.top.thresh;
  const hist = g.hist;
  const BIN = SKETCH_BIN_OF_TOP12;
  const n = cols.length;
  const span = len * width;
  const n8 = n - (n % 8);
  if (tile.length < 8 * len) tile = new Float32Array(8 * len);
  const tl = tile;
  for (let j = 0; j < n8; j += 8) {
    const c0 = cols[j + 0]!;
    const c1 = cols[j + 1]!;
    const c2 = cols[j + 2]!;
    const c3 = cols[j + 3]!;
    const c4 = cols[j + 4]!;
    const c5 = cols[j + 5]!;
    const c6 = cols[j + 6]!;
    const c7 = cols[j + 7]!;
    const h0 = j * SKETCH_BINS;
    const h1 = h0 + SKETCH_BINS;
    const h2 = h1 + SKETCH_BINS;
    const h3 = h2 + SKETCH_BINS;
    const h4 = h3 + SKETCH_BINS;
    const h5 = h4 + SKETCH_BINS;
    const h6 = h5 + SKETCH_BINS;
    const h7 = h6 + SKETCH_BINS;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    let m0 = -Infinity, m1 = -Infinity, m2 = -Infinity, m3 = -Infinity, m4 = -Infinity, m5 = -Infinity, m6 = -Infinity, m7 = -Infinity;
    let p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
    for (let i = r0, e = r0 + span, q = 0; i < e; i += width, q += 8) {
      const v0 = data[i + c0]!;
      const v1 = data[i + c1]!;
      const v2 = data[i + c2]!;
      const v3 = data[i + c3]!;
      const v4 = data[i + c4]!;
      const v5 = data[i + c5]!;
      const v6 = data[i + c6]!;
      const v7 = data[i + c7]!;
      tl[q] = v0;
      tl[q + 1] = v1;
      tl[q + 2] = v2;
      tl[q + 3] = v3;
      tl[q + 4] = v4;
      tl[q + 5] = v5;
      tl[q + 6] = v6;
      tl[q + 7] = v7;
      s0 += v0;
      s1 += v1;
      s2 += v2;
      s3 += v3;
      s4 += v4;
      s5 += v5;
      s6 += v6;
      s7 += v7;
      m0 = Math.max(m0, v0);
      m1 = Math.max(m1, v1);
      m2 = Math.max(m2, v2);
      m3 = Math.max(m3, v3);
      m4 = Math.max(m4, v4);
      m5 = Math.max(m5, v5);
      m6 = Math.max(m6, v6);
      m7 = Math.max(m7, v7);
      p0 += +(v0 > 0);
      p1 += +(v1 > 0);
      p2 += +(v2 > 0);
      p3 += +(v3 > 0);
      p4 += +(v4 > 0);
      p5 += +(v5 > 0);
      p6 += +(v6 > 0);
      p7 += +(v7 > 0);
      const k0 = h0 + BIN[bits[i + c0]! >>> 20]!;
      hist[k0] = hist[k0]! + 1;
      const k1 = h1 + BIN[bits[i + c1]! >>> 20]!;
      hist[k1] = hist[k1]! + 1;
      const k2 = h2 + BIN[bits[i + c2]! >>> 20]!;
      hist[k2] = hist[k2]! + 1;
      const k3 = h3 + BIN[bits[i + c3]! >>> 20]!;
      hist[k3] = hist[k3]! + 1;
      const k4 = h4 + BIN[bits[i + c4]! >>> 20]!;
      hist[k4] = hist[k4]! + 1;
      const k5 = h5 + BIN[bits[i + c5]! >>> 20]!;
      hist[k5] = hist[k5]! + 1;
      const k6 = h6 + BIN[bits[i + c6]! >>> 20]!;
      hist[k6] = hist[k6]! + 1;
      const k7 = h7 + BIN[bits[i + c7]! >>> 20]!;
      hist[k7] = hist[k7]! + 1;
    }
    finish(job, g, thresh, j, tl, 0, 8, s0, m0, p0);
    finish(job, g, thresh, j + 1, tl, 1, 8, s1, m1, p1);
    finish(job, g, thresh, j + 2, tl, 2, 8, s2, m2, p2);
    finish(job, g, thresh, j + 3, tl, 3, 8, s3, m3, p3);
    finish(job, g, thresh, j + 4, tl, 4, 8, s4, m4, p4);
    finish(job, g, thresh, j + 5, tl, 5, 8, s5, m5, p5);
    finish(job, g, thresh, j + 6, tl, 6, 8, s6, m6, p6);
    finish(job, g, thresh, j + 7, tl, 7, 8, s7, m7, p7);
  }
  for (let j = n8; j < n; j++) {
    const c = cols[j]!;
    const hb = j * SKETCH_BINS;
    let s = 0;
    let m = -Infinity;
    let ps = 0;
    for (let i = r0 + c, e = r0 + c + span; i < e; i += width) {
      const v = data[i]!;
      s += v;
      m = Math.max(m, v);
      ps += +(v > 0);
      const k = hb + BIN[bits[i]! >>> 20]!;
      hist[k] = hist[k]! + 1;
    }
    finish(job, g, thresh, j, data, r0 + c, width, s, m, ps);
  }
}
