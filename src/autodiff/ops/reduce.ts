/**
 * Gradient rules of ReduceSum and ReduceMean, in both spellings of their axes (attribute before
 * opset 13 / 18, input from then on), with keepdims 0/1, negative axes and
 * `noop_with_empty_axes`.
 *
 * @module
 */
import { intAttr, intsAttr } from "../attributes.js";
import { numelOf } from "../infer.js";
import type { GradContext } from "../rule.js";

/** The axes of a Reduce node: numbers, an int64 tensor's name, or "all" when none are given. */
function axesOf(ctx: GradContext, inputFrom: number): number[] | string | "all" {
  if (ctx.e.opset >= inputFrom) {
    const a = ctx.input(1);
    if (!a) return "all";
    const known = ctx.facts.numbers(a);
    if (known) return known.length === 0 ? "all" : known;
    return a;
  }
  const a = intsAttr(ctx.node, "axes");
  return a && a.length > 0 ? a : "all";
}

function reduceGrad(ctx: GradContext, mean: boolean): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e, node } = ctx;
  const x = ctx.input(0);
  const y = ctx.output(0);
  const dy = ctx.dy();
  const keep = intAttr(node, "keepdims", 1) !== 0;
  const noop = intAttr(node, "noop_with_empty_axes", 0) !== 0;
  const axes = axesOf(ctx, node.opType === "ReduceSum" ? 13 : 18);
  if (axes === "all" && noop) return [dy];
  // Put the reduced axes back (as size 1), then broadcast to x's shape.
  const restored = keep || axes === "all" ? dy : e.unsqueeze(dy, axes);
  const dx = e.op("Expand", [restored, e.shape(x)]);
  if (!mean) return [dx];
  const xd = ctx.facts.dims(x);
  const yd = ctx.facts.dims(y);
  const nx = xd ? numelOf(xd) : null;
  const ny = yd ? numelOf(yd) : null;
  if (nx !== null && ny !== null && ny > 0) return [e.scale(dx, ny / nx)];
  const t = e.typeOf(dx);
  const count = e.div(e.cast(e.op("Size", [x]), t), e.cast(e.op("Size", [y]), t));
  return [e.div(dx, count)];
}

/** Gradient rules of reductions, by op type. */
export const reduceRules = {
  ReduceSum: (ctx: GradContext) => reduceGrad(ctx, false),
  ReduceMean: (ctx: GradContext) => reduceGrad(ctx, true),
};
