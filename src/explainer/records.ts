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
 * into the evicted slot. Random excerpts are the `randomK` windows with the smallest seeded hash
 * (the same windows for every node). A window's hash is known before it runs, so a window
 * ranking among the `randomK` smallest hashes so far is a candidate whose activations are kept
 * when its batch runs (in the slot of the candidate it evicts); only windows chosen before a
 * resume (whose activations a checkpoint does not hold) run once more at the end. Statistics per
 * node: count, max, fixed-point sum (mean), positive count (density), and a 513-bin quantile
 * sketch (`sketch.ts`, binned by a table lookup).
 *
 * The hot loop (`records-scan.ts`) reads each window of a batch in place (no transposition),
 * eight nodes at a time, without branching on values; it offers the window to the heaps and
 * copies the activations of the windows that enter a top or are random-window candidates from
 * a small tile in cache. The results are those of a plain per-node loop (tested against one).
 *
 * Memory: per node `topK x contextTokens` float32 activations for the top slots and
 * `randomK x contextTokens` for the random candidates, 513 uint32 sketch counts and a few
 * numbers; plus one batch's trace. Every neuron of a GPT-2-small-shaped model (12 x 3072 nodes,
 * topK = randomK = 20, contextTokens = 64): 189 MB of top slots + 189 MB of random candidates +
 * 76 MB of sketches. The record set returned at the end holds those same arrays, sorted in
 * place (top excerpts by rank, random excerpts in the random windows' order): no copy. A
 * checkpoint copies the top slots twice while it is written (sorted snapshot, then its bytes).
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
  type RandomWindow,
  type RecordGroup,
  type RecordGroupKind,
  type RecordSettings,
  type WindowRef,
} from "./records-data.js";
import { scanWindow, type TopHeaps } from "./records-scan.js";
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

/** A group being harvested: its record group and top heaps (records-scan.ts), its columns, its random-window candidates. */
interface GroupState extends TopHeaps {
  spec: GroupSpec;
  cols: Int32Array;
  /** Activations of the random-window candidates, node-major as a record set holds random excerpts (n x R x C: node j, slot s at (j x R + s) x C; allocated when the harvest starts). */
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

/**
 * Statistics of every token and top-k candidates of every window, for one group and one batch
 * of windows of equal length, window by window (see `scanWindow` in records-scan.ts); the
 * random-window candidates among them (window `b` into slot `slot`) are kept on the way.
 */
function accumulate(st: GroupState, m: Matrix, wins: readonly WindowRef[], cand: readonly { b: number; slot: number }[], K: number, C: number): void {
  const { width, rows, first } = m;
  const len = wins[0]!.ids.length;
  const R = st.randAct.length / (st.cols.length * C);
  for (let b = 0; b < wins.length; b++) {
    const slot = cand.find((c) => c.b === b)?.slot;
    scanWindow({
      data: m.data,
      bits: m.bits,
      keys: m.keys,
      width,
      r0: (b * rows + first) * width,
      len,
      cols: st.cols,
      top: st,
      win: wins[b]!,
      K,
      C,
      keepAct: slot === undefined ? undefined : st.randAct,
      keepKeys: slot === undefined ? undefined : st.randKeys,
      keepAt: slot === undefined ? 0 : slot * C,
      keepStride: R * C,
    });
  }
  st.g.count += wins.length * len;
}

/**
 * Puts the random-window candidates in rank order, in place (node j, slot s at (j x R + s) x C
 * before; rank r at (j x R + r) x C after, as a record set holds random excerpts): rank r is
 * slot `perm[r]`, of which the first `lens[r]` values are kept (0: not kept); the rest of each
 * rank, and ranks without a window, are 0.
 */
function randomInRankOrder<A extends Float32Array | Int16Array>(a: A, n: number, perm: readonly number[], lens: readonly number[], R: number, C: number): A {
  const tmp = a.slice(0, R * C) as A;
  for (let j = 0; j < n; j++) {
    const base = j * R * C;
    tmp.set(a.subarray(base, base + R * C));
    a.fill(0, base, base + R * C);
    perm.forEach((slot, r) => {
      const len = lens[r]!;
      if (len > 0) a.set(tmp.subarray(slot * C, slot * C + len), base + r * C);
    });
  }
  return a;
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

/**
 * The group, with top excerpts sorted and windows indexed, as a record set holds it: a copy
 * (checkpoints), or, when `consume` (the end of a harvest), the state's own arrays, sorted in
 * place (the state is not used afterwards).
 */
function snapshot(st: GroupState, s: RecordSettings, consume = false): RecordGroup {
  const { topK: K, contextTokens: C } = s;
  const src = st.g;
  let out: RecordGroup;
  if (consume) {
    out = { ...src, windows: [] };
  } else {
    out = emptyGroup(src.key, src.kind, src.hook, src.nodes, s);
    out.count = src.count;
    out.sum.set(src.sum);
    out.positive.set(src.positive);
    out.max.set(src.max);
    out.hist.set(src.hist);
  }
  const index = new Map<WindowRef, number>();
  const peak = src.topPeak;
  const slots = new Int32Array(K);
  // A node's slots before they are written in order (when sorting in place).
  const peakTmp = new Float32Array(K);
  const actTmp = new Float32Array(K * C);
  const keysTmp = src.topKeys ? new Int16Array(K * C) : undefined;
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
    let fromPeak = peak;
    let fromAct = srcAct;
    let fromKeys = srcKeys;
    let off = base;
    if (consume) {
      peakTmp.set(peak.subarray(base, base + size));
      actTmp.set(srcAct.subarray(base * C, (base + size) * C));
      if (keysTmp && srcKeys) keysTmp.set(srcKeys.subarray(base * C, (base + size) * C));
      fromPeak = peakTmp;
      fromAct = actTmp;
      fromKeys = keysTmp;
      off = 0;
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
      out.topPeak[base + r] = fromPeak[off + slot]!;
      out.topWin[base + r] = wi;
      const from = (off + slot) * C;
      const at = (base + r) * C;
      outAct.set(fromAct.subarray(from, from + C), at);
      if (outKeys && fromKeys) outKeys.set(fromKeys.subarray(from, from + C), at);
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
      accumulate(st, m, wins, cand, K, C);
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
  const groups = states.map((st) => snapshot(st, settings, true));
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
