/**
 * Explanations next to attribution rows: the `explanations` option of `Model.attribute` and
 * `Model.traceUpstream` (an {@link ExplanationIndex}, e.g. the ones shipped with
 * `tdb:brown-small`) fills each explained row's `explanation` and `explanationScore`.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { NodeTable } from "../attribution/node-table.js";
import { ExplanationIndex } from "../explainer/explanations.js";

/** The `explanations` option of `Model.attribute` and `Model.traceUpstream`. */
export interface WithExplanations {
  /** Explanations to attach to the table's rows (`loadExplanations(...)`). */
  explanations?: ExplanationIndex;
}

/** Takes `explanations` out of an options object (the features do not know it). */
export function splitExplanations<T extends object>(opts: T & WithExplanations): { explanations?: ExplanationIndex; rest: T } {
  if (opts === null || typeof opts !== "object" || !("explanations" in opts)) return { rest: opts };
  const { explanations, ...rest } = opts;
  if (explanations !== undefined && !(explanations instanceof ExplanationIndex)) {
    throw new TdbError("E_BAD_OPTION", "explanations must be an ExplanationIndex (from loadExplanations)", { value: typeof explanations, allowed: "an ExplanationIndex" });
  }
  return { explanations, rest: rest as T };
}

/** The table with each explained node's explanation and score filled in. */
export function withExplanations(table: NodeTable, explanations: ExplanationIndex | undefined): NodeTable {
  if (!explanations) return table;
  for (const n of table.nodes) {
    const e = explanations.get(n.id);
    if (e) {
      n.explanation = e.explanation;
      n.explanationScore = e.score;
    }
  }
  return table;
}
