/**
 * Scores of an explanation.
 *
 * Simulation scores ({@link scoreSimulations}), over the validation excerpts pooled into one
 * series (every token of every excerpt that was simulated; failed simulations are left out, never
 * counted as zeros):
 * - `correlation`: Pearson correlation of the true activations (raw) with the simulated ones
 *   (0..10), as neuron-explainer scores. Scale-free: any increasing affine map of a perfect
 *   simulation also scores 1.
 * - `r2`: coefficient of determination of the simulated values, with no fit, as predictions of
 *   the true activations on the simulator's scale, `t = min(10, 10 relu(a) / max)` (continuous,
 *   not floored): `1 - sum (t - s)^2 / sum (t - mean t)^2`. It is 1 only for exact predictions,
 *   0 for predicting the mean everywhere, and negative for worse; unlike `correlation` it
 *   penalises a wrong scale or offset. (The R^2 of the best affine fit of `s` to `t` would be
 *   `correlation(t, s)^2`, which adds nothing.)
 * - Degenerate rule: with no tokens (`empty`), constant true activations (`constant-activations`)
 *   or a constant simulation (`constant-simulation`), `correlation` is 0 (no evidence of
 *   association) and `degenerate` says why; `r2` is 0 for `empty`/`constant-activations` and is
 *   computed as usual (<= 0) for a constant simulation.
 *
 * delphi-style scorers, reported as balanced accuracy (mean of the true-positive and true-negative
 * rates, 0.5 = chance) with accuracy, precision, recall and F1:
 * - detection ({@link scoreDetection}): the LLM reads plain excerpts and says which would make the
 *   node fire; top excerpts are positives, random excerpts negatives.
 * - fuzzing ({@link scoreFuzzing}): the LLM reads top excerpts with some tokens marked and says
 *   whether the marks sit on the tokens the explanation describes; correctly marked (the active
 *   tokens) are positives, the same excerpts with as many inactive tokens marked are negatives.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";
import { isItemFailure, mapLimit, type LlmClient } from "./llm.js";
import { SCALE_MAX, detectionMessages, fuzzingMessages, highlight, maxActivationOf, normalizeActivations, parseBinaryList } from "./prompts.js";
import type { ActivationRecord, ExplainableNode } from "./types.js";

/** Why a score fell back to its degenerate rule. */
export type ScoreDegenerate = "empty" | "constant-activations" | "constant-simulation";

/** Simulation scores over pooled excerpts (see the module notes for the exact definitions). */
export interface SimulationScore {
  /** Pearson correlation of true and simulated activations (0 under the degenerate rule). */
  correlation: number;
  /** 1 - SSE/SST of the simulation against the true activations on the 0..10 scale. */
  r2: number;
  /** Tokens pooled. */
  n: number;
  /** Excerpts pooled. */
  records: number;
  /** Set when the degenerate rule applied. */
  degenerate?: ScoreDegenerate;
}

function checkPairs(actual: readonly (readonly number[])[], simulated: readonly (readonly number[])[]): void {
  if (actual.length !== simulated.length) {
    throw new TdbError("E_BAD_INPUT", `scoreSimulations: ${actual.length} true series but ${simulated.length} simulated`, { value: simulated.length, allowed: actual.length });
  }
  actual.forEach((a, i) => {
    const s = simulated[i]!;
    if (a.length !== s.length) throw new TdbError("E_BAD_INPUT", `scoreSimulations: excerpt ${i} has ${a.length} true and ${s.length} simulated values`, { value: s.length, allowed: a.length });
    for (let j = 0; j < a.length; j++) {
      if (!Number.isFinite(a[j]!) || !Number.isFinite(s[j]!)) {
        throw new TdbError("E_NON_FINITE", `scoreSimulations: non-finite value in excerpt ${i} at token ${j}`, { value: Number.isFinite(a[j]!) ? s[j] : a[j], allowed: "finite numbers" });
      }
    }
  });
}

/**
 * Correlation and R^2 of simulated against true activations, pooled over excerpts (see the
 * module notes). `max` is the node's top activation, the 10 of the simulator's scale.
 *
 * @example
 * ```ts
 * scoreSimulations([[0, 2, 4]], [[0, 5, 10]], 4); // { correlation: 1, r2: 1, n: 3, records: 1 }
 * ```
 */
