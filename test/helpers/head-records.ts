/**
 * Brute-force head records for tests: traces every token row (each row starts with BOS, and the
 * excerpt is the row without it) and computes, per query of the excerpt, the head's largest
 * attention to a key other than BOS and that key (as an excerpt index), straight from
 * `hook_pattern`; keeps the `topK` rows with the largest peak (ties by row order) and `randomK`
 * rows drawn with a seeded RNG, in the `NodeRecords` shape. Written apart from the harvester.
 */
import type { ActivationRecord, HeadNode, NodeRecords } from "../../src/explainer/types.js";
import type { HookName } from "../../src/hooks/names.js";
import type { Model } from "../../src/model/model.js";
import { pickRows } from "./planted-model.js";

/** Records of `heads` over `rows` (each `[BOS, ...excerpt]`). */
export async function bruteForceHeadRecords(
  model: Model,
  heads: readonly HeadNode[],
  rows: readonly number[][],
  opts: { topK?: number; randomK?: number; seed?: number } = {},
): Promise<NodeRecords[]> {
  const topK = opts.topK ?? 20;
  const randomK = opts.randomK ?? 20;
  const layers = [...new Set(heads.map((h) => h.layer))];
  const t = await model.trace(rows, { hooks: layers.map((l) => `blocks.${l}.attn.hook_pattern` as HookName), prependBos: false });
  const str = (id: number) => model.tokenizer.decode([id]);
  return heads.map((node) => {
    const pattern = t.cache.get(`blocks.${node.layer}.attn.hook_pattern`);
    const recs: ActivationRecord[] = rows.map((row, b) => {
      const activations: number[] = [];
      const keys: number[] = [];
      // Excerpt query q is row position q + 1; keys are row positions 1..q + 1 (BOS left out).
      for (let q = 0; q + 1 < row.length; q++) {
        let best = -Infinity;
        let arg = -1;
        for (let k = 1; k <= q + 1; k++) {
          const v = pattern.at(b, node.head, q + 1, k);
          if (v > best) {
            best = v;
            arg = k - 1;
          }
        }
        activations.push(best);
        keys.push(arg);
      }
      const ids = row.slice(1);
      return { tokens: ids.map(str), ids, activations, keys, source: { doc: `row${b}`, offset: 0 } };
    });
    const picked = pickRows(recs.map((r) => Math.max(...r.activations)), topK, randomK, opts.seed ?? 11);
    const flat = recs.flatMap((r) => r.activations);
    return {
      node,
      top: picked.top.map((r) => recs[r]!),
      random: picked.random.map((r) => recs[r]!),
      stats: { count: flat.length, max: Math.max(...flat), mean: flat.reduce((a, b) => a + b, 0) / flat.length, density: 1, quantiles: [0, 0, 0, 0] },
    };
  });
}
