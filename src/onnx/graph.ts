/**
 * A queryable view of one ONNX graph (the main graph or a subgraph): who produces and who
 * consumes each value, initializers, inputs and outputs, name scopes and fresh names.
 *
 * The view reads and edits the `GraphProto` in place. Its lookup maps are rebuilt lazily after
 * any edit made through its methods; after editing the protobuf directly (e.g. rewriting
 * `node.input`), call {@link OnnxGraph.invalidate}.
 *
 * @module
 */
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { forgetOuterReferences, outerReferences, subgraphsOf } from "./walk.js";

interface Index {
  producer: Map<string, NodeProto>;
  consumers: Map<string, NodeProto[]>;
  initializer: Map<string, TensorProto>;
  nodeByName: Map<string, NodeProto>;
  used: Set<string>;
}

/** A name is "in use" if it names a value or a node anywhere in the graph or its subgraphs. */
function collectNames(g: GraphProto, into: Set<string>): void {
  if (g.name) into.add(g.name);
  for (const v of g.input) into.add(v.name);
  for (const v of g.output) into.add(v.name);
  for (const v of g.valueInfo) into.add(v.name);
  for (const t of g.initializer) into.add(t.name);
  for (const t of g.sparseInitializer ?? []) if (t.values) into.add(t.values.name);
  for (const n of g.node) {
    if (n.name) into.add(n.name);
    for (const i of n.input) if (i) into.add(i);
    for (const o of n.output) if (o) into.add(o);
    for (const s of subgraphsOf(n)) collectNames(s, into);
  }
}

/**
 * A view of one ONNX graph with producer/consumer maps.
 *
 * @example
 * ```ts
 * const g = OnnxGraph.fromModel(decodeModel(bytes));
 * const softmax = g.nodesInScope("/transformer/h.0/attn").find((n) => n.opType === "Softmax");
 * const pattern = softmax?.output[0];
 * ```
 */
export class OnnxGraph {
  /** The model that owns this graph (for subgraphs: the model of the main graph). */
  readonly model: ModelProto;
  /** The graph protobuf this view reads and edits in place. */
  readonly graph: GraphProto;
  private index: Index | undefined;
  private readonly reserved = new Set<string>();

  /** A view of `graph`, which belongs to `model` (the main graph or one of its subgraphs). */
  constructor(model: ModelProto, graph: GraphProto) {
    this.model = model;
    this.graph = graph;
  }

  /**
   * A view of a model's main graph. Throws `E_ONNX_INVALID` if the model has none.
   *
   * @example
   * ```ts
   * const g = OnnxGraph.fromModel(model);
   * ```
   */
  static fromModel(model: ModelProto): OnnxGraph {
    if (!model.graph) throw new TdbError("E_ONNX_INVALID", "the model has no graph");
    return new OnnxGraph(model, model.graph);
  }

  /** Forgets the lookup maps; call after editing the `GraphProto` directly. */
  invalidate(): void {
    this.index = undefined;
    forgetOuterReferences(this.graph);
  }

  private get idx(): Index {
    if (this.index) return this.index;
    const producer = new Map<string, NodeProto>();
    const consumers = new Map<string, NodeProto[]>();
    const initializer = new Map<string, TensorProto>();
    const nodeByName = new Map<string, NodeProto>();
    for (const t of this.graph.initializer) initializer.set(t.name, t);
    for (const n of this.graph.node) this.indexNode(n, producer, consumers, nodeByName);
    const used = new Set<string>();
    collectNames(this.graph, used);
    this.index = { producer, consumers, initializer, nodeByName, used };
    return this.index;
  }

  private indexNode(n: NodeProto, producer: Map<string, NodeProto>, consumers: Map<string, NodeProto[]>, nodeByName: Map<string, NodeProto>): void {
    for (const o of n.output) if (o && !producer.has(o)) producer.set(o, n);
    const reads = new Set(n.input.filter((i) => i !== ""));
    for (const s of subgraphsOf(n)) for (const r of outerReferences(s)) reads.add(r);
    for (const i of reads) {
      const list = consumers.get(i);
      if (list) list.push(n);
      else consumers.set(i, [n]);
    }
    if (n.name && !nodeByName.has(n.name)) nodeByName.set(n.name, n);
  }

  /** The nodes, in their current order. */
  get nodes(): readonly NodeProto[] {
    return this.graph.node;
  }

