/**
 * Acceptance: every hook of the patched graph equals the independent float64 forward pass
 * (test/reference) within 1e-4, on a 2-layer and a 4-layer generated model, for one prompt and
 * for a right-padded batch of three; and patching does not change the logits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model, runtimeOf } from "../../src/model/model.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { gpt2Reference, type RefResult } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, lcgRows, makeTestModel, maxAbsDiff, realPositions, type TestModel } from "../helpers/models.js";
import type { Activation } from "../../src/trace/activation.js";

const TOL = 1e-4;



describe.each([
  { label: "2-layer", config: TINY_GPT2 },
  { label: "4-layer", config: FOUR_LAYER },
])("$label model: hooks equal the float64 reference", ({ config }) => {
  let tm: TestModel;
  let model: Model;
  beforeAll(async () => {
    tm = await makeTestModel({ config, seed: 11 });
    model = await Model.load(tm.dir);
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });

  function check(act: Activation, ref: RefResult["cache"] extends Map<string, infer T> ? T : never, lengths: number[]): number {
    expect(act.dims).toEqual(ref.dims);
    return maxAbsDiff(act.data, ref.data, realPositions(act, lengths));
  }

  it("discovers every hook of the table", () => {
    expect(runtimeOf(model).hookMap.unavailable.size).toBe(0);
    expect(model.hookNames).toHaveLength(2 + 16 * config.n_layer + 1);
  });

  it.each([
    { label: "batch 1", lengths: [9] },
    { label: "padded batch of 3", lengths: [7, 3, 5] },
  ])("every hook within 1e-4 ($label)", async ({ lengths }) => {
    const rows = lcgRows(lengths, lengths.length * 31 + config.n_layer, config.vocab_size);
    const t = await model.trace(rows, { hooks: () => true });
    const S = Math.max(...lengths);
    const padded = rows.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]);
    const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]);
    const ref = gpt2Reference(config, tm.weights, padded, mask);

    const names = runtimeOf(model).selectHooks(() => true);
    expect(names.length).toBe(model.hookNames.length);
    const worst: Record<string, number> = {};
    for (const name of names) {
      const r = ref.cache.get(name);
      expect(r, `reference lacks ${name}`).toBeDefined();
      worst[name] = check(t.cache.get(name), r!, lengths);
    }
    worst.logits = check(t.logits, ref.logits, lengths);
    if (process.env.TDB_TEST_VERBOSE) console.log(worst);
    const bad = Object.entries(worst).filter(([, d]) => !(d <= TOL));
    expect(bad).toEqual([]);
    // The comparison must be able to fail: the reference differs from a perturbed copy.
    const perturbed = Float64Array.from(ref.logits.data, (x, i) => (i === 0 ? x + 1e-3 : x));
    expect(maxAbsDiff(t.logits.data, perturbed)).toBeGreaterThan(TOL);
  });

  it("patched logits equal the unpatched graph's within 1e-6", async () => {
    const rows = lcgRows([12, 4], 5, config.vocab_size);
    const patched = await model.trace(rows, { hooks: () => true });
    const plain = await model.forward(rows);
    expect(plain.dims).toEqual(patched.logits.dims);
    expect(maxAbsDiff(patched.logits.data, plain.data)).toBeLessThanOrEqual(1e-6);
  });

  it("caches only the requested hooks, and positions select query positions", async () => {
    const rows = lcgRows([8], 3, config.vocab_size);
    const full = await model.trace(rows, { hooks: ["blocks.1.attn.hook_pattern", "blocks.0.hook_resid_post"] });
    expect(full.cache.has("blocks.0.hook_resid_post")).toBe(true);
    expect(full.cache.has("blocks.0.hook_resid_pre")).toBe(false);
    const sub = await model.trace(rows, { hooks: ["blocks.1.attn.hook_pattern", "blocks.0.hook_resid_post"], positions: [0, -1] });
    const p = sub.cache.get("pattern", 1);
    expect(p.dims).toEqual([1, config.n_head, 2, 8]);
    for (let h = 0; h < config.n_head; h++) {
      for (let k = 0; k < 8; k++) {
        expect(p.at(0, h, 1, k)).toBe(full.cache.get("pattern", 1).at(0, h, 7, k));
        expect(p.at(0, h, 0, k)).toBe(full.cache.get("pattern", 1).at(0, h, 0, k));
      }
    }
    expect(sub.cache.get("resid_post", 0).dims).toEqual([1, 2, config.n_embd]);
  });
});
