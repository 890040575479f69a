/**
 * Harvesting activation records: a corpus streamed through a model in batches of context
 * windows, keeping for each requested node (MLP neuron, SAE latent, attention head) its
 * top-activating excerpts, random excerpts and summary statistics, in bounded memory.
 *
 * Windows: each document is tokenized alone (no BOS) and cut into windows of `contextTokens`
 * tokens (the last one of a document may be shorter); the model reads `[BOS, ...window]`, and
 * the excerpt is the window (without the BOS, whose activations are outliers). Windows of equal
 * length run together (no padding), `batch` per forward pass.
 *
 * Per node, per window: one candidate for the top excerpts, keyed by the window's largest
 * activation (the peak). A node keeps a bounded min-heap of `topK` slots; a window beating the
 * heap's minimum (the only per-window, per-node test on the hot path) has its activations copied
 * from the batch into the evicted slot. Random excerpts are the `randomK` windows with the
 * smallest seeded hash (the same windows for every node). A window's hash is known before it
 * runs, so a window ranking among the `randomK` smallest hashes so far is a candidate whose
 * activations are kept when its batch runs (in the slot of the candidate it evicts); only
 * windows chosen before a resume (whose activations a checkpoint does not hold) run once more
 * at the end. Statistics per node: count, max, fixed-point sum (mean), positive count
 * (density), and a 513-bin quantile sketch (`sketch.ts`, binned by a table lookup).
 *
 * Memory: per node `topK x contextTokens` float32 activations for the top slots and
 * `randomK x contextTokens` for the random candidates, 513 uint32 sketch counts and a few
 * numbers; plus one batch's trace. Every neuron of a GPT-2-small-shaped model (12 x 3072 nodes,
 * topK = randomK = 20, contextTokens = 64): 189 MB of top slots + 189 MB of random candidates +
 * 76 MB of sketches; while the record set is assembled at the end, the sorted top slots are a
 * copy (another 189 MB) and the random excerpts are put in rank order one group at a time (a
 * group's candidates' buffer is dropped once its copy is made).
 * The scratch buffer of the hot loop holds one group's batch transposed (d_mlp x batch tokens
 * float32: 6.3 MB for 8 windows of 64 tokens). A checkpoint copies the top slots twice while it
 * is written (sorted snapshot, then its bytes).
 *
 * Merging, saving and resuming are exact: see `records-data.ts` for the orders used. (The
 * activations themselves are what the runtime computes for a window in a batch; onnxruntime on
 * CPU gives every row the same numbers whatever the batch around it, which the tests check
 * through shards harvested with other batch sizes.)
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { CorpusDocument, DocumentSource } from "../corpus/document.js";
import { parseHookName, type HookName } from "../hooks/names.js";
import {
  HarvestedRecords,
  compareRandom,
  compareWindows,
  emptyGroup,
  windowHash,
  SUM_SCALE,
  type RandomWindow,
  type RecordGroup,
  type RecordGroupKind,
  type RecordSettings,
  type WindowRef,
} from "./records-data.js";
import { SKETCH_BINS, SKETCH_BIN_OF_TOP12 } from "./sketch.js";
import { nodeKey, type ExplainableNode, type HeadNode, type NeuronNode, type SaeLatentNode } from "./types.js";

/** The model dimensions harvesting reads (a subset of `ModelConfig`). */
export interface RecordsModelConfig {
  /** Number of blocks. */
  readonly nLayers: number;
  /** Context length (positions). */
  readonly nCtx: number;
  /** Attention heads per block. */
  readonly nHeads: number;
  /** MLP width. */
  readonly dMlp: number;
}

/** One cached activation: row-major values and dims. */
export interface RecordsActivation {
  /** Row-major values. */
  readonly data: Float32Array;
  /** Dimensions. */
  readonly dims: readonly number[];
}

/** The part of a trace's activation cache harvesting reads. */
export interface RecordsCache {
  /** The activation of hook `name`. */
  get(name: string): RecordsActivation;
}

/** What harvesting needs of a trace: its activation cache. */
export interface RecordsTrace {
  /** Activations by hook name. */
  readonly cache: RecordsCache;
}

/**
 * The structural interface of the model records are harvested from: `Model` and `ModelRuntime`
 * both satisfy it, so this feature does not depend on the model layer.
 */
export interface RecordsModel {
  /** Model dimensions. */
  readonly config: RecordsModelConfig;
  /** The BOS token id. */
  readonly bosTokenId: number;
  /** Token ids of a text. */
  toTokens(text: string, opts?: { prependBos?: boolean }): number[];
  /** The string of each token of a token row. */
  toStrTokens(input: readonly number[]): string[];
  /** Runs token rows and caches the given hooks. */
  trace(input: readonly (readonly number[])[], opts: { hooks: readonly HookName[]; prependBos: boolean; logits: "last" }): Promise<RecordsTrace>;
}

/**
 * The structural interface of an SAE whose latents are harvested (a `Sae` satisfies it): its
 * hook, its widths, and `encode` of `rows` input rows (rows x dIn, flat) to rows x dSae latents.
 */
export interface RecordsSae {
  /** Hook and widths. */
  readonly config: { readonly hookName?: string; readonly dIn: number; readonly dSae: number };
  /** Latents of `rows` input rows. */
  encode(x: Float32Array, rows?: number): Promise<Float32Array>;
}

