/**
 * Gradient rules of MatMul (numpy semantics: 1-D operands, batched and broadcast batches) and
 * Gemm (alpha, beta, transA, transB, broadcast bias).
 *
 * @module
 */
import { attr, type AttrInput } from "../../onnx/builder.js";
import { floatAttr, intAttr } from "../attributes.js";
import type { Emitter } from "../emitter.js";
import type { GradContext } from "../rule.js";

/** Swaps the last two axes of a value of rank `r`. */
function swapLast(e: Emitter, x: string, r: number): string {
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return e.transpose(x, perm);
}

function matmul(ctx: GradContext): (string | undefined)[] {
  const { e, facts } = ctx;
  const a = ctx.input(0);
  const b = ctx.input(1);
  const ra = facts.rank(a);
  const rb = facts.rank(b);
  if (ra === undefined || rb === undefined) ctx.fail(`the rank of ${ra === undefined ? a : b} is not known statically`);
  const dy = ctx.dy();
  const mm = (x: string, y: string) => e.op("MatMul", [x, y]);
  let da: (() => string) | undefined;
  let db: (() => string) | undefined;
  if (ra === 1 && rb === 1) {
    // y = a . b (a scalar)
    da = () => e.mul(dy, b);
    db = () => e.mul(dy, a);
  } else if (ra === 1) {
    // a [k], b [..., k, n], dy [..., n]
    const dyRow = () => e.unsqueeze(dy, [-2]);
    da = () => e.sumToShapeOf(mm(dyRow(), swapLast(e, b, rb)), a);
    db = () => e.sumToShapeOf(mm(e.unsqueeze(a, [-1]), dyRow()), b);
  } else if (rb === 1) {
    // a [..., m, k], b [k], dy [..., m]
    da = () => e.sumToShapeOf(mm(e.unsqueeze(dy, [-1]), e.unsqueeze(b, [0])), a);
    db = () => e.sumToShapeOf(mm(e.unsqueeze(dy, [-2]), a), b);
  } else {
    da = () => e.sumToShapeOf(mm(dy, swapLast(e, b, rb)), a);
    db = () => e.sumToShapeOf(mm(swapLast(e, a, ra), dy), b);
    const k = facts.dims(a)?.[ra - 1];
    const n = facts.dims(dy)?.[ra - 1];
    if (rb === 2 && ra > 2 && typeof k === "number" && typeof n === "number") {
      // A matrix shared by every batch row (a weight): fold the batch axes into the contraction,
      // dB = A[-1, k]^T dY[-1, n], instead of a [batch..., k, n] product summed afterwards.
      db = () => e.op("Gemm", [e.reshape(a, e.ints([-1, k])), e.reshape(dy, e.ints([-1, n]))], { transA: 1 });
    }
  }
  return [ctx.needs(0) ? da() : undefined, ctx.needs(1) ? db() : undefined];
}

function gemm(ctx: GradContext): (string | undefined)[] {
  const { e, node } = ctx;
  const a = ctx.input(0);
  const b = ctx.input(1);
  const c = ctx.input(2);
  const alpha = floatAttr(node, "alpha", 1);
  const beta = floatAttr(node, "beta", 1);
  const tA = intAttr(node, "transA", 0) !== 0;
  const tB = intAttr(node, "transB", 0) !== 0;
  const dy = ctx.dy();
  const g = (x: string, y: string, transA: boolean, transB: boolean) => {
    const attrs: Record<string, AttrInput> = {};
    if (alpha !== 1) attrs.alpha = attr.float(alpha);
    if (transA) attrs.transA = 1;
    if (transB) attrs.transB = 1;
    return e.op("Gemm", [x, y], attrs);
  };
  // With A' = op(A), B' = op(B): dA' = alpha dY B'^T, dB' = alpha A'^T dY; transpose back where op transposed.
  const da = () => (tA ? (tB ? g(b, dy, true, true) : g(b, dy, false, true)) : tB ? g(dy, b, false, false) : g(dy, b, false, true));
  const db = () => (tB ? (tA ? g(dy, a, true, true) : g(dy, a, true, false)) : tA ? g(a, dy, false, false) : g(a, dy, true, false));
  const dc = () => e.sumToShapeOf(e.scale(dy, beta), c);
  return [ctx.needs(0) ? da() : undefined, ctx.needs(1) ? db() : undefined, c && ctx.needs(2) ? dc() : undefined];
}

/** Gradient rules of matrix products, by op type. */
export const matmulRules = { MatMul: matmul, Gemm: gemm };
