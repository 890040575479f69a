/**
 * Memory budgets (`maxBatchBytes`) that make `trace` / `intervene` run in chunks of a chosen
 * number of rows, for tests that compare chunked runs with unchunked ones.
 */
import { editTargets } from "../../src/intervene/compile.js";
import type { Edit } from "../../src/intervene/edits.js";
import type { HookName } from "../../src/hooks/names.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
import { planChunks, rowBytes } from "../../src/runtime/memory.js";

/**
 * The budget under which a call of `rows` result rows (variants + 1 for variant calls: the clean
 * row) of `S` positions runs `chunk` rows at a time.
 */
export async function budgetForChunks(
  model: Model,
  o: { rows: number; chunk: number; S: number; logitPositions: number; hooks?: readonly HookName[]; edits?: readonly Edit[] },
): Promise<number> {
  const rt = runtimeOf(model);
  const row = rowBytes(rt.config, o.S, o.logitPositions, o.hooks ?? [], o.edits ? await editTargets(rt, o.edits, o.S) : []);
  const budget = o.rows * row.kept + (o.chunk + 0.5) * row.running;
  const planned = planChunks(o.rows, row, budget, "test").chunkRows;
  if (planned !== o.chunk) throw new Error(`budgetForChunks: planned ${planned} rows a chunk, wanted ${o.chunk}`);
  return budget;
}