/** A corpus: documents (`{ id, text }`, e.g. `brownCorpus()`) or plain strings (document ids `"0"`, `"1"`, ...). */
export type RecordsCorpus = DocumentSource<CorpusDocument> | AsyncIterable<string> | Iterable<string>;

/** Where a harvest stands in its corpus: everything before window `window` of corpus item `doc` is done. */
export interface CorpusPosition {
  /** Index of the corpus item (document or string), from 0, blank ones included. */
  doc: number;
  /** Index of the next window of that item. */
  window: number;
}

/** Progress of a harvest, reported after every forward pass. */
export interface HarvestProgress {
  /** Tokens harvested so far. */
  tokens: number;
  /** Context windows harvested. */
  windows: number;
  /** Corpus items read (started). */
  documents: number;
  /** Forward passes run (this run and, after a resume, the runs before). */
  batches: number;
  /** Milliseconds since this run started. */
  elapsedMs: number;
}

/**
 * A harvest's state at a checkpoint: records so far (random excerpts not yet computed) and the
 * corpus position. `harvestRecords(..., { resume })` continues from it to the same records as
 * an uninterrupted run.
 */
export interface RecordsCheckpoint {
  /** The settings of the run. */
  settings: RecordSettings;
  /** Groups so far (top excerpts in order, statistics; no random excerpts). */
  groups: RecordGroup[];
  /** Random windows chosen so far. */
  random: RandomWindow[];
  /** Everything before this position is harvested. */
  position: CorpusPosition;
  /** Counters at the checkpoint. */
  progress: { tokens: number; windows: number; batches: number };
}

/** Checkpoints of a running harvest. */
export interface RecordsCheckpointer {
  /** Forward passes between checkpoints. [default: 50] */
  every?: number;
  /** Stores a checkpoint (e.g. `writeRecordsCheckpoint(path, cp)` under Node). */
  save(cp: RecordsCheckpoint): Promise<void> | void;
}

/** Options of {@link harvestRecords}. */
export interface HarvestRecordsOptions {
  /** The nodes to harvest (see {@link allNeurons}, {@link allHeads}, {@link allLatents}). */
  nodes: readonly ExplainableNode[];
  /** SAEs whose latents are among `nodes`, found by `config.hookName`. */
  saes?: readonly RecordsSae[];
  /** Tokens per excerpt (context window), 1 to n_ctx - 1. [default: min(64, n_ctx - 1)] */
  contextTokens?: number;
  /** Top excerpts per node. [default: 20] */
  topK?: number;
  /** Random excerpts (the same windows for every node). [default: 20] */
  randomK?: number;
  /** Seed of the random window choice. [default: 0] */
  seed?: number;
  /**
   * Windows per forward pass. [default: 8: with GPT-2-small shapes and 64-token windows a pass
   * stays under the runtime's 512 MiB chunk size, so no pass is split and copied]
   */
  batch?: number;
  /** Stop once this many tokens are harvested (whole windows: a window is taken while fewer were). [default: the whole corpus] */
  tokens?: number;
  /** Called after every forward pass; a throw stops the harvest (and is rethrown). */
  onProgress?: (p: HarvestProgress) => void | Promise<void>;
  /** Save a checkpoint every so many forward passes. */
  checkpoint?: RecordsCheckpointer;
  /** Continue from a checkpoint of the same harvest (same corpus, nodes and settings). */
  resume?: RecordsCheckpoint;
  /** Filled with the milliseconds spent per phase when the harvest ends (for benchmarks). */
  timings?: HarvestTimings;
}

/** Where a harvest's time went, in milliseconds (see {@link HarvestRecordsOptions.timings}). */
export interface HarvestTimings {
  /** Forward passes of the harvest proper (`model.trace` with the hooks cached). */
  forwardMs: number;
  /** Per-token node work: statistics, top-excerpt heaps, copies of the random-window candidates. */
  nodeMs: number;
  /** The pass over random windows whose activations were not kept (only those chosen before a resume). */
  randomMs: number;
  /** Assembling the record set: sorted top excerpts, random excerpts in order, token strings. */
  assembleMs: number;
  /** Everything else (reading and tokenizing the corpus, progress, checkpoints). */
  otherMs: number;
}

// ---------------------------------------------------------------------------------------------
// Node lists

/**
 * Every MLP neuron of the given layers (all layers when omitted), layer by layer.
 *
 * @example
 * ```ts
 * const nodes = allNeurons(model.config, [0, 1]); // 2 x d_mlp nodes
 * ```
 */
export function allNeurons(config: Pick<RecordsModelConfig, "nLayers" | "dMlp">, layers?: readonly number[]): NeuronNode[] {
  const ls = layers ?? Array.from({ length: config.nLayers }, (_, l) => l);
  return ls.flatMap((layer) => Array.from({ length: config.dMlp }, (_, index) => ({ kind: "mlp_neuron" as const, layer, index })));
}

/** The given neurons of one layer. */
export function neurons(layer: number, indices: readonly number[]): NeuronNode[] {
  return indices.map((index) => ({ kind: "mlp_neuron" as const, layer, index }));
}

/** Every attention head of the given layers (all layers when omitted). */
export function allHeads(config: Pick<RecordsModelConfig, "nLayers" | "nHeads">, layers?: readonly number[]): HeadNode[] {
  const ls = layers ?? Array.from({ length: config.nLayers }, (_, l) => l);
  return ls.flatMap((layer) => Array.from({ length: config.nHeads }, (_, head) => ({ kind: "attention_head" as const, layer, head })));
}

