/**
 * The offline explainer: an N2G-style ("neuron to graph") token-pattern explainer that needs no
 * LLM. From a node's top-activating records it finds, for each strongly activating token, the
 * shortest context (a suffix of tokens ending at that token) that reproduces the activation,
 * collects those contexts in a trie keyed from the activating token backwards, and renders them
 * as a readable explanation (`the token " jury"`, `" of" after " many"`). The trie is also a
 * simulator: it predicts the node's activation at every token of any excerpt, so offline
 * explanations are scored like LLM ones ({@link scoreSimulations}: the Pearson correlation of
 * true and simulated activations, and R^2, over held-out records, top + random, 1:1).
 *
 * N2G proper prunes each excerpt by re-running the model on shortened contexts. Here there is no
 * model, only records, so contexts are judged on the records themselves: a candidate pattern is
 * "consistent" when, at every place it occurs in the training records (top and random), the node
 * activates at least `keep` times as strongly as at the token the pattern came from, at a rate of
 * at least `precision`, and occurs at least `minSupport` times (a context seen once proves
 * nothing). The activating token alone is tried first; while it is inconsistent, the context
 * grows by one preceding token. At each length, interior context tokens may be wildcards (any one
 * token), as N2G's unimportant tokens are: of the consistent candidates the one that occurs most
 * often wins, so tokens that do not matter become wildcards. Tokens match by id, or, with
 * {@link OfflineExplainOptions.fold}, by their case- and/or leading-space-folded strings.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { SCALE_MAX } from "./prompts.js";
import { checkCount, checkFraction, checkRecord, interleave, pairUp } from "./offline-common.js";
import { scoreSimulations, type SimulationScore } from "./scoring.js";
import type { ActivationRecord, ExplainableNode, NodeRecords } from "./types.js";

/**
 * Token normalisation before matching. By default tokens match by id (exactly). `case` folds
 * upper/lower case, `space` ignores one leading space (`" Jury"`, `"jury"` and `"JURY"` match
 * with both): tokens then match by their folded strings.
 */
export interface TokenFold {
  /** Match tokens regardless of case. Default false. */
  case?: boolean;
  /** Match tokens with and without one leading space. Default false. */
  space?: boolean;
}

/** Options of {@link explainOffline}. */
export interface OfflineExplainOptions {
  /**
   * Fraction of the top records, and of the random records, held out for scoring, in [0, 1).
   * Records are assigned by interleaving (with 0.5 every second one, in the given order, is held
   * out), so both halves cover the range of peaks. 0 scores on the training records (in-sample).
   * Default 0.5.
   */
  holdout?: number;
  /**
   * A token of a training top record is explained (a pivot) when its activation is at least this
   * fraction of the largest training activation; each record's positive peak is a pivot too. In
   * (0, 1]. Default 0.2: on `tdb:brown-small`'s layer-0 neurons, 0.2 scored 0.48 on average
   * against 0.41 with 0.5 (more patterns, the strongest still listed first).
   */
  pivotThreshold?: number;
  /** A place where a pattern occurs reproduces the pivot when its activation is at least this fraction of the pivot's. In (0, 1]. Default 0.5. */
  keep?: number;
  /** A pattern is consistent when at least this fraction of the places it occurs reproduce the pivot. In (0, 1]. Default 0.8. */
  precision?: number;
  /** Longest pattern, in tokens (activating token included). Integer >= 1. Default 8. */
  maxContext?: number;
  /**
   * A pattern is preferred when it occurs at least this often in the training records (so that a
   * context seen once does not pass for a rule); when no pattern of any length does, the shortest
   * consistent one is taken. Integer >= 1. Default 2.
   */
  minSupport?: number;
  /** Let interior context tokens that do not matter become wildcards (in patterns of up to 8 tokens). Default true. */
  wildcards?: boolean;
  /** Token normalisation before matching. Default: none (match by token id). */
  fold?: TokenFold;
  /** Patterns listed in the explanation text (the strongest first). Integer >= 1. Default 5. */
  maxListed?: number;
}

