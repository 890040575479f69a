/**
 * Direct logit attribution: completeness (components sum to the logit difference with the final
 * LayerNorm scale frozen) and agreement with the float64 reference, component by component.
 */
import { describe, expect, it } from "vitest";
import type { Model } from "../../src/model/model.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, useTestModel, type TestModel } from "../helpers/models.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: FOUR_LAYER, seed: 21 }, (t, m) => {
  tm = t;
  model = m;
});

const P = [4, 99, 23, 180, 7, 64, 12];
const T = [31, 32];
const D = 77;

describe("directLogitAttribution", () => {
  it("components sum to the logit difference (frozen final LayerNorm scale)", async () => {
    const r = await model.directLogitAttribution([P], { target: T, distractor: D });
    expect(r.components).toHaveLength(2 + FOUR_LAYER.n_layer * (FOUR_LAYER.n_head + 2) + 1);
    expect(Math.abs(r.total - r.logitDiff)).toBeLessThan(1e-3 * Math.max(1, Math.abs(r.logitDiff)));
    expect(Math.abs(r.logitDiff)).toBeGreaterThan(1e-3);
  });

  it("every component agrees with the float64 reference", async () => {
    const r = await model.directLogitAttribution([P], { target: T, distractor: D, position: 4 });
    const ref = gpt2Reference(tm.arch, tm.weights, [P]);
    const d = FOUR_LAYER.n_embd;
    const V = FOUR_LAYER.vocab_size;
    const S = P.length;
    const pos = 4;
    const wte = tm.weights.get("transformer.wte.weight")!.data;
    const lnw = tm.weights.get("transformer.ln_f.weight")!.data;
    const lnb = tm.weights.get("transformer.ln_f.bias")!.data;
    const u = new Float64Array(d);
    for (let i = 0; i < d; i++) u[i] = (wte[T[0]! * d + i]! + wte[T[1]! * d + i]!) / 2 - wte[D * d + i]!;
    const scale = ref.cache.get("ln_final.hook_scale")!.data[pos]!;
    const gw = Float64Array.from(u, (x, i) => x * lnw[i]!);
    const m = gw.reduce((a, b) => a + b, 0) / d;
    const g = gw.map((x) => (x - m) / scale);
    const at = (name: string, off: number) => {
      const t = ref.cache.get(name)!;
      let s = 0;
      for (let i = 0; i < d; i++) s += t.data[off + i]! * g[i]!;
      return s;
    };
    const want = new Map<string, number>([
      ["embed", at("hook_embed", pos * d)],
      ["pos_embed", at("hook_pos_embed", pos * d)],
      ["ln_final.b", Array.from(lnb).reduce((s, b, i) => s + b * u[i]!, 0)],
    ]);
    for (let l = 0; l < FOUR_LAYER.n_layer; l++) {
      for (let h = 0; h < FOUR_LAYER.n_head; h++) want.set(`L${l}H${h}`, at(`blocks.${l}.attn.hook_result`, (pos * FOUR_LAYER.n_head + h) * d));
      want.set(`mlp.${l}`, at(`blocks.${l}.hook_mlp_out`, pos * d));
      const bO = tm.weights.get(`transformer.h.${l}.attn.c_proj.bias`)!.data;
      want.set(`b_O.${l}`, Array.from(bO).reduce((s, b, i) => s + b * g[i]!, 0));
    }
    for (const c of r.components) expect(c.value, c.name).toBeCloseTo(want.get(c.name)!, 4);
    // And the reference's own logit difference at that position.
    const lg = ref.logits.data;
    const refDiff = (lg[(pos * V) + T[0]!]! + lg[pos * V + T[1]!]!) / 2 - lg[pos * V + D]!;
    expect(r.logitDiff).toBeCloseTo(refDiff, 4);
    void S;
  });

  it("logit lens: the last row is the model's own logit difference", async () => {
    const rows = await model.logitLens([P], { target: T, distractor: D });
    expect(rows.map((r) => r.hook)).toEqual(["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre", "blocks.3.hook_resid_pre", "blocks.3.hook_resid_post"]);
    const t = await model.trace([P], { hooks: [] });
    expect(rows[rows.length - 1]!.logitDiff).toBeCloseTo(t.logitDiff(T, D), 4);
  });

  it("bad target/distractor", async () => {
    await expect(model.directLogitAttribution([P], { target: 5, distractor: 5 })).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.directLogitAttribution([P], { target: [], distractor: 5 })).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.directLogitAttribution("Hello", { target: " internationalization", distractor: " a" })).rejects.toMatchObject({ code: "E_NOT_SINGLE_TOKEN" });
    await expect(model.directLogitAttribution([P], { target: 1, distractor: 2, position: 7 })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
  });
});
