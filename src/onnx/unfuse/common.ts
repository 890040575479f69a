/**
 * Shared pieces of the un-fusing passes: the emitter that writes a fused node's replacement in
 * front of it, typed constants (float32, float64, float16), attribute readers and the static
 * facts (element type, rank, dims) a rewrite needs about a value.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { AttrInput } from "../builder.js";
import { TensorProto_DataType as DT } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { axesAsInput, GraphEmitter } from "../emit.js";
import type { OnnxGraph } from "../graph.js";
import { floatToHalf } from "../half.js";
import { tensorToProto, type AnyTypedArray, type ElemType } from "../tensor.js";

/** The operator domain of onnxruntime's contrib ops. */
export const MS_DOMAIN = "com.microsoft";

/**
 * Thrown by a rewrite that cannot un-fuse a node (an unknown mask format, a missing static
 * size...); the pass reports it, or rethrows it as `E_UNSUPPORTED_GRAPH` when strict.
 */
export class UnfuseUnsupported extends Error {
  /** Why the node cannot be un-fused, e.g. "4-D (Megatron) mask_index". */
  readonly reason: string;

  /** A refusal with its reason. */
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

const FLOAT_ELEM: Record<number, ElemType> = { [DT.FLOAT]: "float32", [DT.DOUBLE]: "float64", [DT.FLOAT16]: "float16" };

/** The most negative finite value of a float element type (what a causal mask fills in). */
export function lowest(elemType: number): number {
  return elemType === DT.FLOAT16 ? -65504 : elemType === DT.DOUBLE ? -Number.MAX_VALUE : -3.4028234663852886e38;
}

/**
 * Writes a fused node's replacement: nodes named `<fused node name>/<op>[_k]`, appended to the
 * graph (the pass sorts the graph once at the end), with typed float constants.
 */
export class UnfuseEmitter extends GraphEmitter {
  private readonly cache = new Map<string, string>();
  /** Output names to treat as used although nothing reads them yet (outputs cast back afterwards). */
  readonly used = new Set<string>();

  /** An emitter appending to `g`, naming nodes under `prefix` (the fused node's name). */
  constructor(g: OnnxGraph, prefix: string) {
    super(g, prefix);
  }

  /** A `Constant` node named `<prefix>/Constant[_k]`, emitted once per distinct key. */
  protected override constant(key: string, data: AnyTypedArray, dims: readonly number[], type: ElemType): string {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const scope = this.scope;
    this.scope = this.prefix;
    const out = this.op("Constant", [], { value: tensorToProto("", data, dims, type) });
    this.scope = scope;
    this.cache.set(key, out);
    return out;
  }

  /** A rank-0 constant of float element type `elemType` (float, double or float16). */
  override scalar(value: number, elemType: number): string {
    const type = FLOAT_ELEM[elemType];
    if (!type) throw new UnfuseUnsupported(`element type ${elemType} (float32, float64 and float16 are supported)`);
    const data = type === "float32" ? new Float32Array([value]) : type === "float64" ? new Float64Array([value]) : new Uint16Array([floatToHalf(value)]);
    return this.constant(`${type}:${value}`, data, [], type);
  }

  /** An int32 constant (a 1-D vector unless `dims` says otherwise). */
  int32s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(`i32:${dims.join("x")}:${values.join(",")}`, new Int32Array(values), dims, "int32");
  }

  /** `opType(x)` reducing over constant `axes`, spelled for the opset, its output named `name` when given. */
  reduceTo(opType: string, x: string, axes: readonly number[], keepdims: boolean, name?: string): string {
    const outs = name ? [name] : 1;
    if (axesAsInput(opType, this.opset)) return this.node(opType, [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 }, outs)[0]!;
    return this.node(opType, [x], { keepdims: keepdims ? 1 : 0, axes: [...axes] }, outs)[0]!;
  }

  /** `Split(x, axis)` into parts of the given sizes, spelled for the graph's opset. */
  split(x: string, axis: number, sizes: readonly number[], outputs?: readonly string[]): string[] {
    const outs = outputs ?? sizes.length;
    if (this.opset >= 13) return this.node("Split", [x, this.ints(sizes)], { axis }, outs);
    return this.node("Split", [x], { axis, split: [...sizes] }, outs);
  }

  /** `Slice(x, starts, ends, axes)` (opset 10+: inputs). */
  slice(x: string, starts: string, ends: string, axes: readonly number[]): string {
    return this.op("Slice", [x, starts, ends, this.ints(axes)]);
  }

