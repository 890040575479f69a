/**
 * Direct logit attribution and the logit lens (TransformerLens semantics), at one position:
 * the final residual stream is a sum of components (token and position embeddings, every
 * head's result, every attention output bias, every MLP output); with the final LayerNorm's
 * scale held at its value, the logit difference is exactly the sum of each component's dot
 * product with the residual gradient, plus the LayerNorm bias term and, for models whose
 * unembedding has a bias (`b_U`), that bias's share of the logit difference.
 *
 * Both take one prompt: a batch of several prompts or token rows is `E_BAD_INPUT` (loop over
 * the prompts instead), never silently row 0.
 *
 * @module
 */
import { object } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { ModelInput } from "../runtime/options.js";
import type { TokenLike } from "../trace/trace.js";
import { resolvePosition } from "../base/positions.js";
import { lossWeights, residualGradient, resolveLogitDiff, unembedDirection } from "./loss.js";

/** One component of the final residual stream and its direct effect on the logit difference. */
export interface DlaComponent {
  /** e.g. `embed`, `pos_embed`, `L3H7`, `b_O.3`, `mlp.3`, `ln_final.b`, `b_U` */
  name: string;
  /** `unembed_bias` (`b_U`) is present only for models whose unembedding has a nonzero bias. */
  kind: "embed" | "pos_embed" | "head" | "attn_bias" | "mlp" | "ln_final_bias" | "unembed_bias";
  layer?: number;
  head?: number;
  /** Direct effect on the logit difference. */
  value: number;
}

/** Result of {@link Model.directLogitAttribution}. */
export interface DlaResult {
  components: DlaComponent[];
  /** Sum of the components: equals `logitDiff` up to float error. */
  total: number;
  /** The logit difference of the run. */
  logitDiff: number;
  /** The position attributed. */
  position: number;
}

/** Options of the logit-difference helpers. */
export interface LogitDiffOptions {
  target: TokenLike | readonly TokenLike[];
  distractor: TokenLike | readonly TokenLike[];
  /** Position (negative from the end). [default: -1] */
  position?: number;
  /** Prepend BOS to a string prompt. [default: true] */
  prependBos?: boolean;
}

/** Rows of a {@link ModelInput} (a string or one token row: 1), without tokenizing it. */
function rowCount(input: ModelInput): number {
  if (typeof input === "string" || !Array.isArray(input)) return 1;
  const first: unknown = input[0];
  return typeof first === "string" || Array.isArray(first) ? input.length : 1;
}

/** DLA and the logit lens read one prompt: `E_BAD_INPUT` for a batch of several. */
function onePrompt(input: ModelInput, what: string): void {
  const n = rowCount(input);
  if (n > 1) {
    throw new TdbError("E_BAD_INPUT", `${what} takes one prompt, got a batch of ${n}; call it once per prompt`, { value: n, allowed: 1 });
  }
}

