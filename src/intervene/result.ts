/**
 * The result of an intervention: the edited run, the clean run, and the comparisons people make
 * between them (logit-difference change, top-k changes, KL between next-token distributions).
 *
 * @module
 */
import { installDisplay, summarizeIntervention } from "../base/inspect.js";
import type { TokenLike, TopToken, Trace } from "../trace/trace.js";

/** How one edited row's top-k next tokens differ from the clean run's. */
export interface TopKChange {
  before: TopToken[];
  after: TopToken[];
  /** Tokens in the edited top-k that were not in the clean top-k. */
  entered: number[];
  /** Tokens in the clean top-k that left it. */
  left: number[];
}

/**
 * An edited run beside its clean run. With `variants`, edited row `i` is variant `i` (all on the
 * same prompt) and compares with clean row 0; otherwise edited row `b` compares with clean row `b`.
 *
 * @example
 * ```ts
 * const r = await model.intervene(prompt, [zeroHead(1, 3)]);
 * r.logitDiffChange(" Mary", " John"); // [edited - clean] per row
 * r.kl();                              // KL(clean || edited) at the last position, per row
 * ```
 */
export class InterventionResult {
  static {
    // A few lines (KL, top tokens before and after) in consoles and notebooks.
    installDisplay(InterventionResult.prototype, { text: (r) => summarizeIntervention(r) });
  }

  /** Built by {@link Model.intervene}. */
  constructor(
    /** The run with the edits. */
    readonly edited: Trace,
    /** The same prompt(s) without edits. */
    readonly clean: Trace,
    /** Whether edited rows are variants of clean row 0. */
    readonly variants: boolean,
  ) {}

  /** Number of edited rows. */
  get rows(): number {
    return this.edited.tokens.length;
  }

  private cleanRow(b: number): number {
    return this.variants ? 0 : b;
  }

  /** Logit difference (mean target - mean distractor) at the last position: edited, clean, and the change, per row. */
  logitDiffs(target: TokenLike | TokenLike[], distractor: TokenLike | TokenLike[]): { edited: number[]; clean: number[]; change: number[] } {
    const edited: number[] = [];
    const clean: number[] = [];
    for (let b = 0; b < this.rows; b++) {
      edited.push(this.edited.logitDiff(target, distractor, { batch: b }));
      clean.push(this.clean.logitDiff(target, distractor, { batch: this.cleanRow(b) }));
    }
    return { edited, clean, change: edited.map((e, i) => e - clean[i]!) };
  }

  /** Change of the logit difference at the last position (edited - clean), per row. */
  logitDiffChange(target: TokenLike | TokenLike[], distractor: TokenLike | TokenLike[]): number[] {
    return this.logitDiffs(target, distractor).change;
  }

  /** KL(clean || edited) of the next-token distributions at the last position, per row (nats). */
  kl(): number[] {
    const out: number[] = [];
    for (let b = 0; b < this.rows; b++) {
      const p = this.clean.logProbs({ batch: this.cleanRow(b) });
      const q = this.edited.logProbs({ batch: b });
      let kl = 0;
      for (let i = 0; i < p.length; i++) kl += Math.exp(p[i]!) * (p[i]! - q[i]!);
      out.push(Math.max(0, kl));
    }
    return out;
  }

  /** The top-k next tokens before and after, per row. */
  topKChanges(k = 5): TopKChange[] {
    const out: TopKChange[] = [];
    for (let b = 0; b < this.rows; b++) {
      const before = this.clean.topK(k, { batch: this.cleanRow(b) });
      const after = this.edited.topK(k, { batch: b });
      const was = new Set(before.map((t) => t.token));
      const now = new Set(after.map((t) => t.token));
      out.push({ before, after, entered: after.filter((t) => !was.has(t.token)).map((t) => t.token), left: before.filter((t) => !now.has(t.token)).map((t) => t.token) });
    }
    return out;
  }
}
