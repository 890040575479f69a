/**
 * The offline explainer of attention heads: explains a head by the (query, key) token pairs of
 * its records, with no LLM. A head's activation at a query token is its largest attention to a
 * key other than BOS, and its records keep that key (see {@link HeadNode}); this explainer names
 * the relation between query and key that best reproduces the records, with a simulator of its
 * own, scored like every other explanation ({@link scoreSimulations} on held-out records, top
 * and random 1:1).
 *
 * Candidate patterns ({@link HeadPatternKind}), each a rule that gives, for every query position
 * of an excerpt, the key it points at (or none):
 * - `previous`: the token just before the query;
 * - `self`: the query token itself;
 * - `first`: the first token of the excerpt (the one right after BOS; BOS itself is outside the
 *   records: a head that attends only to BOS shows as a head with weak activations everywhere);
 * - `duplicate`: the latest earlier copy of the query token ("attends to the same token");
 * - `induction`: the token right after the latest earlier copy of the query token;
 * - `pairs`: no positional rule, a table of (query token, key token) pairs ("query token X
 *   attends to key token Y"; or any query to key token Y) learned from the strongest attentions.
 *
 * A positional rule is eligible when it is the recorded key of at least `minAgreement` of the
 * strong attentions of the training top records (activation >= `pivotThreshold` x the largest).
 * Its simulator is an additive model fitted on the training records: where the rule points at a
 * key, the rule's mean activation + a query-token effect + a (query token, key token) pair effect
 * (pairs seen `minSupport` times), each the mean of what the terms before it leave, shrunk towards
 * 0 with `smoothing` pseudo-counts; where it points at none, the mean activation of such places.
 * Optionally (variant) the mean becomes one per query-position bucket ({@link POSITION_BUCKETS}):
 * heads attend more sharply early in the context, where there are fewer keys. `pairs` keeps the
 * (query, key) and (any, key) pairs of the strong attentions that recur and predict more than the
 * mean; at a query, the (query, key) pair present (query token there, key token at or before it)
 * gives the activation, else the larger of an (any, key) pair present and a base of query-token
 * (and position) effects fitted where no pair is present;
 * a variant without the pair table is that base alone ("no rule for the key, the strength is set
 * by the query token").
 *
 * Variants and rules are compared by two-fold cross-validation on the training records (each
 * half fitted and simulated on the other, correlations pooled), since the token tables would
 * pass for a perfect fit in-sample: of a kind's variants, a richer one is kept when it gains more
 * than 0.01; of the eligible rules, the best wins (ties: the order above); with none eligible,
 * `pairs`. The chosen pattern, fitted on all training records, is then scored on the held-out ones.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { checkCount, checkFraction, checkRecord, interleave, pairUp } from "./offline-common.js";
import { SCALE_MAX } from "./prompts.js";
import { scoreSimulations, type SimulationScore } from "./scoring.js";
import type { ActivationRecord, ExplainableNode, HeadNode, NodeRecords } from "./types.js";
import type { OfflineStatus } from "./offline.js";

/** The relations between a query and the key a head attends to that {@link explainHeadOffline} tries (see the module notes). */
export type HeadPatternKind = "previous" | "self" | "first" | "duplicate" | "induction" | "pairs";

/** Every {@link HeadPatternKind}, in the order ties are broken. */
export const HEAD_PATTERN_KINDS: readonly HeadPatternKind[] = Object.freeze(["previous", "self", "first", "duplicate", "induction", "pairs"] as const);

/**
 * First query positions (excerpt index) of the position buckets a pattern's position effects use:
 * 0, 1, 2, 3, 4-5, 6-7, 8-11, 12-15, 16-23, 24-31, 32-47, 48-63, 64-95, 96-127, 128 and on.
 */
export const POSITION_BUCKETS: readonly number[] = Object.freeze([0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]);

/** The bucket of query position `q`. */
function bucketOf(q: number): number {
  let b = 0;
  while (b + 1 < POSITION_BUCKETS.length && POSITION_BUCKETS[b + 1]! <= q) b++;
  return b;
}