/** `b_U . w`: the unembedding bias's share of the loss `logits . w` (0 without a bias). */
function unembedBiasTerm(model: ModelRuntime, w: Float32Array): { present: boolean; value: number } {
  const b = model.weights.b_U.data as Float32Array;
  let value = 0;
  let present = false;
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== 0) present = true;
    if (w[i] !== 0) value += b[i]! * w[i]!;
  }
  return { present, value };
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n: number): number => {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * Decomposes the logit difference at one position into direct effects of every component.
 *
 * @example
 * ```ts
 * const dla = await directLogitAttribution(model, prompt, { target: " Mary", distractor: " John" });
 * dla.components.sort((a, b) => b.value - a.value).slice(0, 5);
 * ```
 */
export async function directLogitAttribution(model: ModelRuntime, input: ModelInput, dlaOpts: LogitDiffOptions): Promise<DlaResult> {
  const opts = object<LogitDiffOptions>("directLogitAttribution options", dlaOpts, "an options object with target and distractor", "E_BAD_OPTION");
  const c = model.config;
  const L = c.nLayers;
  const H = c.nHeads;
  const d = c.dModel;
  const dh = c.dHead;
  onePrompt(input, "direct logit attribution");
  const tokens = resolveLogitDiff(model, opts.target, opts.distractor);
  const hooks: HookName[] = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"];
  // Attention-only blocks have no hook_mlp_out (and no MLP component).
  const hasMlp = (l: number) => model.hookMap.sources.has(`blocks.${l}.hook_mlp_out`);
  for (let l = 0; l < L; l++) hooks.push(`blocks.${l}.attn.hook_z`, ...(hasMlp(l) ? [`blocks.${l}.hook_mlp_out` as const] : []));
  const t = await model.trace(input, { hooks, prependBos: opts.prependBos });
  if (t.tokens.length !== 1) throw new TdbError("E_BAD_INPUT", "direct logit attribution takes one prompt", { value: t.tokens.length, allowed: 1 });
  const S = t.tokens[0]!.length;
  const pos = resolvePosition(opts.position ?? -1, S);
  const w = lossWeights(c.dVocab, tokens);
  const u = unembedDirection(model, w);
  const g = residualGradient(model, u, t.cache.get("ln_final.hook_scale").at(0, pos, 0));
  const weights = model.weights;
  const components: DlaComponent[] = [
    { name: "embed", kind: "embed", value: dot(t.cache.get("hook_embed").row(0, pos), g, d) },
    { name: "pos_embed", kind: "pos_embed", value: dot(t.cache.get("hook_pos_embed").row(0, pos), g, d) },
  ];
  for (let l = 0; l < L; l++) {
    const z = t.cache.get("z", l).row(0, pos); // [H * dh]
    const { W_O, b_O } = weights.blocks[l]!;
    // result[h] . g = z[h] . (W_O[h] g): project g through W_O once per head.
    for (let h = 0; h < H; h++) {
      let v = 0;
      for (let e = 0; e < dh; e++) {
        const row = (h * dh + e) * d;
        let wg = 0;
        for (let i = 0; i < d; i++) wg += W_O.data[row + i]! * g[i]!;
        v += z[h * dh + e]! * wg;
      }
      components.push({ name: `L${l}H${h}`, kind: "head", layer: l, head: h, value: v });
    }
    components.push({ name: `b_O.${l}`, kind: "attn_bias", layer: l, value: dot(b_O.data, g, d) });
    if (hasMlp(l)) components.push({ name: `mlp.${l}`, kind: "mlp", layer: l, value: dot(t.cache.get("mlp_out", l).row(0, pos), g, d) });
  }
  components.push({ name: "ln_final.b", kind: "ln_final_bias", value: dot(weights.lnf_b.data, u, d) });
  const bU = unembedBiasTerm(model, w);
  if (bU.present) components.push({ name: "b_U", kind: "unembed_bias", value: bU.value });
  const total = components.reduce((s, x) => s + x.value, 0);
  return { components, total, logitDiff: t.logitDiff(opts.target as TokenLike | TokenLike[], opts.distractor as TokenLike | TokenLike[], { position: pos }), position: pos };
}

/** One layer of {@link Model.logitLens}. */
export interface LogitLensRow {
  /** `blocks.L.hook_resid_pre` for L < n_layers, then the final `hook_resid_post`. */
  hook: HookName;
  /** Logit difference read from this residual stream through the final LayerNorm (its own scale) and the unembedding (with its bias `b_U`). */
  logitDiff: number;
}

/**
 * The logit lens: the logit difference each layer's residual stream would give if it were the
 * last (TransformerLens `accumulated_resid` with `apply_ln`, then the unembedding with its bias).
 * One prompt at a time: a batch of several is `E_BAD_INPUT`.
 */
export async function logitLens(model: ModelRuntime, input: ModelInput, lensOpts: LogitDiffOptions): Promise<LogitLensRow[]> {
  const opts = object<LogitDiffOptions>("logitLens options", lensOpts, "an options object with target and distractor", "E_BAD_OPTION");
  const c = model.config;
  onePrompt(input, "the logit lens");
  const tokens = resolveLogitDiff(model, opts.target, opts.distractor);
  const names: HookName[] = [];
  for (let l = 0; l < c.nLayers; l++) names.push(`blocks.${l}.hook_resid_pre`);
  names.push(`blocks.${c.nLayers - 1}.hook_resid_post`);
  const t = await model.trace(input, { hooks: names, prependBos: opts.prependBos });
  const S = t.tokens[0]!.length;
  const pos = resolvePosition(opts.position ?? -1, S);
  const w = lossWeights(c.dVocab, tokens);
  const u = unembedDirection(model, w);
  const bias = unembedBiasTerm(model, w).value;
  const { lnf_w, lnf_b } = model.weights;
  const d = c.dModel;
  return names.map((hook) => {
    const x = t.cache.get(hook).row(0, pos);
    const mean = x.reduce((a, b) => a + b, 0) / d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[i]! - mean) ** 2;
    const scale = Math.sqrt(v / d + c.lnEps);
    let diff = bias;
    for (let i = 0; i < d; i++) diff += (((x[i]! - mean) / scale) * lnf_w.data[i]! + lnf_b.data[i]!) * u[i]!;
    return { hook, logitDiff: diff };
  });
}
