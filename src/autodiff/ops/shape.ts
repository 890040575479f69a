/**
 * Gradient rules of ops that move elements without arithmetic: Reshape, Flatten, Squeeze,
 * Unsqueeze, Transpose, Expand, Concat, Split and Slice.
 *
 * @module
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { intAttr, intsAttr } from "../attributes.js";
import type { Emitter } from "../emitter.js";
import { sliceRange } from "../infer.js";
import type { GradContext, GradRule } from "../rule.js";

/** dx = dy reshaped to x's shape (ops that only change the shape). */
const reshapeBack: GradRule = (ctx) => (ctx.needs(0) ? [ctx.e.reshape(ctx.dy(), ctx.e.shape(ctx.input(0)))] : []);

function transpose(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const perm = intsAttr(ctx.node, "perm");
  // No perm reverses the axes, which is its own inverse.
  if (!perm) return [ctx.e.op("Transpose", [ctx.dy()])];
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return [ctx.e.transpose(ctx.dy(), inverse)];
}

/** Sizes along `axis` of each value, as one int64 vector (constant when known). */
function sizesAlong(e: Emitter, values: readonly string[], axis: number): string {
  const known = values.map((v) => {
    const d = e.facts.dims(v);
    if (!d) return null;
    return d[axis < 0 ? axis + d.length : axis] ?? null;
  });
  if (known.every((d) => typeof d === "number")) return e.ints(known as number[]);
  const parts = values.map((v) => e.op("Gather", [e.shape(v), e.ints([axis])], { axis: 0 }));
  return parts.length === 1 ? parts[0]! : e.op("Concat", parts, { axis: 0 });
}

function concat(ctx: GradContext): (string | undefined)[] {
  const { e } = ctx;
  const axis = intAttr(ctx.node, "axis", 0);
  const inputs = ctx.node.input;
  const pieces = e.node("Split", [ctx.dy(), sizesAlong(e, inputs, axis)], { axis }, inputs.length);
  return pieces.map((p, i) => (ctx.needs(i) ? p : undefined));
}

function split(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const axis = intAttr(ctx.node, "axis", 0);
  const parts = ctx.node.output.map((_, i) => ctx.dy(i));
  return [parts.length === 1 ? parts[0]! : ctx.e.op("Concat", parts, { axis })];
}

/**
 * Slice (steps of 1): the gradient is dy padded with zeros back to x's shape, with pads
 * computed from the clamped starts and ends (statically when the sizes are known).
 */
function slice(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e, facts } = ctx;
  const x = ctx.input(0);
  const starts = ctx.input(1);
  const ends = ctx.input(2);
  const dims = facts.dims(x);
  if (!dims) ctx.fail(`the rank of ${x} is not known statically`);
  const r = dims.length;
  let axes: number[];
  if (ctx.input(3)) {
    const a = facts.numbers(ctx.input(3));
    if (!a) ctx.fail("its axes are not constant");
    axes = a.map((v) => (v < 0 ? v + r : v));
  } else {
    const n = facts.dims(starts)?.[0];
    if (typeof n !== "number") ctx.fail("the length of its starts is not known statically");
    axes = Array.from({ length: n }, (_, i) => i);
  }
  if (ctx.input(4)) {
    const steps = facts.numbers(ctx.input(4));
    if (!steps || steps.some((s) => s !== 1)) ctx.fail("only steps of 1 are supported");
  }
  const dy = ctx.dy();
  const sv = facts.numbers(starts);
  const ev = facts.numbers(ends);
  if (sv && ev && axes.every((a) => typeof dims[a] === "number")) {
    const before = new Array<number>(r).fill(0);
    const after = new Array<number>(r).fill(0);
    axes.forEach((a, i) => {
      const d = dims[a] as number;
      const { s, e: end } = sliceRange(sv[i]!, ev[i]!, 1, d);
      before[a] = s;
      after[a] = d - Math.max(s, end);
    });
    if ([...before, ...after].every((p) => p === 0)) return [dy];
    return [e.op("Pad", [dy, e.ints([...before, ...after])])];
  }
  // Dynamic: clamp like Slice does, in the graph.
  const size = e.op("Gather", [e.shape(x), e.ints(axes)], { axis: 0 });
  const zero = e.ints([0], []);
  const clamp = (v: string) => {
    const i = e.cast(v, DT.INT64);
    const wrapped = e.op("Where", [e.op("Less", [i, zero]), e.add(i, size), i]);
    return e.op("Max", [e.op("Min", [wrapped, size]), zero]);
  };
  const s = clamp(starts);
  const end = e.op("Max", [clamp(ends), s]);
  const at = e.ints(axes);
  const zeros = e.ints(new Array<number>(r).fill(0));
  const before = e.op("ScatterElements", [zeros, at, s], { axis: 0 });
  const after = e.op("ScatterElements", [zeros, at, e.sub(size, end)], { axis: 0 });
  return [e.op("Pad", [dy, e.op("Concat", [before, after], { axis: 0 })])];
}

/** Gradient rules of shape-moving ops, by op type. */
export const shapeRules: Record<string, GradRule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Expand: (ctx) => (ctx.needs(0) ? [ctx.e.sumToShapeOf(ctx.dy(), ctx.input(0))] : []),
  Concat: concat,
  Split: split,
  Slice: slice,
};
