/**
 * Acceptance (issue 10): on a generated GPT-2 with planted token-detector neurons (weights edited
 * so that neuron i of layer 0 fires on token t_i; see test/helpers/planted-model.ts), the offline
 * explainer names the planted token for >= 90% of them with score >= 0.8. Records come from a
 * brute-force harvest of random token rows (every row traced, top rows by peak, seeded random rows).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explainOffline, simulateOffline } from "../../src/explainer/offline.js";
import type { NodeRecords } from "../../src/explainer/types.js";
import { refPearson } from "../helpers/pearson.js";
import { bruteForceRecords, makePlantedModel, randomTokenRows, type PlantedModel } from "../helpers/planted-model.js";

let pm: PlantedModel;
let recs: NodeRecords[];

beforeAll(async () => {
  pm = await makePlantedModel(10);
  // 300 rows of 32 random tokens: each planted token occurs about 19 times.
  const rows = randomTokenRows(300, 32, pm.tm.arch.vocab_size, 5);
  recs = await bruteForceRecords(
    pm.model,
    pm.planted.map((p) => p.node),
    rows,
    { topK: 20, randomK: 20, seed: 9 },
  );
}, 120_000);
afterAll(async () => {
  await pm?.cleanup();
});

describe("planted token detectors", () => {
  it("the planting works: each neuron is high exactly on its token (independent of the explainer)", () => {
    for (const [i, p] of pm.planted.entries()) {
      const r = recs[i]!;
      for (const rec of [...r.top, ...r.random]) {
        rec.ids.forEach((id, k) => {
          if (id === p.tokenId) expect(rec.activations[k]).toBeGreaterThan(3);
          else expect(rec.activations[k]).toBeLessThan(0.2);
        });
      }
      expect(r.top[0]!.ids).toContain(p.tokenId);
    }
  });

  it("names the planted token with score >= 0.8 for >= 90% of the neurons", () => {
    let named = 0;
    const lines: string[] = [];
    for (const [i, p] of pm.planted.entries()) {
      const r = explainOffline(recs[i]!);
      const top = r.patterns[0];
      const ok = r.status === "ok" && top !== undefined && top.keys.length === 1 && top.keys[0] === `id:${p.tokenId}` && r.score >= 0.8;
      if (ok) {
        expect(top.tokens).toEqual([p.token]);
        expect(r.explanation.startsWith(`the token ${JSON.stringify(p.token)} (`), r.explanation).toBe(true);
        named++;
      }
      lines.push(`${p.node.index} ${JSON.stringify(p.token)}: ${r.explanation} score ${r.score.toFixed(3)}`);
      // The score is the correlation of the held-out activations with the trie's prediction.
      const sim = r.validation.map((v) => simulateOffline(r.patterns, v, r.fold));
      expect(sim).toEqual(r.simulated);
      expect(r.score).toBeCloseTo(refPearson(r.validation.flatMap((v) => v.activations), sim.flat()), 9);
    }
    expect(named / pm.planted.length, lines.join("\n")).toBeGreaterThanOrEqual(0.9);
  });
});
