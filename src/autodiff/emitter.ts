/**
 * The node-writing half of the backward pass: an {@link Emitter} is the ONNX layer's
 * {@link GraphEmitter} (naming, constants, opset-dependent spellings) that also keeps the static
 * facts of what it writes up to date, caches shapes, and knows the arithmetic gradients need
 * (broadcast reduction, fills, casts).
 *
 * @module
 */
import { TensorProto_DataType as DT, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { GraphEmitter, INT64_MAX } from "../onnx/emit.js";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorToProto, type AnyTypedArray, type ElemType } from "../onnx/tensor.js";
import type { ValueFactsTable } from "./infer.js";


const TYPE_NAME: Record<number, string> = { [DT.FLOAT]: "float32", [DT.DOUBLE]: "float64", [DT.FLOAT16]: "float16", [DT.BFLOAT16]: "bfloat16" };

/** A rank-0/1 typed array holding `values` in the ONNX float type `elemType`. */
function floatData(values: readonly number[], elemType: number): { data: AnyTypedArray; type: ElemType } {
  if (elemType === DT.FLOAT) return { data: new Float32Array(values), type: "float32" };
  if (elemType === DT.DOUBLE) return { data: new Float64Array(values), type: "float64" };
  throw new TdbError("E_UNSUPPORTED_GRAPH", `gradients of ${TYPE_NAME[elemType] ?? `type ${elemType}`} values are not supported (float32 and float64 are)`, {
    value: TYPE_NAME[elemType] ?? elemType,
    allowed: ["float32", "float64"],
  });
}

/**
 * Appends nodes to a graph for one backward pass. Node names are `${scope}/${opType}_k`; set
 * {@link Emitter.scope} per forward node so that its gradient nodes are grouped under its name.
 *
 * @example
 * ```ts
 * const e = new Emitter(g, ValueFactsTable.infer(g), "/tdb/grad");
 * const dx = e.mul(dy, e.scalar(0.5, e.typeOf(dy)));
 * ```
 */
export class Emitter extends GraphEmitter {
  private readonly shapes = new Map<string, string>();

  /** An emitter appending to `g`, keeping `facts` up to date, naming nodes under `prefix`. */
  constructor(
    g: OnnxGraph,
    readonly facts: ValueFactsTable,
    prefix: string,
  ) {
    super(g, prefix);
  }

  /** Keeps the static facts of every emitted node up to date. */
  protected override emitted(node: NodeProto): void {
    this.facts.inferNode(node);
  }

  /** The element type of a value; throws `E_UNSUPPORTED_GRAPH` when it cannot be told. */
  typeOf(v: string): number {
    const t = this.facts.elemType(v);
    if (t === undefined) throw new TdbError("E_UNSUPPORTED_GRAPH", `cannot tell the element type of ${v}`, { value: v });
    return t;
  }

  /** `Shape(x)`, emitted once per value. */
  shape(x: string): string {
    let s = this.shapes.get(x);
    if (!s) {
      s = this.op("Shape", [x]);
      this.shapes.set(x, s);
    }
    return s;
  }

  /** `a + b`. */
  add(a: string, b: string): string {
    return this.op("Add", [a, b]);
  }

  /** `a - b`. */
  sub(a: string, b: string): string {
    return this.op("Sub", [a, b]);
  }

  /** `a * b`. */
  mul(a: string, b: string): string {
    return this.op("Mul", [a, b]);
  }

  /** `a / b`. */
  div(a: string, b: string): string {
    return this.op("Div", [a, b]);
  }

  /** `-a`. */
  neg(a: string): string {
    return this.op("Neg", [a]);
  }

  /** `x * c` for a number `c`, in x's element type (skipped for c = 1). */
  scale(x: string, c: number): string {
    return c === 1 ? x : this.mul(x, this.scalar(c, this.typeOf(x)));
  }

  /** `Cast(x, to)`, or x itself when it already has that type. */
  cast(x: string, to: number): string {
    return this.facts.elemType(x) === to ? x : this.op("Cast", [x], { to });
  }

  /** `Reshape(x, shape)`, with `allowzero` where the opset has it (the shape is exact). */
  reshape(x: string, shape: string): string {
    return this.op("Reshape", [x, shape], this.opset >= 14 ? { allowzero: 1 } : {});
  }

