/**
 * Head detectors: previous-token, duplicate-token and induction scores of every attention head,
 * as TransformerLens's `head_detector` defines them with its `"mul"` error measure.
 *
 * A detector is a 0/1 *detection pattern* D over (query i, key j) for a token row t of length n
 * (lower triangular, like a causal attention pattern):
 * - previous token: D[i][j] = 1 iff j = i - 1 (i >= 1);
 * - duplicate token: D[i][j] = 1 iff j < i and t[j] = t[i] (an earlier copy of the current token);
 * - induction: D[i][j] = 1 iff 1 <= j <= i and t[j-1] = t[i] (the token after an earlier copy of
 *   the current token).
 *
 * A head's score on one row is the share of its attention mass that lands on D:
 * `sum_ij A'[i][j] D[i][j] / sum_ij A'[i][j]` over the scored query rows, where A is the head's
 * attention pattern (`blocks.L.attn.hook_pattern`) restricted to the row's real tokens and A' is A
 * with the exclusions applied:
 * - `excludeBos`: attention to key position 0 (the BOS token when one is prepended) is set to 0;
 * - `excludeCurrentToken`: attention of each query to itself (the diagonal) is set to 0.
 * With neither exclusion every row of A sums to 1, so the score is the mean over query positions
 * of the attention mass on D. `queries: "all"` (default, TransformerLens) scores every query row;
 * `queries: "matched"` only the rows where D has a 1 (e.g. only the second half of a repeated
 * sequence), so that a perfect induction head scores 1 instead of about 1/2. A score whose
 * denominator is 0 (all the scored mass was excluded, or no row matched) is 0. Over a batch, the
 * score is the mean of the per-row scores (as TransformerLens averages over a list of prompts).
 *
 * @module
 */
import { array, boolean, oneOf, options, positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { installDisplay } from "../base/inspect.js";
import { Rng } from "../base/random.js";
import type { HookName } from "../hooks/names.js";
import type { ModelInput } from "../runtime/options.js";
import type { ModelRuntime } from "../runtime/runtime.js";

/** The detectors: TransformerLens's `previous_token_head`, `duplicate_token_head`, `induction_head`. */
export type HeadDetector = "previousToken" | "duplicateToken" | "induction";

/** Every {@link HeadDetector}, in the order results list them. */
export const HEAD_DETECTORS: readonly HeadDetector[] = Object.freeze(["previousToken", "duplicateToken", "induction"] as const);

/** Which query rows a score averages over; see the module overview. */
export type ScoredQueries = "all" | "matched";

/** How attention patterns are compared with detection patterns. */
export interface DetectionScoreOptions {
  /** Ignore attention to key position 0 (the BOS token when one is prepended). [default: false] */
  excludeBos?: boolean;
  /** Ignore attention of each query to its own position. [default: false] */
  excludeCurrentToken?: boolean;
  /** Score every query row (`"all"`, TransformerLens) or only rows where the detection pattern has a 1. [default: "all"] */
  queries?: ScoredQueries;
}

/**
 * The previous-token detection pattern of an `n`-token row: n x n, row-major, 1 at (i, i - 1).
 *
 * @example
 * ```ts
 * previousTokenPattern(3); // [0,0,0, 1,0,0, 0,1,0]
 * ```
 */
export function previousTokenPattern(n: number): Uint8Array {
  const d = new Uint8Array(n * n);
  for (let i = 1; i < n; i++) d[i * n + i - 1] = 1;
  return d;
}

/**
 * The duplicate-token detection pattern of a token row: 1 at (i, j) when j < i and
 * `tokens[j] === tokens[i]`.
 *
 * @example
 * ```ts
 * duplicateTokenPattern([5, 7, 5]); // row 2 has a 1 at key 0
 * ```
 */
export function duplicateTokenPattern(tokens: readonly number[]): Uint8Array {
  const n = tokens.length;
  const d = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) if (tokens[j] === tokens[i]) d[i * n + j] = 1;
  return d;
}

/**
 * The induction detection pattern of a token row: 1 at (i, j) when 1 <= j <= i and
 * `tokens[j - 1] === tokens[i]` (the token that followed an earlier copy of the current one).
 *
 * @example
 * ```ts
 * inductionPattern([9, 5, 7, 5]); // row 3 (token 5) has a 1 at key 2 (after the first 5)
 * ```
 */
