/**
 * Gradient rules of elementwise ops: arithmetic with broadcasting (gradients summed back to
 * each input's shape), unary math and activations, Where, Cast, Identity, Dropout.
 *
 * @module
 */
import { constantNumbers, floatAttr } from "../attributes.js";
import { FLOAT_TYPES } from "../infer.js";
import type { GradContext, GradRule } from "../rule.js";

/** Only the inputs that need a gradient get one. */
function pick(ctx: GradContext, grads: readonly (() => string)[]): (string | undefined)[] {
  return grads.map((f, i) => (ctx.needs(i) ? f() : undefined));
}

/** A rule for a one-input op whose gradient is `f(dy)`. */
function unary(f: (ctx: GradContext, dy: string) => string): GradRule {
  return (ctx) => pick(ctx, [() => f(ctx, ctx.dy())]);
}

const one = (ctx: GradContext, like: string) => ctx.e.scalar(1, ctx.e.typeOf(like));
const zero = (ctx: GradContext, like: string) => ctx.e.scalar(0, ctx.e.typeOf(like));

function pow(ctx: GradContext): (string | undefined)[] {
  const { e } = ctx;
  const x = ctx.input(0);
  const p = ctx.input(1);
  const y = ctx.output(0);
  const dy = ctx.dy();
  const dx = () => {
    const fixed = constantNumbers(e.g, p);
    let local: string;
    if (fixed && fixed.length === 1) {
      const k = fixed[0]!;
      if (k === 0) return e.mul(dy, zero(ctx, x));
      if (k === 1) local = one(ctx, x);
      else if (k === 2) local = e.scale(x, 2);
      else local = e.scale(e.op("Pow", [x, e.scalar(k - 1, e.typeOf(x))]), k);
    } else {
      const pf = e.cast(p, e.typeOf(x));
      local = e.mul(pf, e.op("Pow", [x, e.sub(pf, one(ctx, x))]));
    }
    return e.sumToShapeOf(e.mul(dy, local), x);
  };
  // d x^p / dp = x^p log x
  const dp = () => e.sumToShapeOf(e.mul(dy, e.mul(y, e.op("Log", [x]))), p);
  return pick(ctx, [dx, dp]);
}

function dropout(ctx: GradContext): (string | undefined)[] {
  const training = ctx.input(2);
  if (training) {
    const t = constantNumbers(ctx.e.g, training);
    if (!t || t.some((v) => v !== 0)) ctx.fail("only inference-mode Dropout (training_mode absent or false) is supported");
  }
  return pick(ctx, [() => ctx.dy()]);
}

function where(ctx: GradContext): (string | undefined)[] {
  const { e } = ctx;
  const c = ctx.input(0);
  const dy = ctx.dy();
  const z = () => zero(ctx, dy);
  return [undefined, ctx.needs(1) ? e.sumToShapeOf(e.op("Where", [c, dy, z()]), ctx.input(1)) : undefined, ctx.needs(2) ? e.sumToShapeOf(e.op("Where", [c, z(), dy]), ctx.input(2)) : undefined];
}

function cast(ctx: GradContext): (string | undefined)[] {
  const to = ctx.facts.elemType(ctx.input(0));
  if (to === undefined || !FLOAT_TYPES.has(to)) return [];
  return pick(ctx, [() => ctx.e.cast(ctx.dy(), to)]);
}

function clip(ctx: GradContext): (string | undefined)[] {
  if (ctx.needs(1) || ctx.needs(2)) ctx.fail("gradients of Clip's min and max are not supported");
  const { e } = ctx;
  const x = ctx.input(0);
  let keep: string | undefined;
  const lo = ctx.input(1);
  const hi = ctx.input(2);
  if (lo) keep = e.op("GreaterOrEqual", [x, lo]);
  if (hi) {
    const below = e.op("LessOrEqual", [x, hi]);
    keep = keep ? e.op("And", [keep, below]) : below;
  }
  if (!keep) return [ctx.dy()];
  return [e.op("Where", [keep, ctx.dy(), zero(ctx, x)])];
}

