/**
 * The result of one forward pass: tokens, logits and the activation cache, with the helpers
 * people reach for first (top-k, log-probs, logit difference, loss).
 *
 * @module
 */
import { Activation } from "./activation.js";
import { ActivationCache } from "./cache.js";
import type { HookName } from "../hooks/names.js";
import { positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { installDisplay, summarizeTrace, traceHtml } from "../base/inspect.js";

/** How a trace turns token strings into ids and back. */
export interface TokenCodec {
  /** The id of a string that must be exactly one token. */
  toSingleToken(s: string): number;
  /** The string of one token id. */
  decodeToken(id: number): string;
}

/** A token given as its id or its (single-token) string. */
export type TokenLike = number | string;

/** Where to read a next-token distribution; defaults to the last real token of row 0. */
export interface PositionOptions {
  /** Batch row. [default: 0] */
  batch?: number;
  /** Position; negative counts back from the row's last real token (-1 = last). [default: -1] */
  position?: number;
}

/** One entry of {@link Trace.topK}. */
export interface TopToken {
  token: number;
  str: string;
  logit: number;
  logProb: number;
  prob: number;
}

/**
 * Logits and activations from {@link Model.trace}.
 *
 * @example
 * ```ts
 * const t = await model.trace("When John and Mary went to the shops, John gave the bag to");
 * t.topK(5);                         // most likely next tokens at the last position
 * t.logitDiff(" Mary", " John");     // logit(" Mary") - logit(" John") at the last position
 * t.cache.get("pattern", 0).dims;    // [1, n_head, pos, pos]
 * ```
 */
export class Trace {
  static {
    // A few lines (prompt, hooks, top next tokens) in consoles and notebooks instead of the cache.
    installDisplay(Trace.prototype, { text: (t) => summarizeTrace(t), html: (t) => traceHtml(t) });
  }

  /** Built by {@link Model.trace}. */
  constructor(
    /** Token ids per batch row, unpadded. */
    readonly tokens: number[][],
    /** Token strings per batch row. */
    readonly strTokens: string[][],
    /** Logits [batch, pos, d_vocab] (padded positions included; see {@link lengths}). */
    readonly logits: Activation,
    /** Cached activations. */
    readonly cache: ActivationCache,
    private readonly codec: TokenCodec,
    /** Positions kept in the cache (all when undefined). */
    readonly positions?: readonly number[],
    /**
     * Per row, the positions `logits` holds, in order (`logits` is [batch, n, d_vocab]); all
     * positions when undefined.
     */
    readonly logitPositions?: readonly (readonly number[])[],
  ) {}

  /**
   * Joins traces of the same prompt length along the batch axis (e.g. the chunks of a batched
   * run). They must cache the same hooks and logit positions count.
   */
  static concat(parts: readonly Trace[]): Trace {
    const first = parts[0];
    if (!first) throw new TdbError("E_BAD_INPUT", "nothing to concatenate", { value: 0 });
    if (parts.length === 1) return first;
    const cat = (acts: Activation[]): Activation => {
      const a0 = acts[0]!;
      const data = new Float32Array(acts.reduce((n, a) => n + a.data.length, 0));
      let off = 0;
      for (const a of acts) {
        if (a.dims.slice(1).join() !== a0.dims.slice(1).join()) {
          throw new TdbError("E_BAD_INPUT", `cannot concatenate ${a0.name}: dims ${a.dims.join("x")} vs ${a0.dims.join("x")}`, { value: a.dims });
        }
        data.set(a.data, off);
        off += a.data.length;
      }
      return new Activation(a0.name, data, [acts.reduce((n, a) => n + a.dims[0]!, 0), ...a0.dims.slice(1)], a0.labels);
    };
    const entries = new Map<HookName, Activation>();
    for (const [name] of first.cache) entries.set(name, cat(parts.map((p) => p.cache.get(name))));
    return new Trace(
      parts.flatMap((p) => p.tokens),
      parts.flatMap((p) => p.strTokens),
      cat(parts.map((p) => p.logits)),
      new ActivationCache(entries, first.cache.nLayers),
      first.codec,
      first.positions,
      first.logitPositions ? parts.flatMap((p) => p.logitPositions!) : undefined,
    );
  }

  /** A trace of some rows of this one, in the given order (rows may repeat). */
  selectRows(rows: readonly number[]): Trace {
    if (!Array.isArray(rows) || rows.length === 0) {
      throw new TdbError("E_BAD_INPUT", "selectRows takes a non-empty array of row indices", { value: rows, allowed: `a non-empty array of integers in [0, ${this.tokens.length - 1}]` });
    }
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.tokens.length) {
        throw new TdbError("E_INDEX_RANGE", `row ${r} out of range [0, ${this.tokens.length - 1}]`, { value: r, allowed: [0, this.tokens.length - 1] });
      }
    }
    const pick = (a: Activation): Activation => {
      const n = a.data.length / a.dims[0]!;
      const data = new Float32Array(rows.length * n);
      rows.forEach((r, i) => data.set(a.data.subarray(r * n, (r + 1) * n), i * n));
      return new Activation(a.name, data, [rows.length, ...a.dims.slice(1)], a.labels);
    };
    const entries = new Map<HookName, Activation>();
    for (const [name, a] of this.cache) entries.set(name, a.dims[0] === this.tokens.length ? pick(a) : a);
    return new Trace(
      rows.map((r) => this.tokens[r]!),
      rows.map((r) => this.strTokens[r]!),
      pick(this.logits),
      new ActivationCache(entries, this.cache.nLayers),
      this.codec,
      this.positions,
      this.logitPositions ? rows.map((r) => this.logitPositions![r]!) : undefined,
    );
  }

  private nonFiniteMemo: boolean | undefined;

  /**
   * Whether any logit is NaN or infinite (e.g. a NaN weight, or an overflow): then every number
   * derived from the logits (topK, logit differences, KL) is meaningless. The CLI turns this into
   * an `E_NON_FINITE` error.
   *
   * @example
   * ```ts
   * const t = await model.trace("Hello");
   * if (t.nonFinite) throw new Error("the model produced NaN or infinite logits");
   * ```
   */
  get nonFinite(): boolean {
    if (this.nonFiniteMemo === undefined) {
      let bad = false;
      for (const v of this.logits.data) {
        if (!Number.isFinite(v)) {
          bad = true;
          break;
        }
      }
      this.nonFiniteMemo = bad;
    }
    return this.nonFiniteMemo;
  }

  /** Number of real (unpadded) tokens per row. */
  get lengths(): number[] {
    return this.tokens.map((r) => r.length);
  }

  /** Attention mask per row (1 for real tokens, 0 for right padding). */
  get attentionMask(): number[][] {
    const s = this.logits.dims[1]!;
    return this.tokens.map((r) => Array.from({ length: s }, (_, i) => (i < r.length ? 1 : 0)));
  }

  private where(opts: PositionOptions = {}): { b: number; p: number } {
    const b = opts.batch ?? 0;
    const row = this.tokens[b];
    if (!Number.isInteger(b) || row === undefined) {
      throw new TdbError("E_POSITION_RANGE", `batch row ${b} out of range [0, ${this.tokens.length - 1}]`, {
        value: b,
        allowed: [0, this.tokens.length - 1],
      });
    }
    const pos = opts.position ?? -1;
    const p = pos < 0 ? row.length + pos : pos;
    if (!Number.isInteger(p) || p < 0 || p >= row.length) {
      throw new TdbError("E_POSITION_RANGE", `position ${pos} out of range for row ${b} of ${row.length} tokens [${-row.length}, ${row.length - 1}]`, {
        value: pos,
        allowed: [-row.length, row.length - 1],
      });
    }
    return { b, p };
  }

  /** Logits of the next-token distribution at one position (a view, no copy). */
  logitsAt(opts: PositionOptions = {}): Float32Array {
    const { b, p } = this.where(opts);
    if (this.logits.dims[2] === 0) {
      // A graph without a logits output (feature-extraction export): logits are [batch, pos, 0].
      throw new TdbError("E_NO_LOGITS", "this trace has no logits: the model's graph has no \"logits\" output (a feature-extraction export?); its hooks are in trace.cache", { value: "logits", allowed: [...this.cache.keys()] });
    }
    if (!this.logitPositions) return this.logits.row(b, p);
    const i = this.logitPositions[b]!.indexOf(p);
    if (i < 0) {
      throw new TdbError("E_NOT_CACHED", `logits at position ${p} of row ${b} were not computed in this run; computed: ${this.logitPositions[b]!.join(", ")}`, {
        value: p,
        allowed: this.logitPositions[b],
      });
    }
    return this.logits.row(b, i);
  }

  /** Log-probabilities (float64 log-softmax) at one position. */
  logProbs(opts: PositionOptions = {}): Float64Array {
    const l = this.logitsAt(opts);
    let max = -Infinity;
    for (const v of l) if (v > max) max = v;
    let sum = 0;
    for (const v of l) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    const out = new Float64Array(l.length);
    for (let i = 0; i < l.length; i++) out[i] = l[i]! - lse;
    return out;
  }

  /**
   * The `k` most likely next tokens at one position, most likely first. `k` is an integer >= 1
   * (`E_BAD_OPTION` otherwise); a `k` beyond the vocabulary returns the whole vocabulary.
   */
  topK(k = 10, opts: PositionOptions = {}): TopToken[] {
    positiveInt("k", k);
    const lp = this.logProbs(opts);
    const l = this.logitsAt(opts);
    const idx = Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b).slice(0, k);
    return idx.map((token) => ({
      token,
      str: this.codec.decodeToken(token),
      logit: l[token]!,
      logProb: lp[token]!,
      prob: Math.exp(lp[token]!),
    }));
  }

  /**
   * Mean logit of `target` tokens minus mean logit of `distractor` tokens at one position
   * (Transformer Debugger's loss). Strings must be single tokens.
   */
  logitDiff(target: TokenLike | TokenLike[], distractor: TokenLike | TokenLike[], opts: PositionOptions = {}): number {
    const l = this.logitsAt(opts);
    const mean = (ts: TokenLike | TokenLike[]) => {
      const list = Array.isArray(ts) ? ts : [ts];
      if (list.length === 0) throw new TdbError("E_BAD_INPUT", "logitDiff needs at least one token on each side", { value: list, allowed: "a token or a non-empty list of tokens" });
      return list.reduce<number>((s, t) => s + l[this.tokenId(t)]!, 0) / list.length;
    };
    return mean(target) - mean(distractor);
  }

  /** Mean next-token cross-entropy over the real tokens of one row (nats). */
  loss(batch = 0): number {
    if (!Number.isInteger(batch) || batch < 0 || batch >= this.tokens.length) {
      throw new TdbError("E_INDEX_RANGE", `row ${batch} out of range [0, ${this.tokens.length - 1}]`, { value: batch, allowed: [0, this.tokens.length - 1] });
    }
    const row = this.tokens[batch];
    if (!row || row.length < 2) {
      throw new TdbError("E_BAD_INPUT", `loss needs a row with at least 2 tokens (row ${batch})`, { value: row?.length ?? batch, allowed: "a row of at least 2 tokens" });
    }
    let total = 0;
    for (let p = 0; p < row.length - 1; p++) total -= this.logProbs({ batch, position: p })[row[p + 1]!]!;
    return total / (row.length - 1);
  }

  private tokenId(t: TokenLike): number {
    if (typeof t === "string") return this.codec.toSingleToken(t);
    const v = this.logits.dims[2]!;
    if (!Number.isInteger(t) || t < 0 || t >= v) {
      throw new TdbError("E_BAD_INPUT", `token id ${t} outside the vocabulary [0, ${v - 1}]`, { value: t, allowed: [0, v - 1] });
    }
    return t;
  }
}