  /** Dimension `axis` of `x` at run time, as an int64 scalar. */
  dim(x: string, axis: number): string {
    return this.op("Gather", [this.op("Shape", [x]), this.ints([axis], [])], { axis: 0 });
  }
}

/** Writes one node as `opType(inputs)`, its output named `name` when given. */
export function put(e: UnfuseEmitter, opType: string, inputs: readonly string[], name: string | undefined, attrs: Record<string, AttrInput> = {}): string {
  return name ? e.node(opType, inputs, attrs, [name])[0]! : e.op(opType, inputs, attrs);
}

/** An attribute of a node, if present. */
export function attribute(node: NodeProto, name: string) {
  return node.attribute.find((a) => a.name === name);
}

/** An INT attribute as a number, or `fallback`. */
export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? Number(a.i) : fallback;
}

/** A FLOAT attribute, or `fallback`. */
export function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? a.f : fallback;
}

/** An INTS attribute as numbers, or undefined. */
export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = attribute(node, name);
  return a ? a.ints.map((v) => Number(v)) : undefined;
}

/** Input `i` of a node, or undefined when absent or empty (an omitted optional input). */
export function input(node: NodeProto, i: number): string | undefined {
  const v = node.input[i];
  return v ? v : undefined;
}

/** Output `i` of a node when it is used: read by a node, a graph output, or marked used on the emitter (else undefined). */
export function usedOutput(e: UnfuseEmitter, node: NodeProto, i: number): string | undefined {
  const v = node.output[i];
  if (!v) return undefined;
  if (e.used.has(v) || e.g.consumers(v).length > 0 || e.g.outputNames().includes(v)) return v;
  return undefined;
}

/** What is statically known about a value: element type, and dims when the rank is known. */
export interface ValueFacts {
  /** ONNX element type number, when known. */
  elemType?: number;
  /** Dims (a number when fixed, a string when symbolic, undefined when unknown), when the rank is known. */
  dims?: (number | string | undefined)[];
}

const SAME_SHAPE = new Set(["Cast", "Identity", "Neg", "Abs", "Relu", "Sigmoid", "Tanh", "Sqrt", "Exp", "Not", "Erf", "Softmax"]);

/**
 * Static facts about a value: from an initializer, a graph input/output or `value_info`, else
 * followed back through shape-preserving unary ops (a `Cast` keeps the rank, not the type).
 */
export function facts(g: OnnxGraph, name: string, depth = 0): ValueFacts {
  const init = g.initializer(name);
  if (init) return { elemType: init.dataType, dims: init.dims.map((d) => Number(d)) };
  const vi = g.valueInfo(name);
  const t = vi?.type?.value.case === "tensorType" ? vi.type.value.value : undefined;
  const out: ValueFacts = {};
  if (t) {
    if (t.elemType) out.elemType = t.elemType;
    if (t.shape) out.dims = t.shape.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : undefined));
  }
  if (out.dims !== undefined || depth > 8) return out;
  const p = g.producer(name);
  if (p && SAME_SHAPE.has(p.opType) && p.input[0]) {
    const up = facts(g, p.input[0], depth + 1);
    if (up.dims) out.dims = up.dims;
    if (out.elemType === undefined && p.opType !== "Cast" && up.elemType !== undefined) out.elemType = up.elemType;
    if (out.elemType === undefined && p.opType === "Cast") {
      const to = attribute(p, "to");
      if (to) out.elemType = Number(to.i);
    }
  }
  return out;
}

/** The float element type of a fused node: from the first of `names` whose type is known; float32 otherwise. */
export function floatType(g: OnnxGraph, names: readonly (string | undefined)[]): number {
  for (const n of names) {
    if (!n) continue;
    const t = facts(g, n).elemType;
    if (t !== undefined) {
      if (!(t in FLOAT_ELEM)) throw new UnfuseUnsupported(`element type ${t} of ${n} (float32, float64 and float16 are supported)`);
      return t;
    }
  }
  return DT.FLOAT;
}

/** A `TdbError` for a node that cannot be un-fused (strict mode); `allowed`: the ops with a rule. */
export function unsupportedError(node: NodeProto, reason: string, allowed: readonly string[]): TdbError {
  const name = node.name || "(unnamed)";
  return new TdbError("E_UNSUPPORTED_GRAPH", `cannot un-fuse ${node.domain || "ai.onnx"}.${node.opType} node ${name}: ${reason}`, {
    value: { op: node.opType, node: name, reason },
    allowed,
  });
}
