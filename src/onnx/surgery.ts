/**
 * Graph surgery for interpretability: expose intermediate tensors as outputs, insert edit
 * points fed from new inputs, flatten `If` nodes, and drop what is no longer used.
 *
 * Every function works on values and nodes by name and never looks at the architecture.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  NodeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type NodeProto,
  type ValueInfoProto,
} from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { GraphEmitter } from "./emit.js";
import type { OnnxGraph } from "./graph.js";
import { onnxDataType, type ElemType } from "./tensor.js";
import { definedNames, outerReferences, renameOuterReferences, subgraphsOf } from "./walk.js";

/** Options of {@link addTapOutput}. */
export interface TapOptions {
  /** Name of the new graph output. Default `${valueName}__tap`. */
  outputName?: string;
}

function unknownValue(g: OnnxGraph, valueName: string): TdbError {
  return new TdbError("E_ONNX_INVALID", `graph ${g.graph.name || "(unnamed)"} has no value ${JSON.stringify(valueName)}`, { value: valueName });
}

/**
 * Exposes a value as a graph output through `Identity(valueName) -> outputName`, listed without
 * type information (onnxruntime infers it). The Identity matters: onnxruntime will not fuse a
 * node whose own output is a graph output (LayerNormalization, FastGelu, ...), but it fuses
 * around an Identity reader. Calling it again for the same value and output name returns the
 * existing output. Returns the output name.
 *
 * @example
 * ```ts
 * const out = addTapOutput(g, "/transformer/h.0/attn/Softmax_output_0", { outputName: "blocks.0.attn.hook_pattern" });
 * const session = await ort.InferenceSession.create(encodeModel(g.model));
 * ```
 */
export function addTapOutput(g: OnnxGraph, valueName: string, opts: TapOptions = {}): string {
  if (!g.hasValue(valueName)) throw unknownValue(g, valueName);
  const outputName = opts.outputName ?? `${valueName}__tap`;
  if (g.outputNames().includes(outputName)) {
    const p = g.producer(outputName);
    if (p && p.opType === "Identity" && p.input[0] === valueName) return outputName;
    throw new TdbError("E_ONNX_INVALID", `cannot tap ${valueName} as ${outputName}: the graph already has an output of that name`, { value: outputName });
  }
  if (g.hasValue(outputName) || g.valueInfo(outputName)) {
    throw new TdbError("E_ONNX_INVALID", `cannot tap ${valueName} as ${outputName}: the name is already a value of the graph`, { value: outputName });
  }
  new GraphEmitter(g, "/tdb/tap").node("Identity", [valueName], {}, [outputName], outputName);
  g.addOutput(create(ValueInfoProtoSchema, { name: outputName }));
  return outputName;
}

/**
 * Makes an existing value a graph output as it is, with no copy, and returns its name. Cheaper
 * than {@link addTapOutput} (no Identity, no extra buffer), and onnxruntime still fuses around
 * it, except when the value is the output of the *last* node of a pattern it would fuse (the
 * final Mul of a decomposed GELU, say): the fusion replaces that node, so it does not happen.
 * Tap those values with {@link addTapOutput}. Graph inputs and initializers are tapped through
 * an Identity too, since they cannot be listed as outputs themselves.
 *
 * @example
 * ```ts
 * const out = exposeValue(g, "/transformer/h.0/Add_output_0"); // the residual stream after block 0's attention
 * ```
 */
export function exposeValue(g: OnnxGraph, valueName: string): string {
  if (!g.hasValue(valueName)) throw unknownValue(g, valueName);
  if (g.outputNames().includes(valueName)) return valueName;
  if (!g.producer(valueName)) return addTapOutput(g, valueName);
  g.addOutput(create(ValueInfoProtoSchema, { name: valueName }));
  return valueName;
}

/** Options of {@link insertEditPoint}. */
export interface EditPointOptions {
  /** Name of the new graph input multiplying the value (feed ones to leave it unchanged). */
  mulInput: string;
  /** Name of the new graph input added after the multiplication (feed zeros to leave it unchanged). */
  addInput: string;
  /** Element type of both inputs. Default float32. */
  elemType?: ElemType;
  /** Declared shape of both inputs: numbers and symbolic names. Default: unknown rank (anything broadcastable). */
  shape?: (number | string)[];
}

/** Names created by {@link insertEditPoint}. */
export interface EditPoint {
  /** The edited value every former consumer now reads. */
  output: string;
  /** The multiplier input. */
  mulInput: string;
  /** The addend input. */
  addInput: string;
}

/** A tensor `ValueInfoProto` with element type and optional shape. */
export function tensorValueInfo(name: string, elemType: ElemType, shape?: readonly (number | string)[]): ValueInfoProto {
  const tensor = create(TypeProto_TensorSchema, { elemType: onnxDataType(elemType) });
  if (shape) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: shape.map((d) =>
        create(TensorShapeProto_DimensionSchema, { value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d } }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: "tensorType", value: tensor } }) });
}

