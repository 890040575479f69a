/**
 * A small ONNX graph builder producing onnx-buf `ModelProto` / `GraphProto` messages.
 *
 * Node names follow the TorchScript exporter's convention: an op under a scope is named
 * `${scope}/${opType}`, then `${scope}/${opType}_1`, `_2`, ... and its outputs are
 * `${nodeName}_output_0`, `${nodeName}_output_1`, ...
 *
 * @example
 * ```ts
 * const b = new GraphBuilder({ opset: 13 });
 * const x = b.input("x", "float32", ["batch", 4]);
 * const w = b.initializer("w", new Float32Array(16), [4, 4]);
 * const y = b.op("MatMul", [x, w], { scope: "/layer" }); // "/layer/MatMul_output_0"
 * b.output("y", "float32", ["batch", 4], y);
 * const model = b.build();
 * ```
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { onnxDataType, tensorToProto, type AnyTypedArray, type ElemType } from "./tensor.js";

/** One dimension of a declared input/output shape: a fixed size or a symbolic name. */
export type Dim = number | string;

/**
 * An attribute value with its ONNX kind made explicit. Build one with {@link attr}.
 */
export type Attr =
  | { kind: "int"; value: number | bigint }
  | { kind: "ints"; value: readonly (number | bigint)[] }
  | { kind: "float"; value: number }
  | { kind: "floats"; value: readonly number[] }
  | { kind: "string"; value: string }
  | { kind: "strings"; value: readonly string[] }
  | { kind: "tensor"; value: TensorProto }
  | { kind: "graph"; value: GraphProto };

/**
 * Values accepted in a node's `attrs`. Plain values are classified: an integral number is an
 * int, any other number a float; a number array is ints when every element is integral, else
 * floats; a bigint is an int; a string is a string; a `TensorProto` / `GraphProto` message is a
 * tensor / graph. Use {@link attr} where the guess would be wrong (e.g. `alpha: attr.float(1)`).
 */
export type AttrInput = Attr | number | bigint | string | readonly number[] | readonly bigint[] | readonly string[] | TensorProto | GraphProto;

/**
 * Explicit attribute constructors.
 *
 * @example
 * ```ts
 * b.node("Gemm", [a, w, c], { scope: "/fc", attrs: { alpha: attr.float(1), beta: attr.float(1) } });
 * ```
 */
export const attr = {
  /** An INT attribute. */
  int: (value: number | bigint): Attr => ({ kind: "int", value }),
  /** An INTS attribute. */
  ints: (value: readonly (number | bigint)[]): Attr => ({ kind: "ints", value }),
  /** A FLOAT attribute (stored as float32). */
  float: (value: number): Attr => ({ kind: "float", value }),
  /** A FLOATS attribute. */
  floats: (value: readonly number[]): Attr => ({ kind: "floats", value }),
  /** A STRING attribute (UTF-8). */
  string: (value: string): Attr => ({ kind: "string", value }),
  /** A STRINGS attribute. */
  strings: (value: readonly string[]): Attr => ({ kind: "strings", value }),
  /** A TENSOR attribute. */
  tensor: (value: TensorProto): Attr => ({ kind: "tensor", value }),
  /** A GRAPH attribute (e.g. an `If` branch). */
  graph: (value: GraphProto): Attr => ({ kind: "graph", value }),
} as const;

/** Options of {@link GraphBuilder.node}. */
export interface NodeOptions {
  /** Explicit node name. If omitted, named `${scope}/${opType}[_k]` (scope defaults to ""). */
  name?: string;
  /** Name scope used for automatic naming, e.g. `/transformer/h.0/attn`. */
  scope?: string;
  /** Output names, or the number of outputs to name `${name}_output_i`. Default: 1. */
  outputs?: readonly string[] | number;
  /** Node attributes. */
  attrs?: Record<string, AttrInput>;
  /** Operator domain ("" = ai.onnx). */
  domain?: string;
}

/** Options of the {@link GraphBuilder} constructor. */
export interface GraphBuilderOptions {
  /** Graph name. Default "main_graph" (as the TorchScript exporter names it). */
  name?: string;
  /** ai.onnx opset imported by the model. Default 13. */
  opset?: number;
  /** Model IR version. Default 8. */
  irVersion?: number;
  /** `ModelProto.producer_name`. Default "tdb-js". */
  producerName?: string;
  /** `ModelProto.producer_version`. Default "". */
  producerVersion?: string;
}

const isMessage = (v: unknown, typeName: string): boolean =>
  typeof v === "object" && v !== null && (v as { $typeName?: string }).$typeName === typeName;