export function scoreSimulations(actual: readonly (readonly number[])[], simulated: readonly (readonly number[])[], max: number): SimulationScore {
  checkPairs(actual, simulated);
  if (!(max > 0) || !Number.isFinite(max)) throw new TdbError("E_BAD_INPUT", `scoreSimulations: max must be a positive number, got ${max}`, { value: max, allowed: "> 0" });
  const a = actual.flat();
  const s = simulated.flat();
  const n = a.length;
  const records = actual.length;
  if (n === 0) return { correlation: 0, r2: 0, n, records, degenerate: "empty" };
  let ma = 0;
  let ms = 0;
  let mt = 0;
  const t = a.map((x) => Math.min(SCALE_MAX, (SCALE_MAX * Math.max(0, x)) / max));
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    ms += s[i]!;
    mt += t[i]!;
  }
  ma /= n;
  ms /= n;
  mt /= n;
  let saa = 0;
  let sss = 0;
  let sas = 0;
  let sst = 0;
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const ds = s[i]! - ms;
    saa += da * da;
    sss += ds * ds;
    sas += da * ds;
    sst += (t[i]! - mt) ** 2;
    sse += (t[i]! - s[i]!) ** 2;
  }
  if (saa === 0) return { correlation: 0, r2: 0, n, records, degenerate: "constant-activations" };
  const r2 = sst === 0 ? 0 : 1 - sse / sst;
  if (sss === 0) return { correlation: 0, r2, n, records, degenerate: "constant-simulation" };
  return { correlation: Math.max(-1, Math.min(1, sas / Math.sqrt(saa * sss))), r2, n, records };
}

/** Classification scores of a yes/no scorer. */
export interface BinaryScore {
  /** (truePositiveRate + trueNegativeRate) / 2; with one class absent, the rate of the other. 0.5 = chance. */
  balancedAccuracy: number;
  /** Fraction of correct answers. */
  accuracy: number;
  /** Positives answered yes (recall). */
  truePositiveRate: number;
  /** Negatives answered no. */
  trueNegativeRate: number;
  /** Yes answers that were positives (0 without yes answers). */
  precision: number;
  /** Harmonic mean of precision and recall (0 when both are 0). */
  f1: number;
  /** Items scored. */
  n: number;
  /** Positive items. */
  positives: number;
  /** Negative items. */
  negatives: number;
  /** `empty`, `no-positives` or `no-negatives` when a class is missing. */
  degenerate?: "empty" | "no-positives" | "no-negatives";
}

/**
 * Balanced accuracy (and friends) of yes/no `predictions` against `labels`.
 *
 * @example
 * ```ts
 * binaryScore([true, true, false, false], [true, false, false, false]).balancedAccuracy; // 0.75
 * ```
 */
export function binaryScore(labels: readonly boolean[], predictions: readonly boolean[]): BinaryScore {
  if (labels.length !== predictions.length) {
    throw new TdbError("E_BAD_INPUT", `binaryScore: ${labels.length} labels but ${predictions.length} predictions`, { value: predictions.length, allowed: labels.length });
  }
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  labels.forEach((l, i) => {
    const p = predictions[i]!;
    if (l && p) tp++;
    else if (l) fn++;
    else if (p) fp++;
    else tn++;
  });
  const n = labels.length;
  const positives = tp + fn;
  const negatives = tn + fp;
  const tpr = positives > 0 ? tp / positives : 0;
  const tnr = negatives > 0 ? tn / negatives : 0;
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const f1 = precision + tpr > 0 ? (2 * precision * tpr) / (precision + tpr) : 0;
  const out: BinaryScore = { balancedAccuracy: (tpr + tnr) / 2, accuracy: n > 0 ? (tp + tn) / n : 0, truePositiveRate: tpr, trueNegativeRate: tnr, precision, f1, n, positives, negatives };
  if (n === 0) return { ...out, balancedAccuracy: 0, degenerate: "empty" };
  if (positives === 0) return { ...out, balancedAccuracy: tnr, degenerate: "no-positives" };
  if (negatives === 0) return { ...out, balancedAccuracy: tpr, degenerate: "no-negatives" };
  return out;
}

/** Options of {@link scoreDetection} and {@link scoreFuzzing}. */
export interface LlmScorerOptions {
  /** Excerpts per request (default 5). */
  batchSize?: number;
  /** Requests in flight (default 4; the client may limit further). */
  concurrency?: number;
  /** Seed of the shuffling (and, for fuzzing, of the decoy marks); default 0. */
  seed?: number;
  /** The node's top activation, the 10 of the 0..10 scale (default: the largest in the records given). */
  max?: number;
  /** The node, to phrase the prompt. */
  node?: ExplainableNode;
  /** Cancels the scoring. */
  signal?: AbortSignal;
}

/** One excerpt shown to a yes/no scorer. */
export interface ScoredItem {
  /** Which records it comes from. */
  set: "top" | "random";
  /** Index into that set. */
  index: number;
  /** The right answer. */
  label: boolean;
  /** The text shown (fuzzing: with marks). */
  text: string;
  /** The LLM's answer; absent when its batch failed. */
  prediction?: boolean;
}

/** A failed request of a yes/no scorer (its items are left out of the score). */
export interface ScorerFailure {
  /** Items of the batch (indices into `items`). */
  items: number[];
  /** Why. */
  reason: string;
  /** The reply, cut to 500 characters, when one came. */
  reply?: string;
  /** The client's error code when the request itself failed. */
  code?: string;
}

