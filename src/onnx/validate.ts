/**
 * Structural checks of a graph after surgery: every value read is defined, no value is defined
 * twice, outputs exist, nodes come in dependency order. Subgraphs are checked too, with the
 * names of their enclosing scopes visible.
 *
 * @module
 */
import type { GraphProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { OnnxGraph } from "./graph.js";
import { subgraphsOf } from "./walk.js";

/** Options of {@link graphProblems} and {@link validateGraph}. */
export interface ValidateOptions {
  /** Names visible from enclosing scopes (for a subgraph checked on its own). */
  outerNames?: Iterable<string>;
  /** Also require that a node comes after the producers of its inputs. Default true. */
  ordered?: boolean;
}

function where(path: string, what: string): string {
  return path ? `${path}: ${what}` : what;
}

function check(g: GraphProto, outer: ReadonlySet<string>, ordered: boolean, path: string, problems: string[]): void {
  const defined = new Set<string>();
  const define = (name: string, by: string) => {
    if (!name) return;
    if (defined.has(name)) problems.push(where(path, `value ${JSON.stringify(name)} is defined twice (again by ${by})`));
    defined.add(name);
  };
  for (const t of g.initializer) define(t.name, "an initializer");
  for (const t of g.sparseInitializer ?? []) if (t.values) define(t.values.name, "a sparse initializer");
  for (const v of g.input) if (!defined.has(v.name)) define(v.name, "a graph input"); // inputs may repeat initializers (IR < 4)
  const produced = new Set<string>();
  for (const n of g.node) for (const o of n.output) if (o) produced.add(o);
  const label = (n: { name: string; opType: string }) => JSON.stringify(n.name || n.opType);
  const visible = (name: string) => defined.has(name) || outer.has(name);
  for (const n of g.node) {
    for (const i of n.input) {
      if (!i || visible(i)) continue;
      if (!ordered && produced.has(i)) continue;
      problems.push(where(path, produced.has(i) ? `node ${label(n)} reads ${JSON.stringify(i)} before it is produced` : `node ${label(n)} reads undefined value ${JSON.stringify(i)}`));
    }
    const subs = subgraphsOf(n);
    const scope = subs.length > 0 ? new Set([...outer, ...defined, ...(ordered ? [] : produced)]) : outer;
    for (const s of subs) check(s, scope, ordered, `${path}${path ? " > " : ""}${n.name || n.opType}/${s.name || "subgraph"}`, problems);
    for (const o of n.output) define(o, `node ${label(n)}`);
  }
  for (const o of g.output) {
    if (!visible(o.name)) problems.push(where(path, `graph output ${JSON.stringify(o.name)} is not produced`));
  }
}

/** All structural problems of a graph (empty when it is sound). */
export function graphProblems(g: OnnxGraph, opts: ValidateOptions = {}): string[] {
  const problems: string[] = [];
  check(g.graph, new Set(opts.outerNames ?? []), opts.ordered ?? true, "", problems);
  return problems;
}

/**
 * Throws `E_ONNX_INVALID` listing the first problems if the graph is not structurally sound: a
 * node input that no node, initializer, graph input or enclosing scope defines (empty names
 * mean "absent" and are fine), a value defined twice, a graph output nothing produces, or (by
 * default) a node placed before the producer of one of its inputs.
 *
 * @example
 * ```ts
 * addTapOutput(g, value);
 * validateGraph(g); // throws if the surgery left a dangling name
 * ```
 */
export function validateGraph(g: OnnxGraph, opts: ValidateOptions = {}): void {
  const problems = graphProblems(g, opts);
  if (problems.length === 0) return;
  const shown = problems.slice(0, 5);
  const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : "";
  throw new TdbError("E_ONNX_INVALID", `invalid graph ${g.graph.name || "(unnamed)"}: ${shown.join("; ")}${more}`, { value: problems });
}