/** One token pattern: a context ending at the activating token, and the activation it predicts. */
export interface TokenPattern {
  /** Token strings, oldest first; the last one is the activating token; `null` is a wildcard (any one token). */
  tokens: (string | null)[];
  /** Matching keys, aligned with `tokens`: `id:<token id>` without folding, `s:<folded string>` with it; `null` for a wildcard. */
  keys: (string | null)[];
  /** Predicted activation: the mean activation at the places the pattern occurs in the training records. */
  activation: number;
  /** `activation` on neuron-explainer's 0..10 scale (relative to the largest training activation, rounded). */
  normalized: number;
  /** Places the pattern occurs in the training records. */
  support: number;
  /** Fraction of those places where the activation is at least `keep` times `activation` (see {@link OfflineExplainOptions.keep}). */
  precision: number;
  /** Pivots (strongly activating tokens of the training top records) this pattern explains. */
  pivots: number;
  /** Human-readable form: `the token " jury"`, `" of" after " many"`, `" c" after " a" <any>`. */
  text: string;
}

/** How an offline explanation came out: `ok`, or why there is no pattern. */
export type OfflineStatus =
  /** Patterns were found. */
  | "ok"
  /** No records at all (no top and no random excerpt, or only empty excerpts). */
  | "empty"
  /** Every activation in the records is the same value. */
  | "constant"
  /** No training top record has a positive activation. */
  | "inactive";

/** The result of {@link explainOffline}. */
export interface OfflineExplanation {
  /** The node explained. */
  node: ExplainableNode;
  /** `ok`, or why no pattern was found (then `patterns` is empty, every simulated activation 0 and `score` 0). */
  status: OfflineStatus;
  /** The explanation: the strongest patterns with their activations on the 0..10 scale. */
  explanation: string;
  /** Every pattern found, strongest first (by activation, then support). */
  patterns: TokenPattern[];
  /** `scores.correlation`: Pearson correlation of true and simulated activations pooled over `validation`. */
  score: number;
  /**
   * The simulation scores, as LLM explanations get them ({@link scoreSimulations} of the true
   * activations and the simulated ones on the 0..10 scale, `min(10, 10 relu(s) / maxActivation)`):
   * correlation, R^2 and, under the degenerate rule, why (no pattern: `empty`, `constant-activations`
   * or `constant-simulation` for `empty`, `constant` and `inactive` records).
   */
  scores: SimulationScore;
  /** Simulated activations (on the node's own scale, as {@link PatternTrie.predict} gives them), one array per `validation` record. */
  simulated: number[][];
  /** The held-out records scored: top and random, 1:1 (the first n of each held-out half, n the smaller count; all of one half when the other is empty). */
  validation: ActivationRecord[];
  /** Largest activation in the training top records (the 10 of the 0..10 scale). */
  maxActivation: number;
  /** Records used to find patterns. */
  trained: { top: number; random: number };
  /** Token normalisation used. */
  fold: Required<TokenFold>;
}

/** Defaults of {@link OfflineExplainOptions}. */
export const OFFLINE_DEFAULTS: Readonly<Required<Omit<OfflineExplainOptions, "fold">>> = Object.freeze({
  holdout: 0.5,
  pivotThreshold: 0.2,
  keep: 0.5,
  precision: 0.8,
  maxContext: 8,
  minSupport: 2,
  wildcards: true,
  maxListed: 5,
});

/** The matching key of one token (see {@link TokenPattern.keys}). */
export function tokenKey(token: string, id: number | undefined, fold: TokenFold = {}): string {
  if (!fold.case && !fold.space) {
    if (id === undefined) {
      throw new TdbError("E_BAD_INPUT", "exact token matching needs token ids", { value: token, allowed: "an excerpt with ids, or a fold option" });
    }
    return `id:${id}`;
  }
  let s = token;
  if (fold.space && s.startsWith(" ")) s = s.slice(1);
  if (fold.case) s = s.toLowerCase();
  return `s:${s}`;
}

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Child matching any one token. */
  wildcard?: TrieNode;
  /** Activation predicted when a pattern ends here. */
  value?: number;
}

