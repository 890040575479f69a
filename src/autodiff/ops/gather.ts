/**
 * Gradient rules of Gather and GatherND (data input): the gradient rows are added into zeros of
 * the data's shape at the gathered indices, repeated indices accumulating. From opset 16 this is
 * `ScatterND` with `reduction="add"`; before, a one-hot matrix product (exact, but it costs
 * O(indices x rows x row size) multiply-adds, fine for short prompts).
 *
 * @module
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { intAttr } from "../attributes.js";
import { nonNegativeAxis } from "./axis.js";
import type { Emitter } from "../emitter.js";
import type { GradContext } from "../rule.js";

/** Indices as int64 with negative entries wrapped by `size` (broadcast against the last axis). */
function wrapIndices(e: Emitter, indices: string, size: string): string {
  const i = e.cast(indices, DT.INT64);
  return e.op("Where", [e.op("Less", [i, e.ints([0], [])]), e.add(i, size), i]);
}

/**
 * `out[p, n, q] = sum_k [index[(p,) k] == n] * grad[p, k, q]` for `grad` [P, K, Q], `index` [K]
 * (shared by all p) or [P, K] (`perBatch`), `rows` = N as a scalar. Returns [P, N, Q].
 */
function oneHotScatterAdd(e: Emitter, grad: string, index: string, rows: string, perBatch: boolean): string {
  const range = e.op("Range", [e.ints([0], []), rows, e.ints([1], [])]);
  const hot = e.cast(e.op("Equal", [e.unsqueeze(index, [-1]), range]), e.typeOf(grad)); // [(P,) K, N]
  return e.op("MatMul", [e.transpose(hot, perBatch ? [0, 2, 1] : [1, 0]), grad]);
}

function gather(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e } = ctx;
  const data = ctx.input(0);
  const dy = ctx.dy();
  const axis = nonNegativeAxis(ctx, data);
  const shape = e.shape(data);
  const rows = e.op("Gather", [shape, e.ints([axis], [])], { axis: 0 }); // a scalar
  const index = wrapIndices(e, ctx.input(1), rows);
  if (e.opset >= 16 && axis === 0) {
    return [e.op("ScatterND", [e.zerosLike(data), e.unsqueeze(index, [-1]), dy], { reduction: "add" })];
  }
  const outer = axis === 0 ? e.ints([1]) : e.prod(e.sliceVec(shape, 0, axis));
  const inner = e.prod(e.sliceVec(shape, axis + 1));
  const count = e.reshape(e.op("Size", [index]), e.ints([1]));
  const grad = e.reshape(dy, e.op("Concat", [outer, count, inner], { axis: 0 }));
  const flat = e.reshape(index, e.ints([-1]));
  return [e.reshape(oneHotScatterAdd(e, grad, flat, rows, false), shape)];
}

function gatherND(ctx: GradContext): (string | undefined)[] {
  if (!ctx.needs(0)) return [];
  const { e } = ctx;
  const data = ctx.input(0);
  const dy = ctx.dy();
  const b = intAttr(ctx.node, "batch_dims", 0);
  if (b > 1) ctx.fail(`batch_dims ${b} is not supported (0 and 1 are)`);
  const indicesDims = ctx.facts.dims(ctx.input(1));
  const k = indicesDims?.[indicesDims.length - 1];
  if (!indicesDims || typeof k !== "number") ctx.fail("the last dim of its indices is not known statically");
  const shape = e.shape(data);
  const indexed = e.sliceVec(shape, b, b + k); // sizes of the k indexed axes
  const index = wrapIndices(e, ctx.input(1), indexed);
  if (e.opset >= 16) {
    let full = index;
    if (b === 1) {
      // Prepend each row's batch number as a first coordinate.
      const r = indicesDims.length;
      const ishape = e.shape(index);
      const batch = e.op("Range", [e.ints([0], []), e.squeeze(e.sliceVec(ishape, 0, 1), [0]), e.ints([1], [])]);
      const column = e.reshape(batch, e.ints([-1, ...new Array<number>(r - 1).fill(1)]));
      const target = e.op("Concat", [e.sliceVec(ishape, 0, r - 1), e.ints([1])], { axis: 0 });
      full = e.op("Concat", [e.op("Expand", [column, target]), index], { axis: -1 });
    }
    return [e.op("ScatterND", [e.zerosLike(data), full, dy], { reduction: "add" })];
  }
  // Before opset 16: linearize the k coordinates and scatter with a one-hot product.
  const strides = Array.from({ length: k }, (_, j) => (j === k - 1 ? e.ints([1]) : e.prod(e.sliceVec(indexed, j + 1))));
  const strideVec = strides.length === 1 ? strides[0]! : e.op("Concat", strides, { axis: 0 });
  const linear = e.reduceSum(e.mul(index, strideVec), [-1], false);
  const rows = e.squeeze(e.prod(indexed), [0]);
  const inner = e.prod(e.sliceVec(shape, b + k));
  let out: string;
  if (b === 0) {
    const count = e.reshape(e.op("Size", [linear]), e.ints([1]));
    const grad = e.reshape(dy, e.op("Concat", [e.ints([1]), count, inner], { axis: 0 }));
    out = oneHotScatterAdd(e, grad, e.reshape(linear, e.ints([-1])), rows, false);
  } else {
    const batch = e.sliceVec(shape, 0, 1);
    const grad = e.reshape(dy, e.op("Concat", [batch, e.ints([-1]), inner], { axis: 0 }));
    out = oneHotScatterAdd(e, grad, e.reshape(linear, e.op("Concat", [batch, e.ints([-1])], { axis: 0 })), rows, true);
  }
  return [e.reshape(out, shape)];
}

/** Gradient rules of gathers, by op type. */
export const gatherRules = { Gather: gather, GatherND: gatherND };
