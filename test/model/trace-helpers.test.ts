/**
 * Token helpers and Trace helpers, checked against the float64 reference logits computed
 * independently (log-softmax, logit difference and loss done here by hand), and the merged
 * (`If` + past_key_values) export variant as transformers.js loads it.
 */
import { describe, expect, it } from "vitest";
import { Model, runtimeOf } from "../../src/model/model.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { makeTestModel, maxAbsDiff, type TestModel, useTestModel } from "../helpers/models.js";

let tm: TestModel;
let model: Model;
useTestModel({ seed: 3 }, (t, m) => {
  tm = t;
  model = m;
});

function refLogits(rows: number[][]): (b: number, p: number) => Float64Array {
  const S = Math.max(...rows.map((r) => r.length));
  const padded = rows.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]);
  const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]);
  const ref = gpt2Reference(tm.arch, tm.weights, padded, mask);
  const V = tm.arch.vocab_size;
  return (b, p) => ref.logits.data.slice((b * S + p) * V, (b * S + p + 1) * V);
}

function logSoftmax(l: Float64Array): Float64Array {
  const m = Math.max(...l);
  const lse = m + Math.log(l.reduce((s, x) => s + Math.exp(x - m), 0));
  return l.map((x) => x - lse);
}

describe("token helpers", () => {
  it("toTokens prepends BOS by default, as TransformerLens does", () => {
    const withBos = model.toTokens("Hello world");
    const without = model.toTokens("Hello world", { prependBos: false });
    expect(withBos).toEqual([model.bosTokenId, ...without]);
    expect(model.bosTokenId).toBe(tm.arch.vocab_size - 1);
    expect(model.toStrTokens("Hello world", { prependBos: false }).join("")).toBe("Hello world");
    expect(model.toStrTokens("Hello world")[0]).toBe("<|endoftext|>");
  });

  it("toSingleToken returns the id of single-token strings", () => {
    const [id] = model.toTokens(" t", { prependBos: false });
    expect(model.toTokens(" t", { prependBos: false })).toHaveLength(1);
    expect(model.toSingleToken(" t")).toBe(id);
    expect(() => model.toSingleToken("")).toThrow(/0 tokens/);
  });

  it("prependBos: false reaches the graph", async () => {
    const t = await model.trace("Hello", { prependBos: false, hooks: [] });
    expect(t.tokens[0]).toEqual(model.toTokens("Hello", { prependBos: false }));
  });
});

describe("Trace helpers agree with hand computations on the reference logits", () => {
  const rows = [
    [511, 40, 99, 7, 300, 12],
    [511, 8, 250],
  ];
  it("logProbs, topK, logitDiff and loss at the last real token of each row", async () => {
    const t = await model.trace(rows, { hooks: [] });
    const ref = refLogits(rows);
    expect(t.lengths).toEqual([6, 3]);
    expect(t.attentionMask[1]).toEqual([1, 1, 1, 0, 0, 0]);
    for (const b of [0, 1]) {
      const last = rows[b]!.length - 1;
      const lp = logSoftmax(ref(b, last));
      expect(maxAbsDiff(t.logProbs({ batch: b }), lp)).toBeLessThan(1e-4);
      const best = [...lp.keys()].sort((x, y) => lp[y]! - lp[x]!).slice(0, 3);
      expect(t.topK(3, { batch: b }).map((x) => x.token)).toEqual(best);
      const l = ref(b, last);
      const diff = (l[10]! + l[20]!) / 2 - l[30]!;
      expect(t.logitDiff([10, 20], 30, { batch: b })).toBeCloseTo(diff, 4);
    }
    let ce = 0;
    for (let p = 0; p < rows[0]!.length - 1; p++) ce -= logSoftmax(ref(0, p))[rows[0]![p + 1]!]!;
    expect(t.loss(0)).toBeCloseTo(ce / (rows[0]!.length - 1), 4);
    expect(() => t.logitsAt({ batch: 1, position: 3 })).toThrow(/out of range for row 1 of 3 tokens/);
  });
});

