/**
 * Models whose graph carries no module scopes (the unscoped form: torch.onnx < 1.13 names) load
 * with every hook the scoped export has: each hook equals the float64 reference within 1e-4, the
 * weights equal those read from the scoped export, interventions match the reference with
 * hand-edited weights, and attribution agrees with the scoped model. Parameter initializers with
 * numeric names work too. A graph the structural pass does not understand fails at load with
 * the reason naming what it found.
 */
import { readFile, writeFile } from "node:fs/promises";
import type { ModelProto } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelWeights } from "../../src/hooks/adapter.js";
import { gpt2Adapter } from "../../src/hooks/gpt2.js";
import { steer, zeroHead } from "../../src/intervene/edits.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { gpt2Config, TINY_GPT2, type Gpt2Config } from "../../src/synthetic/config.js";
import { unscopedNames, type UnscopedOptions } from "../../src/synthetic/forms/unscoped.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { rejected } from "../helpers/errors.js";
import { FOUR_LAYER, lcgRows, makeTestModel, maxAbsDiff, realPositions, type TestModel } from "../helpers/models.js";
import { addDropouts, gpt2DropoutSites } from "./_dropouts.js";

const ATTN_ONLY = gpt2Config({ n_layer: 2, n_head: 4, n_embd: 32, n_positions: 32, vocab_size: 300, attn_only: true });

interface Loaded {
  tm: TestModel;
  model: Model;
  /** The scoped export the unscoped one was made from. */
  scoped: ModelProto;
}

const opened: Loaded[] = [];

/** Writes a test model, replaces its graph by the unscoped form (after `edit`), loads it. */
async function loadUnscoped(config: Gpt2Config, seed: number, opts: UnscopedOptions = {}, edit?: (m: ModelProto) => void): Promise<Loaded> {
  const tm = await makeTestModel({ config, seed });
  const scoped = decodeModel(await readFile(tm.model));
  const u = unscopedNames(scoped, opts);
  edit?.(u);
  await writeFile(tm.model, encodeModel(u));
  let model: Model;
  try {
    model = await Model.load(tm.dir);
  } catch (e) {
    await tm.cleanup();
    throw e;
  }
  const l = { tm, model, scoped };
  opened.push(l);
  return l;
}

afterAll(async () => {
  for (const l of opened) {
    await l.model.dispose();
    await l.tm.cleanup();
  }
});


/** Worst |hook - reference| per hook (real positions only), logits included. */
async function worstDiffs(l: Loaded, lengths: number[]): Promise<Record<string, number>> {
  const { model, tm } = l;
  const V = tm.arch.vocab_size;
  const rows = lcgRows(lengths, 11 + lengths.length, V);
  const t = await model.trace(rows, { hooks: () => true });
  const Smax = Math.max(...lengths);
  const padded = rows.map((r) => [...r, ...new Array<number>(Smax - r.length).fill(0)]);
  const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(Smax - r.length).fill(0)]);
  const ref = gpt2Reference(tm.arch, tm.weights, padded, mask);
  const worst: Record<string, number> = {};
  for (const name of runtimeOf(model).selectHooks(() => true)) {
    const r = ref.cache.get(name);
    expect(r, `reference lacks ${name}`).toBeDefined();
    const a = t.cache.get(name);
    expect(a.dims, name).toEqual(r!.dims);
    worst[name] = maxAbsDiff(a.data, r!.data, realPositions(a, lengths));
  }
  worst.logits = maxAbsDiff(t.logits.data, ref.logits.data, (i) => Math.floor(i / V) % Smax < lengths[Math.floor(i / (Smax * V))]!);
  return worst;
}