/**
 * Makes every reader of `valueName` (nodes, subgraphs reading it from this scope, and graph
 * outputs) read `valueName * mulInput + addInput` instead, where `mulInput` and `addInput` are new
 * graph inputs (real inputs, not initializers: onnxruntime-node cannot feed initializers).
 * Feeding `mul = 1, add = 0` leaves every result bit-identical.
 *
 * If `valueName` is itself a graph output, the output keeps its name and now carries the edited
 * value; the node that produced it writes to a renamed value read by the edit.
 *
 * @example
 * ```ts
 * const { output } = insertEditPoint(g, resid, { mulInput: "edit.mul", addInput: "edit.add", shape: ["batch", "seq", 768] });
 * ```
 */
export function insertEditPoint(g: OnnxGraph, valueName: string, opts: EditPointOptions): EditPoint {
  const { mulInput, addInput } = opts;
  if (!g.hasValue(valueName)) throw unknownValue(g, valueName);
  if (mulInput === addInput) throw new TdbError("E_BAD_OPTION", `mulInput and addInput must differ (both ${mulInput})`, { value: mulInput });
  for (const n of [mulInput, addInput]) {
    if (!n || g.hasValue(n) || g.valueInfo(n) || g.nodeByName(n)) {
      throw new TdbError("E_BAD_OPTION", `cannot add edit input ${JSON.stringify(n)}: the name is empty or already used in the graph`, { value: n });
    }
  }
  const elemType = opts.elemType ?? "float32";
  const producer = g.producer(valueName);
  const isOutput = g.outputNames().includes(valueName);
  if (isOutput && !producer) {
    throw new TdbError("E_ONNX_INVALID", `cannot edit ${valueName}: it is both a graph output and an input or initializer`, { value: valueName });
  }
  g.addInput(tensorValueInfo(mulInput, elemType, opts.shape));
  g.addInput(tensorValueInfo(addInput, elemType, opts.shape));
  const readers = g.consumers(valueName);
  let source = valueName;
  let output: string;
  if (isOutput && producer) {
    // Keep the output's name: the producer now writes `source`, the edit writes `valueName`.
    source = g.uniqueName(`${valueName}__pre_edit`);
    producer.output = producer.output.map((o) => (o === valueName ? source : o));
    output = valueName;
  } else {
    output = g.uniqueName(`${valueName}__edit`);
  }
  if (output !== valueName) {
    const rename = new Map([[valueName, output]]);
    for (const n of readers) {
      n.input = n.input.map((i) => (i === valueName ? output : i));
      for (const s of subgraphsOf(n)) renameOuterReferences(s, rename);
    }
  }
  g.invalidate();
  const e = new GraphEmitter(g, `/tdb/edit/${valueName}`);
  const first = g.nodes[0];
  e.placement = producer ? { after: producer } : first ? { before: first } : {};
  const scaled = e.node("Mul", [source, mulInput], {}, [g.uniqueName(`${valueName}__edit_mul`)], "Mul")[0]!;
  e.node("Add", [scaled, addInput], {}, [output], "Add");
  return { output, mulInput, addInput };
}

function graphAttr(node: NodeProto, name: string): GraphProto | undefined {
  return node.attribute.find((a) => a.name === name)?.g;
}

/**
 * Replaces an `If` node by the nodes of one of its branches: branch outputs are renamed to the
 * If's outputs, branch initializers move to this graph, and branch-local names that collide
 * with names of this graph are renamed. Used to flatten transformers.js "merged" decoders,
 * which branch on `use_cache_branch`.
 *
 * @example
 * ```ts
 * const ifNode = g.nodes.find((n) => n.opType === "If")!;
 * inlineIfBranch(g, ifNode, "else"); // the no-cache branch
 * removeUnusedInputs(g);
 * pruneDeadNodes(g);
 * ```
 */