/** Every latent of an SAE (its `config.hookName`, or `hook`). */
export function allLatents(sae: RecordsSae, hook?: string): SaeLatentNode[] {
  const h = hook ?? sae.config.hookName;
  if (typeof h !== "string") throw new TdbError("E_BAD_OPTION", "allLatents: the SAE has no config.hookName; pass the hook", { value: h, allowed: "a hook name" });
  return Array.from({ length: sae.config.dSae }, (_, index) => ({ kind: "sae_latent" as const, hook: h, index }));
}

// ---------------------------------------------------------------------------------------------
// Options

function intOption(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new TdbError("E_BAD_OPTION", `harvestRecords: ${name} must be an integer in [${min}, ${max}], got ${String(v)}`, { value: v, allowed: [min, max] });
  }
  return v;
}

function rangeError(code: "E_LAYER_RANGE" | "E_INDEX_RANGE", what: string, v: unknown, n: number): TdbError {
  return new TdbError(code, `${what} ${String(v)} out of range [0, ${n - 1}]`, { value: v, allowed: [0, n - 1] });
}

function checkIndex(code: "E_LAYER_RANGE" | "E_INDEX_RANGE", what: string, v: unknown, n: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= n) throw rangeError(code, what, v, n);
  return v;
}

interface GroupSpec {
  key: string;
  kind: RecordGroupKind;
  hook: HookName;
  nodes: ExplainableNode[];
  cols: number[];
  sae?: RecordsSae;
  seen: Set<string>;
}

/** Checks the nodes against the model and SAEs and groups them by hook (first appearance order; duplicates dropped). */
function groupNodes(model: RecordsModel, nodes: readonly ExplainableNode[], saes: readonly RecordsSae[]): GroupSpec[] {
  const cfg = model.config;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new TdbError("E_BAD_OPTION", "harvestRecords: nodes must be a non-empty array of nodes", { value: Array.isArray(nodes) ? 0 : typeof nodes, allowed: "e.g. allNeurons(model.config, [0])" });
  }
  const saeByHook = new Map<string, RecordsSae>();
  for (const sae of saes) {
    const h = sae?.config?.hookName;
    if (typeof h !== "string" || typeof sae.encode !== "function") {
      throw new TdbError("E_BAD_OPTION", "harvestRecords: every SAE needs config.hookName and encode()", { value: h ?? null, allowed: "an Sae with config.hookName" });
    }
    saeByHook.set(parseHookName(h, cfg.nLayers).name, sae);
  }
  const groups = new Map<string, GroupSpec>();
  const add = (key: string, kind: RecordGroupKind, hook: HookName, node: ExplainableNode, col: number, sae?: RecordsSae): void => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { key, kind, hook, nodes: [], cols: [], sae, seen: new Set() }));
    const k = nodeKey(node);
    if (g.seen.has(k)) return;
    g.seen.add(k);
    g.nodes.push(node);
    g.cols.push(col);
  };
  for (const node of nodes) {
    const kind = (node as { kind?: unknown } | null)?.kind;
    if (kind === "mlp_neuron") {
      const n = node as NeuronNode;
      const layer = checkIndex("E_LAYER_RANGE", "layer", n.layer, cfg.nLayers);
      const index = checkIndex("E_INDEX_RANGE", `neuron index of layer ${layer}`, n.index, cfg.dMlp);
      add(`mlp.${layer}`, "mlp", `blocks.${layer}.mlp.hook_post` as HookName, { kind, layer, index }, index);
    } else if (kind === "attention_head") {
      const n = node as HeadNode;
      const layer = checkIndex("E_LAYER_RANGE", "layer", n.layer, cfg.nLayers);
      const head = checkIndex("E_INDEX_RANGE", `head of layer ${layer}`, n.head, cfg.nHeads);
      add(`attn.${layer}`, "attn", `blocks.${layer}.attn.hook_pattern` as HookName, { kind, layer, head }, head);
    } else if (kind === "sae_latent") {
      const n = node as SaeLatentNode;
      const hook = parseHookName(n.hook, cfg.nLayers).name;
      const sae = saeByHook.get(hook);
      if (!sae) {
        throw new TdbError("E_UNKNOWN_HOOK", `no SAE given for ${hook}; pass it in the saes option`, { value: n.hook, allowed: [...saeByHook.keys()] });
      }
      const index = checkIndex("E_INDEX_RANGE", `latent index of the SAE on ${hook}`, n.index, sae.config.dSae);
      add(`sae.${hook}`, "sae", hook, { kind, hook, index }, index, sae);
    } else {
      throw new TdbError("E_BAD_INPUT", `unknown node kind ${JSON.stringify(kind ?? null)}`, { value: kind ?? null, allowed: ["mlp_neuron", "sae_latent", "attention_head"] });
    }
  }
  return [...groups.values()];
}

// ---------------------------------------------------------------------------------------------
// Harvest state

interface GroupState {
  spec: GroupSpec;
  g: RecordGroup;
  cols: Int32Array;
  /** Heap of slot numbers per node (n x K): a min-heap by peak (ties: the later window is smaller). */
  heap: Int32Array;
  /** Window of each slot (n x K). */
  slotWin: (WindowRef | undefined)[];
  /** The heap's minimum peak when full, -Infinity before. */
  thresh: Float32Array;
  /** Activations of the random-window candidates, slot-major (R x n x C: slot s, node j at (s x n + j) x C; allocated when the harvest starts). */
  randAct: Float32Array;
  /** Attention heads: key positions of the random-window candidates (R x n x C). */
  randKeys?: Int16Array;
}