/** Options of {@link explainHeadOffline}. */
export interface OfflineHeadExplainOptions {
  /** Fraction of the top records, and of the random records, held out for scoring, in [0, 1) (interleaved, as {@link explainOffline}). 0 scores in-sample. Default 0.5. */
  holdout?: number;
  /** A query of a training top record is a strong attention when its activation is at least this fraction of the largest training activation. In (0, 1]. Default 0.5. */
  pivotThreshold?: number;
  /** A positional rule is eligible when it gives the recorded key of at least this fraction of the strong attentions. In (0, 1]. Default 0.5. */
  minAgreement?: number;
  /** Pseudo-counts shrinking a pair's mean towards its query token's, and that towards the rule's. Number >= 0. Default 2. */
  smoothing?: number;
  /** `pairs`: a pair is kept when it occurs at least this often in the training records; the explanation lists pairs seen this often. Integer >= 1. Default 2. */
  minSupport?: number;
  /** The kinds tried (default: all of {@link HEAD_PATTERN_KINDS}; `pairs` is the fallback only when listed). */
  kinds?: readonly HeadPatternKind[];
  /** Token pairs listed in the explanation (`pairs`: the strongest; positional kinds: the strongest above the rule's own level, seen `minSupport` times). Integer >= 0. Default 3. */
  maxListed?: number;
}

/** Defaults of {@link OfflineHeadExplainOptions}. */
export const OFFLINE_HEAD_DEFAULTS: Readonly<Required<Omit<OfflineHeadExplainOptions, "kinds">>> = Object.freeze({
  holdout: 0.5,
  pivotThreshold: 0.5,
  minAgreement: 0.5,
  smoothing: 2,
  minSupport: 2,
  maxListed: 3,
});

/** One (query token, key token) pair and the activation the pattern predicts for it. */
export interface HeadTokenPair {
  /** Query token id (`null`: any query, `pairs` only). */
  queryId: number | null;
  /** Key token id. */
  keyId: number;
  /** Query token string (`null`: any query). */
  query: string | null;
  /** Key token string. */
  key: string;
  /** Predicted activation (the node's own scale). */
  activation: number;
  /** `activation` on the 0..10 scale (relative to the largest training activation, rounded). */
  normalized: number;
  /** Places the pair occurs in the training records. */
  support: number;
}

/** The activation a positional pattern predicts for one query token where it points at a key. */
export interface HeadQueryValue {
  /** Query token id. */
  queryId: number;
  /** Query token string. */
  query: string;
  /** Predicted activation (shrunk towards the pattern's `inside`). */
  activation: number;
  /** Places in the training records where the relation points at a key from this query token. */
  support: number;
}

/** A head pattern: a relation between query and key, and the activations it predicts. */
export interface HeadPattern {
  /** Which relation. */
  kind: HeadPatternKind;
  /** Fraction of the strong training attentions whose recorded key the relation gives (for `pairs`: whose pair is in the table). */
  agreement: number;
  /** Predicted activation where the relation points at a key, before token refinement (`pairs`: the base's mean, where no pair is present). */
  inside: number;
  /** Predicted activation where the relation points at no key (`pairs`: equal to `inside`). */
  outside: number;
  /** Per query token: predicted activation where the relation points at a key (already shrunk; positional kinds; `pairs`: empty). */
  queries: HeadQueryValue[];
  /**
   * Position effects, or null when the pattern ignores the query's position: per bucket of
   * {@link POSITION_BUCKETS}, the activation predicted where the relation points at a key
   * (`inside`; token values add their difference from the pattern's `inside`) and where it points
   * at none (`outside`; `pairs`: the base's, equal to `inside`).
   */
  positions: { inside: number[]; outside: number[] } | null;
  /** Token pairs, strongest first (positional kinds: every pair seen; `pairs`: the table). */
  pairs: HeadTokenPair[];
  /** Human-readable form. */
  text: string;
}

/** How one candidate kind fared on the training records. */
export interface HeadCandidate {
  kind: HeadPatternKind;
  /** See {@link HeadPattern.agreement}. */
  agreement: number;
  /** Correlation of its simulation with the training records, two-fold cross-validated (in-sample when a half would be empty). */
  fit: number;
  /** Whether it could be chosen (agreement >= `minAgreement`; `pairs` always). */
  eligible: boolean;
}

/** How a head explanation came out: as {@link OfflineStatus}, or `unmatched` when no kind tried was eligible (no positional rule agreed and `pairs` was not tried). */
export type OfflineHeadStatus = OfflineStatus | "unmatched";

/** The result of {@link explainHeadOffline}. */
export interface OfflineHeadExplanation {
  /** The head. */
  node: ExplainableNode;
  /** `ok`, or why there is no pattern (then `pattern` is null, every simulated activation 0 and `score` 0). */
  status: OfflineHeadStatus;
  /** The explanation. */
  explanation: string;
  /** The pattern chosen. */
  pattern: HeadPattern | null;
  /** Every kind tried, in {@link HEAD_PATTERN_KINDS} order. */
  candidates: HeadCandidate[];
  /** `scores.correlation`. */
  score: number;
  /** {@link scoreSimulations} of the validation records and the simulation on the 0..10 scale, `min(10, 10 relu(s) / maxActivation)`. */
  scores: SimulationScore;
  /** Simulated activations (the node's own scale), one array per `validation` record. */
  simulated: number[][];
  /** The held-out records scored: top and random, 1:1. */
  validation: ActivationRecord[];
  /** Largest activation in the training top records (the 10 of the 0..10 scale). */
  maxActivation: number;
  /** Records used to find the pattern. */
  trained: { top: number; random: number };
}

