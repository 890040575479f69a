/**
 * Patching sweeps and generation with edits, checked against the float64 reference (patched or
 * steered residual stream, argmax decoding done here) and against exact properties of patching.
 */
import { describe, expect, it } from "vitest";
import { patchFrom, steer } from "../../src/intervene/edits.js";
import type { Model } from "../../src/model/model.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, useTestModel, type TestModel } from "../helpers/models.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: FOUR_LAYER, seed: 9 }, (t, m) => {
  tm = t;
  model = m;
});

const CLEAN = [11, 40, 7, 120, 3, 66, 9];
const CORRUPT = [11, 40, 7, 250, 3, 66, 9]; // differs at position 3 only
const T = 5;
const D = 17;

function refDiff(tokens: number[], opts: Parameters<typeof gpt2Reference>[4] = {}): number {
  const r = gpt2Reference(tm.arch, tm.weights, [tokens], undefined, opts);
  const V = tm.arch.vocab_size;
  const last = (tokens.length - 1) * V;
  return r.logits.data[last + T]! - r.logits.data[last + D]!;
}

describe("patchingSweep", () => {
  it("resid_pre by layer x position agrees with the reference and with what patching must do", async () => {
    const g = await model.patchingSweep([CLEAN], [CORRUPT], { hook: "resid_pre", target: T, distractor: D });
    expect(g.dims).toEqual([FOUR_LAYER.n_layer, CLEAN.length]);
    expect(g.labels).toEqual(["layer", "pos"]);
    expect(g.cleanMetric).toBeCloseTo(refDiff(CLEAN), 4);
    expect(g.corruptedMetric).toBeCloseTo(refDiff(CORRUPT), 4);
    expect(Math.abs(g.cleanMetric - g.corruptedMetric)).toBeGreaterThan(1e-3);
    // Layer 0: only position 3 differs, so patching it restores the clean run and others do nothing.
    const norm = g.normalized();
    for (let p = 0; p < CLEAN.length; p++) {
      if (p === 3) expect(norm[p]).toBeCloseTo(1, 4);
      else expect(g.at(0, p)).toBeCloseTo(g.corruptedMetric, 5);
    }
    // A middle cell, against the reference with the clean vector written in.
    const cleanRef = gpt2Reference(tm.arch, tm.weights, [CLEAN]).cache.get("blocks.2.hook_resid_pre")!;
    const d = FOUR_LAYER.n_embd;
    for (const p of [3, 6]) {
      const vector = cleanRef.data.slice(p * d, (p + 1) * d);
      expect(g.at(2, p)).toBeCloseTo(refDiff(CORRUPT, { replaceResidPre: new Map([[2, { position: p, vector }]]) }), 4);
    }
  });

  it("z by layer x head equals patching each head one by one", async () => {
    const g = await model.patchingSweep([CLEAN], [CORRUPT], { hook: "z", target: T, distractor: D });
    expect(g.dims).toEqual([FOUR_LAYER.n_layer, FOUR_LAYER.n_head]);
    const c = await model.trace([CLEAN], { hooks: ["blocks.1.attn.hook_z"] });
    for (let h = 0; h < FOUR_LAYER.n_head; h++) {
      const one = await model.intervene([CORRUPT], [patchFrom("blocks.1.attn.hook_z", c, { at: { head: h } })]);
      expect(g.at(1, h)).toBeCloseTo(one.edited.logitDiff(T, D), 5);
    }
    const hp = await model.patchingSweep([CLEAN], [CORRUPT], { hook: "z", by: "head_position", target: T, distractor: D });
    expect(hp.dims).toEqual([FOUR_LAYER.n_layer, FOUR_LAYER.n_head, CLEAN.length]);
    // Before the changed token nothing differs.
    for (let p = 0; p < 3; p++) expect(hp.at(1, 0, p)).toBeCloseTo(hp.corruptedMetric, 5);
  });

  it("rejects prompts of different lengths and a missing metric", async () => {
    await expect(model.patchingSweep([CLEAN], [CORRUPT.slice(1)], { hook: "resid_pre", target: T, distractor: D })).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.patchingSweep([CLEAN], [CORRUPT], { hook: "resid_pre" })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(model.patchingSweep([CLEAN], [CORRUPT], { hook: "mlp_out", by: "head", target: T, distractor: D })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
  });
});

describe("generate", () => {
  function refGreedy(tokens: number[], n: number, steerAt?: { layer: number; v: number[] }): number[] {
    const out = [...tokens];
    const V = tm.arch.vocab_size;
    for (let i = 0; i < n; i++) {
      const r = gpt2Reference(tm.arch, tm.weights, [out], undefined, steerAt ? { addToResidPre: new Map([[steerAt.layer, steerAt.v]]) } : {});
      const last = r.logits.data.subarray((out.length - 1) * V, out.length * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (last[j]! > last[best]!) best = j;
      out.push(best);
    }
    return out;
  }

  it("greedy decoding matches argmax of the reference, with and without a steering edit", async () => {
    const g = await model.generate([11, 40, 7], { maxNewTokens: 6, stopAtEos: false });
    expect(g.tokens).toEqual(refGreedy([11, 40, 7], 6));
    expect(g.newTokens).toHaveLength(6);
    const v = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => Math.cos(i));
    const s = await model.generate([11, 40, 7], { maxNewTokens: 6, stopAtEos: false, edits: [steer("blocks.1.hook_resid_pre", v, 4)] });
    expect(s.tokens).toEqual(refGreedy([11, 40, 7], 6, { layer: 1, v: v.map((x) => x * 4) }));
    expect(s.tokens).not.toEqual(g.tokens);
  });

  it("sampling is reproducible per seed", async () => {
    const a = await model.generate("Hello", { maxNewTokens: 5, temperature: 1, seed: 3, stopAtEos: false });
    const b = await model.generate("Hello", { maxNewTokens: 5, temperature: 1, seed: 3, stopAtEos: false });
    expect(a.tokens).toEqual(b.tokens);
    await expect(model.generate("Hello", { temperature: -1 })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
  });
});
