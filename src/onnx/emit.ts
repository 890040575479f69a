/**
 * The one way tdb-js writes nodes into an existing graph: a {@link GraphEmitter} appends (or
 * inserts) nodes under a name scope, caches constants, and spells the ops whose form depends on
 * the opset (reduction axes and `Squeeze`/`Unsqueeze` axes: an attribute in older opsets, an
 * input in newer ones) for the graph's opset. Hook side chains, patched graphs, attribution
 * columns and the backward pass all emit through it.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, TensorProto_DataType as DT, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { makeAttribute, type AttrInput } from "./builder.js";
import type { OnnxGraph } from "./graph.js";
import { tensorToProto, type AnyTypedArray, type ElemType } from "./tensor.js";

/** Largest int64, an open-ended Slice end. */
export const INT64_MAX = 9223372036854775807n;

/** Reductions and the first opset in which each takes its axes as an input instead of an attribute. */
export const AXES_INPUT_SINCE: Readonly<Record<string, number>> = Object.freeze({
  ReduceSum: 13,
  Squeeze: 13,
  Unsqueeze: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
  ReduceL1: 18,
  ReduceL2: 18,
  ReduceLogSum: 18,
  ReduceLogSumExp: 18,
  ReduceSumSquare: 18,
});

/** Whether `opType` takes its axes as an input (true) or an attribute (false) at `opset`. */
export function axesAsInput(opType: string, opset: number): boolean {
  const since = AXES_INPUT_SINCE[opType];
  if (since === undefined) throw new TdbError("E_BAD_INPUT", `${opType} takes no axes`, { value: opType, allowed: Object.keys(AXES_INPUT_SINCE) });
  return opset >= since;
}

const FLOAT_TYPES: Record<number, ElemType> = { [DT.FLOAT]: "float32", [DT.DOUBLE]: "float64" };

/**
 * Where emitted nodes go: appended (default), inserted before a node of the graph, or after one
 * (each emitted node then becomes the anchor, so a sequence stays in order).
 */
export interface EmitPlacement {
  before?: NodeProto;
  after?: NodeProto;
}

/**
 * Appends nodes to a graph under a name scope. Node names are `${scope}/${base}` (made unique);
 * output names `${name}_output_k`.
 *
 * @example
 * ```ts
 * const e = new GraphEmitter(g, "/tdb/h.0/scale");
 * const m = e.reduce("ReduceMean", x, [2], true); // attribute or input, per the graph's opset
 * const s = e.op("Sqrt", [e.op("Add", [m, e.scalar(1e-5, DT.FLOAT)])]);
 * ```
 */
export class GraphEmitter {
  /** The graph's ai.onnx opset. */
  readonly opset: number;
  /** Name scope of the next nodes. */
  scope: string;
  /** Where the next nodes go. */
  placement: EmitPlacement = {};
  private readonly counters = new Map<string, number>();
  private readonly constants = new Map<string, string>();

  /** An emitter appending to `g`, naming nodes under `prefix`. */
  constructor(
    readonly g: OnnxGraph,
    readonly prefix: string,
  ) {
    this.opset = g.opsetVersion();
    this.scope = prefix;
  }

  /** Called for every node emitted (subclasses keep derived facts up to date). */
  protected emitted(node: NodeProto): void {
    void node;
  }