describe("merged export variant (If on use_cache_branch, past_key_values inputs)", () => {
  it("loads, is flattened, and gives the reference logits", async () => {
    const merged = await makeTestModel({ seed: 3, variant: "merged" });
    const m = await Model.load(merged.dir);
    try {
      const ops = runtimeOf(m).base.graph!.node.map((n) => n.opType);
      expect(ops).not.toContain("If");
      expect(runtimeOf(m).base.graph!.input.map((i) => i.name)).toEqual(["input_ids", "attention_mask"]);
      expect(runtimeOf(m).hookMap.unavailable.size).toBe(0);
      const t = await m.trace(rows2(), { hooks: ["blocks.1.attn.hook_pattern"] });
      const ref = refLogits(rows2());
      for (let p = 0; p < 4; p++) expect(maxAbsDiff(t.logits.row(0, p), ref(0, p))).toBeLessThan(1e-4);
    } finally {
      await m.dispose();
      await merged.cleanup();
    }
  });
});

function rows2(): number[][] {
  return [[511, 3, 77, 140]];
}

describe("patched sessions", () => {
  it("are never released while a run uses them (concurrent traces, maxSessions 1), and concurrent results equal sequential ones", async () => {
    const m = await Model.load(tm.dir, { maxSessions: 1 });
    try {
      const hooks = ["hook_embed", "blocks.0.mlp.hook_post", "blocks.1.attn.hook_pattern", "blocks.1.hook_resid_post"] as const;
      // A different prompt per trace, so that results swapped between concurrent runs show.
      const prompts = hooks.map((_, i) => [1 + i, 2 + 3 * i, 30 + i, 4, 77 + 5 * i]);
      const traces = await Promise.all(hooks.map((h, i) => m.trace(prompts[i]!, { hooks: [h] })));
      expect(traces).toHaveLength(hooks.length);
      traces.forEach((t, i) => expect(t.cache.has(hooks[i]!)).toBe(true));
      expect(await runtimeOf(m).liveSessions()).toHaveLength(1);
      // Each concurrent result equals, element for element, the same trace run alone afterwards,
      // and the float64 reference.
      for (const [i, h] of hooks.entries()) {
        const alone = await m.trace(prompts[i]!, { hooks: [h] });
        const got = traces[i]!;
        expect(got.tokens).toEqual([prompts[i]]);
        expect(got.cache.get(h).dims).toEqual(alone.cache.get(h).dims);
        expect(maxAbsDiff(got.cache.get(h).data, alone.cache.get(h).data), h).toBeLessThanOrEqual(1e-6);
        expect(maxAbsDiff(got.logits.data, alone.logits.data), h).toBeLessThanOrEqual(1e-6);
        const ref = gpt2Reference(tm.arch, tm.weights, [prompts[i]!]);
        expect(maxAbsDiff(got.cache.get(h).data, ref.cache.get(h)!.data), `${h} vs reference`).toBeLessThan(1e-4);
        expect(maxAbsDiff(got.logits.data, ref.logits.data), `logits ${i} vs reference`).toBeLessThan(1e-4);
      }
    } finally {
      await m.dispose();
    }
  });

  it("are built once per hook set, reused for subsets, and capped at maxSessions (least recently used first)", async () => {
    const m = await Model.load(tm.dir, { maxSessions: 2 });
    try {
      const a = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"] as const;
      await m.trace([1, 2, 3], { hooks: [...a] });
      expect(await runtimeOf(m).liveSessions()).toEqual([[...a]]);
      await m.trace([4, 5], { hooks: ["blocks.1.attn.hook_pattern"] }); // subset: reused
      await m.trace([4, 5], { hooks: [...a] });
      expect(await runtimeOf(m).liveSessions()).toHaveLength(1);
      await m.trace([4, 5], { hooks: ["hook_embed"] });
      await m.trace([4, 5], { hooks: ["blocks.0.mlp.hook_post"] });
      expect(await runtimeOf(m).liveSessions()).toEqual([["hook_embed"], ["blocks.0.mlp.hook_post"]]);
    } finally {
      await m.dispose();
    }
    expect(await runtimeOf(m).liveSessions()).toEqual([]);
  });
});