function variadicSum(ctx: GradContext): (string | undefined)[] {
  return ctx.node.input.map((x, i) => (ctx.needs(i) ? ctx.e.sumToShapeOf(ctx.dy(), x) : undefined));
}

/** Gradient rules of elementwise ops, by op type. */
export const elementwiseRules: Record<string, GradRule> = {
  Add: (ctx) => pick(ctx, [() => ctx.e.sumToShapeOf(ctx.dy(), ctx.input(0)), () => ctx.e.sumToShapeOf(ctx.dy(), ctx.input(1))]),
  Sub: (ctx) => pick(ctx, [() => ctx.e.sumToShapeOf(ctx.dy(), ctx.input(0)), () => ctx.e.neg(ctx.e.sumToShapeOf(ctx.dy(), ctx.input(1)))]),
  Mul: (ctx) => {
    const { e } = ctx;
    const [a, b] = [ctx.input(0), ctx.input(1)];
    return pick(ctx, [() => e.sumToShapeOf(e.mul(ctx.dy(), b), a), () => e.sumToShapeOf(e.mul(ctx.dy(), a), b)]);
  },
  Div: (ctx) => {
    const { e } = ctx;
    const [a, b] = [ctx.input(0), ctx.input(1)];
    // d(a/b)/db = -(a/b)/b = -y/b
    return pick(ctx, [() => e.sumToShapeOf(e.div(ctx.dy(), b), a), () => e.neg(e.sumToShapeOf(e.div(e.mul(ctx.dy(), ctx.output(0)), b), b))]);
  },
  Sum: variadicSum,
  Pow: pow,
  Neg: unary((ctx, dy) => ctx.e.neg(dy)),
  Identity: unary((_ctx, dy) => dy),
  Sqrt: unary((ctx, dy) => ctx.e.div(ctx.e.scale(dy, 0.5), ctx.output(0))),
  Exp: unary((ctx, dy) => ctx.e.mul(dy, ctx.output(0))),
  Log: unary((ctx, dy) => ctx.e.div(dy, ctx.input(0))),
  Reciprocal: unary((ctx, dy) => {
    const y = ctx.output(0);
    return ctx.e.neg(ctx.e.mul(dy, ctx.e.mul(y, y)));
  }),
  Abs: unary((ctx, dy) => ctx.e.mul(dy, ctx.e.op("Sign", [ctx.input(0)]))),
  Tanh: unary((ctx, dy) => {
    const y = ctx.output(0);
    return ctx.e.mul(dy, ctx.e.sub(one(ctx, y), ctx.e.mul(y, y)));
  }),
  Sigmoid: unary((ctx, dy) => {
    const y = ctx.output(0);
    return ctx.e.mul(dy, ctx.e.mul(y, ctx.e.sub(one(ctx, y), y)));
  }),
  Erf: unary((ctx, dy) => {
    const { e } = ctx;
    const x = ctx.input(0);
    // d erf(x) = 2/sqrt(pi) exp(-x^2)
    return e.mul(dy, e.scale(e.op("Exp", [e.neg(e.mul(x, x))]), 2 / Math.sqrt(Math.PI)));
  }),
  Relu: unary((ctx, dy) => {
    const x = ctx.input(0);
    return ctx.e.op("Where", [ctx.e.op("Greater", [x, zero(ctx, x)]), dy, zero(ctx, x)]);
  }),
  LeakyRelu: unary((ctx, dy) => {
    const x = ctx.input(0);
    return ctx.e.op("Where", [ctx.e.op("Greater", [x, zero(ctx, x)]), dy, ctx.e.scale(dy, floatAttr(ctx.node, "alpha", 0.01))]);
  }),
  Clip: clip,
  Where: where,
  Cast: cast,
  Dropout: dropout,
};

/** Ops whose outputs are piecewise constant or not differentiable: no gradient flows through them. */
export const NON_DIFFERENTIABLE: ReadonlySet<string> = new Set([
  "Shape", "Size", "ConstantOfShape", "Range", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "NonZero", "ArgMax", "ArgMin",
  "Floor", "Ceil", "Round", "Sign", "IsNaN", "IsInf", "Not", "And", "Or", "Xor", "EyeLike", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
]);
