/**
 * Harvested activation records in compact form: per group of nodes read from one hook (the
 * neurons of one MLP layer, the heads of one attention layer, the latents of one SAE) typed
 * arrays of the top excerpts, the random excerpts and the statistics, and
 * {@link HarvestedRecords}, the set of groups with the views explainers read
 * ({@link HarvestedRecords.node} gives one node's {@link NodeRecords}).
 *
 * Orders that make merging exact (see {@link mergeRecords}):
 * - Top excerpts are ranked by peak activation, descending; equal peaks by document id (string
 *   order), then token offset, ascending. Each context window is one candidate per node (its
 *   largest activation is the peak), so the top-k is the k first windows in that total order.
 * - The random excerpts are the `randomK` windows with the smallest {@link windowHash} (seeded
 *   hash of document id and offset; ties by document id then offset): a deterministic uniform
 *   sample of windows, the same windows for every node, that two shards' samples merge into
 *   exactly.
 * - Sums are accumulated in fixed point: each window's sum (float64, in token order) is rounded
 *   to a multiple of 2^-20 (see {@link SUM_SCALE}) and these integers are added in float64:
 *   exact and order-independent while |sum| < 2^33 activation units, so means of shards merge
 *   exactly too (the rounding moves a mean by less than 2^-21 / contextTokens).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { splitHash } from "../corpus/document.js";
import { SKETCH_BINS, sketchQuantiles } from "./sketch.js";
import { QUANTILE_LEVELS, nodeKey, type ActivationRecord, type ExplainableNode, type NodeRecords } from "./types.js";

/** Sums are sums of round(window sum * SUM_SCALE): integers, exact in float64 below 2^53. */
export const SUM_SCALE = 2 ** 20;

/** The harvest settings a record set was made with; record sets merge only with equal settings. */
export interface RecordSettings {
  /** Tokens per excerpt (context window, without the BOS token the model reads first). */
  readonly contextTokens: number;
  /** Top excerpts kept per node. */
  readonly topK: number;
  /** Random excerpts kept (the same windows for every node). */
  readonly randomK: number;
  /** Seed of the random window choice. */
  readonly seed: number;
}

/** A context window of the corpus: the document, the token offset of its first token, and its token ids. */
export interface WindowRef {
  /** Document id (`String(i)` for the i-th item of a corpus of plain strings). */
  readonly doc: string;
  /** Token offset of the window's first token in the document (tokenized without BOS). */
  readonly offset: number;
  /** Token ids of the window (1 to contextTokens of them). */
  readonly ids: Int32Array;
}

/** A randomly chosen window and its hash (see {@link windowHash}). */
export interface RandomWindow extends WindowRef {
  /** `windowHash(doc, offset, seed)`. */
  readonly hash: number;
}

/** Kinds of node groups: one group per hook. */
export type RecordGroupKind = "mlp" | "attn" | "sae";

/**
 * The records of one group of nodes read from the same hook, in compact typed arrays (n nodes,
 * K = topK, R = randomK, C = contextTokens). Slot `(j, r)` of a per-excerpt array starts at
 * `(j * K + r) * C`; only the first `windows[win].ids.length` entries of a slot are used.
 */
