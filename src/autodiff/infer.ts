/**
 * Static facts about the values of a graph, as far as they can be told without running it:
 * element type, rank and dims (numbers, symbolic names from the graph inputs, or unknown), and
 * the elements of small integer tensors (shapes, axes) with symbolic entries.
 *
 * The backward pass uses them to pick node forms (a Transpose needs a rank) and to skip work
 * (no broadcast reduction when an input's shape is known to equal the gradient's). Everything
 * is conservative: a fact is recorded only when it holds for every feed, and anything not
 * understood is left unknown. Symbolic dims follow ONNX semantics: the same `dim_param` in the
 * graph inputs names the same size.
 *
 * @module
 */
import { TensorProto_DataType as DT, type NodeProto, type ValueInfoProto } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { onnxDataType, tensorFromProto, type HostTensor } from "../onnx/tensor.js";
import { attrOf, constantNodeValue, intAttr, intsAttr } from "./attributes.js";

/** One dimension: a size, a symbolic size (a `dim_param` of a graph input), or unknown (null). */
export type SymDim = number | string | null;

/** What is statically known about one value. */
export interface ValueFacts {
  /** ONNX `TensorProto.DataType` number. */
  elemType?: number;
  /** Dims, when the rank is known. */
  dims?: SymDim[];
  /** Elements of an integer tensor of rank 0 or 1, when known (entries may be symbolic). */
  value?: SymDim[];
}

/** Float element types: the values gradients flow through. */
export const FLOAT_TYPES: ReadonlySet<number> = new Set([DT.FLOAT, DT.DOUBLE, DT.FLOAT16, DT.BFLOAT16]);

const INT_TYPES: ReadonlySet<number> = new Set([DT.INT64, DT.INT32, DT.INT16, DT.INT8, DT.UINT8, DT.UINT16, DT.UINT32, DT.UINT64]);

/** The most elements a tracked integer value may have. */
const MAX_VALUE_LENGTH = 64;

const UNARY_SAME = new Set([
  "Identity", "Neg", "Exp", "Log", "Tanh", "Erf", "Relu", "Sigmoid", "Sqrt", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
  "Softmax", "LogSoftmax", "Sin", "Cos", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "Gelu", "Clip", "CumSum",
  "Trilu", "ScatterND", "ScatterElements",
]);
const BINARY_SAME = new Set(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod"]);
const BINARY_BOOL = new Set(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"]);
const UNARY_BOOL = new Set(["Not", "IsNaN", "IsInf"]);
const REDUCE = new Set(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]);

/** Broadcasts dims numpy-style, leaving a dim unknown where the result depends on a runtime size. */
export function broadcastDims(shapes: readonly (readonly SymDim[])[]): SymDim[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out: SymDim[] = [];
  for (let i = 0; i < r; i++) {
    let acc: SymDim = 1;
    for (const s of shapes) {
      const j = s.length - r + i;
      const d: SymDim = j < 0 ? 1 : (s[j] ?? null);
      acc = broadcastDim(acc, d);
    }
    out.push(acc);
  }
  return out;
}

function broadcastDim(a: SymDim, b: SymDim): SymDim {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  // A size other than 1 wins: the other side must equal it or be 1.
  if (typeof a === "number") return a;
  if (typeof b === "number") return b;
  return null;
}

/** The product of dims, or null unless all are numbers. */
export function numelOf(dims: readonly SymDim[]): number | null {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") return null;
    n *= d;
  }
  return n;
}

function dimsOfValueInfo(v: ValueInfoProto, numericOnly: boolean): { elemType?: number; dims?: SymDim[] } {
  const t = v.type?.value;
  if (t?.case !== "tensorType") return {};
  const out: { elemType?: number; dims?: SymDim[] } = {};
  if (t.value.elemType) out.elemType = t.value.elemType;
  if (t.value.shape) {
    out.dims = t.value.shape.dim.map((d) => {
      if (d.value.case === "dimValue") return Number(d.value.value);
      if (d.value.case === "dimParam" && d.value.value && !numericOnly) return d.value.value;
      return null;
    });
  }
  return out;
}