  /** The node producing `valueName`, if a node of this graph does. */
  producer(valueName: string): NodeProto | undefined {
    return this.idx.producer.get(valueName);
  }

  /**
   * The nodes reading `valueName`, in graph order, each once. A node holding a subgraph that reads
   * the value from this scope (e.g. an `If` branch) counts as a consumer.
   */
  consumers(valueName: string): NodeProto[] {
    return [...(this.idx.consumers.get(valueName) ?? [])];
  }

  /** The initializer named `name`, if any. */
  initializer(name: string): TensorProto | undefined {
    return this.idx.initializer.get(name);
  }

  /** Names of all initializers, in order. */
  initializerNames(): string[] {
    return this.graph.initializer.map((t) => t.name);
  }

  /** Names of the graph inputs a caller feeds: inputs that are not also initializers. */
  inputNames(): string[] {
    return this.graph.input.map((v) => v.name).filter((n) => !this.idx.initializer.has(n));
  }

  /** Names of the graph outputs, in order. */
  outputNames(): string[] {
    return this.graph.output.map((v) => v.name);
  }

  /** True if `name` is a value of this graph: produced by a node, an initializer or an input. */
  hasValue(name: string): boolean {
    const i = this.idx;
    return i.producer.has(name) || i.initializer.has(name) || this.graph.input.some((v) => v.name === name);
  }

  /** Type information for a value, from the graph inputs, outputs or `value_info`. */
  valueInfo(name: string): ValueInfoProto | undefined {
    const g = this.graph;
    return g.input.find((v) => v.name === name) ?? g.output.find((v) => v.name === name) ?? g.valueInfo.find((v) => v.name === name);
  }

  /** The first node named `name`, if any. */
  nodeByName(name: string): NodeProto | undefined {
    return this.idx.nodeByName.get(name);
  }