/**
 * A trie of token patterns, keyed from the activating token backwards, and the offline
 * simulator: {@link PatternTrie.predict} gives, at each token of an excerpt, the activation of
 * the longest pattern that ends there (ties: the larger activation), or 0 where none does.
 *
 * @example
 * ```ts
 * const r = explainOffline(records);
 * const trie = new PatternTrie(r.patterns, r.fold);
 * trie.predict({ tokens: [" the", " jury"], ids: [262, 8709] }); // [0, 9.7]
 * ```
 */
export class PatternTrie {
  private readonly root: TrieNode = { children: new Map() };
  private readonly foldUsed: Required<TokenFold>;

  /** Builds the trie of `patterns`, matched under `fold` (the fold they were found with). */
  constructor(patterns: readonly TokenPattern[], fold: TokenFold = {}) {
    this.foldUsed = { case: fold.case ?? false, space: fold.space ?? false };
    patterns.forEach((p, i) => {
      if (!Array.isArray(p.keys) || p.keys.length === 0 || p.keys[p.keys.length - 1] == null || !Number.isFinite(p.activation)) {
        throw new TdbError("E_BAD_INPUT", `pattern ${i}: needs keys ending in a token and a finite activation`, {
          value: p.keys,
          allowed: "keys: (string | null)[] with a non-null last key",
        });
      }
      let node = this.root;
      for (let j = p.keys.length - 1; j >= 0; j--) {
        const k = p.keys[j];
        if (k === null || k === undefined) {
          node.wildcard ??= { children: new Map() };
          node = node.wildcard;
        } else {
          let next = node.children.get(k);
          if (next === undefined) {
            next = { children: new Map() };
            node.children.set(k, next);
          }
          node = next;
        }
      }
      // Two patterns with the same keys: keep the larger activation.
      node.value = node.value === undefined ? p.activation : Math.max(node.value, p.activation);
    });
  }

  /** The token normalisation the trie matches under. */
  get fold(): Required<TokenFold> {
    return { ...this.foldUsed };
  }

  /** Simulated activation at each token of `excerpt` (`ids` needed unless the trie folds tokens). */
  predict(excerpt: { tokens: readonly string[]; ids?: readonly number[] }): number[] {
    const keys = excerpt.tokens.map((t, i) => tokenKey(t, excerpt.ids?.[i], this.foldUsed));
    return keys.map((_, p) => this.predictAt(keys, p));
  }

  /** Prediction at position `p` of a key sequence. */
  private predictAt(keys: readonly string[], p: number): number {
    let bestDepth = 0;
    let best = 0;
    const visit = (node: TrieNode, depth: number): void => {
      if (node.value !== undefined && (depth > bestDepth || (depth === bestDepth && node.value > best))) {
        bestDepth = depth;
        best = node.value;
      }
      const at = p - depth;
      if (at < 0) return;
      const next = node.children.get(keys[at]!);
      if (next !== undefined) visit(next, depth + 1);
      if (node.wildcard !== undefined) visit(node.wildcard, depth + 1);
    };
    visit(this.root, 0);
    return best;
  }
}

/**
 * Simulates a node from offline patterns: the activation {@link PatternTrie.predict} gives at
 * each token of `excerpt`.
 *
 * @example
 * ```ts
 * simulateOffline(result.patterns, record, result.fold);
 * ```
 */
export function simulateOffline(
  patterns: readonly TokenPattern[],
  excerpt: { tokens: readonly string[]; ids?: readonly number[] },
  fold: TokenFold = {},
): number[] {
  return new PatternTrie(patterns, fold).predict(excerpt);
}