function valueOfTensor(t: HostTensor): SymDim[] | undefined {
  if (t.dims.length > 1 || t.data.length > MAX_VALUE_LENGTH) return undefined;
  if (!(t.data instanceof BigInt64Array || t.data instanceof Int32Array)) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

const normAxis = (a: number, r: number) => (a < 0 ? a + r : a);

/** Static facts for every value of a graph; {@link ValueFactsTable.inferNode} extends it to new nodes. */
export class ValueFactsTable {
  private readonly facts = new Map<string, ValueFacts>();
  private readonly declared = new Map<string, ValueInfoProto>();
  private readonly opset: number;

  private constructor(private readonly g: OnnxGraph) {
    this.opset = g.opsetVersion();
    for (const v of [...g.graph.valueInfo, ...g.graph.output]) this.declared.set(v.name, v);
  }

  /**
   * Infers facts for every value of `g`: graph inputs and initializers from their declarations,
   * node outputs in dependency order.
   */
  static infer(g: OnnxGraph): ValueFactsTable {
    const t = new ValueFactsTable(g);
    for (const v of g.graph.input) t.facts.set(v.name, dimsOfValueInfo(v, false));
    for (const init of g.graph.initializer) {
      const f: ValueFacts = { elemType: init.dataType, dims: init.dims.map((d) => Number(d)) };
      if (INT_TYPES.has(init.dataType) && f.dims!.length <= 1 && !g.graph.input.some((v) => v.name === init.name)) {
        const n = numelOf(f.dims!) ?? Infinity;
        if (n <= MAX_VALUE_LENGTH) {
          try {
            f.value = valueOfTensor(tensorFromProto(init));
          } catch {
            // unreadable (external data): no value
          }
        }
      }
      t.facts.set(init.name, f);
    }
    for (const n of g.topologicalOrder()) t.inferNode(n);
    return t;
  }

  /** Facts about `name` (an empty object when nothing is known). */
  get(name: string): ValueFacts {
    return this.facts.get(name) ?? {};
  }

  /** The element type of `name`, if known. */
  elemType(name: string): number | undefined {
    return this.facts.get(name)?.elemType;
  }

  /** The dims of `name`, if its rank is known. */
  dims(name: string): SymDim[] | undefined {
    return this.facts.get(name)?.dims;
  }

  /** The rank of `name`, if known. */
  rank(name: string): number | undefined {
    return this.facts.get(name)?.dims?.length;
  }

  /** Integer elements of `name` when all are known numbers. */
  numbers(name: string): number[] | undefined {
    const v = this.facts.get(name)?.value;
    return v && v.every((x) => typeof x === "number") ? (v as number[]) : undefined;
  }

  /** Records facts for a value (used for values the caller knows more about). */
  set(name: string, facts: ValueFacts): void {
    this.facts.set(name, facts);
  }

  /** Infers the facts of a node's outputs from those of its inputs. */
  inferNode(n: NodeProto): void {
    const domain = n.domain ?? "";
    const out = domain === "" || domain === "ai.onnx" ? this.rule(n) : undefined;
    n.output.forEach((o, k) => {
      if (!o) return;
      const f: ValueFacts = { ...(out?.[k] ?? {}) };
      const decl = this.declared.get(o);
      if (decl) {
        const d = dimsOfValueInfo(decl, true);
        if (f.elemType === undefined && d.elemType !== undefined) f.elemType = d.elemType;
        if (f.dims === undefined && d.dims !== undefined) f.dims = d.dims;
      }
      if (f.elemType === undefined) delete f.elemType;
      if (f.dims === undefined) delete f.dims;
      if (f.value === undefined) delete f.value;
      this.facts.set(o, f);
    });
  }

  private in(n: NodeProto, i: number): ValueFacts {
    const name = n.input[i];
    return name ? this.get(name) : {};
  }

  /** Axes given as an input (from `inputFrom` on) or as the `axes` attribute before it. */
  private axesOf(n: NodeProto, inputFrom: number): number[] | undefined | "absent" {
    if (this.opset >= inputFrom) {
      const a = n.input[1];
      if (!a) return "absent";
      return this.numbers(a);
    }
    return intsAttr(n, "axes") ?? "absent";
  }

  private rule(n: NodeProto): ValueFacts[] | undefined {
    const op = n.opType;
    const x = this.in(n, 0);
    const same: ValueFacts = { elemType: x.elemType, dims: x.dims };
    if (UNARY_SAME.has(op)) return [op === "Identity" ? { ...same, value: x.value } : same];
    if (UNARY_BOOL.has(op)) return [{ elemType: DT.BOOL, dims: x.dims }];
    if (BINARY_SAME.has(op) || BINARY_BOOL.has(op)) {
      const ins = n.input.map((_, i) => this.in(n, i));
      const dims = ins.every((f) => f.dims) ? broadcastDims(ins.map((f) => f.dims!)) : undefined;
      const elemType = BINARY_BOOL.has(op) ? DT.BOOL : x.elemType;
      return [{ elemType, dims, value: arith(op, ins) }];
    }
    if (REDUCE.has(op)) return [this.reduce(n, x)];
    switch (op) {
      case "Constant": {
        let t: HostTensor | undefined;
        try {
          t = constantNodeValue(n);
        } catch {
          return undefined;
        }
        return t ? [{ elemType: onnxDataType(t.type), dims: t.dims, value: valueOfTensor(t) }] : undefined;
      }
      case "Cast": {
        const to = intAttr(n, "to", 0);
        return [{ elemType: to, dims: x.dims, value: INT_TYPES.has(to) ? x.value : undefined }];
      }
      case "Dropout":
        return [same, { elemType: DT.BOOL, dims: x.dims }];
      case "LayerNormalization": {
        const stats: ValueFacts = { elemType: intAttr(n, "stash_type", DT.FLOAT) };
        if (x.dims) {
          const a = normAxis(intAttr(n, "axis", -1), x.dims.length);
          stats.dims = x.dims.map((d, j) => (j >= a ? 1 : d));
        }
        return [same, stats, stats];
      }
      case "Where": {
        const ins = [0, 1, 2].map((i) => this.in(n, i));
        return [{ elemType: ins[1]!.elemType, dims: ins.every((f) => f.dims) ? broadcastDims(ins.map((f) => f.dims!)) : undefined }];
      }
      case "MatMul":
        return [{ elemType: x.elemType, dims: matmulDims(x.dims, this.in(n, 1).dims) }];
      case "Gemm": {
        const a = x.dims;
        const b = this.in(n, 1).dims;
        const m = a ? (intAttr(n, "transA", 0) ? a[1] : a[0]) : null;
        const k = b ? (intAttr(n, "transB", 0) ? b[0] : b[1]) : null;
        return [{ elemType: x.elemType, dims: [m ?? null, k ?? null] }];
      }
      case "Transpose": {
        if (!x.dims) return [{ elemType: x.elemType }];
        const perm = intsAttr(n, "perm") ?? x.dims.map((_, i) => x.dims!.length - 1 - i);
        return [{ elemType: x.elemType, dims: perm.map((p) => x.dims![p] ?? null) }];
      }
      case "Reshape":
        return [this.reshape(n, x)];
      case "Flatten": {
        if (!x.dims) return [{ elemType: x.elemType, dims: [null, null] }];
        const a = normAxis(intAttr(n, "axis", 1), x.dims.length);
        return [{ elemType: x.elemType, dims: [numelOf(x.dims.slice(0, a)), numelOf(x.dims.slice(a))] }];
      }
      case "Unsqueeze":
        return [this.unsqueeze(n, x)];
      case "Squeeze":
        return [this.squeeze(n, x)];
      case "Concat":
        return [this.concat(n)];
      case "Split":
        return this.split(n, x);
      case "Slice":
        return [this.slice(n, x)];
      case "Gather":
        return [this.gather(n, x)];
      case "GatherElements":
        return [{ elemType: x.elemType, dims: this.in(n, 1).dims }];
      case "GatherND": {
        const idx = this.in(n, 1).dims;
        const b = intAttr(n, "batch_dims", 0);
        const k = idx?.[idx.length - 1];
        if (!idx || !x.dims || typeof k !== "number") return [{ elemType: x.elemType }];
        return [{ elemType: x.elemType, dims: [...idx.slice(0, -1), ...x.dims.slice(b + k)] }];
      }
      case "Shape": {
        if (!x.dims) return [{ elemType: DT.INT64, dims: [null] }];
        const r = x.dims.length;
        const start = Math.min(Math.max(normAxis(intAttr(n, "start", 0), r), 0), r);
        const end = Math.min(Math.max(normAxis(intAttr(n, "end", r), r), 0), r);
        const value = x.dims.slice(start, Math.max(start, end));
        return [{ elemType: DT.INT64, dims: [value.length], value }];
      }
      case "Size": {
        const numel = x.dims ? numelOf(x.dims) : null;
        return [{ elemType: DT.INT64, dims: [], value: numel === null ? undefined : [numel] }];
      }
      case "ConstantOfShape": {
        const t = attrOf(n, "value")?.t;
        const s = this.in(n, 0);
        const len = s.dims?.[0];
        const dims = s.value ?? (typeof len === "number" ? new Array<SymDim>(len).fill(null) : undefined);
        return [{ elemType: t ? t.dataType : DT.FLOAT, dims }];
      }
      case "Range":
        return [{ elemType: x.elemType, dims: [rangeLength(x.value?.[0], this.in(n, 1).value?.[0], this.in(n, 2).value?.[0])] }];
      case "NonZero":
        return [{ elemType: DT.INT64, dims: [x.dims ? x.dims.length : null, null] }];
      case "ArgMax":
      case "ArgMin": {
        if (!x.dims) return [{ elemType: DT.INT64 }];
        const a = normAxis(intAttr(n, "axis", 0), x.dims.length);
        const keep = intAttr(n, "keepdims", 1) !== 0;
        return [{ elemType: DT.INT64, dims: keep ? x.dims.map((d, j) => (j === a ? 1 : d)) : x.dims.filter((_, j) => j !== a) }];
      }
      case "Expand": {
        const s = this.in(n, 1);
        const len = s.dims?.[0];
        const shape = s.value ?? (typeof len === "number" ? new Array<SymDim>(len).fill(null) : undefined);
        return [{ elemType: x.elemType, dims: x.dims && shape ? broadcastDims([x.dims, shape]) : undefined }];
      }
      case "Pad":
      case "Tile":
        return [{ elemType: x.elemType, dims: x.dims?.map(() => null) }];
      case "TopK":
        return [{ elemType: x.elemType }, { elemType: DT.INT64 }];
      default:
        return undefined;
    }
  }

  private reduce(n: NodeProto, x: ValueFacts): ValueFacts {
    const keep = intAttr(n, "keepdims", 1) !== 0;
    const noop = intAttr(n, "noop_with_empty_axes", 0) !== 0;
    const axes = this.axesOf(n, n.opType === "ReduceSum" ? 13 : 18);
    if (!x.dims) return { elemType: x.elemType };
    const r = x.dims.length;
    if (axes === undefined) return { elemType: x.elemType, dims: keep ? x.dims.map(() => null) : undefined };
    const list = axes === "absent" ? [] : axes.map((a) => normAxis(a, r));
    if (list.length === 0 && noop) return { elemType: x.elemType, dims: x.dims };
    const reduced = (j: number) => list.length === 0 || list.includes(j);
    const dims = keep ? x.dims.map((d, j) => (reduced(j) ? 1 : d)) : x.dims.filter((_, j) => !reduced(j));
    return { elemType: x.elemType, dims };
  }

  private reshape(n: NodeProto, x: ValueFacts): ValueFacts {
    const s = this.in(n, 1);
    const allowZero = intAttr(n, "allowzero", 0) !== 0;
    if (!s.value) {
      const len = s.dims?.[0];
      return { elemType: x.elemType, dims: typeof len === "number" ? new Array<SymDim>(len).fill(null) : undefined };
    }
    const dims: SymDim[] = s.value.map((v, j) => {
      if (v === 0 && !allowZero) return x.dims?.[j] ?? null;
      if (typeof v === "number" && v < 0) return null;
      return v;
    });
    const hole = s.value.indexOf(-1);
    if (hole >= 0 && x.dims) dims[hole] = quotient(x.dims, dims.filter((_, j) => j !== hole));
    return { elemType: x.elemType, dims, value: dims.length <= 1 ? x.value : undefined };
  }

  private unsqueeze(n: NodeProto, x: ValueFacts): ValueFacts {
    const axes = this.axesOf(n, 13);
    if (!x.dims || axes === undefined || axes === "absent") return { elemType: x.elemType };
    const r = x.dims.length + axes.length;
    const at = new Set(axes.map((a) => normAxis(a, r)));
    const dims: SymDim[] = [];
    let k = 0;
    for (let j = 0; j < r; j++) dims.push(at.has(j) ? 1 : (x.dims[k++] ?? null));
    return { elemType: x.elemType, dims, value: x.dims.length === 0 ? x.value : undefined };
  }

  private squeeze(n: NodeProto, x: ValueFacts): ValueFacts {
    const axes = this.axesOf(n, 13);
    if (!x.dims || axes === undefined) return { elemType: x.elemType };
    let dims: SymDim[];
    if (axes === "absent") {
      if (!x.dims.every((d) => typeof d === "number")) return { elemType: x.elemType };
      dims = x.dims.filter((d) => d !== 1);
    } else {
      const at = new Set(axes.map((a) => normAxis(a, x.dims!.length)));
      dims = x.dims.filter((_, j) => !at.has(j));
    }
    return { elemType: x.elemType, dims, value: dims.length === 0 ? x.value : undefined };
  }

  private concat(n: NodeProto): ValueFacts {
    const ins = n.input.filter((i) => i).map((i) => this.get(i));
    const first = ins[0] ?? {};
    if (!ins.every((f) => f.dims && f.dims.length === first.dims?.length)) return { elemType: first.elemType };
    const r = first.dims!.length;
    const a = normAxis(intAttr(n, "axis", 0), r);
    const dims: SymDim[] = [];
    for (let j = 0; j < r; j++) {
      if (j === a) {
        dims.push(sumOrNull(ins.map((f) => f.dims![j] ?? null)));
        continue;
      }
      const known = ins.map((f) => f.dims![j] ?? null).find((d) => d !== null);
      dims.push(known ?? null);
    }
    const value = r === 1 && ins.every((f) => f.value) ? ins.flatMap((f) => f.value!) : undefined;
    return { elemType: first.elemType, dims, value };
  }

  private split(n: NodeProto, x: ValueFacts): ValueFacts[] {
    const k = n.output.length;
    const base = { elemType: x.elemType };
    if (!x.dims) return n.output.map(() => base);
    const a = normAxis(intAttr(n, "axis", 0), x.dims.length);
    let sizes: SymDim[] | undefined;
    if (this.opset >= 13 && n.input[1]) sizes = this.get(n.input[1]).value;
    else if (this.opset < 13) sizes = intsAttr(n, "split");
    if (!sizes) {
      const d = x.dims[a];
      if (typeof d === "number") {
        const chunk = Math.ceil(d / k);
        sizes = n.output.map((_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
      } else sizes = n.output.map(() => null);
    }
    return n.output.map((_, i) => ({ ...base, dims: x.dims!.map((d, j) => (j === a ? (sizes![i] ?? null) : d)) }));
  }

  private slice(n: NodeProto, x: ValueFacts): ValueFacts {
    if (!x.dims) return { elemType: x.elemType };
    const r = x.dims.length;
    const starts = n.input[1] ? this.numbers(n.input[1]) : undefined;
    const ends = n.input[2] ? this.numbers(n.input[2]) : undefined;
    const axes = n.input[3] ? this.numbers(n.input[3]) : starts?.map((_, i) => i);
    const steps = n.input[4] ? this.numbers(n.input[4]) : starts?.map(() => 1);
    if (!starts || !ends || !axes || !steps) return { elemType: x.elemType, dims: x.dims.map(() => null) };
    const dims = [...x.dims];
    const ranges: { s: number; e: number; step: number }[] = [];
    axes.forEach((ax, i) => {
      const a = normAxis(ax, r);
      const d = x.dims![a];
      if (typeof d !== "number") {
        dims[a] = null;
        return;
      }
      const rg = sliceRange(starts[i]!, ends[i]!, steps[i]!, d);
      dims[a] = rg.length;
      if (a === 0) ranges.push(rg);
    });
    let value: SymDim[] | undefined;
    if (r === 1 && x.value && ranges.length === 1) {
      const { s, e, step } = ranges[0]!;
      value = [];
      for (let i = s; step > 0 ? i < e : i > e; i += step) value.push(x.value[i] ?? null);
    }
    return { elemType: x.elemType, dims, value };
  }

  private gather(n: NodeProto, x: ValueFacts): ValueFacts {
    const idx = this.in(n, 1);
    if (!x.dims || !idx.dims) return { elemType: x.elemType };
    const a = normAxis(intAttr(n, "axis", 0), x.dims.length);
    const dims = [...x.dims.slice(0, a), ...idx.dims, ...x.dims.slice(a + 1)];
    let value: SymDim[] | undefined;
    const at = idx.value;
    if (x.value && x.dims.length === 1 && at && at.every((v) => typeof v === "number")) {
      const len = x.value.length;
      value = (at as number[]).map((i) => x.value![i < 0 ? i + len : i] ?? null);
    }
    return { elemType: x.elemType, dims, value };
  }
}

/**
 * prod(all) / prod(some) when it can be told: the symbols of `some` cancel against those of
 * `all`, the numbers divide, and at most one symbol (with factor 1) or a number remains.
 */
function quotient(all: readonly SymDim[], some: readonly SymDim[]): SymDim {
  if (all.includes(null) || some.includes(null)) return null;
  const symbols = all.filter((d): d is string => typeof d === "string");
  let num = numelOf(all.filter((d) => typeof d === "number")) ?? 0;
  let den = 1;
  for (const d of some) {
    if (typeof d === "number") den *= d;
    else {
      const at = symbols.indexOf(d as string);
      if (at < 0) return null;
      symbols.splice(at, 1);
    }
  }
  if (den === 0 || num % den !== 0) return null;
  num /= den;
  if (symbols.length === 0) return num;
  return symbols.length === 1 && num === 1 ? symbols[0]! : null;
}

function sumOrNull(ds: SymDim[]): SymDim {
  let s = 0;
  for (const d of ds) {
    if (typeof d !== "number") return null;
    s += d;
  }
  return s;
}

/** Start, end (exclusive) and length of a Slice along a dim of size `d`. */
export function sliceRange(start: number, end: number, step: number, d: number): { s: number; e: number; step: number; length: number } {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = clamp(s, 0, d);
    e = clamp(e, 0, d);
  } else {
    s = clamp(s, -1, d - 1);
    e = clamp(e, -1, d - 1);
  }
  const length = Math.max(0, Math.ceil((e - s) / step));
  return { s, e, step, length };
}

function matmulDims(a: SymDim[] | undefined, b: SymDim[] | undefined): SymDim[] | undefined {
  if (!a || !b || a.length === 0 || b.length === 0) return undefined;
  if (a.length === 1 && b.length === 1) return [];
  if (a.length === 1) return [...b.slice(0, -2), b[b.length - 1]!];
  if (b.length === 1) return a.slice(0, -1);
  return [...broadcastDims([a.slice(0, -2), b.slice(0, -2)]), a[a.length - 2]!, b[b.length - 1]!];
}

/** Integer arithmetic on known values (shape computations), entrywise with scalar broadcast. */
function arith(op: string, ins: ValueFacts[]): SymDim[] | undefined {
  if (ins.length !== 2 || !["Add", "Sub", "Mul"].includes(op)) return undefined;
  const [a, b] = ins as [ValueFacts, ValueFacts];
  if (!a.value || !b.value || !INT_TYPES.has(a.elemType ?? 0)) return undefined;
  const n = Math.max(a.value.length, b.value.length);
  if ((a.value.length !== n && a.value.length !== 1) || (b.value.length !== n && b.value.length !== 1)) return undefined;
  const out: SymDim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a.value[a.value.length === 1 ? 0 : i];
    const y = b.value[b.value.length === 1 ? 0 : i];
    out.push(arithDim(op, x ?? null, y ?? null));
  }
  return out;
}

function arithDim(op: string, x: SymDim, y: SymDim): SymDim {
  if (typeof x === "number" && typeof y === "number") return op === "Add" ? x + y : op === "Sub" ? x - y : x * y;
  if (op === "Sub" && x !== null && x === y) return 0;
  if (op === "Add" && x === 0) return y;
  if ((op === "Add" || op === "Sub") && y === 0) return x;
  if (op === "Mul" && x === 1) return y;
  if (op === "Mul" && y === 1) return x;
  return null;
}

/** Elements of Range(start, limit, delta), when they can be told. */
function rangeLength(start: SymDim | undefined, limit: SymDim | undefined, delta: SymDim | undefined): SymDim {
  if (typeof start === "number" && typeof limit === "number" && typeof delta === "number" && delta !== 0) {
    return Math.max(0, Math.ceil((limit - start) / delta));
  }
  return start === 0 && delta === 1 && limit !== undefined ? limit : null;
}