function toAttr(v: AttrInput): Attr {
  if (typeof v === "number") return Number.isInteger(v) ? { kind: "int", value: v } : { kind: "float", value: v };
  if (typeof v === "bigint") return { kind: "int", value: v };
  if (typeof v === "string") return { kind: "string", value: v };
  if (Array.isArray(v)) {
    const arr = v as readonly (number | bigint | string)[];
    if (arr.every((x) => typeof x === "string")) return { kind: "strings", value: arr as string[] };
    if (arr.every((x) => typeof x === "bigint" || (typeof x === "number" && Number.isInteger(x)))) {
      return { kind: "ints", value: arr as (number | bigint)[] };
    }
    if (arr.every((x) => typeof x === "number")) return { kind: "floats", value: arr as number[] };
    throw new TdbError("E_BAD_INPUT", "attribute array mixes element kinds", { value: v });
  }
  if (isMessage(v, "onnx.TensorProto")) return { kind: "tensor", value: v as TensorProto };
  if (isMessage(v, "onnx.GraphProto")) return { kind: "graph", value: v as GraphProto };
  if (typeof v === "object" && v !== null && "kind" in v) return v;
  throw new TdbError("E_BAD_INPUT", "unsupported attribute value", { value: v, allowed: "number, bigint, string, arrays of these, TensorProto, GraphProto, attr.*()" });
}

/** Builds an onnx-buf `AttributeProto` from a name and an {@link AttrInput}. */
export function makeAttribute(name: string, value: AttrInput): AttributeProto {
  const a = toAttr(value);
  const T = AttributeProto_AttributeType;
  switch (a.kind) {
    case "int":
      return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(a.value) });
    case "ints":
      return create(AttributeProtoSchema, { name, type: T.INTS, ints: a.value.map((x) => BigInt(x)) });
    case "float":
      return create(AttributeProtoSchema, { name, type: T.FLOAT, f: a.value });
    case "floats":
      return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: [...a.value] });
    case "string":
      return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(a.value) });
    case "strings":
      return create(AttributeProtoSchema, { name, type: T.STRINGS, strings: a.value.map((s) => new TextEncoder().encode(s)) });
    case "tensor":
      return create(AttributeProtoSchema, { name, type: T.TENSOR, t: a.value });
    case "graph":
      return create(AttributeProtoSchema, { name, type: T.GRAPH, g: a.value });
  }
}

/**
 * A tensor `ValueInfoProto` with element type and (optionally) shape.
 *
 * @example
 * ```ts
 * valueInfo("input_ids", "int64", ["batch_size", "sequence_length"]);
 * ```
 */
export function valueInfo(name: string, type?: ElemType, shape?: readonly Dim[]): ValueInfoProto {
  if (type === undefined) return create(ValueInfoProtoSchema, { name });
  const dim = (d: Dim) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
    });
  const tensorType = create(TypeProto_TensorSchema, { elemType: onnxDataType(type) });
  if (shape) tensorType.shape = create(TensorShapeProtoSchema, { dim: shape.map(dim) });
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, { value: { case: "tensorType", value: tensorType } }),
  });
}

/**
 * Accumulates nodes, initializers, inputs and outputs of one ONNX graph.
 * {@link GraphBuilder.subgraph} makes a builder for an `If` branch whose node names restart
 * numbering; {@link GraphBuilder.build} wraps the graph in a `ModelProto`.
 */
export class GraphBuilder {
  /** Options the builder was made with (defaults filled in). */
  readonly options: Required<GraphBuilderOptions>;
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly valueInfos: ValueInfoProto[] = [];
  private readonly counters = new Map<string, number>();
  private readonly usedNames = new Set<string>();
  private readonly initNames = new Set<string>();

  /** A builder for one graph; see {@link GraphBuilderOptions} for the opset and names. */
  constructor(options: GraphBuilderOptions = {}) {
    this.options = {
      name: options.name ?? "main_graph",
      opset: options.opset ?? 13,
      irVersion: options.irVersion ?? 8,
      producerName: options.producerName ?? "tdb-js",
      producerVersion: options.producerVersion ?? "",
    };
  }

