/**
 * Walking the graphs of a model: subgraphs held by node attributes (`If`, `Loop`, `Scan`), the
 * names a subgraph reads from enclosing scopes, and renaming such references.
 *
 * @module
 */
import type { AttributeProto, GraphProto, ModelProto, NodeProto } from "onnx-buf";

/** The subgraphs a node holds in its attributes (`then_branch`, `else_branch`, `body`, ...). */
export function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push(a.g);
    for (const g of a.graphs ?? []) out.push(g);
  }
  return out;
}

/** The attributes of a node that hold subgraphs, with the graphs. */
export function graphAttributes(node: NodeProto): { attribute: AttributeProto; graphs: GraphProto[] }[] {
  const out: { attribute: AttributeProto; graphs: GraphProto[] }[] = [];
  for (const a of node.attribute) {
    const gs = [...(a.g ? [a.g] : []), ...(a.graphs ?? [])];
    if (gs.length > 0) out.push({ attribute: a, graphs: gs });
  }
  return out;
}

/**
 * Calls `visit` for every graph of a model: the main graph, then subgraphs depth-first, then the
 * graphs of training info. Functions (`model.functions`) hold nodes, not graphs; their node
 * subgraphs are visited too.
 */
export function forEachGraph(model: ModelProto, visit: (g: GraphProto) => void): void {
  const rec = (g: GraphProto) => {
    visit(g);
    for (const n of g.node) for (const s of subgraphsOf(n)) rec(s);
  };
  if (model.graph) rec(model.graph);
  for (const f of model.functions ?? []) for (const n of f.node) for (const s of subgraphsOf(n)) rec(s);
  for (const t of model.trainingInfo ?? []) {
    if (t.initialization) rec(t.initialization);
    if (t.algorithm) rec(t.algorithm);
  }
}

/** Names a graph defines itself: inputs, initializers, sparse initializers and node outputs. */
export function definedNames(g: GraphProto): Set<string> {
  const s = new Set<string>();
  for (const v of g.input) s.add(v.name);
  for (const t of g.initializer) s.add(t.name);
  for (const t of g.sparseInitializer ?? []) if (t.values) s.add(t.values.name);
  for (const n of g.node) for (const o of n.output) if (o) s.add(o);
  return s;
}

/**
 * Names a subgraph (and its own subgraphs) reads without defining: references to enclosing
 * scopes. Cached per graph object; call {@link forgetOuterReferences} after editing a subgraph.
 */
export function outerReferences(g: GraphProto): ReadonlySet<string> {
  const hit = outerCache.get(g);
  if (hit) return hit;
  const defined = definedNames(g);
  const out = new Set<string>();
  const use = (name: string) => {
    if (name && !defined.has(name)) out.add(name);
  };
  for (const n of g.node) {
    for (const i of n.input) use(i);
    for (const s of subgraphsOf(n)) for (const r of outerReferences(s)) use(r);
  }
  for (const o of g.output) use(o.name);
  outerCache.set(g, out);
  return out;
}

const outerCache = new WeakMap<GraphProto, ReadonlySet<string>>();

/** Drops the cached {@link outerReferences} of a graph and (when `deep`) of all its subgraphs. */
export function forgetOuterReferences(g: GraphProto, deep = true): void {
  outerCache.delete(g);
  if (deep) for (const n of g.node) for (const s of subgraphsOf(n)) forgetOuterReferences(s);
}

/**
 * Renames, inside a subgraph and its subgraphs, every reference to an enclosing-scope value
 * `from` -> `to` (node inputs and graph outputs), unless the subgraph defines a value of that name
 * itself (shadowing). Returns the number of references renamed.
 */
export function renameOuterReferences(g: GraphProto, rename: ReadonlyMap<string, string>): number {
  const defined = definedNames(g);
  const live = new Map([...rename].filter(([from]) => !defined.has(from)));
  if (live.size === 0) return 0;
  let count = 0;
  for (const n of g.node) {
    n.input = n.input.map((i) => {
      const to = live.get(i);
      if (to === undefined) return i;
      count++;
      return to;
    });
    for (const s of subgraphsOf(n)) count += renameOuterReferences(s, live);
  }
  for (const o of g.output) {
    const to = live.get(o.name);
    if (to !== undefined) {
      o.name = to;
      count++;
    }
  }
  outerCache.delete(g);
  return count;
}
