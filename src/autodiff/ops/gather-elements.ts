/**
 * Gradient rule of GatherElements (data input): the output gradient is scattered into zeros of
 * the data's shape at the gathered positions. From opset 16 with `ScatterElements(reduction="add")`
 * (repeated indices accumulate); before, plain `ScatterElements`, exact only when the indices
 * have size 1 along the axis (each output element then reads a distinct data element, as in
 * the cross-entropy's `GatherElements(logp, target[..., None], axis=-1)`).
 *
 * @module
 */
import { nonNegativeAxis } from "./axis.js";
import type { GradContext } from "../rule.js";

function gatherElements(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e } = ctx;
  const data = ctx.input(0);
  const indices = ctx.input(1);
  const axis = nonNegativeAxis(ctx, data);
  const zeros = e.zerosLike(data);
  if (e.opset >= 16) return [e.op("ScatterElements", [zeros, indices, ctx.dy()], { axis, reduction: "add" })];
  const along = ctx.facts.dims(indices)?.[axis];
  if (along !== 1) {
    ctx.fail(`before opset 16 (no ScatterElements reduction) the indices must have size 1 along axis ${axis}; they have ${along ?? "an unknown size"}`);
  }
  return [e.op("ScatterElements", [zeros, indices, ctx.dy()], { axis })];
}

/** Gradient rules of element gathers, by op type. */
export const gatherElementsRules = { GatherElements: gatherElements };