/**
 * The key position `kind` points at from each query of an excerpt (token ids `ids`), or -1.
 * `pairs` has no positional rule: -1 everywhere.
 *
 * @example
 * ```ts
 * relationKeys("induction", [7, 3, 5, 7]); // [-1, -1, -1, 1]: after the earlier 7 comes position 1
 * ```
 */
export function relationKeys(kind: HeadPatternKind, ids: readonly number[]): number[] {
  const n = ids.length;
  const out = new Array<number>(n).fill(-1);
  switch (kind) {
    case "previous":
      for (let q = 1; q < n; q++) out[q] = q - 1;
      break;
    case "self":
      for (let q = 0; q < n; q++) out[q] = q;
      break;
    case "first":
      for (let q = 0; q < n; q++) out[q] = 0;
      break;
    case "duplicate":
    case "induction": {
      const last = new Map<number, number>();
      for (let q = 0; q < n; q++) {
        const k = last.get(ids[q]!);
        if (k !== undefined) out[q] = kind === "duplicate" ? k : k + 1;
        last.set(ids[q]!, q);
      }
      break;
    }
    case "pairs":
      break;
  }
  return out;
}

/** Whether recorded key `key` of query `q` is one `kind` accepts (any earlier copy counts for `duplicate` and `induction`). */
function agrees(kind: Exclude<HeadPatternKind, "pairs">, ids: readonly number[], q: number, key: number): boolean {
  if (key < 0 || key > q) return false;
  switch (kind) {
    case "previous":
      return key === q - 1;
    case "self":
      return key === q;
    case "first":
      return key === 0;
    case "duplicate":
      return key < q && ids[key] === ids[q];
    case "induction":
      return key >= 1 && ids[key - 1] === ids[q];
  }
}

const pairId = (q: number | null, k: number): string => `${q ?? "*"}:${k}`;

/**
 * Simulates a head from a pattern: the activation {@link HeadPattern} predicts at each query of
 * `excerpt` (token ids; see the module notes for the rule of each kind).
 *
 * @example
 * ```ts
 * const r = explainHeadOffline(records);
 * simulateHead(r.pattern!, { ids: [5, 9, 5, 9] });
 * ```
 */
export function simulateHead(pattern: HeadPattern, excerpt: { ids: readonly number[] }): number[] {
  const ids = excerpt.ids;
  const byPair = new Map(pattern.pairs.map((p) => [pairId(p.queryId, p.keyId), p.activation]));
  const byQuery = new Map(pattern.queries.map((v) => [v.queryId, v.activation]));
  const pos = pattern.positions;
  const outside = (q: number): number => (pos ? pos.outside[bucketOf(q)]! : pattern.outside);
  /** Where the rule points at a key: the position's value plus the token's (pair, else query token) difference from `inside`. */
  const inside = (q: number, token: number): number => (pos ? pos.inside[bucketOf(q)]! + token - pattern.inside : token);
  if (pattern.kind === "pairs") {
    const seen = new Set<number>();
    const max = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.max(a, b));
    return ids.map((id, q) => {
      seen.add(id);
      // The most specific entry present: a (query, key) pair, else the query token or an (any, key) pair.
      let pair: number | undefined;
      let wild: number | undefined;
      for (const k of seen) {
        pair = max(pair, byPair.get(pairId(id, k)));
        wild = max(wild, byPair.get(pairId(null, k)));
      }
      const base = inside(q, byQuery.get(id) ?? pattern.inside);
      return pair ?? max(base, wild)!;
    });
  }
  const keys = relationKeys(pattern.kind, ids);
  return ids.map((id, q) => {
    const k = keys[q]!;
    if (k < 0) return outside(q);
    return inside(q, byPair.get(pairId(id, ids[k]!)) ?? byQuery.get(id) ?? pattern.inside);
  });
}

interface Place {
  r: number;
  q: number;
}

interface Training {
  records: ActivationRecord[];
  /** Strong attentions of the training top records. */
  strong: Place[];
  max: number;
}

/** A pattern uses position effects (`pairs`: drops its pair table) when that raises its cross-validated training correlation by more than this. */
const POSITION_GAIN = 0.01;