  /**
   * The nodes in a dependency order (producers before consumers), keeping the current order
   * where it already is one. Throws `E_ONNX_INVALID` naming a node on a cycle.
   */
  topologicalOrder(): NodeProto[] {
    const nodes = this.graph.node;
    const state = new Map<NodeProto, 1 | 2>(); // 1: on the stack, 2: done
    const order: NodeProto[] = [];
    const deps = (n: NodeProto): NodeProto[] => {
      const reads = new Set(n.input);
      for (const s of subgraphsOf(n)) for (const r of outerReferences(s)) reads.add(r);
      const out: NodeProto[] = [];
      for (const r of reads) {
        const p = r ? this.producer(r) : undefined;
        if (p && p !== n) out.push(p);
        else if (p === n) throw cycleError(n);
      }
      return out;
    };
    for (const root of nodes) {
      if (state.has(root)) continue;
      const stack: { node: NodeProto; deps: NodeProto[]; next: number }[] = [{ node: root, deps: deps(root), next: 0 }];
      state.set(root, 1);
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const d = top.deps[top.next++];
        if (d === undefined) {
          state.set(top.node, 2);
          order.push(top.node);
          stack.pop();
          continue;
        }
        const s = state.get(d);
        if (s === 2) continue;
        if (s === 1) throw cycleError(d);
        state.set(d, 1);
        stack.push({ node: d, deps: deps(d), next: 0 });
      }
    }
    return order;
  }

  /** Reorders `graph.node` into {@link topologicalOrder}. */
  sortTopologically(): void {
    this.graph.node = this.topologicalOrder();
    this.invalidate();
  }

  /**
   * The name scope of a node: its name up to the last `/`.
   *
   * @example
   * ```ts
   * g.scopeOf(softmax); // "/transformer/h.0/attn" for "/transformer/h.0/attn/Softmax"
   * ```
   */
  scopeOf(node: NodeProto): string {
    const i = node.name.lastIndexOf("/");
    return i < 0 ? "" : node.name.slice(0, i);
  }

  /** Nodes whose name starts with `prefix + "/"` (a trailing `/` on `prefix` is ignored). */
  nodesInScope(prefix: string): NodeProto[] {
    const p = prefix.endsWith("/") ? prefix : `${prefix}/`;
    return this.graph.node.filter((n) => n.name.startsWith(p));
  }

  /**
   * A value or node name not used anywhere in the graph or its subgraphs, nor returned before
   * by this view: `base` itself when free, else `base_1`, `base_2`, ... The name is reserved.
   *
   * @example
   * ```ts
   * const out = g.uniqueName("/tdb/tap/x"); // "/tdb/tap/x", then "/tdb/tap/x_1"
   * ```
   */
  uniqueName(base: string): string {
    const used = this.idx.used;
    let name = base;
    for (let k = 1; used.has(name) || this.reserved.has(name); k++) name = `${base}_${k}`;
    this.reserved.add(name);
    return name;
  }

  /**
   * The opset version the model imports for `domain` (`""` and `"ai.onnx"` are the same
   * domain), or 0 when the model does not import it.
   */
  opsetVersion(domain = ""): number {
    const norm = (d: string) => (d === "ai.onnx" ? "" : d);
    const want = norm(domain);
    const o = this.model.opsetImport.find((x) => norm(x.domain ?? "") === want);
    return o ? Number(o.version ?? 0n) : 0;
  }

  /**
   * Inserts a node: at the end, or before/after a given node. The node's inputs should be
   * available at that point (graph order is dependency order in ONNX).
   * Returns the node.
   */
  addNode(node: NodeProto, where: { before?: NodeProto; after?: NodeProto; index?: number } = {}): NodeProto {
    const nodes = this.graph.node;
    let at = nodes.length;
    if (where.index !== undefined) at = where.index;
    else if (where.before) at = this.indexOfNode(where.before);
    else if (where.after) at = this.indexOfNode(where.after) + 1;
    nodes.splice(at, 0, node);
    forgetOuterReferences(this.graph, false);
    const i = this.index;
    if (i) {
      this.indexNode(node, i.producer, i.consumers, i.nodeByName);
      // Consumer lists are in graph order: re-sort the ones this node joined unless appended.
      if (at !== nodes.length - 1) this.index = undefined;
      else {
        if (node.name) i.used.add(node.name);
        for (const v of [...node.input, ...node.output]) if (v) i.used.add(v);
        for (const s of subgraphsOf(node)) collectNames(s, i.used);
      }
    }
    return node;
  }

  /** Removes nodes from the graph (by identity). */
  removeNodes(nodes: Iterable<NodeProto>): void {
    const drop = new Set(nodes);
    this.graph.node = this.graph.node.filter((n) => !drop.has(n));
    this.invalidate();
  }

  /** Index of a node in `graph.node`; throws `E_ONNX_INVALID` if it is not in this graph. */
  indexOfNode(node: NodeProto): number {
    const at = this.graph.node.indexOf(node);
    if (at < 0) throw new TdbError("E_ONNX_INVALID", `node ${node.name || node.opType} is not in graph ${this.graph.name}`, { value: node.name });
    return at;
  }

  /** Adds an initializer; throws `E_ONNX_INVALID` if the name is already a value of the graph. */
  addInitializer(tensor: TensorProto): void {
    if (this.idx.initializer.has(tensor.name) || this.idx.producer.has(tensor.name)) {
      throw new TdbError("E_ONNX_INVALID", `cannot add initializer ${tensor.name}: the name is already a value of the graph`, { value: tensor.name });
    }
    this.graph.initializer.push(tensor);
    this.idx.initializer.set(tensor.name, tensor);
    this.idx.used.add(tensor.name);
  }

  /** Removes an initializer (and a graph input of the same name, if any). Returns whether it existed. */
  removeInitializer(name: string): boolean {
    const before = this.graph.initializer.length;
    this.graph.initializer = this.graph.initializer.filter((t) => t.name !== name);
    this.graph.input = this.graph.input.filter((v) => v.name !== name);
    this.index = undefined;
    return this.graph.initializer.length !== before;
  }

  /** Appends a graph input. */
  addInput(info: ValueInfoProto): void {
    this.graph.input.push(info);
    this.index?.used.add(info.name);
    forgetOuterReferences(this.graph, false);
  }

  /** Appends a graph output. */
  addOutput(info: ValueInfoProto): void {
    this.graph.output.push(info);
    this.index?.used.add(info.name);
    forgetOuterReferences(this.graph, false);
  }

  /** Views of the subgraphs a node holds (e.g. an If's two branches), in attribute order. */
  subgraphs(node: NodeProto): OnnxGraph[] {
    return subgraphsOf(node).map((s) => new OnnxGraph(this.model, s));
  }
}

function cycleError(n: NodeProto): TdbError {
  return new TdbError("E_ONNX_INVALID", `graph has a cycle through node ${n.name || n.opType} (outputs ${n.output.join(", ")})`, { value: n.name });
}