export function inductionPattern(tokens: readonly number[]): Uint8Array {
  const n = tokens.length;
  const d = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 1; j <= i; j++) if (j - 1 < i && tokens[j - 1] === tokens[i]) d[i * n + j] = 1;
  return d;
}

/** The detection pattern of `detector` for a token row (n x n, row-major). */
export function detectionPattern(detector: HeadDetector, tokens: readonly number[]): Uint8Array {
  switch (detector) {
    case "previousToken":
      return previousTokenPattern(tokens.length);
    case "duplicateToken":
      return duplicateTokenPattern(tokens);
    case "induction":
      return inductionPattern(tokens);
  }
}

function scoreOptions(opts: DetectionScoreOptions): Required<DetectionScoreOptions> {
  return {
    excludeBos: boolean("excludeBos", opts.excludeBos ?? false),
    excludeCurrentToken: boolean("excludeCurrentToken", opts.excludeCurrentToken ?? false),
    queries: oneOf("queries", opts.queries ?? "all", ["all", "matched"] as const),
  };
}

/**
 * The score of one attention pattern against one detection pattern (both n x n, row-major;
 * `attention[i * n + j]` = attention of query i to key j): the share of the attention mass of
 * the scored query rows that lies on the detection pattern, after the exclusions (see the module
 * overview). 0 when that mass is 0.
 *
 * @example
 * ```ts
 * // a head that always attends to the previous token (query 0 to itself): (n - 1) / n
 * detectionScore(attn, previousTokenPattern(n), n);
 * ```
 */
export function detectionScore(attention: ArrayLike<number>, detection: ArrayLike<number>, n: number, opts: DetectionScoreOptions = {}): number {
  const o = scoreOptions(opts);
  if (attention.length !== n * n || detection.length !== n * n) {
    throw new TdbError("E_BAD_INPUT", `detectionScore needs two ${n} x ${n} matrices, got ${attention.length} and ${detection.length} values`, {
      value: [attention.length, detection.length],
      allowed: n * n,
    });
  }
  return scoreRows(attention, 0, n, detection, n, o);
}

/** The score of the n x n block at `off` of a pattern whose rows are `stride` long. */
function scoreRows(a: ArrayLike<number>, off: number, stride: number, d: ArrayLike<number>, n: number, o: Required<DetectionScoreOptions>): number {
  let hit = 0;
  let mass = 0;
  for (let i = 0; i < n; i++) {
    if (o.queries === "matched") {
      let any = false;
      for (let j = 0; j < n && !any; j++) any = d[i * n + j] !== 0;
      if (!any) continue;
    }
    const row = off + i * stride;
    for (let j = 0; j < n; j++) {
      if ((o.excludeBos && j === 0) || (o.excludeCurrentToken && j === i)) continue;
      const x = a[row + j]!;
      mass += x;
      hit += x * d[i * n + j]!;
    }
  }
  return mass === 0 ? 0 : hit / mass;
}

/**
 * Scores of every head of one layer's attention patterns `[batch, head, query_pos, key_pos]`
 * (right-padded rows: `rows[b]` are the real tokens of row b) against `detector`: the mean over
 * rows of each head's {@link detectionScore}. Returns one score per head.
 */
export function scoreLayerPatterns(
  pattern: { data: ArrayLike<number>; dims: readonly number[] },
  rows: readonly (readonly number[])[],
  detector: HeadDetector,
  opts: DetectionScoreOptions = {},
): number[] {
  const o = scoreOptions(opts);
  const [B, H, S, S2] = pattern.dims as [number, number, number, number];
  if (pattern.dims.length !== 4 || S !== S2 || B !== rows.length || rows.some((r) => r.length > S)) {
    throw new TdbError("E_BAD_INPUT", `attention patterns must be [batch=${rows.length}, head, pos, pos] with rows no longer than pos, got [${pattern.dims.join(", ")}]`, {
      value: pattern.dims,
      allowed: "[batch, head, query_pos, key_pos]",
    });
  }
  const out = new Array<number>(H).fill(0);
  rows.forEach((tokens, b) => {
    const n = tokens.length;
    const d = detectionPattern(detector, tokens);
    for (let h = 0; h < H; h++) out[h] = out[h]! + scoreRows(pattern.data, (b * H + h) * S * S, S, d, n, o) / B;
  });
  return out;
}

