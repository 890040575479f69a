/**
 * Which nodes a backward pass must differentiate: those on a path from some `wrt` value to the
 * loss, through float values, not through stop-gradient values.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { outerReferences, subgraphsOf } from "../onnx/walk.js";
import { FLOAT_TYPES, type ValueFactsTable } from "./infer.js";

/** The part of a graph gradients flow through. */
export interface GradientPath {
  /** Values depending on a `wrt` value through float values (the `wrt` values included). */
  reached: ReadonlySet<string>;
  /** Nodes to differentiate, in reverse dependency order (consumers before producers). */
  nodes: NodeProto[];
}

/** Whether a value can carry a gradient (float, or of unknown type). */
export function isDifferentiable(facts: ValueFactsTable, name: string): boolean {
  const t = facts.elemType(name);
  return t === undefined || FLOAT_TYPES.has(t);
}

function readsOf(n: NodeProto): string[] {
  const reads = n.input.filter((i) => i !== "");
  for (const s of subgraphsOf(n)) reads.push(...outerReferences(s));
  return reads;
}

/**
 * Finds the nodes between `wrt` and `loss`. A stopped value passes no gradient to its producer;
 * integer and bool values carry none.
 */
export function gradientPath(g: OnnxGraph, facts: ValueFactsTable, loss: string, wrt: readonly string[], stop: ReadonlySet<string>): GradientPath {
  // Forward: values that depend on a wrt value.
  const reached = new Set<string>(wrt);
  const queue = [...wrt];
  while (queue.length > 0) {
    const v = queue.pop()!;
    for (const n of g.consumers(v)) {
      for (const o of n.output) {
        if (!o || reached.has(o) || stop.has(o) || !isDifferentiable(facts, o)) continue;
        reached.add(o);
        queue.push(o);
      }
    }
  }
  // Backward: values the loss depends on through non-stopped values.
  const needed = new Set<string>([loss]);
  const stack = [loss];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (stop.has(v)) continue;
    const p = g.producer(v);
    if (!p) continue;
    for (const i of readsOf(p)) {
      if (!needed.has(i)) {
        needed.add(i);
        stack.push(i);
      }
    }
  }
  const onPath = (n: NodeProto) =>
    n.output.some((o) => o && reached.has(o) && needed.has(o) && !stop.has(o)) && readsOf(n).some((i) => reached.has(i));
  const nodes = g.topologicalOrder().filter(onPath).reverse();
  return { reached, nodes };
}