export interface RecordGroup {
  /** `mlp.L`, `attn.L` or `sae.<hook>`: also the group's file name. */
  readonly key: string;
  /** What the nodes are. */
  readonly kind: RecordGroupKind;
  /** The hook read (`blocks.L.mlp.hook_post`, `blocks.L.attn.hook_pattern`, the SAE's hook). */
  readonly hook: string;
  /** The nodes, in the order the arrays hold them. */
  readonly nodes: readonly ExplainableNode[];
  /** Tokens seen by each node. */
  count: number;
  /** Windows the top excerpts come from (indexed by {@link RecordGroup.topWin}). */
  windows: WindowRef[];
  /** Top excerpts per node (n). */
  topSize: Int32Array;
  /** Peak activation per top slot (n x K), descending within a node. */
  topPeak: Float32Array;
  /** Window (index into {@link RecordGroup.windows}) per top slot (n x K). */
  topWin: Int32Array;
  /** Activations per top slot (n x K x C). */
  topAct: Float32Array;
  /** Attention heads: key position (excerpt index, -1 none) per token of each top slot (n x K x C). */
  topKeys?: Int16Array;
  /** Activations on the random windows (n x R x C), in the order of {@link HarvestedRecords.random}. */
  randomAct: Float32Array;
  /** Attention heads: key positions on the random windows (n x R x C). */
  randomKeys?: Int16Array;
  /** Fixed-point sum of activations per node (see {@link SUM_SCALE}). */
  sum: Float64Array;
  /** Tokens with activation > 0, per node. */
  positive: Float64Array;
  /** Largest activation per node (-Infinity before any token). */
  max: Float32Array;
  /** Quantile sketch per node (n x SKETCH_BINS counts, see `sketch.ts`). */
  hist: Uint32Array;
}

/** The seeded hash that picks random windows: an unsigned 32-bit integer from `doc`, `offset` and `seed`. */
export function windowHash(doc: string, offset: number, seed: number): number {
  return splitHash(`${doc}\u0000${offset}`, seed);
}

/** Total order of windows for ties: document id (string order), then offset. Negative when a comes first. */
export function compareWindows(a: WindowRef, b: WindowRef): number {
  return a.doc < b.doc ? -1 : a.doc > b.doc ? 1 : a.offset - b.offset;
}

/** Order of random windows: hash, then document id, then offset. */
export function compareRandom(a: RandomWindow, b: RandomWindow): number {
  return a.hash - b.hash || compareWindows(a, b);
}

/** A new, empty group. */
export function emptyGroup(key: string, kind: RecordGroupKind, hook: string, nodes: readonly ExplainableNode[], s: RecordSettings): RecordGroup {
  const n = nodes.length;
  const slots = n * s.topK;
  const heads = kind === "attn";
  return {
    key,
    kind,
    hook,
    nodes,
    count: 0,
    windows: [],
    topSize: new Int32Array(n),
    topPeak: new Float32Array(slots),
    topWin: new Int32Array(slots),
    topAct: new Float32Array(slots * s.contextTokens),
    topKeys: heads ? new Int16Array(slots * s.contextTokens) : undefined,
    randomAct: new Float32Array(0),
    randomKeys: heads ? new Int16Array(0) : undefined,
    sum: new Float64Array(n),
    positive: new Float64Array(n),
    max: new Float32Array(n).fill(-Infinity),
    hist: new Uint32Array(n * SKETCH_BINS),
  };
}

/** Everything harvested for a set of nodes: record groups, the random windows, the settings. */
export class HarvestedRecords {
  private readonly index = new Map<string, { group: RecordGroup; j: number }>();

  /**
   * Record sets come from `harvestRecords`, `mergeRecords` or `decodeRecords`. `tokenStrings`
   * maps every token id of every window to its string.
   */
  constructor(
    /** The harvest settings. */
    readonly settings: RecordSettings,
    /** The groups, one per hook. */
    readonly groups: readonly RecordGroup[],
    /** The random windows, in {@link compareRandom} order. */
    readonly random: readonly RandomWindow[],
    /** The string of each token id the windows hold. */
    readonly tokenStrings: ReadonlyMap<number, string>,
  ) {
    for (const g of groups) g.nodes.forEach((node, j) => this.index.set(nodeKey(node), { group: g, j }));
  }

  /** The nodes, group by group. */
  get nodes(): ExplainableNode[] {
    return this.groups.flatMap((g) => [...g.nodes]);
  }

  /** Tokens harvested (what each node saw). */
  get tokens(): number {
    return this.groups[0]?.count ?? 0;
  }

  /** Whether `node` (a node or its {@link nodeKey}) was harvested. */
  has(node: ExplainableNode | string): boolean {
    return this.index.has(typeof node === "string" ? node : nodeKey(node));
  }