/** Every tensor of `a` equals the same tensor of `b`, dims and values (MLP-less blocks: both throw). */
function expectSameWeights(a: ModelWeights, b: ModelWeights): void {
  const read = (f: () => { dims: number[]; data: ArrayLike<number> }) => {
    try {
      return f();
    } catch (e) {
      return (e as Error).message;
    }
  };
  for (const k of ["W_E", "W_pos", "W_U", "b_U", "lnf_w", "lnf_b"] as const) {
    const x = a[k];
    const y = b[k];
    expect(x.dims, k).toEqual(y.dims);
    expect(maxAbsDiff(x.data, y.data), k).toBe(0);
  }
  expect(a.blocks.length).toBe(b.blocks.length);
  a.blocks.forEach((blk, l) => {
    for (const k of Object.keys(b.blocks[l]!) as (keyof typeof blk)[]) {
      const x = read(() => blk[k]);
      const y = read(() => b.blocks[l]![k]);
      if (typeof x === "string" || typeof y === "string") {
        // Attention-only blocks: the same typed error about the missing MLP/ln_2 on both.
        expect(typeof x, `${l}.${k}`).toBe("string");
        expect(typeof y, `${l}.${k}`).toBe("string");
        continue;
      }
      expect(x.dims, `${l}.${k}`).toEqual(y.dims);
      expect(maxAbsDiff(x.data, y.data), `${l}.${k}`).toBe(0);
    }
  });
}

const FORMS: { label: string; config: Gpt2Config; seed: number; opts?: UnscopedOptions; edit?: (m: ModelProto) => void }[] = [
  { label: "TINY_GPT2", config: TINY_GPT2, seed: 7 },
  { label: "attention-only", config: ATTN_ONLY, seed: 21 },
  { label: "FOUR_LAYER", config: FOUR_LAYER, seed: 5 },
  { label: "TINY_GPT2, numeric initializer names", config: TINY_GPT2, seed: 9, opts: { numericInitializers: true } },
  { label: "TINY_GPT2 with eval-mode Dropout nodes", config: TINY_GPT2, seed: 17, edit: (m) => void addDropouts(m, gpt2DropoutSites) },
];

describe.each(FORMS)("unscoped $label", ({ config, seed, opts, edit }) => {
  let l: Loaded;
  beforeAll(async () => {
    l = await loadUnscoped(config, seed, opts, edit);
  });

  it("finds every hook the scoped export has (and the same unavailable ones)", () => {
    const rt = runtimeOf(l.model);
    const scopedMap = gpt2Adapter.discover(OnnxGraph.fromModel(l.scoped), rt.config);
    expect([...rt.hookMap.sources.keys()]).toEqual([...scopedMap.sources.keys()]);
    expect([...rt.hookMap.unavailable.keys()]).toEqual([...scopedMap.unavailable.keys()]);
    // 2 model hooks + 16 per full block (11 attention-only) + ln_final, plus no surprises.
    expect(l.model.hookNames).toHaveLength(2 + (config.attn_only ? 11 : 16) * config.n_layer + 1);
  });

  it.each([
    { label: "batch 1", lengths: [9] },
    { label: "padded batch of 3", lengths: [7, 3, 5] },
  ])("every hook equals the float64 reference within 1e-4 ($label)", async ({ lengths }) => {
    const worst = await worstDiffs(l, lengths);
    expect(Object.keys(worst)).toHaveLength(l.model.hookNames.length + 1);
    expect(Object.entries(worst).filter(([, x]) => !(x <= 1e-4))).toEqual([]);
  });

  it("weights() equal those of the scoped export", () => {
    const rt = runtimeOf(l.model);
    expectSameWeights(rt.weights, gpt2Adapter.weights(OnnxGraph.fromModel(l.scoped), rt.config));
    // And the raw parameters (independent of both graphs): Conv1D [in, out], LN weights.
    const w = l.tm.weights;
    expect(Array.from(rt.weights.blocks[1]!.W_O.data)).toEqual(Array.from(w.get("transformer.h.1.attn.c_proj.weight")!.data));
    expect(Array.from(rt.weights.lnf_w.data)).toEqual(Array.from(w.get("transformer.ln_f.weight")!.data));
    expect(Array.from(rt.weights.W_E.data)).toEqual(Array.from(w.get("transformer.wte.weight")!.data));
  });
});