  /**
   * Appends a node and returns its output names: `outputs` fresh ones, or the names given.
   * `base` names the node (default: the op type, numbered when repeated).
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput> = {}, outputs: number | readonly string[] = 1, base?: string): string[] {
    let name: string;
    if (base !== undefined) name = this.g.uniqueName(`${this.scope}/${base}`);
    else {
      const key = `${this.scope}/${opType}`;
      const k = this.counters.get(key) ?? 0;
      this.counters.set(key, k + 1);
      name = this.g.uniqueName(k === 0 ? key : `${key}_${k}`);
    }
    const output = typeof outputs === "number" ? Array.from({ length: outputs }, (_, i) => this.g.uniqueName(`${name}_output_${i}`)) : [...outputs];
    const attribute = Object.entries(attrs).map(([a, v]) => makeAttribute(a, v));
    const node = create(NodeProtoSchema, { name, opType, input: [...inputs], output, attribute, domain: "" });
    const { before, after } = this.placement;
    this.g.addNode(node, before ? { before } : after ? { after } : {});
    if (after) this.placement = { after: node };
    this.emitted(node);
    return output;
  }

  /** Appends a single-output node and returns its output name. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput> = {}, base?: string): string {
    return this.node(opType, inputs, attrs, 1, base)[0]!;
  }

  /** A `Constant` node holding `data`, emitted once per distinct key. */
  protected constant(key: string, data: AnyTypedArray, dims: readonly number[], type: ElemType): string {
    const hit = this.constants.get(key);
    if (hit) return hit;
    const scope = this.scope;
    this.scope = `${this.prefix}/const`;
    const out = this.op("Constant", [], { value: tensorToProto("", data, dims, type) });
    this.scope = scope;
    this.constants.set(key, out);
    return out;
  }

  /** An int64 constant (a 1-D vector unless `dims` says otherwise, e.g. `[]` for a scalar). */
  ints(values: readonly (number | bigint)[], dims: readonly number[] = [values.length]): string {
    return this.constant(`i64:${dims.join("x")}:${values.join(",")}`, new BigInt64Array(values.map((v) => BigInt(v))), dims, "int64");
  }

  /** A rank-0 float constant of ONNX element type `elemType` (float or double). */
  scalar(value: number, elemType: number): string {
    const type = FLOAT_TYPES[elemType];
    if (!type) {
      throw new TdbError("E_UNSUPPORTED_GRAPH", `float constants of ONNX type ${elemType} are not supported (float32 and float64 are)`, {
        value: elemType,
        allowed: ["float32", "float64"],
      });
    }
    return this.constant(`${type}:${value}`, type === "float32" ? new Float32Array([value]) : new Float64Array([value]), [], type);
  }

  /** A float32 constant tensor (not cached: weights, norms). */
  floats(data: Float32Array, dims: readonly number[]): string {
    const scope = this.scope;
    this.scope = `${this.prefix}/const`;
    const out = this.op("Constant", [], { value: tensorToProto("", data, dims, "float32") });
    this.scope = scope;
    return out;
  }

  /**
   * `opType(x)` reducing over `axes` (numbers, or an int64 tensor where the opset takes an input):
   * axes as an attribute or an input, as the graph's opset wants.
   */
  reduce(opType: string, x: string, axes: readonly number[] | string, keepdims: boolean, extra: Record<string, AttrInput> = {}, base?: string): string {
    const attrs: Record<string, AttrInput> = { ...extra, keepdims: keepdims ? 1 : 0 };
    if (axesAsInput(opType, this.opset)) return this.op(opType, [x, typeof axes === "string" ? axes : this.ints(axes)], attrs, base);
    if (typeof axes === "string") {
      throw new TdbError("E_UNSUPPORTED_GRAPH", `${opType} takes constant axes before opset ${AXES_INPUT_SINCE[opType]} (this graph: ${this.opset})`, { value: this.opset });
    }
    return this.op(opType, [x], { ...attrs, axes: [...axes] }, base);
  }

  /** `Unsqueeze(x, axes)` in the graph's opset (axes: numbers, or an int64 tensor from opset 13). */
  unsqueeze(x: string, axes: readonly number[] | string, base?: string): string {
    return this.axesOp("Unsqueeze", x, axes, base);
  }

  /** `Squeeze(x, axes)` in the graph's opset. */
  squeeze(x: string, axes: readonly number[] | string, base?: string): string {
    return this.axesOp("Squeeze", x, axes, base);
  }

  private axesOp(opType: "Squeeze" | "Unsqueeze", x: string, axes: readonly number[] | string, base?: string): string {
    if (axesAsInput(opType, this.opset)) return this.op(opType, [x, typeof axes === "string" ? axes : this.ints(axes)], {}, base);
    if (typeof axes === "string") throw new TdbError("E_UNSUPPORTED_GRAPH", `${opType} takes constant axes before opset 13 (this graph: ${this.opset})`, { value: this.opset });
    return this.op(opType, [x], { axes: [...axes] }, base);
  }
}