  /**
   * The records of one node: top excerpts (descending peak), random excerpts, statistics.
   * A node that was not harvested is `E_BAD_INPUT`.
   *
   * @example
   * ```ts
   * const r = records.node({ kind: "mlp_neuron", layer: 0, index: 5 });
   * r.top[0].activations; // the best excerpt's activations
   * ```
   */
  node(node: ExplainableNode | string): NodeRecords {
    const key = typeof node === "string" ? node : nodeKey(node);
    const at = this.index.get(key);
    if (!at) {
      const keys = [...this.index.keys()];
      throw new TdbError("E_BAD_INPUT", `no records for ${key}`, { value: key, allowed: keys.length > 20 ? [...keys.slice(0, 19), "…"] : keys });
    }
    const { group: g, j } = at;
    const { topK: K, randomK: R, contextTokens: C } = this.settings;
    const top: ActivationRecord[] = [];
    for (let r = 0; r < g.topSize[j]!; r++) {
      const slot = j * K + r;
      top.push(this.record(g.windows[g.topWin[slot]!]!, g.topAct, g.topKeys, slot * C));
    }
    const random = this.random.map((w, r) => this.record(w, g.randomAct, g.randomKeys, (j * R + r) * C));
    return { node: g.nodes[j]!, top, random, stats: groupStats(g, j) };
  }

  /** Every node's records, group by group. */
  *records(): Generator<NodeRecords> {
    for (const g of this.groups) for (const node of g.nodes) yield this.node(node);
  }

  private record(w: WindowRef, act: Float32Array, keys: Int16Array | undefined, at: number): ActivationRecord {
    const len = w.ids.length;
    const ids = Array.from(w.ids);
    const rec: ActivationRecord = {
      tokens: ids.map((id) => this.tokenStrings.get(id) ?? `<${id}>`),
      ids,
      activations: Array.from(act.subarray(at, at + len)),
      source: { doc: w.doc, offset: w.offset },
    };
    if (keys) rec.keys = Array.from(keys.subarray(at, at + len));
    return rec;
  }
}

/** The statistics of node `j` of a group. */
export function groupStats(g: RecordGroup, j: number): NodeRecords["stats"] {
  const n = g.count;
  const max = g.max[j]!;
  return {
    count: n,
    max: n > 0 ? max : NaN,
    mean: n > 0 ? g.sum[j]! / SUM_SCALE / n : NaN,
    density: n > 0 ? g.positive[j]! / n : NaN,
    quantiles: sketchQuantiles(g.hist, j * SKETCH_BINS, QUANTILE_LEVELS, max),
  };
}

function sameSettings(a: RecordSettings, b: RecordSettings): boolean {
  return a.contextTokens === b.contextTokens && a.topK === b.topK && a.randomK === b.randomK && a.seed === b.seed;
}

/**
 * Merges two record sets harvested with the same settings and nodes over disjoint parts of a
 * corpus (shards): the result is what one pass over both parts gives (top excerpts, random
 * windows, counts, max, fixed-point sums and sketches are all exact; see the module comment for
 * the orders). Associative and commutative. Different settings or node sets are `E_BAD_INPUT`.
 * Overlapping shards are not detected: their common windows would count twice.
 *
 * @example
 * ```ts
 * const all = mergeRecords(mergeRecords(shard0, shard1), shard2);
 * ```
 */