export function inlineIfBranch(g: OnnxGraph, ifNode: NodeProto, branch: "then" | "else"): void {
  if (ifNode.opType !== "If" || (ifNode.domain ?? "") !== "") {
    throw new TdbError("E_ONNX_INVALID", `inlineIfBranch needs an If node, got ${ifNode.opType} ${ifNode.name}`, { value: ifNode.opType, allowed: ["If"] });
  }
  const at = g.indexOfNode(ifNode);
  const sub = graphAttr(ifNode, `${branch}_branch`);
  if (!sub) throw new TdbError("E_ONNX_INVALID", `If node ${ifNode.name} has no ${branch}_branch graph`, { value: ifNode.name });
  if (sub.output.length !== ifNode.output.length) {
    throw new TdbError("E_ONNX_INVALID", `If node ${ifNode.name}: ${branch}_branch has ${sub.output.length} outputs, the node ${ifNode.output.length}`, {
      value: sub.output.length,
      allowed: ifNode.output.length,
    });
  }
  // Names this graph uses outside the If node (the If's own subgraphs vanish with it).
  const taken = new Set<string>();
  for (const n of g.nodes) {
    if (n === ifNode) continue;
    if (n.name) taken.add(n.name);
    for (const v of [...n.input, ...n.output]) if (v) taken.add(v);
    for (const s of subgraphsOf(n)) for (const v of definedNames(s)) taken.add(v);
  }
  for (const v of [...g.graph.input, ...g.graph.output, ...g.graph.valueInfo]) taken.add(v.name);
  for (const t of g.graph.initializer) taken.add(t.name);
  for (const o of ifNode.output) taken.add(o);
  const fresh = (base: string) => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
  /** Keeps a branch-local name unless it collides. */
  const claim = (name: string) => (taken.has(name) ? fresh(name) : (taken.add(name), name));

  // Branch-local values: node outputs and initializers (branch inputs are not allowed in If).
  const rename = new Map<string, string>();
  const bridges: NodeProto[] = [];
  const branchOut = new Map<string, string>(); // branch value -> If output, first use
  sub.output.forEach((o, k) => {
    const target = ifNode.output[k]!;
    if (!branchOut.has(o.name) && sub.node.some((n) => n.output.includes(o.name))) branchOut.set(o.name, target);
  });
  for (const n of sub.node) {
    for (const o of n.output) {
      if (!o) continue;
      const target = branchOut.get(o);
      if (target !== undefined) {
        if (target) rename.set(o, target);
        else rename.set(o, fresh(o)); // an If output left unnamed ("") still needs a value name
      } else rename.set(o, claim(o));
    }
  }
  for (const t of sub.initializer) rename.set(t.name, claim(t.name));
  for (const t of sub.sparseInitializer ?? []) if (t.values) rename.set(t.values.name, claim(t.values.name));
  // Outputs not produced by a branch node (outer values, initializers, repeated outputs): bridge with Identity.
  sub.output.forEach((o, k) => {
    const target = ifNode.output[k]!;
    if (!target || rename.get(o.name) === target) return;
    bridges.push(create(NodeProtoSchema, { opType: "Identity", name: fresh(`${ifNode.name || "If"}/${branch}/Identity_${k}`), input: [rename.get(o.name) ?? o.name], output: [target] }));
  });

  const moved = sub.node.map((n) => {
    n.input = n.input.map((i) => rename.get(i) ?? i);
    n.output = n.output.map((o) => rename.get(o) ?? o);
    for (const s of subgraphsOf(n)) renameOuterReferences(s, rename);
    if (n.name) n.name = claim(n.name);
    return n;
  });
  for (const t of sub.initializer) t.name = rename.get(t.name) ?? t.name;
  for (const t of sub.sparseInitializer ?? []) if (t.values) t.values.name = rename.get(t.values.name) ?? t.values.name;
  for (const v of sub.valueInfo) {
    const r = rename.get(v.name);
    if (r && !g.valueInfo(r)) g.graph.valueInfo.push({ ...v, name: r });
  }
  g.graph.initializer.push(...sub.initializer);
  if (sub.sparseInitializer?.length) g.graph.sparseInitializer.push(...sub.sparseInitializer);
  g.graph.node.splice(at, 1, ...moved, ...bridges);
  g.invalidate();
}

/** Removes graph inputs that no node (or subgraph) reads and that are not graph outputs. Returns their names. */
export function removeUnusedInputs(g: OnnxGraph): string[] {
  const outputs = new Set(g.outputNames());
  const removed: string[] = [];
  g.graph.input = g.graph.input.filter((v) => {
    const keep = outputs.has(v.name) || g.consumers(v.name).length > 0;
    if (!keep) removed.push(v.name);
    return keep;
  });
  if (removed.length > 0) g.invalidate();
  return removed;
}

/** Removes nodes none of whose outputs reach a graph output. Returns the removed nodes. */
export function pruneDeadNodes(g: OnnxGraph): NodeProto[] {
  const live = new Set<NodeProto>();
  const stack = [...g.outputNames()];
  const seen = new Set<string>(stack);
  while (stack.length > 0) {
    const v = stack.pop()!;
    const p = g.producer(v);
    if (!p || live.has(p)) continue;
    live.add(p);
    const reads = [...p.input];
    for (const s of subgraphsOf(p)) reads.push(...outerReferences(s));
    for (const r of reads) {
      if (r && !seen.has(r)) {
        seen.add(r);
        stack.push(r);
      }
    }
  }
  const dead = g.nodes.filter((n) => !live.has(n));
  if (dead.length > 0) g.removeNodes(dead);
  return dead;
}

/** Removes initializers no node (or subgraph) reads and that are not graph outputs. Returns their names. */
export function removeUnusedInitializers(g: OnnxGraph): string[] {
  const outputs = new Set(g.outputNames());
  const unused = new Set(g.initializerNames().filter((n) => !outputs.has(n) && g.consumers(n).length === 0));
  if (unused.size === 0) return [];
  g.graph.initializer = g.graph.initializer.filter((t) => !unused.has(t.name));
  g.graph.input = g.graph.input.filter((v) => !unused.has(v.name));
  g.invalidate();
  return [...unused];
}