function quote(s: string | null): string {
  return s === null ? "<any>" : JSON.stringify(s);
}

function patternText(tokens: readonly (string | null)[]): string {
  const last = tokens[tokens.length - 1]!;
  if (tokens.length === 1) return `the token ${quote(last)}`;
  return `${quote(last)} after ${tokens.slice(0, -1).map(quote).join(" ")}`;
}

interface Evidence {
  keys: string[][];
  acts: number[][];
  /** Places (record, position) by the key of their token. */
  byKey: Map<string, [number, number][]>;
}

function evidenceOf(records: readonly ActivationRecord[], fold: TokenFold): Evidence {
  const keys = records.map((r) => r.tokens.map((t, i) => tokenKey(t, r.ids[i], fold)));
  const byKey = new Map<string, [number, number][]>();
  keys.forEach((ks, r) =>
    ks.forEach((k, p) => {
      let list = byKey.get(k);
      if (list === undefined) byKey.set(k, (list = []));
      list.push([r, p]);
    }),
  );
  return { keys, acts: records.map((r) => r.activations), byKey };
}

/** Activations at the places a pattern (keys oldest first, last non-null) occurs. */
function matchesOf(ev: Evidence, pattern: readonly (string | null)[]): number[] {
  const L = pattern.length;
  const out: number[] = [];
  for (const [r, p] of ev.byKey.get(pattern[L - 1]!) ?? []) {
    if (p < L - 1) continue;
    const ks = ev.keys[r]!;
    let ok = true;
    for (let j = 0; j < L - 1 && ok; j++) {
      const k = pattern[j];
      if (k !== null && ks[p - (L - 1) + j] !== k) ok = false;
    }
    if (ok) out.push(ev.acts[r]![p]!);
  }
  return out;
}

function precisionOf(acts: readonly number[], threshold: number): number {
  if (acts.length === 0) return 0;
  return acts.filter((a) => a >= threshold).length / acts.length;
}

/** Longest pattern whose interior tokens may become wildcards (2^(L-2) candidates each; longer ones stay exact). */
const WILDCARD_MAX_LENGTH = 8;

interface Candidate {
  pattern: (string | null)[];
  acts: number[];
  wild: number;
}

/**
 * The shortest consistent pattern ending at position `p` of a training record (keys `keys`):
 * lengths 1, 2, ... up to `maxContext`; at each length (up to WILDCARD_MAX_LENGTH) every choice of wildcards among the
 * interior positions (neither the outermost, which a shorter length covers, nor the pivot). At the
 * first length with a consistent candidate occurring at least `minSupport` times, the one that
 * occurs most often wins (then fewer wildcards). With none, the shortest consistent candidate
 * (exact first), else the longest exact context.
 */
function shortestPattern(
  ev: Evidence,
  keys: readonly string[],
  p: number,
  threshold: number,
  o: { maxContext: number; precision: number; minSupport: number; wildcards: boolean },
): Candidate {
  const longest = Math.min(o.maxContext, p + 1);
  let fallback: Candidate | undefined;
  let last: Candidate | undefined;
  for (let L = 1; L <= longest; L++) {
    const base = keys.slice(p - L + 1, p + 1);
    const masks = o.wildcards && L >= 3 && L <= WILDCARD_MAX_LENGTH ? 1 << (L - 2) : 1;
    let best: Candidate | undefined;
    for (let mask = 0; mask < masks; mask++) {
      const pattern: (string | null)[] = base.slice();
      let wild = 0;
      for (let j = 1; j < L - 1; j++) {
        if (mask & (1 << (j - 1))) {
          pattern[j] = null;
          wild++;
        }
      }
      const acts = matchesOf(ev, pattern);
      const cand = { pattern, acts, wild };
      if (mask === 0) last = cand;
      if (precisionOf(acts, threshold) < o.precision) continue;
      fallback ??= cand;
      if (acts.length < o.minSupport) continue;
      if (best === undefined || acts.length > best.acts.length || (acts.length === best.acts.length && wild < best.wild)) best = cand;
    }
    if (best !== undefined) return best;
  }
  return fallback ?? last!;
}