/** Options of {@link Model.headScores}. */
export interface HeadScoresOptions extends DetectionScoreOptions {
  /**
   * What to run: a prompt, prompts, a token row or token rows. [default: `batch` rows of
   * `seqLen` seeded random tokens repeated twice, after a BOS token when `prependBos`]
   */
  input?: ModelInput;
  /** Prepend BOS to string prompts and to the default random rows. [default: true] */
  prependBos?: boolean;
  /** Detectors to compute. [default: all of {@link HEAD_DETECTORS}] */
  detectors?: readonly HeadDetector[];
  /** Length of the random half of the default rows. [default: min(50, floor((n_ctx - 1) / 2))] */
  seqLen?: number;
  /** Number of default random rows. [default: 4] */
  batch?: number;
  /** Seed of the default random rows. [default: 0] */
  seed?: number;
}

/** One head and its score. */
export interface HeadScore {
  layer: number;
  head: number;
  score: number;
}

/**
 * Rows of `seqLen` random tokens (uniform over `[0, dVocab)` without `exclude`), each repeated
 * twice, after `prefix`: the input TransformerLens users score induction heads on.
 *
 * @example
 * ```ts
 * repeatedRandomTokens({ dVocab: 512, seqLen: 10, batch: 2, seed: 0, prefix: [511], exclude: [511] }); // 2 rows of 21 tokens
 * ```
 */
export function repeatedRandomTokens(o: { dVocab: number; seqLen: number; batch: number; seed: number; prefix?: readonly number[]; exclude?: readonly number[] }): number[][] {
  const exclude = new Set(o.exclude ?? []);
  const usable = o.dVocab - [...exclude].filter((t) => Number.isInteger(t) && t >= 0 && t < o.dVocab).length;
  if (!(usable > 0) || !(o.seqLen >= 0) || !(o.batch >= 0)) {
    throw new TdbError("E_BAD_OPTION", `no random tokens to draw: vocabulary of ${o.dVocab} with ${exclude.size} excluded`, { value: o.dVocab, allowed: "a vocabulary with tokens left after the exclusions" });
  }
  const rng = new Rng(o.seed);
  return Array.from({ length: o.batch }, () => {
    const half: number[] = [];
    while (half.length < o.seqLen) {
      const t = rng.int(o.dVocab);
      if (!exclude.has(t)) half.push(t);
    }
    return [...(o.prefix ?? []), ...half, ...half];
  });
}

/**
 * Head detector scores of every head (result of {@link Model.headScores}): `scores[detector][layer][head]`.
 */
export class HeadScores {
  static {
    installDisplay(HeadScores.prototype, { text: (s) => s.summary() });
  }

  /** Built by {@link Model.headScores}. */
  constructor(
    /** Number of layers. */
    readonly nLayers: number,
    /** Heads per layer. */
    readonly nHeads: number,
    /** Scores by detector, `[layer][head]`; only the detectors asked for. */
    readonly scores: Readonly<Partial<Record<HeadDetector, readonly (readonly number[])[]>>>,
    /** The token rows scored (unpadded). */
    readonly tokens: readonly (readonly number[])[],
    /** The scoring options used. */
    readonly options: Readonly<Required<DetectionScoreOptions>>,
  ) {}

  /** The detectors computed. */
  get detectors(): HeadDetector[] {
    return HEAD_DETECTORS.filter((d) => this.scores[d] !== undefined);
  }

  private table(detector: HeadDetector): readonly (readonly number[])[] {
    const t = this.scores[detector];
    if (!t) {
      throw new TdbError("E_BAD_OPTION", `detector ${JSON.stringify(detector)} was not computed; computed: ${this.detectors.join(", ")}`, {
        value: detector,
        allowed: this.detectors,
      });
    }
    return t;
  }

