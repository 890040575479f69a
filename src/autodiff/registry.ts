/**
 * The gradient rules, one per ONNX op type (ai.onnx domain), and the ops through which no
 * gradient flows.
 *
 * @module
 */
import { elementwiseRules, NON_DIFFERENTIABLE } from "./ops/elementwise.js";
import { gatherRules } from "./ops/gather.js";
import { gatherElementsRules } from "./ops/gather-elements.js";
import { matmulRules } from "./ops/matmul.js";
import { nnRules } from "./ops/nn.js";
import { reduceRules } from "./ops/reduce.js";
import { shapeRules } from "./ops/shape.js";
import type { GradRule } from "./rule.js";

export { NON_DIFFERENTIABLE };

const RULES = new Map<string, GradRule>(
  Object.entries<GradRule>({ ...elementwiseRules, ...matmulRules, ...reduceRules, ...shapeRules, ...gatherRules, ...gatherElementsRules, ...nnRules }),
);

/** The gradient rule of an op type, if there is one. */
export function gradientRule(opType: string): GradRule | undefined {
  return RULES.get(opType);
}

/**
 * Installs (or with `undefined`, removes) the gradient rule of an op type, e.g. for an op the
 * library does not cover. Returns the rule it replaced, so that it can be put back.
 *
 * @example
 * ```ts
 * // Softsign(x) = x / (1 + |x|): d/dx = 1 / (1 + |x|)^2
 * registerGradient("Softsign", ({ e, input, dy }) => {
 *   const x = input(0);
 *   const d = e.add(e.scalar(1, e.typeOf(x)), e.op("Abs", [x]));
 *   return [e.div(dy(), e.mul(d, d))];
 * });
 * ```
 */
export function registerGradient(opType: string, rule: GradRule | undefined): GradRule | undefined {
  const previous = RULES.get(opType);
  if (rule) RULES.set(opType, rule);
  else RULES.delete(opType);
  return previous;
}

/** The op types with a gradient rule, sorted. */
export function supportedGradientOps(): string[] {
  return [...RULES.keys()].sort();
}