/** Activations of one group for one batch: element (window b, excerpt position p, column c) at ((b * rows + first + p) * width + c). */
interface Matrix {
  data: Float32Array;
  bits: Int32Array;
  keys?: Int16Array;
  width: number;
  rows: number;
  first: number;
}

function newState(spec: GroupSpec, s: RecordSettings): GroupState {
  const n = spec.nodes.length;
  return {
    spec,
    g: emptyGroup(spec.key, spec.kind, spec.hook, spec.nodes, s),
    cols: Int32Array.from(spec.cols),
    heap: new Int32Array(n * s.topK),
    slotWin: new Array<WindowRef | undefined>(n * s.topK).fill(undefined),
    thresh: new Float32Array(n).fill(-Infinity),
    randAct: new Float32Array(0),
    randKeys: undefined,
  };
}

/** Slot a ranks below slot b (smaller peak; equal peaks: later window). */
function below(st: GroupState, base: number, a: number, b: number): boolean {
  const pa = st.g.topPeak[base + a]!;
  const pb = st.g.topPeak[base + b]!;
  return pa < pb || (pa === pb && compareWindows(st.slotWin[base + a]!, st.slotWin[base + b]!) > 0);
}

function siftUp(st: GroupState, base: number, i: number): void {
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

function siftDown(st: GroupState, base: number, size: number): void {
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
 * Offers window b (peak v) to node j's heap; its activations are `acts[at .. at + len)` (the
 * transposed column), its keys (heads) read from the batch matrix.
 */
function offer(st: GroupState, j: number, v: number, w: WindowRef, acts: Float32Array, from: number, m: Matrix, b: number, K: number, C: number): void {
  const g = st.g;
  const base = j * K;
  const size = g.topSize[j]!;
  if (size === K) {
    const root = st.heap[base]!;
    if (v === st.thresh[j] && compareWindows(w, st.slotWin[base + root]!) >= 0) return; // tie lost
  }
  const slot = size < K ? size : st.heap[base]!;
  g.topPeak[base + slot] = v;
  st.slotWin[base + slot] = w;
  const at = (base + slot) * C;
  const len = w.ids.length;
  const dst = g.topAct;
  for (let p = 0; p < len; p++) dst[at + p] = acts[from + p]!;
  if (g.topKeys) {
    const col = st.cols[j]!;
    for (let p = 0; p < len; p++) g.topKeys[at + p] = m.keys![(b * m.rows + m.first + p) * m.width + col]!;
  }
  if (size < K) {
    st.heap[base + size] = slot;
    g.topSize[j] = size + 1;
    siftUp(st, base, size);
  } else {
    siftDown(st, base, K);
  }
  if (g.topSize[j] === K) st.thresh[j] = g.topPeak[base + st.heap[base]!]!;
}

/** Tile of the transposition: rows x columns. */
const TILE_ROWS = 16;
const TILE_COLS = 64;
let scratch = new Float32Array(0);

/**
 * The hot loop: statistics of every token and top-k candidates of every window, for one group
 * and one batch of windows of equal length. The batch's columns are first transposed (in cache
 * tiles) into a scratch buffer, then each column runs over its tokens with its sums in locals;
 * only a window whose peak reaches the node's heap minimum costs more (see `offer`).
 */
function accumulate(st: GroupState, m: Matrix, wins: readonly WindowRef[], K: number, C: number): void {
  const { data, width: W, rows: RW, first } = m;
  const g = st.g;
  const { sum, positive, max, hist } = g;
  const { cols, thresh } = st;
  const BIN = SKETCH_BIN_OF_TOP12;
  const n = cols.length;
  const B = wins.length;
  const len = wins[0]!.ids.length;
  const T = B * len;
  if (scratch.length < n * T) scratch = new Float32Array(n * T);
  const sc = scratch;
  const sb = new Int32Array(sc.buffer, 0, n * T);
  const rowAt = new Int32Array(T);
  for (let b = 0; b < B; b++) for (let p = 0; p < len; p++) rowAt[b * len + p] = (b * RW + first + p) * W;
  for (let r0 = 0; r0 < T; r0 += TILE_ROWS) {
    const r1 = Math.min(T, r0 + TILE_ROWS);
    for (let c0 = 0; c0 < n; c0 += TILE_COLS) {
      const c1 = Math.min(n, c0 + TILE_COLS);
      for (let c = c0; c < c1; c++) {
        const col = cols[c]!;
        const dst = c * T;
        for (let r = r0; r < r1; r++) sc[dst + r] = data[rowAt[r]! + col]!;
      }
    }
  }
  for (let j = 0; j < n; j++) {
    const hb = j * SKETCH_BINS;
    const base = j * T;
    let ps = 0;
    let mx = max[j]!;
    let sm = sum[j]!;
    for (let b = 0; b < B; b++) {
      let ws = 0;
      let wm = -Infinity;
      const w0 = base + b * len;
      for (let i = w0; i < w0 + len; i++) {
        const v = sc[i]!;
        ws += v;
        if (v > wm) wm = v;
        ps += v > 0 ? 1 : 0;
        const h = hb + BIN[sb[i]! >>> 20]!;
        hist[h] = hist[h]! + 1;
      }
      // Fixed point per window: the window's float64 sum (token order) rounded, so totals are
      // exact integers whatever the order windows arrive in.
      sm += Math.round(ws * SUM_SCALE);
      if (wm > mx) mx = wm;
      if (wm >= thresh[j]!) offer(st, j, wm, wins[b]!, sc, w0, m, b, K, C);
    }
    sum[j] = sm;
    positive[j] = positive[j]! + ps;
    max[j] = mx;
  }
  g.count += T;
}

/**
 * Keeps the activations of the batch's random-window candidates (window `b` into slot `slot`),
 * read from the scratch buffer `accumulate` just filled (node j's tokens at j x T).
 */
function keepRandom(st: GroupState, m: Matrix, cand: readonly { b: number; slot: number }[], len: number, T: number, R: number, C: number): void {
  const n = st.cols.length;
  const sc = scratch;
  const dst = st.randAct;
  for (const { b, slot } of cand) {
    for (let j = 0; j < n; j++) {
      const from = j * T + b * len;
      const at = (slot * n + j) * C;
      for (let p = 0; p < len; p++) dst[at + p] = sc[from + p]!;
      if (st.randKeys) {
        const col = st.cols[j]!;
        for (let p = 0; p < len; p++) st.randKeys[at + p] = m.keys![(b * m.rows + m.first + p) * m.width + col]!;
      }
    }
  }
}

/**
 * The random excerpts in rank order (n x R x C, as a record set holds them) from the candidate
 * slots (slot-major: slot s, node j at (s x n + j) x C): rank r is slot `perm[r]`, of which the
 * first `lens[r]` values are copied (0: not kept; the rest stays 0).
 */
function randomInRankOrder<A extends Float32Array | Int16Array>(a: A, n: number, perm: readonly number[], lens: readonly number[], R: number, C: number): A {
  const out = (a instanceof Float32Array ? new Float32Array(n * R * C) : new Int16Array(n * R * C)) as A;
  perm.forEach((slot, r) => {
    const len = lens[r]!;
    if (len === 0) return;
    for (let j = 0; j < n; j++) {
      const from = (slot * n + j) * C;
      const at = (j * R + r) * C;
      for (let p = 0; p < len; p++) out[at + p] = a[from + p]!;
    }
  });
  return out;
}

/** The activations of a group on a batch of windows of equal length (model rows of length S = len + 1). */
async function matrixOf(st: GroupState, cache: RecordsCache, B: number, S: number): Promise<Matrix> {
  const spec = st.spec;
  const a = cache.get(spec.hook);
  const dims = a.dims;
  if (spec.kind === "mlp") {
    return { data: a.data, bits: new Int32Array(a.data.buffer, a.data.byteOffset, a.data.length), width: dims[2]!, rows: S, first: 1 };
  }
  if (spec.kind === "attn") {
    // [B, H, S, S] -> per query q >= 1: max over keys 1..q, as [B, S - 1, H], and its key (excerpt index).
    const H = dims[1]!;
    const out = new Float32Array(B * (S - 1) * H);
    const keys = new Int16Array(out.length);
    const A = a.data;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let q = 1; q < S; q++) {
          const row = ((b * H + h) * S + q) * S;
          let best = -Infinity;
          let arg = -1;
          for (let k = 1; k <= q; k++) {
            const v = A[row + k]!;
            if (v > best) {
              best = v;
              arg = k;
            }
          }
          const o = (b * (S - 1) + q - 1) * H + h;
          out[o] = best;
          keys[o] = arg - 1;
        }
      }
    }
    return { data: out, bits: new Int32Array(out.buffer), keys, width: H, rows: S - 1, first: 0 };
  }
  const sae = spec.sae!;
  const dIn = sae.config.dIn;
  const per = dims.slice(2).reduce((x, y) => x * y, 1);
  if (per !== dIn || dims[0] !== B || dims[1] !== S) {
    throw new TdbError("E_CONFIG_MISMATCH", `the SAE on ${spec.hook} reads ${dIn} values per token; the hook has dims [${dims.join(", ")}]`, { value: dims, allowed: [B, S, dIn] });
  }
  const x = new Float32Array(B * (S - 1) * dIn);
  for (let b = 0; b < B; b++) x.set(a.data.subarray((b * S + 1) * dIn, (b + 1) * S * dIn), b * (S - 1) * dIn);
  const z = await sae.encode(x, B * (S - 1));
  return { data: z, bits: new Int32Array(z.buffer, z.byteOffset, z.length), width: sae.config.dSae, rows: S - 1, first: 0 };
}