const mean = (xs: readonly number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Means per position bucket of `acts` at positions `qs`, each shrunk towards `prior` with `m` pseudo-counts. */
function bucketMeans(acts: readonly number[], qs: readonly number[], prior: number, m: number): number[] {
  const sum = new Array<number>(POSITION_BUCKETS.length).fill(0);
  const n = new Array<number>(POSITION_BUCKETS.length).fill(0);
  acts.forEach((a, i) => {
    const b = bucketOf(qs[i]!);
    sum[b]! += a;
    n[b]!++;
  });
  return sum.map((x, b) => (n[b]! + m === 0 ? prior : (x + m * prior) / (n[b]! + m)));
}

/**
 * A positional rule fitted on the training records. Where the rule points at a key, the
 * activation is modelled as the rule's mean + a position effect (optional) + a query-token effect
 * + a pair effect, each a mean of what the earlier terms leave, shrunk towards 0 with `smoothing`
 * pseudo-counts (with positions: three rounds of backfitting); elsewhere, as the mean (per
 * position bucket, with positions).
 */
function fitRelation(
  kind: Exclude<HeadPatternKind, "pairs">,
  t: Training,
  smoothing: number,
  positional: boolean,
  minSupport: number,
  skip?: ReadonlySet<string>,
): HeadPattern {
  // Places where the rule points at a key: activation, position, query id, pair id.
  const acts: number[] = [];
  const qs: number[] = [];
  const qIds: number[] = [];
  const pIds: string[] = [];
  const outActs: number[] = [];
  const outQs: number[] = [];
  const pairInfo = new Map<string, { q: number; k: number; qs: string; ks: string }>();
  const queryStr = new Map<number, string>();
  t.records.forEach((rec, r) => {
    const keys = relationKeys(kind, rec.ids);
    rec.ids.forEach((id, q) => {
      if (skip?.has(`${r}:${q}`)) return;
      const a = rec.activations[q]!;
      const k = keys[q]!;
      if (k < 0) {
        outActs.push(a);
        outQs.push(q);
        return;
      }
      const pid = pairId(id, rec.ids[k]!);
      acts.push(a);
      qs.push(q);
      qIds.push(id);
      pIds.push(pid);
      if (!pairInfo.has(pid)) pairInfo.set(pid, { q: id, k: rec.ids[k]!, qs: rec.tokens[q]!, ks: rec.tokens[k]! });
      if (!queryStr.has(id)) queryStr.set(id, rec.tokens[q]!);
    });
  });
  const mIn = mean(acts);
  const mOut = mean(outActs);
  let posIn = new Array<number>(POSITION_BUCKETS.length).fill(mIn);
  const qDev = new Map<number, number>();
  const pDev = new Map<string, number>();
  const qN = new Map<number, number>();
  const pN = new Map<string, number>();
  for (let i = 0; i < acts.length; i++) {
    qN.set(qIds[i]!, (qN.get(qIds[i]!) ?? 0) + 1);
    pN.set(pIds[i]!, (pN.get(pIds[i]!) ?? 0) + 1);
  }
  const rounds = positional ? 3 : 1;
  for (let round = 0; round < rounds; round++) {
    // Query-token effects, then pair effects, on what the position effect leaves.
    const qSum = new Map<number, number>();
    for (let i = 0; i < acts.length; i++) qSum.set(qIds[i]!, (qSum.get(qIds[i]!) ?? 0) + acts[i]! - posIn[bucketOf(qs[i]!)]!);
    for (const [id, x] of qSum) qDev.set(id, x / (qN.get(id)! + smoothing));
    const pSum = new Map<string, number>();
    for (let i = 0; i < acts.length; i++) pSum.set(pIds[i]!, (pSum.get(pIds[i]!) ?? 0) + acts[i]! - posIn[bucketOf(qs[i]!)]! - qDev.get(qIds[i]!)!);
    for (const [id, x] of pSum) pDev.set(id, pN.get(id)! >= minSupport ? x / (pN.get(id)! + smoothing) : 0);
    if (positional) {
      // Position effect on what the token effects leave.
      const rest = acts.map((a, i) => a - qDev.get(qIds[i]!)! - pDev.get(pIds[i]!)!);
      posIn = bucketMeans(rest, qs, mIn, smoothing);
    }
  }
  const queries: HeadQueryValue[] = [...qDev].map(([queryId, d]) => ({ queryId, query: queryStr.get(queryId)!, activation: mIn + d, support: qN.get(queryId)! }));
  const pairs: HeadTokenPair[] = [...pDev].filter(([pid]) => pN.get(pid)! >= minSupport).map(([pid, d]) => {
    const info = pairInfo.get(pid)!;
    const activation = mIn + qDev.get(info.q)! + d;
    return { queryId: info.q, keyId: info.k, query: info.qs, key: info.ks, activation, normalized: level(activation, t.max), support: pN.get(pid)! };
  });
  sortPairs(pairs);
  queries.sort((x, y) => y.activation - x.activation || x.queryId - y.queryId);
  let agree = 0;
  for (const { r, q } of t.strong) if (agrees(kind, t.records[r]!.ids, q, t.records[r]!.keys![q]!)) agree++;
  return {
    kind,
    agreement: t.strong.length === 0 ? 0 : agree / t.strong.length,
    inside: mIn,
    outside: mOut,
    queries,
    pairs,
    positions: positional ? { inside: posIn, outside: bucketMeans(outActs, outQs, mOut, smoothing) } : null,
    text: "",
  };
}

/** The `pairs` pattern: (query, key) and (any, key) token pairs of the strong attentions, with their mean activation where present. */
function fitPairs(t: Training, minSupport: number, smoothing: number, positional: boolean, withPairs = true): HeadPattern {
  const cands = new Map<string, { q: number | null; k: number; qs: string | null; ks: string; strong: number[] }>();
  for (const { r, q } of t.strong) {
    const rec = t.records[r]!;
    const key = rec.keys![q]!;
    if (key < 0 || key > q) continue;
    for (const qid of [rec.ids[q]!, null]) {
      const id = pairId(qid, rec.ids[key]!);
      const c = cands.get(id) ?? { q: qid, k: rec.ids[key]!, qs: qid === null ? null : rec.tokens[q]!, ks: rec.tokens[key]!, strong: [] };
      c.strong.push(rec.activations[q]!);
      cands.set(id, c);
    }
  }
  // Activations where each candidate is present: query token there (or any), key token at or before it.
  const present = new Map<string, number[]>();
  const where = new Map<string, string[]>();
  const none: number[] = [];
  const keyIds = new Set([...cands.values()].map((c) => c.k));
  t.records.forEach((rec, r) => {
    const seen = new Set<number>();
    rec.ids.forEach((id, q) => {
      if (keyIds.has(id)) seen.add(id);
      let any = false;
      for (const k of seen) {
        for (const pid of [pairId(id, k), pairId(null, k)]) {
          if (!cands.has(pid)) continue;
          any = true;
          const list = present.get(pid) ?? [];
          list.push(rec.activations[q]!);
          present.set(pid, list);
          const at = where.get(pid) ?? [];
          at.push(`${r}:${q}`);
          where.set(pid, at);
        }
      }
      if (!any) none.push(rec.activations[q]!);
    });
  });
  const outside = mean(none);
  const pairs: HeadTokenPair[] = [];
  for (const [pid, c] of cands) {
    const acts = present.get(pid) ?? [];
    // A pair is kept when it recurs and predicts more than the mean: at least half its strong attentions' mean.
    if (acts.length < minSupport) continue;
    const activation = mean(acts);
    if (!withPairs || !(activation > outside) || activation < 0.5 * mean(c.strong)) continue;
    pairs.push({ queryId: c.q, keyId: c.k, query: c.qs, key: c.ks, activation, normalized: level(activation, t.max), support: acts.length });
  }
  sortPairs(pairs);
  const kept = new Set(pairs.map((p) => pairId(p.queryId, p.keyId)));
  // The base elsewhere: the query token's and the position's effects, fitted where no kept pair is
  // present, as a rule that always points at a key (the first token) with no pair effects gives them.
  const core = fitRelation("first", t, smoothing, positional, Infinity, new Set([...kept].flatMap((pid) => where.get(pid) ?? [])));
  let agree = 0;
  for (const { r, q } of t.strong) {
    const rec = t.records[r]!;
    const key = rec.keys![q]!;
    if (key >= 0 && key <= q && (kept.has(pairId(rec.ids[q]!, rec.ids[key]!)) || kept.has(pairId(null, rec.ids[key]!)))) agree++;
  }
  return {
    kind: "pairs",
    agreement: t.strong.length === 0 ? 0 : agree / t.strong.length,
    inside: core.inside,
    outside: core.inside,
    queries: core.queries,
    pairs,
    positions: core.positions ? { inside: core.positions.inside, outside: core.positions.inside } : null,
    text: "",
  };
}

function level(a: number, max: number): number {
  return max > 0 ? Math.min(SCALE_MAX, Math.round((SCALE_MAX * Math.max(0, a)) / max)) : 0;
}

function sortPairs(pairs: HeadTokenPair[]): void {
  pairs.sort((a, b) => b.activation - a.activation || b.support - a.support || a.keyId - b.keyId || (a.queryId ?? -1) - (b.queryId ?? -1));
}

const RELATION_TEXT: Record<Exclude<HeadPatternKind, "pairs">, string> = {
  previous: "attends to the previous token",
  self: "attends to the current token itself",
  first: "attends to the start of the context (the first token after BOS)",
  duplicate: "attends to an earlier copy of the current token",
  induction: "attends to the token after an earlier copy of the current token (induction)",
};

function pairText(p: HeadTokenPair): string {
  return `${p.query === null ? "any token" : JSON.stringify(p.query)} -> ${JSON.stringify(p.key)} (${p.normalized}/10)`;
}

function bucketText(b: number): string {
  const lo = POSITION_BUCKETS[b]!;
  const hi = b + 1 < POSITION_BUCKETS.length ? POSITION_BUCKETS[b + 1]! - 1 : undefined;
  return hi === undefined ? `tokens ${lo} and on` : hi === lo ? `token ${lo}` : `tokens ${lo}-${hi}`;
}

/** `; strength varies with the query's position (...)` from per-bucket values, or "" when they are one level. */
function positionText(values: readonly number[] | undefined, max: number, where = ""): string {
  if (!values) return "";
  let lo = 0;
  let hi = 0;
  values.forEach((v, b) => {
    if (v < values[lo]!) lo = b;
    if (v > values[hi]!) hi = b;
  });
  if (level(values[lo]!, max) === level(values[hi]!, max)) return "";
  return `; strength${where} varies with the query's position (${level(values[hi]!, max)}/10 at ${bucketText(hi)}, ${level(values[lo]!, max)}/10 at ${bucketText(lo)})`;
}

function render(p: HeadPattern, max: number, maxListed: number, minSupport: number): string {
  const pct = `${Math.round(100 * p.agreement)}%`;
  const listed = p.pairs.filter((x) => x.support >= minSupport && (p.kind === "pairs" || x.normalized > level(p.inside, max))).slice(0, maxListed);
  if (p.kind === "pairs") {
    if (p.pairs.length === 0) {
      const strongQueries = p.queries.filter((v) => v.support >= minSupport && level(v.activation, max) > level(p.inside, max)).slice(0, maxListed);
      const from = strongQueries.length > 0 ? `; strongest from the query tokens ${strongQueries.map((v) => `${JSON.stringify(v.query)} (${level(v.activation, max)}/10)`).join(", ")}` : "";
      return `no rule for the key; the strength is set by the query token (${level(p.inside, max)}/10 on average)${from}${positionText(p.positions?.inside, max)}`;
    }
    const more = p.pairs.length - listed.length;
    const strongQueries = p.queries.filter((v) => v.support >= minSupport && level(v.activation, max) > level(p.inside, max)).slice(0, maxListed);
    const queryText = strongQueries.length > 0 ? `; strongest from the query tokens ${strongQueries.map((v) => `${JSON.stringify(v.query)} (${level(v.activation, max)}/10)`).join(", ")}` : "";
    return `attends from query tokens to key tokens: ${listed.map(pairText).join("; ")}${more > 0 ? `; and ${more} more pair${more === 1 ? "" : "s"}` : ""}${queryText}${positionText(p.positions?.inside, max)}`;
  }
  let text = `${RELATION_TEXT[p.kind]} (the key of ${pct} of its strongest attentions; ${level(p.inside, max)}/10 where there is one, ${level(p.outside, max)}/10 elsewhere)`;
  if (listed.length > 0) text += `; strongest pairs: ${listed.map(pairText).join("; ")}`;
  return text + positionText(p.positions?.inside, max);
}

/** The simulation on the 0..10 scale, as scores take it. */
function scaled(sim: readonly (readonly number[])[], max: number): number[][] {
  return sim.map((row) => row.map((v) => Math.min(SCALE_MAX, (SCALE_MAX * Math.max(0, v)) / max)));
}

/**
 * Explains an attention head from its records without an LLM (see the module notes): the
 * relation between query and key that best reproduces the training records, its explanation,
 * its simulated activations on the held-out records, and their score. Deterministic.
 *
 * The records must be a head's (each record with `keys`, one per token); malformed records are
 * `E_BAD_INPUT`/`E_NON_FINITE`, bad options `E_BAD_OPTION`. Degenerate records give no pattern
 * and score 0, with `status` `empty`, `constant` or `inactive` (as {@link explainOffline}).
 *
 * @example
 * ```ts
 * const r = explainHeadOffline(records.node({ kind: "attention_head", layer: 0, head: 1 }));
 * r.pattern?.kind; // "previous"
 * r.explanation;   // "attends to the previous token (the key of 97% of its strongest attentions; ...)"
 * r.score;         // 0.91
 * ```
 */
export function explainHeadOffline(records: NodeRecords, opts: OfflineHeadExplainOptions = {}): OfflineHeadExplanation {
  const fn = "explainHeadOffline";
  if (typeof records !== "object" || records === null || !Array.isArray(records.top) || !Array.isArray(records.random)) {
    throw new TdbError("E_BAD_INPUT", `${fn}: records must have top and random arrays`, {
      value: records === null ? null : typeof records,
      allowed: "NodeRecords { node, top: ActivationRecord[], random: ActivationRecord[], stats }",
    });
  }
  if ((records.node as Partial<HeadNode> | undefined)?.kind !== "attention_head") {
    throw new TdbError("E_BAD_INPUT", `${fn}: the records are not an attention head's`, { value: records.node?.kind ?? null, allowed: "attention_head" });
  }
  if (typeof opts !== "object" || opts === null) throw new TdbError("E_BAD_OPTION", `${fn}: options must be an object`, { value: opts, allowed: "an options object" });
  const d = OFFLINE_HEAD_DEFAULTS;
  const holdout = checkFraction(fn, "holdout", opts.holdout ?? d.holdout, false, true);
  const pivotThreshold = checkFraction(fn, "pivotThreshold", opts.pivotThreshold ?? d.pivotThreshold, true, false);
  const minAgreement = checkFraction(fn, "minAgreement", opts.minAgreement ?? d.minAgreement, true, false);
  const minSupport = checkCount(fn, "minSupport", opts.minSupport ?? d.minSupport);
  const maxListed = checkCount(fn, "maxListed", opts.maxListed ?? d.maxListed, 0);
  const smoothing = opts.smoothing ?? d.smoothing;
  if (typeof smoothing !== "number" || !Number.isFinite(smoothing) || smoothing < 0) {
    throw new TdbError("E_BAD_OPTION", `${fn}: smoothing must be a number >= 0`, { value: smoothing, allowed: ">= 0" });
  }
  const kinds = opts.kinds ?? HEAD_PATTERN_KINDS;
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => !HEAD_PATTERN_KINDS.includes(k))) {
    throw new TdbError("E_BAD_OPTION", `${fn}: kinds must be a non-empty list of head pattern kinds`, { value: kinds, allowed: HEAD_PATTERN_KINDS });
  }
  const check = (r: unknown, where: string): ActivationRecord => {
    const rec = checkRecord(r, where);
    if (!Array.isArray(rec.keys) || rec.keys.length !== rec.tokens.length || rec.keys.some((k) => !Number.isInteger(k) || k < -1 || k >= rec.tokens.length)) {
      throw new TdbError("E_BAD_INPUT", `${where}: a head record needs keys, one key position (or -1) per token`, {
        value: Array.isArray(rec.keys) ? rec.keys.length : typeof rec.keys,
        allowed: `${rec.tokens.length} integers in [-1, ${rec.tokens.length - 1}]`,
      });
    }
    return rec;
  };
  const top = records.top.map((r, i) => check(r, `top record ${i}`));
  const random = records.random.map((r, i) => check(r, `random record ${i}`));

  const topSplit = holdout === 0 ? { train: top, held: top } : interleave(top, holdout);
  const randSplit = holdout === 0 ? { train: random, held: random } : interleave(random, holdout);
  const validation = pairUp(topSplit.held, randSplit.held);
  const trained = { top: topSplit.train.length, random: randSplit.train.length };
  const all = [...top, ...random].flatMap((r) => r.activations);
  const maxActivation = topSplit.train.reduce((m, r) => r.activations.reduce((a, b) => Math.max(a, b), m), -Infinity);
  const none = (status: OfflineHeadStatus, explanation: string): OfflineHeadExplanation => ({
    node: records.node,
    status,
    explanation,
    pattern: null,
    candidates: [],
    score: 0,
    scores: {
      correlation: 0,
      r2: 0,
      n: validation.reduce((n, r) => n + r.tokens.length, 0),
      records: validation.length,
      degenerate: status === "empty" ? "empty" : status === "constant" ? "constant-activations" : "constant-simulation",
    },
    simulated: validation.map((r) => r.activations.map(() => 0)),
    validation,
    maxActivation: Number.isFinite(maxActivation) ? maxActivation : 0,
    trained,
  });
  if (all.length === 0) return none("empty", "no pattern: the records hold no tokens");
  if (all.every((a) => a === all[0])) return none("constant", `no pattern: the activation is ${all[0]} at every token`);
  if (!(maxActivation > 0)) return none("inactive", "no pattern: the head never attends (> 0) to a key in its top records");

  const training = (topRecs: readonly ActivationRecord[], randRecs: readonly ActivationRecord[]): Training => {
    const strong: Place[] = [];
    topRecs.forEach((rec, r) => rec.activations.forEach((a, q) => a >= pivotThreshold * maxActivation && a > 0 && strong.push({ r, q })));
    return { records: [...topRecs, ...randRecs], strong, max: maxActivation };
  };
  const t = training(topSplit.train, randSplit.train);
  /** A kind's pattern: with or without position effects; `pairs` also with or without its pair table (query tokens alone). */
  interface Variant {
    positional: boolean;
    withPairs: boolean;
  }
  const fitKind = (kind: HeadPatternKind, tr: Training, v: Variant): HeadPattern =>
    kind === "pairs" ? fitPairs(tr, minSupport, smoothing, v.positional, v.withPairs) : fitRelation(kind, tr, smoothing, v.positional, minSupport);
  // Two-fold cross-validation on the training records (each half fitted, scored on the other,
  // pooled), so that the token tables' memorisation does not pass for fit; in-sample when a half
  // would be empty.
  const topFolds = interleave(topSplit.train, 0.5);
  const randFolds = interleave(randSplit.train, 0.5);
  const folds: [Training, ActivationRecord[]][] = [
    [training(topFolds.train, randFolds.train), [...topFolds.held, ...randFolds.held]],
    [training(topFolds.held, randFolds.held), [...topFolds.train, ...randFolds.train]],
  ];
  const crossValidated = folds.every(([tr, test]) => tr.records.length > 0 && test.length > 0);
  const fitOf = (kind: HeadPatternKind, v: Variant, full: HeadPattern): number => {
    const pairs = crossValidated ? folds.map(([tr, test]) => ({ p: fitKind(kind, tr, v), test })) : [{ p: full, test: t.records }];
    const acts = pairs.flatMap(({ test }) => test.map((r) => r.activations));
    const sims = pairs.flatMap(({ p, test }) => test.map((r) => simulateHead(p, r)));
    return scoreSimulations(acts, scaled(sims, maxActivation), maxActivation).correlation;
  };

  const fitted: { pattern: HeadPattern; candidate: HeadCandidate }[] = [];
  for (const kind of HEAD_PATTERN_KINDS) {
    if (!kinds.includes(kind)) continue;
    // Variants, simplest first (pairs: the table first); a later one is kept when it fits better by POSITION_GAIN.
    const variants: Variant[] =
      kind === "pairs"
        ? [
            { positional: false, withPairs: true },
            { positional: true, withPairs: true },
            { positional: false, withPairs: false },
            { positional: true, withPairs: false },
          ]
        : [
            { positional: false, withPairs: true },
            { positional: true, withPairs: true },
          ];
    let pattern: HeadPattern | undefined;
    let f = -Infinity;
    for (const v of variants) {
      const p = fitKind(kind, t, v);
      const fv = fitOf(kind, v, p);
      if (pattern === undefined || fv > f + POSITION_GAIN) [pattern, f] = [p, fv];
    }
    if (pattern === undefined) continue;
    const eligible = kind === "pairs" || pattern.agreement >= minAgreement;
    fitted.push({ pattern, candidate: { kind, agreement: pattern.agreement, fit: f, eligible } });
  }
  // Best eligible positional rule; `pairs` only when none is eligible (or when it is the only kind tried).
  const positional = fitted.filter((f) => f.candidate.eligible && f.pattern.kind !== "pairs");
  const pool = positional.length > 0 ? positional : fitted.filter((f) => f.pattern.kind === "pairs");
  const chosen = pool.reduce<(typeof fitted)[number] | undefined>((b, f) => (b === undefined || f.candidate.fit > b.candidate.fit ? f : b), undefined);
  const candidates = fitted.map((f) => f.candidate);
  if (chosen === undefined) {
    const r = none("unmatched", `no pattern: no positional rule gives the key of ${Math.round(100 * minAgreement)}% of the strongest attentions`);
    return { ...r, candidates };
  }
  const pattern = chosen.pattern;
  pattern.text = render(pattern, maxActivation, maxListed, minSupport);
  const simulated = validation.map((r) => simulateHead(pattern, r));
  const scores = scoreSimulations(
    validation.map((r) => r.activations),
    scaled(simulated, maxActivation),
    maxActivation,
  );
  return {
    node: records.node,
    status: "ok",
    explanation: pattern.text,
    pattern,
    candidates,
    score: scores.correlation,
    scores,
    simulated,
    validation,
    maxActivation,
    trained,
  };
}