  /** Declares a graph input and returns its name. */
  input(name: string, type: ElemType, shape?: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, type, shape));
    return name;
  }

  /**
   * Declares a graph output. When `from` is given and differs from `name`, an `Identity`
   * node copies `from` into `name`.
   */
  output(name: string, type?: ElemType, shape?: readonly Dim[], from?: string): string {
    if (from !== undefined && from !== name) this.node("Identity", [from], { name: `${name}_Identity`, outputs: [name] });
    this.outputs.push(valueInfo(name, type, shape));
    return name;
  }

  /** Records a `value_info` entry (an intermediate tensor's type/shape). */
  valueInfo(name: string, type: ElemType, shape?: readonly Dim[]): void {
    this.valueInfos.push(valueInfo(name, type, shape));
  }

  /** Adds an initializer (weight) and returns its name. `type` overrides the array's natural type (e.g. "bool"). */
  initializer(name: string, data: AnyTypedArray, dims: readonly number[], type?: ElemType): string {
    if (this.initNames.has(name)) throw new TdbError("E_BAD_INPUT", `duplicate initializer ${name}`, { value: name });
    this.initNames.add(name);
    this.inits.push(tensorToProto(name, data, dims, type));
    return name;
  }

  /** Adds an already-built `TensorProto` as an initializer and returns its name. */
  initializerProto(t: TensorProto): string {
    if (this.initNames.has(t.name)) throw new TdbError("E_BAD_INPUT", `duplicate initializer ${t.name}`, { value: t.name });
    this.initNames.add(t.name);
    this.inits.push(t);
    return t.name;
  }

  /**
   * Adds a `Constant` node holding a tensor `value` attribute and returns its output name,
   * e.g. `constant("/transformer", new BigInt64Array([1]), [1])` is
   * `/transformer/Constant_output_0` (then `Constant_1`, ...).
   *
   * @param scope name scope of the node, or `{name}` for an explicit node name.
   */
  constant(scope: string | { name: string }, data: AnyTypedArray, dims: readonly number[], type?: ElemType): string {
    const t = tensorToProto("", data, dims, type);
    const opts: NodeOptions = typeof scope === "string" ? { scope } : { name: scope.name };
    return this.op("Constant", [], { ...opts, attrs: { value: attr.tensor(t) } });
  }

  /** The next automatic node name for `opType` under `scope` (`${scope}/${opType}`, then `_1`, ...). */
  nextName(scope: string, opType: string): string {
    const key = `${scope}/${opType}`;
    for (;;) {
      const k = this.counters.get(key) ?? 0;
      this.counters.set(key, k + 1);
      const name = k === 0 ? key : `${key}_${k}`;
      if (!this.usedNames.has(name)) return name;
    }
  }

  /**
   * Adds a node and returns its output names. Empty strings in `inputs` mark omitted optional inputs.
   *
   * @example
   * ```ts
   * const [q, k, v] = b.node("Split", [x], { scope: "/attn", outputs: 3, attrs: { axis: 2 } });
   * ```
   */
  node(opType: string, inputs: readonly string[], options: NodeOptions = {}): string[] {
    const name = options.name ?? this.nextName(options.scope ?? "", opType);
    if (this.usedNames.has(name)) throw new TdbError("E_BAD_INPUT", `duplicate node name ${name}`, { value: name });
    this.usedNames.add(name);
    const outs = options.outputs ?? 1;
    const output = typeof outs === "number" ? Array.from({ length: outs }, (_, i) => `${name}_output_${i}`) : [...outs];
    const attribute = Object.entries(options.attrs ?? {}).map(([k, v]) => makeAttribute(k, v));
    this.nodes.push(create(NodeProtoSchema, { name, opType, input: [...inputs], output, attribute, domain: options.domain ?? "" }));
    return output;
  }

  /** Like {@link GraphBuilder.node} for a single-output node: returns that output's name. */
  op(opType: string, inputs: readonly string[], options: Omit<NodeOptions, "outputs"> & { output?: string } = {}): string {
    const { output, ...rest } = options;
    const outs = this.node(opType, inputs, output === undefined ? rest : { ...rest, outputs: [output] });
    return outs[0]!;
  }

  /**
   * A fresh builder for a subgraph (e.g. an `If` branch). Its node numbering is independent of
   * this graph's; it may read this graph's values by name (outer-scope references).
   */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder({ ...this.options, name });
  }

  /** Whether an initializer of that name was added. */
  hasInitializer(name: string): boolean {
    return this.initNames.has(name);
  }

  /** The `GraphProto` built so far (for a subgraph, pass it to `attr.graph`). */
  buildGraph(): GraphProto {
    return create(GraphProtoSchema, {
      name: this.options.name,
      node: [...this.nodes],
      initializer: [...this.inits],
      input: [...this.inputs],
      output: [...this.outputs],
      valueInfo: [...this.valueInfos],
    });
  }

  /** The complete `ModelProto` (ai.onnx opset and IR version from the options). */
  build(): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: BigInt(this.options.irVersion),
      producerName: this.options.producerName,
      producerVersion: this.options.producerVersion,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(this.options.opset) })],
      graph: this.buildGraph(),
    });
  }
}