/** The group, with top excerpts sorted and windows indexed, as a record set holds it (copies the arrays). */
function snapshot(st: GroupState, s: RecordSettings): RecordGroup {
  const { topK: K, contextTokens: C } = s;
  const src = st.g;
  const out = emptyGroup(src.key, src.kind, src.hook, src.nodes, s);
  out.count = src.count;
  out.sum.set(src.sum);
  out.positive.set(src.positive);
  out.max.set(src.max);
  out.hist.set(src.hist);
  const index = new Map<WindowRef, number>();
  const peak = src.topPeak;
  const slots = new Int32Array(K);
  const { topAct: srcAct, topKeys: srcKeys } = src;
  const { topAct: outAct, topKeys: outKeys } = out;
  for (let j = 0; j < src.nodes.length; j++) {
    const base = j * K;
    const size = src.topSize[j]!;
    // Slots by descending peak, ties by window order (distinct windows: one order): insertion sort.
    for (let r = 0; r < size; r++) {
      const pr = peak[base + r]!;
      const wr = st.slotWin[base + r]!;
      let i = r;
      while (i > 0) {
        const q = slots[i - 1]!;
        const pq = peak[base + q]!;
        if (pq > pr || (pq === pr && compareWindows(st.slotWin[base + q]!, wr) < 0)) break;
        slots[i] = q;
        i--;
      }
      slots[i] = r;
    }
    for (let r = 0; r < size; r++) {
      const slot = slots[r]!;
      const w = st.slotWin[base + slot]!;
      let wi = index.get(w);
      if (wi === undefined) {
        wi = out.windows.length;
        out.windows.push(w);
        index.set(w, wi);
      }
      out.topPeak[base + r] = peak[base + slot]!;
      out.topWin[base + r] = wi;
      const from = (base + slot) * C;
      const at = (base + r) * C;
      for (let p = 0; p < C; p++) outAct[at + p] = srcAct[from + p]!;
      if (outKeys && srcKeys) for (let p = 0; p < C; p++) outKeys[at + p] = srcKeys[from + p]!;
    }
    out.topSize[j] = size;
  }
  return out;
}