/** A yes/no scorer's result: the score over the answered items, every item, and the failures. */
export interface LlmBinaryScore extends BinaryScore {
  /** Every excerpt shown, in the (shuffled) order they were asked about. */
  items: ScoredItem[];
  /** Batches whose reply could not be used. */
  failures: ScorerFailure[];
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new TdbError("E_BAD_OPTION", `${name} must be an integer >= 1, got ${x}`, { value: x, allowed: ">= 1" });
  return x;
}

async function askBinary(
  items: ScoredItem[],
  build: (texts: string[]) => Parameters<LlmClient["chat"]>[0]["messages"],
  client: LlmClient,
  opts: LlmScorerOptions,
): Promise<LlmBinaryScore> {
  const batchSize = positiveInt("batchSize", opts.batchSize, 5);
  const concurrency = positiveInt("concurrency", opts.concurrency, 4);
  const batches: number[][] = [];
  for (let i = 0; i < items.length; i += batchSize) batches.push(items.slice(i, i + batchSize).map((_, k) => i + k));
  const failures: ScorerFailure[] = [];
  await mapLimit(batches, concurrency, async (batch) => {
    const texts = batch.map((i) => items[i]!.text);
    let replyText: string;
    try {
      const reply = await client.chat({ messages: build(texts), temperature: 0, maxTokens: 16 + 4 * texts.length, ...(opts.signal ? { signal: opts.signal } : {}) });
      replyText = reply.text;
    } catch (e) {
      if (!isItemFailure(e)) throw e;
      failures.push({ items: batch, reason: e.message, code: e.code });
      return;
    }
    const parsed = parseBinaryList(replyText, texts.length);
    if (!parsed.ok) {
      failures.push({ items: batch, reason: parsed.reason, reply: replyText.slice(0, 500) });
      return;
    }
    batch.forEach((i, k) => (items[i]!.prediction = parsed.value[k]!));
  });
  const answered = items.filter((it) => it.prediction !== undefined);
  const score = binaryScore(
    answered.map((it) => it.label),
    answered.map((it) => it.prediction!),
  );
  return { ...score, items, failures };
}

const peak = (r: ActivationRecord): number => r.activations.reduce((m, a) => (a > m ? a : m), -Infinity);

/**
 * delphi's detection scorer: the LLM is shown plain excerpts and says which would make the node
 * fire under `explanation`. Top excerpts are positives; random excerpts are negatives, except
 * random excerpts whose peak reaches the smallest peak of the top excerpts given (they are top
 * excerpts by the records' own standard), which are left out. Batches are shuffled (seeded), so
 * each mixes both classes. A batch with an unreadable reply (or a transient transport error) is
 * recorded in `failures` and left out of the score.
 */
export async function scoreDetection(
  explanation: string,
  records: { top: readonly ActivationRecord[]; random: readonly ActivationRecord[] },
  client: LlmClient,
  opts: LlmScorerOptions = {},
): Promise<LlmBinaryScore> {
  const minTopPeak = records.top.length > 0 ? Math.min(...records.top.map(peak)) : Infinity;
  const items: ScoredItem[] = [
    ...records.top.map((r, index) => ({ set: "top" as const, index, label: true, text: r.tokens.join("") })),
    ...records.random.flatMap((r, index) => (peak(r) >= minTopPeak ? [] : [{ set: "random" as const, index, label: false, text: r.tokens.join("") }])),
  ];
  shuffle(items, new Rng(opts.seed ?? 0));
  return askBinary(items, (texts) => detectionMessages(explanation, texts, opts.node), client, opts);
}

/**
 * delphi's fuzzing scorer: each top excerpt is shown twice, once with its active tokens marked
 * (normalised activation >= 1 on the 0..10 scale of `opts.max`; a positive) and once with as many
 * inactive tokens marked, chosen at random (seeded; a negative). The LLM says whether the marks
 * sit where the explanation says the node fires. Excerpts without active tokens are skipped; an
 * excerpt without enough inactive tokens gives no negative.
 */
export async function scoreFuzzing(explanation: string, top: readonly ActivationRecord[], client: LlmClient, opts: LlmScorerOptions = {}): Promise<LlmBinaryScore> {
  const max = opts.max ?? maxActivationOf(top);
  const rng = new Rng((opts.seed ?? 0) + 1);
  const items: ScoredItem[] = [];
  top.forEach((r, index) => {
    const levels = normalizeActivations(r.activations, max);
    const active = levels.flatMap((l, i) => (l >= 1 ? [i] : []));
    if (active.length === 0) return;
    items.push({ set: "top", index, label: true, text: highlight(r.tokens, new Set(active)) });
    const inactive = levels.flatMap((l, i) => (l === 0 ? [i] : []));
    if (inactive.length < active.length) return;
    const decoys = shuffle(inactive.slice(), rng).slice(0, active.length);
    items.push({ set: "top", index, label: false, text: highlight(r.tokens, new Set(decoys)) });
  });
  shuffle(items, new Rng(opts.seed ?? 0));
  return askBinary(items, (texts) => fuzzingMessages(explanation, texts, opts.node), client, opts);
}
