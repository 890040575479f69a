/**
 * Planted heads: on a GPT-2 whose weights are set by hand (test/circuits/_induction-model.ts) so
 * that head 0.0 attends to the previous token and head 1.0 is an induction head, records harvested
 * by brute force from the traced attention patterns (test/helpers/head-records.ts) are explained
 * offline: the explainer names each planted relation with score >= 0.8. The planting itself is
 * checked on the traced patterns first, without the explainer; each score is checked against the
 * reference Pearson correlation of the held-out activations and the simulation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { explainHeadOffline, relationKeys } from "../../src/explainer/offline-heads.js";
import type { NodeRecords } from "../../src/explainer/types.js";
import { Model } from "../../src/model/model.js";
import { ALPHABET, makeInductionModel } from "../circuits/_induction-model.js";
import { bruteForceHeadRecords } from "../helpers/head-records.js";
import type { TestModel } from "../helpers/models.js";
import { refPearson } from "../helpers/pearson.js";

/** The documented 0..10 scale of simulations: min(10, 10 relu(s) / max). */
const onScale = (s: number[], max: number) => s.map((v) => Math.min(10, (10 * Math.max(0, v)) / max));

let tm: TestModel;
let model: Model;
let prev: NodeRecords;
let induction: NodeRecords;
let other: NodeRecords;

/** 31-token rows after BOS: even rows hold a repeated segment of 5..10 distinct tokens between random filler, odd rows are random tokens. */
function rows(count: number, bos: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, r) => {
    const tok = () => rng.int(ALPHABET);
    if (r % 2 === 1) return [bos, ...Array.from({ length: 31 }, tok)];
    const m = 5 + rng.int(6);
    const seg: number[] = [];
    while (seg.length < m) {
      const t = tok();
      if (!seg.includes(t)) seg.push(t);
    }
    const before = rng.int(31 - 2 * m + 1);
    const after = 31 - 2 * m - before;
    return [bos, ...Array.from({ length: before }, tok), ...seg, ...seg, ...Array.from({ length: after }, tok)];
  });
}

beforeAll(async () => {
  tm = await makeInductionModel();
  model = await Model.load(tm.dir);
  const heads = [
    { kind: "attention_head", layer: 0, head: 0 },
    { kind: "attention_head", layer: 1, head: 0 },
    { kind: "attention_head", layer: 0, head: 1 },
  ] as const;
  [prev, induction, other] = (await bruteForceHeadRecords(model, heads, rows(120, model.bosTokenId, 3), { topK: 20, randomK: 20, seed: 4 })) as [NodeRecords, NodeRecords, NodeRecords];
}, 120_000);
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
});

describe("planted heads (hand-set weights)", () => {
  it("the planting works on the traced patterns (independent of the explainer)", () => {
    // Head 0.0: from every query but the first, the strongest non-BOS attention is the previous token, near 1.
    const all = [...prev.top, ...prev.random];
    const places = all.flatMap((r) => r.activations.map((a, q) => ({ a, q, key: r.keys![q]! })).filter((p) => p.q >= 1));
    expect(places.every((p) => p.key === p.q - 1)).toBe(true);
    expect(Math.min(...places.map((p) => p.a))).toBeGreaterThan(0.9);
    // Head 1.0: where the query token occurred before, the strongest attention is the token after one of its copies.
    const ind = [...induction.top, ...induction.random].flatMap((r) =>
      r.ids.map((id, q) => ({ copied: r.ids.slice(0, q).includes(id), after: r.keys![q]! >= 1 && r.ids[r.keys![q]! - 1] === id && r.keys![q]! - 1 < q })),
    );
    const copies = ind.filter((p) => p.copied);
    expect(copies.length).toBeGreaterThan(200);
    expect(copies.every((p) => p.after)).toBe(true);
  });

  it("head 0.0 is named a previous-token head, score >= 0.8", () => {
    const r = explainHeadOffline(prev);
    expect(r.pattern?.kind).toBe("previous");
    expect(r.explanation).toMatch(/^attends to the previous token/);
    expect(r.score).toBeGreaterThanOrEqual(0.8);
    expect(r.score).toBeCloseTo(refPearson(r.validation.flatMap((v) => v.activations), onScale(r.simulated.flat(), r.maxActivation)), 9);
  });

  it("head 1.0 is named an induction head, score >= 0.8", () => {
    const r = explainHeadOffline(induction);
    expect(r.pattern?.kind).toBe("induction");
    expect(r.explanation).toMatch(/\(induction\)/);
    expect(r.pattern!.agreement).toBeGreaterThan(0.9);
    expect(r.score).toBeGreaterThanOrEqual(0.8);
    expect(r.score).toBeCloseTo(refPearson(r.validation.flatMap((v) => v.activations), onScale(r.simulated.flat(), r.maxActivation)), 9);
    // Its simulation is high exactly where the induction rule points at a key.
    const v = r.validation[0]!;
    const keys = relationKeys("induction", v.ids);
    const hi = r.simulated[0]!.filter((_, q) => keys[q]! >= 0);
    const lo = r.simulated[0]!.filter((_, q) => keys[q]! < 0);
    if (hi.length > 0 && lo.length > 0) expect(Math.min(...hi)).toBeGreaterThan(Math.max(...lo));
  });

  it("a head with random weights (0.1) is not named previous-token or induction", () => {
    const r = explainHeadOffline(other);
    expect(["previous", "induction"]).not.toContain(r.pattern?.kind);
  });
});