/** A state restored from a checkpoint's group (top excerpts sorted descending). */
function restore(spec: GroupSpec, g: RecordGroup, s: RecordSettings): GroupState {
  const st = newState(spec, s);
  const K = s.topK;
  const d = st.g;
  d.count = g.count;
  d.sum.set(g.sum);
  d.positive.set(g.positive);
  d.max.set(g.max);
  d.hist.set(g.hist);
  d.topPeak.set(g.topPeak);
  d.topAct.set(g.topAct.subarray(0, d.topAct.length));
  if (d.topKeys && g.topKeys) d.topKeys.set(g.topKeys);
  for (let j = 0; j < spec.nodes.length; j++) {
    const size = g.topSize[j]!;
    d.topSize[j] = size;
    const base = j * K;
    // Slots stay where they are (descending); the heap lists them ascending, a valid min-heap.
    for (let r = 0; r < size; r++) {
      st.slotWin[base + r] = g.windows[g.topWin[base + r]!]!;
      st.heap[base + r] = size - 1 - r;
    }
    if (size === K) st.thresh[j] = d.topPeak[base + st.heap[base]!]!;
  }
  return st;
}

function sameSettings(a: RecordSettings, b: RecordSettings): boolean {
  return a.contextTokens === b.contextTokens && a.topK === b.topK && a.randomK === b.randomK && a.seed === b.seed;
}

// ---------------------------------------------------------------------------------------------
// Harvest

/** The corpus items as `{ id, text }` (strings get ids "0", "1", ...). */
async function* documents(corpus: RecordsCorpus): AsyncGenerator<CorpusDocument> {
  if (typeof corpus === "string" || corpus === null || typeof corpus !== "object" || !(Symbol.asyncIterator in corpus || Symbol.iterator in corpus)) {
    throw new TdbError("E_BAD_INPUT", "harvestRecords: corpus must be an (async) iterable of documents { id, text } or of strings", {
      value: typeof corpus === "string" ? "a string" : corpus === null ? null : typeof corpus,
      allowed: "an iterable of { id, text } documents or strings (wrap one text as [text])",
    });
  }
  let i = 0;
  for await (const d of corpus as AsyncIterable<unknown>) {
    if (typeof d === "string") yield { id: String(i), text: d };
    else if (d !== null && typeof d === "object" && typeof (d as CorpusDocument).text === "string" && typeof (d as CorpusDocument).id === "string") yield d as CorpusDocument;
    else {
      throw new TdbError("E_BAD_INPUT", `harvestRecords: corpus item ${i} is neither a string nor a document { id, text }`, { value: d === null ? null : typeof d, allowed: "strings or { id, text } documents" });
    }
    i++;
  }
}

/**
 * Harvests activation records of `nodes` over `corpus` (see the module comment): top excerpts,
 * random excerpts and statistics per node, in bounded memory, with checkpoints to resume from.
 *
 * Errors: `E_LAYER_RANGE` / `E_INDEX_RANGE` for nodes outside the model (or SAE),
 * `E_UNKNOWN_HOOK` for an SAE latent whose hook has no SAE in `saes` (or a bad hook name),
 * `E_BAD_OPTION` for bad options, `E_BAD_INPUT` for a corpus that is not one,
 * `E_CHECKPOINT_MISMATCH` for a checkpoint of another harvest.
 *
 * @example
 * ```ts
 * const records = await harvestRecords(model, brownCorpus(), { nodes: allNeurons(model.config, [0]), tokens: 200_000 });
 * records.node({ kind: "mlp_neuron", layer: 0, index: 7 }).top[0];
 * ```
 */
