/**
 * Axis attributes of the nodes gradient rules differentiate.
 *
 * @module
 */
import { intAttr } from "../attributes.js";
import type { GradContext } from "../rule.js";

/**
 * The node's `axis` attribute (default 0) as a non-negative axis of `value`: a negative axis
 * needs `value`'s rank, and fails the rule when it is not known statically.
 */
export function nonNegativeAxis(ctx: GradContext, value: string): number {
  const axis = intAttr(ctx.node, "axis", 0);
  if (axis >= 0) return axis;
  const r = ctx.facts.rank(value);
  if (r === undefined) ctx.fail(`axis ${axis} needs the rank of ${value}, which is not known statically`);
  return axis + r;
}