export function mergeRecords(a: HarvestedRecords, b: HarvestedRecords): HarvestedRecords {
  if (!sameSettings(a.settings, b.settings)) {
    throw new TdbError("E_BAD_INPUT", "record sets harvested with different settings cannot merge", { value: b.settings, allowed: a.settings });
  }
  const keysA = a.groups.map((g) => g.key).join(",");
  const keysB = b.groups.map((g) => g.key).join(",");
  const nodesOf = (r: HarvestedRecords): string => r.nodes.map(nodeKey).join(",");
  if (keysA !== keysB || nodesOf(a) !== nodesOf(b)) {
    throw new TdbError("E_BAD_INPUT", "record sets of different nodes cannot merge (harvest the same nodes on each shard)", {
      value: b.groups.map((g) => `${g.key} (${g.nodes.length} nodes)`),
      allowed: a.groups.map((g) => `${g.key} (${g.nodes.length} nodes)`),
    });
  }
  const s = a.settings;
  // Random windows: the randomK smallest of both samples.
  const tagged = [...a.random.map((w, i) => ({ w, from: 0, i })), ...b.random.map((w, i) => ({ w, from: 1, i }))].sort((x, y) => compareRandom(x.w, y.w));
  const picked = tagged.slice(0, s.randomK);
  const groups = a.groups.map((ga, gi) => mergeGroup(ga, b.groups[gi]!, s, picked));
  const strings = new Map(a.tokenStrings);
  for (const [id, str] of b.tokenStrings) strings.set(id, str);
  return new HarvestedRecords(
    s,
    groups,
    picked.map((p) => p.w),
    strings,
  );
}

function mergeGroup(ga: RecordGroup, gb: RecordGroup, s: RecordSettings, picked: readonly { from: number; i: number }[]): RecordGroup {
  const { topK: K, randomK: R, contextTokens: C } = s;
  const n = ga.nodes.length;
  const out = emptyGroup(ga.key, ga.kind, ga.hook, ga.nodes, s);
  out.count = ga.count + gb.count;
  const windowIndex = new Map<string, number>();
  const windowOf = (w: WindowRef): number => {
    const k = `${w.doc}\u0000${w.offset}`;
    let i = windowIndex.get(k);
    if (i === undefined) {
      i = out.windows.length;
      out.windows.push(w);
      windowIndex.set(k, i);
    }
    return i;
  };
  const src = [ga, gb];
  for (let j = 0; j < n; j++) {
    out.sum[j] = ga.sum[j]! + gb.sum[j]!;
    out.positive[j] = ga.positive[j]! + gb.positive[j]!;
    out.max[j] = Math.max(ga.max[j]!, gb.max[j]!);
    let ia = 0;
    let ib = 0;
    let r = 0;
    const na = ga.topSize[j]!;
    const nb = gb.topSize[j]!;
    while (r < K && (ia < na || ib < nb)) {
      let from: number;
      if (ia >= na) from = 1;
      else if (ib >= nb) from = 0;
      else {
        const pa = ga.topPeak[j * K + ia]!;
        const pb = gb.topPeak[j * K + ib]!;
        from = pa > pb ? 0 : pb > pa ? 1 : compareWindows(ga.windows[ga.topWin[j * K + ia]!]!, gb.windows[gb.topWin[j * K + ib]!]!) <= 0 ? 0 : 1;
      }
      const g = src[from]!;
      const slot = j * K + (from === 0 ? ia++ : ib++);
      const to = j * K + r++;
      out.topPeak[to] = g.topPeak[slot]!;
      out.topWin[to] = windowOf(g.windows[g.topWin[slot]!]!);
      out.topAct.set(g.topAct.subarray(slot * C, slot * C + C), to * C);
      if (out.topKeys && g.topKeys) out.topKeys.set(g.topKeys.subarray(slot * C, slot * C + C), to * C);
    }
    out.topSize[j] = r;
  }
  for (let i = 0; i < out.hist.length; i++) out.hist[i] = ga.hist[i]! + gb.hist[i]!;
  out.randomAct = new Float32Array(n * R * C);
  if (out.randomKeys) out.randomKeys = new Int16Array(n * R * C);
  picked.forEach((p, r) => {
    const g = src[p.from]!;
    for (let j = 0; j < n; j++) {
      const from = (j * R + p.i) * C;
      out.randomAct.set(g.randomAct.subarray(from, from + C), (j * R + r) * C);
      if (out.randomKeys && g.randomKeys) out.randomKeys.set(g.randomKeys.subarray(from, from + C), (j * R + r) * C);
    }
  });
  return out;
}