  /** The score of one head. */
  score(detector: HeadDetector, layer: number, head: number): number {
    const t = this.table(detector);
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.nLayers) {
      throw new TdbError("E_LAYER_RANGE", `layer ${layer} out of range [0, ${this.nLayers - 1}]`, { value: layer, allowed: [0, this.nLayers - 1] });
    }
    if (!Number.isInteger(head) || head < 0 || head >= this.nHeads) {
      throw new TdbError("E_INDEX_RANGE", `head ${head} out of range [0, ${this.nHeads - 1}]`, { value: head, allowed: [0, this.nHeads - 1] });
    }
    return t[layer]![head]!;
  }

  /** Every head, highest score first (ties: lower layer, then lower head first). */
  ranked(detector: HeadDetector): HeadScore[] {
    const t = this.table(detector);
    const all = t.flatMap((row, layer) => row.map((score, head) => ({ layer, head, score })));
    return all.sort((a, b) => b.score - a.score || a.layer - b.layer || a.head - b.head);
  }

  /** Heads whose score is strictly above `threshold`, highest first. */
  above(detector: HeadDetector, threshold: number): HeadScore[] {
    return this.ranked(detector).filter((s) => s.score > threshold);
  }

  /** The `k` highest-scoring heads. [default k: 1] */
  top(detector: HeadDetector, k = 1): HeadScore[] {
    return this.ranked(detector).slice(0, positiveInt("k", k));
  }

  /** A JSON-friendly form: detectors, scores and options. */
  toJSON(): { nLayers: number; nHeads: number; scores: Partial<Record<HeadDetector, readonly (readonly number[])[]>>; options: Required<DetectionScoreOptions>; rows: number } {
    return { nLayers: this.nLayers, nHeads: this.nHeads, scores: { ...this.scores }, options: { ...this.options }, rows: this.tokens.length };
  }

  /** A few lines: the best heads of each detector. */
  summary(): string {
    const lines = [`HeadScores: ${this.nLayers} layers x ${this.nHeads} heads, ${this.tokens.length} rows`];
    for (const d of this.detectors) {
      lines.push(`  ${d}: ${this.top(d, Math.min(3, this.nLayers * this.nHeads)).map((s) => `${s.layer}.${s.head} ${s.score.toFixed(3)}`).join(", ")}`);
    }
    return lines.join("\n");
  }
}

/**
 * Previous-token, duplicate-token and induction scores of every head (see the module overview
 * for the definitions): one forward pass caching every layer's attention pattern, scored against
 * each detector's pattern for the input's tokens.
 *
 * @example
 * ```ts
 * const s = await model.headScores();           // seeded random tokens, repeated
 * s.above("induction", 0.3);                     // [{ layer: 1, head: 3, score: 0.46 }, ...]
 * s.score("previousToken", 0, 2);
 * ```
 */
export async function headScores(rt: ModelRuntime, headOpts?: HeadScoresOptions): Promise<HeadScores> {
  const opts = options("headScores options", headOpts);
  const o = scoreOptions(opts);
  const detectors = array<HeadDetector>("detectors", opts.detectors ?? HEAD_DETECTORS, "an array of detector names");
  if (detectors.length === 0) throw new TdbError("E_BAD_OPTION", "detectors is empty", { value: [], allowed: HEAD_DETECTORS });
  for (const d of detectors) oneOf("detectors[]", d, HEAD_DETECTORS);
  const prependBos = boolean("prependBos", opts.prependBos ?? true);
  const { nLayers, nHeads, nCtx, dVocab } = rt.config;
  let input = opts.input;
  if (input === undefined) {
    const maxHalf = Math.floor((nCtx - (prependBos ? 1 : 0)) / 2);
    const seqLen = opts.seqLen === undefined ? Math.min(50, maxHalf) : positiveInt("seqLen", opts.seqLen);
    if (seqLen > maxHalf) {
      throw new TdbError("E_BAD_OPTION", `seqLen ${seqLen} does not fit twice in the model's context of ${nCtx} tokens`, { value: seqLen, allowed: `1..${maxHalf}` });
    }
    const special = [rt.bosTokenId, ...(rt.config.eosTokenId === undefined ? [] : [rt.config.eosTokenId])];
    input = repeatedRandomTokens({
      dVocab,
      seqLen,
      batch: positiveInt("batch", opts.batch ?? 4),
      seed: positiveInt("seed", opts.seed ?? 0, 0),
      prefix: prependBos ? [rt.bosTokenId] : [],
      exclude: special,
    });
  }
  const hooks = Array.from({ length: nLayers }, (_, l) => `blocks.${l}.attn.hook_pattern` as HookName);
  const trace = await rt.trace(input, { hooks, prependBos });
  const scores: Partial<Record<HeadDetector, number[][]>> = {};
  for (const d of HEAD_DETECTORS) {
    if (!detectors.includes(d)) continue;
    scores[d] = hooks.map((h) => scoreLayerPatterns(trace.cache.get(h), trace.tokens, d, o));
  }
  return new HeadScores(nLayers, nHeads, scores, trace.tokens, o);
}
