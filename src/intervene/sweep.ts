/**
 * Activation-patching sweeps as TransformerLens offers them: patch one clean activation at a
 * time into the corrupted run (per layer x position, per layer x head, or per layer x head x
 * position) and record a metric, all cells as batched variants.
 *
 * @module
 */
import { fn, object } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { ModelInput } from "../runtime/options.js";
import type { TokenLike, Trace } from "../trace/trace.js";
import { patchFrom, type Edit } from "./edits.js";
import { intervene } from "./intervene.js";

/** Hooks a sweep can patch. */
export type SweepHook = "resid_pre" | "resid_mid" | "resid_post" | "attn_out" | "mlp_out" | "z" | "q" | "k" | "v" | "pattern";

const SUFFIX: Record<SweepHook, string> = {
  resid_pre: "hook_resid_pre",
  resid_mid: "hook_resid_mid",
  resid_post: "hook_resid_post",
  attn_out: "hook_attn_out",
  mlp_out: "hook_mlp_out",
  z: "attn.hook_z",
  q: "attn.hook_q",
  k: "attn.hook_k",
  v: "attn.hook_v",
  pattern: "attn.hook_pattern",
};
const PER_HEAD: readonly SweepHook[] = ["z", "q", "k", "v", "pattern"];

/** Options of {@link Model.patchingSweep}. */
export interface SweepOptions {
  /** What to patch. */
  hook: SweepHook;
  /** Grid: per position, per head (all positions), or per head and position. [default: "position", "head" for per-head hooks] */
  by?: "position" | "head" | "head_position";
  /** Metric of a run (row `row` of `t`). [default: logit difference target - distractor at the last position] */
  metric?: (t: Trace, row: number) => number;
  target?: TokenLike | TokenLike[];
  distractor?: TokenLike | TokenLike[];
  /** Prepend BOS to string prompts. [default: true] */
  prependBos?: boolean;
  /** Memory budget of one batched run (bytes). */
  maxBatchBytes?: number;
}

/** A sweep's grid of metric values with its axes. */
export class SweepResult {
  /** Built by {@link Model.patchingSweep}. */
  constructor(
    /** Metric per cell, row-major over `dims`. */
    readonly values: Float64Array,
    readonly dims: number[],
    /** Axis names, e.g. ["layer", "pos"] or ["layer", "head"]. */
    readonly labels: string[],
    /** Token strings of the corrupted prompt (the `pos` axis). */
    readonly strTokens: string[],
    /** Metric of the clean run. */
    readonly cleanMetric: number,
    /** Metric of the corrupted run (nothing patched). */
    readonly corruptedMetric: number,
  ) {}

  /** The value of one cell. */
  at(...idx: number[]): number {
    let off = 0;
    idx.forEach((i, a) => {
      const n = this.dims[a]!;
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new TdbError("E_INDEX_RANGE", `${this.labels[a]} ${i} out of range [0, ${n - 1}]`, { value: i, allowed: [0, n - 1] });
      off = off * n + i;
    });
    return this.values[off]!;
  }

  /** (value - corrupted) / (clean - corrupted): 1 where patching restores the clean metric, 0 where it does nothing. */
  normalized(): Float64Array {
    const span = this.cleanMetric - this.corruptedMetric;
    return this.values.map((v) => (v - this.corruptedMetric) / span);
  }
}

/** Implementation of {@link Model.patchingSweep}. */
export async function patchingSweep(model: ModelRuntime, clean: ModelInput, corrupted: ModelInput, sweepOpts: SweepOptions): Promise<SweepResult> {
  const opts = object<SweepOptions>("patchingSweep options", sweepOpts, "an options object with a hook", "E_BAD_OPTION");
  if (opts.metric !== undefined) fn("metric", opts.metric);
  const suffix = SUFFIX[opts.hook];
  if (!suffix) throw new TdbError("E_BAD_OPTION", `cannot sweep ${JSON.stringify(opts.hook)}; allowed: ${Object.keys(SUFFIX).join(", ")}`, { value: opts.hook, allowed: Object.keys(SUFFIX) });
  const perHead = PER_HEAD.includes(opts.hook);
  const by = opts.by ?? (perHead ? "head" : "position");
  if (by !== "position" && !perHead) throw new TdbError("E_BAD_OPTION", `${opts.hook} has no heads; sweep it by position`, { value: by, allowed: ["position"] });
  if (!["position", "head", "head_position"].includes(by)) throw new TdbError("E_BAD_OPTION", `unknown sweep grid ${by}`, { value: by, allowed: ["position", "head", "head_position"] });
  let metric = opts.metric;
  if (!metric) {
    const { target, distractor } = opts;
    if (target === undefined || distractor === undefined) {
      throw new TdbError("E_BAD_OPTION", "a patching sweep needs a metric, or target and distractor tokens for the default logit-difference metric", { value: "missing", allowed: "metric, or target and distractor" });
    }
    metric = (t, row) => t.logitDiff(target, distractor, { batch: row });
  }
  const L = model.config.nLayers;
  const H = model.config.nHeads;
  const hooks = Array.from({ length: L }, (_, l) => `blocks.${l}.${suffix}` as HookName);
  const cleanTrace = await model.trace(clean, { hooks, prependBos: opts.prependBos });
  const cBatch = model.toBatch(corrupted, { prependBos: opts.prependBos });
  if (cleanTrace.tokens.length !== 1 || cBatch.rows.length !== 1) throw new TdbError("E_BAD_INPUT", "a patching sweep takes one clean and one corrupted prompt", { value: [cleanTrace.tokens.length, cBatch.rows.length], allowed: [1, 1] });
  const S = cBatch.seqLen;
  if (cleanTrace.tokens[0]!.length !== S) {
    throw new TdbError("E_BAD_INPUT", `clean and corrupted prompts must have the same number of tokens to patch position by position (${cleanTrace.tokens[0]!.length} vs ${S})`, {
      value: cleanTrace.tokens[0]!.length,
      allowed: S,
    });
  }
  const variants: Edit[][] = [];
  let dims: number[];
  let labels: string[];
  if (by === "position") {
    dims = [L, S];
    labels = ["layer", "pos"];
    for (const h of hooks) for (let p = 0; p < S; p++) variants.push([patchFrom(h, cleanTrace, { positions: [p] })]);
  } else if (by === "head") {
    dims = [L, H];
    labels = ["layer", "head"];
    for (const h of hooks) for (let k = 0; k < H; k++) variants.push([patchFrom(h, cleanTrace, { at: { head: k } })]);
  } else {
    dims = [L, H, S];
    labels = ["layer", "head", "pos"];
    for (const h of hooks) for (let k = 0; k < H; k++) for (let p = 0; p < S; p++) variants.push([patchFrom(h, cleanTrace, { at: { head: k }, positions: [p] })]);
  }
  const r = await intervene(model, cBatch.rows[0]!, [], { variants, maxBatchBytes: opts.maxBatchBytes, logits: "last" });
  const values = Float64Array.from({ length: variants.length }, (_, i) => metric(r.edited, i));
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new TdbError("E_NON_FINITE", `the sweep's metric returned ${values[bad]} for cell ${bad} (variant ${bad} of ${variants.length}); a sweep needs finite metric values`, {
      value: values[bad],
      allowed: "finite numbers",
    });
  }
  return new SweepResult(values, dims, labels, model.toStrTokens(cBatch.rows[0]!), metric(cleanTrace, 0), metric(r.clean, 0));
}