  /** `Transpose(x, perm)`. */
  transpose(x: string, perm: readonly number[]): string {
    return this.op("Transpose", [x], { perm: [...perm] });
  }

  /** `ReduceSum(x, axes)` (axes: numbers or an int64 tensor). */
  reduceSum(x: string, axes: readonly number[] | string, keepdims: boolean, noopWithEmptyAxes = false): string {
    return this.reduce("ReduceSum", x, axes, keepdims, { noop_with_empty_axes: noopWithEmptyAxes ? 1 : 0 });
  }

  /** `ReduceMean(x, axes)`: axes as an attribute before opset 18, as an input from 18. */
  reduceMean(x: string, axes: readonly number[], keepdims: boolean): string {
    return this.reduce("ReduceMean", x, axes, keepdims);
  }

  /** The product of all elements of a 1-D int64 tensor, as a `[1]` tensor (1 for an empty one). */
  prod(v: string): string {
    return this.op("ReduceProd", [this.op("Concat", [this.ints([1]), v], { axis: 0 })], { keepdims: 1 });
  }

  /** `shape[start:end]` of an int64 vector (`end` omitted: to the end). */
  sliceVec(v: string, start: number, end?: number): string {
    return this.op("Slice", [v, this.ints([start]), end === undefined ? this.ints([INT64_MAX]) : this.ints([end]), this.ints([0])]);
  }

  /** A tensor of the shape `shape` (an int64 vector) filled with `value` of element type `elemType`. */
  fill(shape: string, value: number, elemType: number): string {
    const { data, type } = floatData([value], elemType);
    return this.op("ConstantOfShape", [shape], { value: tensorToProto("", data, [1], type) });
  }

  /** Zeros of x's shape and element type. */
  zerosLike(x: string): string {
    return this.fill(this.shape(x), 0, this.typeOf(x));
  }

  /** Ones of x's shape and element type. */
  onesLike(x: string): string {
    return this.fill(this.shape(x), 1, this.typeOf(x));
  }

  /**
   * Sums a broadcast gradient back to the shape of `like` (the input it flows to): leading
   * axes `like` lacks and axes where `like` has size 1 are summed over. Decided statically
   * when the dims are known, else with shape arithmetic in the graph.
   */
  sumToShapeOf(grad: string, like: string): string {
    const gd = this.facts.dims(grad);
    const ld = this.facts.dims(like);
    if (gd && ld && ld.length <= gd.length) {
      const pad = gd.length - ld.length;
      const reduce: number[] = [];
      let unknown = false;
      gd.forEach((dout, i) => {
        if (i < pad) return reduce.push(i);
        const din = ld[i - pad] ?? null;
        if (din !== null && din === dout) return; // same size
        if (din === 1) {
          if (dout !== 1) reduce.push(i);
          return;
        }
        if (typeof din === "number") return; // a size other than 1 equals the gradient's
        unknown = true;
      });
      if (!unknown) {
        if (reduce.length === 0) return grad;
        const summed = this.reduceSum(grad, reduce, true);
        return pad > 0 ? this.squeeze(summed, Array.from({ length: pad }, (_, i) => i)) : summed;
      }
    }
    // Dynamic: pad Shape(like) with ones to the gradient's rank, sum where the sizes differ.
    const sg = this.shape(grad);
    const sl = this.shape(like);
    const sameRank = gd !== undefined && ld !== undefined && gd.length === ld.length;
    let padded = sl;
    if (!sameRank) {
      let ones: string;
      if (gd && ld) ones = this.ints(new Array<number>(gd.length - ld.length).fill(1));
      else {
        const padN = this.op("Sub", [this.op("Size", [sg]), this.op("Size", [sl])]);
        ones = this.op("ConstantOfShape", [this.unsqueeze(padN, [0])], { value: tensorToProto("", new BigInt64Array([1n]), [1], "int64") });
      }
      padded = this.op("Concat", [ones, sl], { axis: 0 });
    }
    const differ = this.op("Not", [this.op("Equal", [padded, sg])]);
    const axes = this.squeeze(this.op("NonZero", [differ]), [0]);
    const summed = this.reduceSum(grad, axes, true, true);
    // With equal ranks the kept dims already are like's.
    return sameRank ? summed : this.reshape(summed, sl);
  }
}
