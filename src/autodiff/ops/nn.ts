/**
 * Gradient rules of normalizing ops: Softmax and LogSoftmax (opset 13 semantics: one axis) and
 * LayerNormalization (opset 17; gradients for X, Scale and B through the Y output).
 *
 * @module
 */
import { floatAttr, intAttr } from "../attributes.js";
import type { GradContext } from "../rule.js";

function softmax(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e } = ctx;
  const y = ctx.output(0);
  const dy = ctx.dy();
  const axis = intAttr(ctx.node, "axis", -1);
  // dx = y * (dy - sum(dy * y, axis))
  const inner = e.reduceSum(e.mul(dy, y), [axis], true);
  return [e.mul(y, e.sub(dy, inner))];
}

function logSoftmax(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e } = ctx;
  const y = ctx.output(0);
  const dy = ctx.dy();
  const axis = intAttr(ctx.node, "axis", -1);
  // dx = dy - softmax(x) * sum(dy, axis)
  return [e.sub(dy, e.mul(e.op("Exp", [y]), e.reduceSum(dy, [axis], true)))];
}

function layerNorm(ctx: GradContext): (string | undefined)[] {
  if (ctx.hasDy(1) || ctx.hasDy(2)) ctx.fail("gradients through its Mean and InvStdDev outputs are not supported");
  const { e, node } = ctx;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const bias = ctx.input(2);
  const dy = ctx.dy();
  let axis = intAttr(node, "axis", -1);
  const eps = floatAttr(node, "epsilon", 1e-5);
  if (axis >= 0) {
    const r = ctx.facts.rank(x);
    if (r === undefined) ctx.fail(`axis ${axis} needs the rank of ${x}, which is not known statically`);
    axis -= r;
  }
  const axes = Array.from({ length: -axis }, (_, i) => axis + i);
  const t = e.typeOf(x);
  // Recompute the normalized input (the op does not expose it): xhat = (x - mean) / sqrt(var + eps).
  let stats: { xhat: string; invStd: string } | undefined;
  const normalized = () => {
    if (stats) return stats;
    const centered = e.sub(x, e.reduceMean(x, axes, true));
    const variance = e.reduceMean(e.mul(centered, centered), axes, true);
    const invStd = e.op("Reciprocal", [e.op("Sqrt", [e.add(variance, e.scalar(eps, t))])]);
    stats = { xhat: e.mul(centered, invStd), invStd };
    return stats;
  };
  const dx = () => {
    // dx = invStd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * scale
    const { xhat, invStd } = normalized();
    const gx = e.mul(dy, scale);
    const m1 = e.reduceMean(gx, axes, true);
    const m2 = e.reduceMean(e.mul(gx, xhat), axes, true);
    return e.mul(invStd, e.sub(e.sub(gx, m1), e.mul(xhat, m2)));
  };
  return [
    ctx.needs(0) ? dx() : undefined,
    ctx.needs(1) ? e.sumToShapeOf(e.mul(dy, normalized().xhat), scale) : undefined,
    bias && ctx.needs(2) ? e.sumToShapeOf(dy, bias) : undefined,
  ];
}

/** Gradient rules of normalizations, by op type. */
export const nnRules = { Softmax: softmax, LogSoftmax: logSoftmax, LayerNormalization: layerNorm };