/**
 * Explains a node from its records without an LLM (see the module comment for the method):
 * token patterns found on a training part of the records, the explanation text, the patterns'
 * simulated activations on the held-out records, and their score. Deterministic: the same records
 * and options give the same result.
 *
 * Degenerate records give a defined result with no patterns, every simulated activation 0 and
 * score 0: `status` says `empty` (no tokens), `constant` (all activations equal) or `inactive` (no
 * positive activation in the training top records). Malformed records (mismatched lengths,
 * non-integer ids, non-finite activations) are a `TdbError` (`E_BAD_INPUT`, `E_NON_FINITE`), bad
 * options `E_BAD_OPTION`.
 *
 * @example
 * ```ts
 * const r = explainOffline(records);
 * r.explanation; // 'the token " jury" (10/10)'
 * r.score;       // 0.93
 * ```
 */
export function explainOffline(records: NodeRecords, opts: OfflineExplainOptions = {}): OfflineExplanation {
  if (typeof records !== "object" || records === null || !Array.isArray(records.top) || !Array.isArray(records.random)) {
    throw new TdbError("E_BAD_INPUT", "explainOffline: records must have top and random arrays", {
      value: records === null ? null : typeof records,
      allowed: "NodeRecords { node, top: ActivationRecord[], random: ActivationRecord[], stats }",
    });
  }
  const d = OFFLINE_DEFAULTS;
  const o = {
    holdout: opts.holdout ?? d.holdout,
    pivotThreshold: opts.pivotThreshold ?? d.pivotThreshold,
    keep: opts.keep ?? d.keep,
    precision: opts.precision ?? d.precision,
    maxContext: opts.maxContext ?? d.maxContext,
    maxListed: opts.maxListed ?? d.maxListed,
    minSupport: opts.minSupport ?? d.minSupport,
    wildcards: opts.wildcards ?? d.wildcards,
  };
  if (typeof o.wildcards !== "boolean") {
    throw new TdbError("E_BAD_OPTION", "explainOffline: wildcards must be a boolean", { value: o.wildcards, allowed: [true, false] });
  }
  const holdout = checkFraction("explainOffline", "holdout", o.holdout, false, true);
  const pivotThreshold = checkFraction("explainOffline", "pivotThreshold", o.pivotThreshold, true, false);
  const keep = checkFraction("explainOffline", "keep", o.keep, true, false);
  const precision = checkFraction("explainOffline", "precision", o.precision, true, false);
  const maxContext = checkCount("explainOffline", "maxContext", o.maxContext);
  const maxListed = checkCount("explainOffline", "maxListed", o.maxListed);
  const minSupport = checkCount("explainOffline", "minSupport", o.minSupport);
  const fold: Required<TokenFold> = { case: opts.fold?.case === true, space: opts.fold?.space === true };
  const top = records.top.map((r, i) => checkRecord(r, `top record ${i}`));
  const random = records.random.map((r, i) => checkRecord(r, `random record ${i}`));

  const topSplit = holdout === 0 ? { train: top, held: top } : interleave(top, holdout);
  const randSplit = holdout === 0 ? { train: random, held: random } : interleave(random, holdout);
  const validation = pairUp(topSplit.held, randSplit.held);
  const train = [...topSplit.train, ...randSplit.train];
  const trained = { top: topSplit.train.length, random: randSplit.train.length };

  const all = [...top, ...random].flatMap((r) => r.activations);
  const maxActivation = topSplit.train.reduce((m, r) => r.activations.reduce((a, b) => Math.max(a, b), m), -Infinity);
  const none = (status: OfflineStatus, explanation: string): OfflineExplanation => {
    const simulated = validation.map((r) => r.activations.map(() => 0));
    return {
      node: records.node,
      status,
      explanation,
      patterns: [],
      score: 0,
      scores: {
        correlation: 0,
        r2: 0,
        n: validation.reduce((n, r) => n + r.tokens.length, 0),
        records: validation.length,
        degenerate: status === "empty" ? "empty" : status === "constant" ? "constant-activations" : "constant-simulation",
      },
      simulated,
      validation,
      maxActivation: Number.isFinite(maxActivation) ? maxActivation : 0,
      trained,
      fold,
    };
  };
  if (all.length === 0) return none("empty", "no pattern: the records hold no tokens");
  if (all.every((a) => a === all[0])) return none("constant", `no pattern: the activation is ${all[0]} at every token`);
  if (!(maxActivation > 0)) return none("inactive", "no pattern: the node never activates (> 0) in its top records");

  const ev = evidenceOf(train, fold);
  const found = new Map<string, { keys: (string | null)[]; tokens: (string | null)[]; pivots: number; acts: number[] }>();
  topSplit.train.forEach((rec, ri) => {
    const keys = ev.keys[ri]!;
    let peak = 0;
    for (let p = 1; p < rec.activations.length; p++) if (rec.activations[p]! > rec.activations[peak]!) peak = p;
    rec.activations.forEach((a0, p) => {
      if (!(a0 > 0) || (a0 < pivotThreshold * maxActivation && p !== peak)) return;
      const threshold = keep * a0;
      const { pattern, acts } = shortestPattern(ev, keys, p, threshold, { maxContext, precision, minSupport, wildcards: o.wildcards });
      const id = JSON.stringify(pattern);
      const seen = found.get(id);
      if (seen !== undefined) seen.pivots++;
      else {
        const start = p - pattern.length + 1;
        const tokens = pattern.map((k, j) => (k === null ? null : rec.tokens[start + j]!));
        found.set(id, { keys: pattern, tokens, pivots: 1, acts });
      }
    });
  });

  const patterns: TokenPattern[] = [...found.values()].map((f) => {
    const activation = f.acts.reduce((a, b) => a + b, 0) / f.acts.length;
    return {
      tokens: f.tokens,
      keys: f.keys,
      activation,
      normalized: Math.min(10, Math.round((10 * Math.max(0, activation)) / maxActivation)),
      support: f.acts.length,
      precision: precisionOf(f.acts, keep * activation),
      pivots: f.pivots,
      text: patternText(f.tokens),
    };
  });
  patterns.sort(
    (a, b) => b.activation - a.activation || b.support - a.support || a.keys.length - b.keys.length || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0),
  );
  const trie = new PatternTrie(patterns, fold);
  const simulated = validation.map((r) => trie.predict(r));
  const scores = scoreSimulations(
    validation.map((r) => r.activations),
    simulated.map((row) => row.map((v) => Math.min(SCALE_MAX, (SCALE_MAX * Math.max(0, v)) / maxActivation))),
    maxActivation,
  );
  return {
    node: records.node,
    status: "ok",
    explanation: render(patterns, maxListed, fold),
    patterns,
    score: scores.correlation,
    scores,
    simulated,
    validation,
    maxActivation,
    trained,
    fold,
  };
}

function render(patterns: readonly TokenPattern[], maxListed: number, fold: Required<TokenFold>): string {
  const listed = patterns.slice(0, maxListed).map((p) => `${p.text} (${p.normalized}/10)`);
  const more = patterns.length - listed.length;
  let text = listed.join("; ");
  if (more > 0) text += `; and ${more} more pattern${more === 1 ? "" : "s"}`;
  const folds = [fold.case ? "any case" : "", fold.space ? "with or without a leading space" : ""].filter(Boolean);
  if (folds.length > 0) text += ` (tokens matched in ${folds.join(", ")})`;
  return text;
}
