/**
 * Transformer Debugger's loss: mean target logit minus mean distractor logit at one position,
 * as a weight vector over the vocabulary (`loss = logits . w`), and the gradient it puts on the
 * final residual stream when the final LayerNorm's scale is held constant.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { TokenLike } from "../trace/trace.js";

/** Target and distractor tokens, resolved to ids. */
export interface LogitDiffTokens {
  targets: number[];
  distractors: number[];
}

function ids(model: ModelRuntime, side: string, x: TokenLike | readonly TokenLike[]): number[] {
  if (x === undefined || x === null) {
    throw new TdbError("E_BAD_OPTION", `${side} is missing; give a single-token string, a token id or a list of them`, { value: x === null ? null : "missing", allowed: "a token string, a token id or a non-empty list" });
  }
  const list = Array.isArray(x) ? (x as readonly TokenLike[]) : [x as TokenLike];
  if (list.length === 0) throw new TdbError("E_BAD_INPUT", `${side} is empty; give at least one token`, { value: [], allowed: "a non-empty list of tokens" });
  return list.map((t) => {
    if (typeof t === "string") return model.toSingleToken(t);
    if (!Number.isInteger(t) || t < 0 || t >= model.config.dVocab) {
      throw new TdbError("E_BAD_INPUT", `${side} token id ${t} outside the vocabulary [0, ${model.config.dVocab - 1}]`, { value: t, allowed: [0, model.config.dVocab - 1] });
    }
    return t;
  });
}

/**
 * Resolves target and distractor tokens. Strings must be single tokens (pass a list for several
 * tokens); the two sides must differ.
 */
export function resolveLogitDiff(model: ModelRuntime, target: TokenLike | readonly TokenLike[], distractor: TokenLike | readonly TokenLike[]): LogitDiffTokens {
  const targets = ids(model, "target", target);
  const distractors = ids(model, "distractor", distractor);
  const same = targets.length === distractors.length && [...targets].sort().join() === [...distractors].sort().join();
  if (same) {
    throw new TdbError("E_BAD_INPUT", `target and distractor are the same tokens (${targets.join(", ")}); the logit difference would be 0`, {
      value: targets,
      allowed: "different target and distractor tokens",
    });
  }
  return { targets, distractors };
}

/** `w` with `logits . w` = mean target logit - mean distractor logit. */
export function lossWeights(dVocab: number, t: LogitDiffTokens): Float32Array {
  const w = new Float32Array(dVocab);
  for (const i of t.targets) w[i]! += 1 / t.targets.length;
  for (const i of t.distractors) w[i]! -= 1 / t.distractors.length;
  return w;
}

/** The unembedding direction `u = W_U w` (d_model): the loss is `LN(resid) . u`. */
export function unembedDirection(model: ModelRuntime, w: Float32Array): Float64Array {
  const { W_U } = model.weights;
  const d = model.config.dModel;
  const V = model.config.dVocab;
  const u = new Float64Array(d);
  w.forEach((wt, t) => {
    if (wt === 0) return;
    for (let i = 0; i < d; i++) u[i]! += W_U.data[i * V + t]! * wt;
  });
  return u;
}

/**
 * d(loss)/d(final residual) at one position with the final LayerNorm's scale held constant:
 * `g = center(w_ln * u) / scale` (centering is the LayerNorm's mean subtraction, a symmetric
 * projection). With it, `resid . g + b_ln . u` is exactly the loss.
 */
export function residualGradient(model: ModelRuntime, u: Float64Array, scale: number): Float64Array {
  const w = model.weights.lnf_w.data;
  const d = model.config.dModel;
  const g = Float64Array.from(u, (x, i) => x * w[i]!);
  const mean = g.reduce((a, b) => a + b, 0) / d;
  return g.map((x) => (x - mean) / scale);
}