export async function harvestRecords(model: RecordsModel, corpus: RecordsCorpus, options: HarvestRecordsOptions): Promise<HarvestedRecords> {
  if (model === null || typeof model !== "object" || typeof model.trace !== "function" || typeof model.toTokens !== "function" || typeof model.config !== "object") {
    throw new TdbError("E_BAD_OPTION", "harvestRecords: model must be a loaded Model (or ModelRuntime)", { value: model === null ? null : typeof model, allowed: "a Model" });
  }
  if (options === null || typeof options !== "object") throw new TdbError("E_BAD_OPTION", "harvestRecords: options must be an object with nodes", { value: options, allowed: "{ nodes, ... }" });
  const o = options;
  const nCtx = model.config.nCtx;
  const settings: RecordSettings = {
    contextTokens: intOption("contextTokens", o.contextTokens ?? Math.min(64, nCtx - 1), 1, nCtx - 1),
    topK: intOption("topK", o.topK ?? 20, 1, 1 << 16),
    randomK: intOption("randomK", o.randomK ?? 20, 0, 1 << 16),
    seed: intOption("seed", o.seed ?? 0, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
  };
  const batch = intOption("batch", o.batch ?? 8, 1, 1 << 16);
  const budget = o.tokens === undefined ? Infinity : intOption("tokens", o.tokens, 1, Number.MAX_SAFE_INTEGER);
  const every = o.checkpoint === undefined ? 0 : intOption("checkpoint.every", o.checkpoint.every ?? 50, 1, Number.MAX_SAFE_INTEGER);
  if (o.checkpoint !== undefined && typeof o.checkpoint.save !== "function") {
    throw new TdbError("E_BAD_OPTION", "harvestRecords: checkpoint.save must be a function", { value: typeof o.checkpoint.save, allowed: "a function (cp) => Promise<void>" });
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") {
    throw new TdbError("E_BAD_OPTION", "harvestRecords: onProgress must be a function", { value: typeof o.onProgress, allowed: "a function" });
  }
  const specs = groupNodes(model, o.nodes, o.saes ?? []);
  const { topK: K, randomK: R, contextTokens: C } = settings;
  const hooks = specs.map((s) => s.hook);

  let states: GroupState[];
  let random: RandomWindow[] = [];
  let start: CorpusPosition = { doc: 0, window: 0 };
  let tokens = 0;
  let windows = 0;
  let batches = 0;
  if (o.resume !== undefined) {
    const cp = o.resume;
    if (!cp || typeof cp !== "object" || !Array.isArray(cp.groups) || !cp.settings || !cp.position) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", "harvestRecords: resume must be a checkpoint saved by harvestRecords", { value: typeof cp, allowed: "a RecordsCheckpoint" });
    }
    if (!sameSettings(cp.settings, settings)) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", "the checkpoint was harvested with other settings", { value: cp.settings, allowed: settings });
    }
    const want = specs.map((s) => `${s.key}:${s.nodes.map(nodeKey).join(",")}`).join(";");
    const have = cp.groups.map((g) => `${g.key}:${g.nodes.map(nodeKey).join(",")}`).join(";");
    if (want !== have) {
      throw new TdbError("E_CHECKPOINT_MISMATCH", "the checkpoint holds other nodes than this harvest asks for", {
        value: cp.groups.map((g) => `${g.key} (${g.nodes.length})`),
        allowed: specs.map((s) => `${s.key} (${s.nodes.length})`),
      });
    }
    states = specs.map((spec, i) => restore(spec, cp.groups[i]!, settings));
    random = [...cp.random];
    start = { ...cp.position };
    ({ tokens, windows, batches } = cp.progress);
  } else {
    states = specs.map((spec) => newState(spec, settings));
  }

  const t0 = Date.now();
  const tm: HarvestTimings = { forwardMs: 0, nodeMs: 0, randomMs: 0, assembleMs: 0, otherMs: 0 };
  const pt0 = performance.now();
  // Random windows: their activations are kept when they run, in a slot per candidate (the
  // window's hash is known before it runs, so a window that ranks among the R smallest hashes
  // so far is a candidate; an evicted candidate frees its slot). Windows chosen before a resume
  // have no activations kept: they run once more at the end.
  const randInfo: { slot: number; filled: boolean }[] = random.map((_, i) => ({ slot: i, filled: false }));
  const candidates = new Map<WindowRef, { slot: number; filled: boolean }>();
  if (R > 0) {
    for (const st of states) {
      const size = st.spec.nodes.length * R * C;
      st.randAct = new Float32Array(size);
      if (st.spec.kind === "attn") st.randKeys = new Int16Array(size);
    }
  }
  const pending = new Map<number, WindowRef[]>();
  let sinceCheckpoint = 0;
  let documentsRead = 0;

  const run = async (wins: WindowRef[]): Promise<void> => {
    const S = wins[0]!.ids.length + 1;
    const rows = wins.map((w) => [model.bosTokenId, ...w.ids]);
    const f0 = performance.now();
    const t = await model.trace(rows, { hooks, prependBos: false, logits: "last" });
    const f1 = performance.now();
    tm.forwardMs += f1 - f0;
    const cand: { b: number; slot: number }[] = [];
    const infos: { slot: number; filled: boolean }[] = [];
    wins.forEach((w, b) => {
      const info = candidates.get(w);
      if (info === undefined) return;
      cand.push({ b, slot: info.slot });
      infos.push(info);
      candidates.delete(w);
    });
    for (const st of states) {
      const m = await matrixOf(st, t.cache, wins.length, S);
      accumulate(st, m, wins, K, C);
      if (cand.length > 0) keepRandom(st, m, cand, S - 1, wins.length * (S - 1), R, C);
    }
    for (const info of infos) info.filled = true;
    tm.nodeMs += performance.now() - f1;
    batches++;
  };
  const flushAll = async (): Promise<void> => {
    for (const len of [...pending.keys()].sort((a, b) => b - a)) {
      const wins = pending.get(len)!;
      pending.delete(len);
      await run(wins);
    }
  };
  const addRandom = (w: WindowRef): void => {
    if (R === 0) return;
    const rw: RandomWindow = { ...w, hash: windowHash(w.doc, w.offset, settings.seed) };
    if (random.length === R && compareRandom(rw, random[R - 1]!) >= 0) return;
    let i = random.length;
    while (i > 0 && compareRandom(rw, random[i - 1]!) < 0) i--;
    let slot = random.length;
    if (random.length === R) {
      // The last candidate is evicted: its slot goes to the new one.
      random.pop();
      const out = randInfo.pop()!;
      slot = out.slot;
      for (const [ref, info] of candidates) {
        if (info === out) {
          candidates.delete(ref);
          break;
        }
      }
    }
    const info = { slot, filled: false };
    random.splice(i, 0, rw);
    randInfo.splice(i, 0, info);
    candidates.set(w, info);
  };
  const progress = async (): Promise<void> => {
    await o.onProgress?.({ tokens, windows, documents: documentsRead, batches, elapsedMs: Date.now() - t0 });
  };

  let docIndex = -1;
  outer: for await (const doc of documents(corpus)) {
    docIndex++;
    documentsRead = docIndex + 1;
    if (docIndex < start.doc) continue;
    if (tokens >= budget) break;
    if (doc.text.trim() === "") continue;
    const ids = model.toTokens(doc.text, { prependBos: false });
    for (let wi = docIndex === start.doc ? start.window : 0; wi * C < ids.length; wi++) {
      if (tokens >= budget) break outer;
      const w: WindowRef = { doc: doc.id, offset: wi * C, ids: Int32Array.from(ids.slice(wi * C, (wi + 1) * C)) };
      tokens += w.ids.length;
      windows++;
      addRandom(w);
      const len = w.ids.length;
      let list = pending.get(len);
      if (!list) pending.set(len, (list = []));
      list.push(w);
      if (list.length < batch) continue;
      pending.delete(len);
      await run(list);
      if (every > 0 && ++sinceCheckpoint === every) {
        sinceCheckpoint = 0;
        await flushAll();
        await o.checkpoint!.save({
          settings,
          groups: states.map((st) => snapshot(st, settings)),
          random: [...random],
          position: { doc: docIndex, window: wi + 1 },
          progress: { tokens, windows, batches },
        });
      }
      await progress();
    }
  }
  if (pending.size > 0) {
    await flushAll();
    await progress();
  }

  const a0 = performance.now();
  const groups = states.map((st) => snapshot(st, settings));
  // Random excerpts: the kept candidates in rank order; windows chosen before a resume run once more.
  const perm = randInfo.map((x) => x.slot);
  const lens = random.map((w, r) => (randInfo[r]!.filled ? w.ids.length : 0));
  groups.forEach((g, gi) => {
    const st = states[gi]!;
    g.randomAct = R > 0 ? randomInRankOrder(st.randAct, g.nodes.length, perm, lens, R, C) : new Float32Array(0);
    if (g.randomKeys) g.randomKeys = R > 0 ? randomInRankOrder(st.randKeys!, g.nodes.length, perm, lens, R, C) : new Int16Array(0);
    st.randAct = new Float32Array(0);
    st.randKeys = undefined;
  });
  const a1 = performance.now();
  // Windows of equal length run together, `batch` at a time, as during the harvest.
  const randomBatches: number[][] = [];
  const byLength = new Map<number, number[]>();
  random.forEach((w, r) => {
    if (randInfo[r]!.filled) return;
    let list = byLength.get(w.ids.length);
    if (!list) byLength.set(w.ids.length, (list = []));
    list.push(r);
    if (list.length === batch) {
      randomBatches.push(list);
      byLength.delete(w.ids.length);
    }
  });
  randomBatches.push(...byLength.values());
  for (const rs of randomBatches) {
    const len = random[rs[0]!]!.ids.length;
    const t = await model.trace(
      rs.map((r) => [model.bosTokenId, ...random[r]!.ids]),
      { hooks, prependBos: false, logits: "last" },
    );
    for (let gi = 0; gi < states.length; gi++) {
      const st = states[gi]!;
      const g = groups[gi]!;
      const m = await matrixOf(st, t.cache, rs.length, len + 1);
      rs.forEach((r, b) => {
        for (let j = 0; j < g.nodes.length; j++) {
          const at = (j * R + r) * C;
          for (let p = 0; p < len; p++) {
            const i = (b * m.rows + m.first + p) * m.width + st.cols[j]!;
            g.randomAct[at + p] = m.data[i]!;
            if (g.randomKeys) g.randomKeys[at + p] = m.keys![i]!;
          }
        }
      });
    }
  }
  const a2 = performance.now();
  // Token strings of every window kept.
  const ids = new Set<number>();
  for (const g of groups) for (const w of g.windows) for (const id of w.ids) ids.add(id);
  for (const w of random) for (const id of w.ids) ids.add(id);
  const list = [...ids].sort((a, b) => a - b);
  // toStrTokens takes a token row, at most n_ctx long.
  const strs: string[] = [];
  for (let i = 0; i < list.length; i += nCtx) strs.push(...model.toStrTokens(list.slice(i, i + nCtx)));
  if (o.timings !== undefined) {
    const end = performance.now();
    tm.randomMs = a2 - a1;
    tm.assembleMs = a1 - a0 + (end - a2);
    tm.otherMs = end - pt0 - tm.forwardMs - tm.nodeMs - tm.randomMs - tm.assembleMs;
    Object.assign(o.timings, tm);
  }
  return new HarvestedRecords(settings, groups, random, new Map(list.map((id, i) => [id, strs[i]!])));
}