describe("interventions and attribution on an unscoped graph", () => {
  let u: Loaded;
  let scoped: Model;
  let scopedTm: TestModel;
  const P = [5, 200, 41, 77, 130, 9, 250, 18, 41, 77];
  beforeAll(async () => {
    u = await loadUnscoped(TINY_GPT2, 13);
    scopedTm = await makeTestModel({ config: TINY_GPT2, seed: 13 });
    scoped = await Model.load(scopedTm.dir);
  });
  afterAll(async () => {
    await scoped?.dispose();
    await scopedTm?.cleanup();
  });

  it("zeroHead(l, h) = the reference with head h's rows of attn.c_proj.weight zeroed", async () => {
    const c = TINY_GPT2;
    const dh = c.n_embd / c.n_head;
    for (const [layer, head] of [
      [0, 2],
      [1, 0],
    ] as const) {
      const w: Gpt2Weights = new Map([...u.tm.weights].map(([k, v]) => [k, { data: v.data.slice(), dims: [...v.dims] }]));
      w.get(`transformer.h.${layer}.attn.c_proj.weight`)!.data.fill(0, head * dh * c.n_embd, (head + 1) * dh * c.n_embd);
      const want = gpt2Reference(c, w, [P]).logits.data;
      const r = await u.model.intervene([P], [zeroHead(layer, head)], { logits: "all" });
      expect(maxAbsDiff(r.edited.logits.data, want)).toBeLessThan(1e-4);
      expect(maxAbsDiff(r.clean.logits.data, want)).toBeGreaterThan(1e-3);
    }
  });

  it("generation with the key/value cache and a steering edit equals the scoped model's, token for token", async () => {
    const v = Array.from({ length: TINY_GPT2.n_embd }, (_, i) => Math.sin(i));
    const opts = { edits: [steer("blocks.1.hook_resid_pre", v, 3)], maxNewTokens: 8 };
    const a = await u.model.generate(P, opts);
    const b = await scoped.generate(P, opts);
    expect([a.cached, b.cached]).toEqual([true, true]);
    expect(a.newTokens).toHaveLength(8);
    expect(a.tokens).toEqual(b.tokens);
    // The edit acts: without it the completion differs.
    const plain = await u.model.generate(P, { maxNewTokens: 8 });
    expect(plain.newTokens).not.toEqual(a.newTokens);
  });

  it("the attribution table equals the scoped model's", async () => {
    const opts = { target: 100, distractor: 201, topK: 12 };
    const a = await u.model.attribute([P], opts);
    const b = await scoped.attribute([P], opts);
    expect(a.loss).toBeCloseTo(b.loss, 5);
    expect(a.counts).toEqual(b.counts);
    expect(a.nodes.map((n) => n.id)).toEqual(b.nodes.map((n) => n.id));
    a.nodes.forEach((n, i) => expect(n.totalEffect, n.id).toBeCloseTo(b.nodes[i]!.totalEffect, 4));
  });
});

describe("load errors", () => {
  it("an unscoped graph the pass does not understand: E_UNSUPPORTED_GRAPH naming what the structural pass found", async () => {
    const tm = await makeTestModel({ config: TINY_GPT2, seed: 3 });
    try {
      const scoped = decodeModel(await readFile(tm.model));
      const i = scoped.graph!.node.findIndex((n) => n.name === "/transformer/h.0/attn/Softmax");
      const u = unscopedNames(scoped);
      // Not an attention any more: Softmax -> Sigmoid (still a valid graph).
      u.graph!.node[i]!.opType = "Sigmoid";
      await writeFile(tm.model, encodeModel(u));
      const e = await rejected(Model.load(tm.dir));
      expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
      expect(e.message).toMatch(/structural pass could not find GPT-2 blocks: the segment ending at residual Add Add_\d+ \(number 1\) has no Softmax/);
      expect(e.message).toMatch(/found: token embedding Gather_\d+ \[512, 64\]/);
    } finally {
      await tm.cleanup();
    }
  });
});
