/**
 * Acceptance of interventions against independent computations: a model file with hand-edited
 * weights (head and neuron ablations) and the float64 reference with a vector added (steering);
 * batched variants equal one-by-one runs; patching reproduces clean and corrupted logits.
 */
import { budgetForChunks } from "../helpers/budget.js";
import { cp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { ablateDirection, meanAblate, patchFrom, resampleFrom, steer, zeroAttention, zeroHead, zeroNeuron, type Edit } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";

const PROMPT = [7, 30, 2, 99, 41, 5, 250, 18];
let tm: TestModel;
let model: Model;
const dirs: string[] = [];

/** A copy of the fixture whose ONNX file is rebuilt from `edit(weights)`. */
async function modelWithWeights(name: string, edit: (w: Gpt2Weights) => void): Promise<Model> {
  const w: Gpt2Weights = new Map([...tm.weights].map(([k, v]) => [k, { data: v.data.slice(), dims: [...v.dims] }]));
  edit(w);
  const dir = `${tm.dir}-${name}`;
  dirs.push(dir);
  await cp(tm.dir, dir, { recursive: true });
  await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(buildGpt2Graph(tm.arch, w)));
  return Model.load(dir);
}

beforeAll(async () => {
  tm = await makeTestModel({ config: FOUR_LAYER, seed: 5 });
  model = await Model.load(tm.dir);
});
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("ablations equal hand-edited weight files", () => {
  it("zero-ablating head h of layer L = zeroing that head's rows of c_proj", async () => {
    const L = 2;
    const h = 1;
    const dh = FOUR_LAYER.n_embd / FOUR_LAYER.n_head;
    const edited = await modelWithWeights("head", (w) => {
      const t = w.get(`transformer.h.${L}.attn.c_proj.weight`)!;
      t.data.fill(0, h * dh * FOUR_LAYER.n_embd, (h + 1) * dh * FOUR_LAYER.n_embd);
    });
    try {
      const r = await model.intervene([PROMPT], [zeroHead(L, h)]);
      const want = await edited.forward([PROMPT]);
      expect(maxAbsDiff(r.edited.logits.data, want.data)).toBeLessThan(1e-4);
      // The edit did something, and the clean run is the unedited model.
      expect(maxAbsDiff(r.clean.logits.data, want.data)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(r.clean.logits.data, (await model.forward([PROMPT])).data)).toBeLessThan(1e-6);
    } finally {
      await edited.dispose();
    }
  });

  it("zero-ablating neuron i = zeroing row i of mlp.c_proj.weight (also through variants)", async () => {
    const L = 1;
    const i = 37;
    const d = FOUR_LAYER.n_embd;
    const edited = await modelWithWeights("neuron", (w) => {
      w.get(`transformer.h.${L}.mlp.c_proj.weight`)!.data.fill(0, i * d, (i + 1) * d);
    });
    try {
      const r = await model.intervene([PROMPT], [zeroNeuron(L, i)]);
      const want = await edited.forward([PROMPT]);
      expect(maxAbsDiff(r.edited.logits.data, want.data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(r.clean.logits.data, want.data)).toBeGreaterThan(1e-4);
      const v = await model.intervene([PROMPT], [], { variants: [[], [zeroNeuron(L, i)]], logits: "all" });
      expect(maxAbsDiff(v.edited.logits.row(1), want.data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(v.edited.logits.row(0), r.clean.logits.data)).toBeLessThan(1e-5);
    } finally {
      await edited.dispose();
    }
  });

  it("zero-ablating a neuron at one position only changes that position and later ones", async () => {
    const r = await model.intervene([PROMPT], [zeroNeuron(0, [3, 4, 5], { positions: [4] })], { hooks: ["blocks.0.mlp.hook_post", "blocks.0.hook_resid_post"] });
    const post = r.edited.cache.get("post", 0);
    for (const n of [3, 4, 5]) expect(post.at(0, 4, n)).toBe(0);
    expect(post.at(0, 3, 3)).toBe(r.clean.cache.get("post", 0).at(0, 3, 3));
    expect(maxAbsDiff(r.edited.logits.row(0, 3), r.clean.logits.row(0, 3))).toBe(0);
    expect(maxAbsDiff(r.edited.logits.row(0, 4), r.clean.logits.row(0, 4))).toBeGreaterThan(0);
  });
});

describe("steering equals the reference forward with the vector added", () => {
  it("adding scale * v at resid_pre of layer L", async () => {
    const L = 2;
    const v = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => Math.sin(i * 0.7));
    const scale = 3;
    const r = await model.intervene([PROMPT], [steer(`blocks.${L}.hook_resid_pre`, v, scale)]);
    const ref = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { addToResidPre: new Map([[L, v.map((x) => x * scale)]]) });
    expect(maxAbsDiff(r.edited.logits.data, ref.logits.data)).toBeLessThan(1e-4);
    const plain = gpt2Reference(tm.arch, tm.weights, [PROMPT]);
    expect(maxAbsDiff(r.edited.logits.data, plain.logits.data)).toBeGreaterThan(1e-3);
  });

  it("edits on resid_post of L-1 and resid_pre of L (one tensor) compose in hook order", async () => {
    const d = FOUR_LAYER.n_embd;
    const v = Array.from({ length: d }, (_, i) => (i % 3) - 1);
    const r = await model.intervene([PROMPT], [steer("blocks.2.hook_resid_pre", v, 2), steer("blocks.1.hook_resid_post", v, 1)]);
    const ref = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { addToResidPre: new Map([[2, v.map((x) => x * 3)]]) });
    expect(maxAbsDiff(r.edited.logits.data, ref.logits.data)).toBeLessThan(1e-4);
  });
});

describe("attention-probability ablation (Transformer Debugger)", () => {
  it("zeroing a head's probabilities at query q (no renormalisation) = zeroing its z at q", async () => {
    const a = await model.intervene([PROMPT], [zeroAttention(1, 2, [5])], { hooks: ["blocks.1.attn.hook_pattern"] });
    const b = await model.intervene([PROMPT], [zeroHead(1, 2, { positions: [5] })]);
    expect(maxAbsDiff(a.edited.logits.data, b.edited.logits.data)).toBeLessThan(1e-5);
    const p = a.edited.cache.get("pattern", 1);
    for (let k = 0; k < PROMPT.length; k++) expect(p.at(0, 2, 5, k)).toBe(0);
    expect(p.at(0, 2, 4, 0)).toBeGreaterThan(0); // other queries keep theirs (row sums stay 1)
    expect(maxAbsDiff(a.edited.logits.data, a.clean.logits.data)).toBeGreaterThan(1e-4);
  });
});

describe("mean and resample ablation equal the reference with the vector written in", () => {
  const d = FOUR_LAYER.n_embd;
  it("mean over a reference batch (rows and real positions)", async () => {
    const refs = [[5, 6, 7], [8, 9, 10, 11, 12]];
    const mean = new Float64Array(d);
    let n = 0;
    for (const r of refs) {
      const c = gpt2Reference(tm.arch, tm.weights, [r]).cache.get("blocks.2.hook_resid_pre")!;
      for (let p = 0; p < r.length; p++, n++) for (let i = 0; i < d; i++) mean[i]! += c.data[p * d + i]!;
    }
    const vector = mean.map((x) => x / n);
    const r = await model.intervene([PROMPT], [meanAblate("blocks.2.hook_resid_pre", refs, { positions: [3] })]);
    const want = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { replaceResidPre: new Map([[2, { position: 3, vector }]]) });
    expect(maxAbsDiff(r.edited.logits.data, want.logits.data)).toBeLessThan(1e-4);
    const given = await model.intervene([PROMPT], [meanAblate("blocks.2.hook_resid_pre", Float64Array.from(vector), { positions: [3] })]);
    expect(maxAbsDiff(given.edited.logits.data, want.logits.data)).toBeLessThan(1e-4);
  });

  it("resample from another prompt of the same length", async () => {
    const other = [1, 2, 3, 4, 5, 6, 7, 8];
    const c = gpt2Reference(tm.arch, tm.weights, [other]).cache.get("blocks.1.hook_resid_pre")!;
    const r = await model.intervene([PROMPT], [resampleFrom("blocks.1.hook_resid_pre", [other], { positions: [-1] })]);
    const want = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, {
      replaceResidPre: new Map([[1, { position: 7, vector: c.data.slice(7 * d, 8 * d) }]]),
    });
    expect(maxAbsDiff(r.edited.logits.data, want.logits.data)).toBeLessThan(1e-4);
  });
});

describe("direction edits equal the reference with the component removed or set", () => {
  const u = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => Math.sin(i * 1.3) + 0.2);
  it("ablating a direction at resid_pre of layer L, all positions and one position", async () => {
    const r = await model.intervene([PROMPT], [ablateDirection("blocks.2.hook_resid_pre", u)], { hooks: ["blocks.2.hook_resid_pre"] });
    const want = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { projectResidPre: new Map([[2, { direction: u, value: 0 }]]) });
    expect(maxAbsDiff(r.edited.logits.data, want.logits.data)).toBeLessThan(1e-4);
    // The component along u is gone from the cached (edited) residual.
    const x = r.edited.cache.get("resid_pre", 2).row(0, 3);
    const norm = Math.hypot(...u);
    expect(Math.abs(Array.from(x).reduce((s, v, i) => s + v * u[i]!, 0) / norm)).toBeLessThan(1e-4);
    const one = await model.intervene([PROMPT], [ablateDirection("blocks.2.hook_resid_pre", u, { positions: [-1], value: 2.5 })]);
    const want1 = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { projectResidPre: new Map([[2, { direction: u, value: 2.5, positions: [PROMPT.length - 1] }]]) });
    expect(maxAbsDiff(one.edited.logits.data, want1.logits.data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(one.edited.logits.data, r.clean.logits.data)).toBeGreaterThan(1e-3);
  });

  it("as variants (per-row directions), and typed errors for misuse", async () => {
    const v = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => (i % 5) - 2);
    const batched = await model.intervene([PROMPT], [], { variants: [[ablateDirection("blocks.1.hook_resid_pre", u)], [ablateDirection("blocks.1.hook_resid_pre", v)], []] });
    for (const [i, dir] of [[0, u], [1, v]] as const) {
      const want = gpt2Reference(tm.arch, tm.weights, [PROMPT], undefined, { projectResidPre: new Map([[1, { direction: dir, value: 0 }]]) });
      const last = want.logits.data.subarray((PROMPT.length - 1) * FOUR_LAYER.vocab_size, PROMPT.length * FOUR_LAYER.vocab_size);
      expect(maxAbsDiff(batched.edited.logitsAt({ batch: i }), last)).toBeLessThan(1e-4);
    }
    await expect(model.intervene([PROMPT], [ablateDirection("blocks.1.attn.hook_z", u)])).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(model.intervene([PROMPT], [ablateDirection("blocks.1.hook_resid_pre", u.slice(1))])).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.intervene([PROMPT], [ablateDirection("blocks.1.hook_resid_pre", u.map(() => 0))])).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.intervene([PROMPT], [steer("blocks.1.hook_resid_pre", v), ablateDirection("blocks.1.hook_resid_pre", u)])).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    // Direction first, then a steering vector: both apply.
    const both = await model.intervene([PROMPT], [ablateDirection("blocks.1.hook_resid_pre", u), steer("blocks.1.hook_resid_pre", v, 0.5)], { hooks: ["blocks.1.hook_resid_pre"] });
    const clean = both.clean.cache.get("resid_pre", 1).row(0, 2);
    const norm = Math.hypot(...u);
    const dot = Array.from(clean).reduce((s, x, i) => s + x * u[i]!, 0) / norm;
    const want = Array.from(clean, (x, i) => x - dot * (u[i]! / norm) + 0.5 * v[i]!);
    expect(maxAbsDiff(both.edited.cache.get("resid_pre", 1).row(0, 2), want)).toBeLessThan(1e-4);
  });
});

describe("batched variants", () => {
  it("give the same results as the same edits run one by one", async () => {
    const variants: Edit[][] = [];
    for (let l = 0; l < FOUR_LAYER.n_layer; l++) for (let h = 0; h < FOUR_LAYER.n_head; h++) variants.push([zeroHead(l, h)]);
    variants.push([zeroNeuron(3, 5, { positions: [-1] }), zeroHead(0, 2)], []);
    const S = (await model.trace([PROMPT], { hooks: [] })).tokens[0]!.length;
    // One variant per chunk (each chunk also carries the clean row).
    const maxBatchBytes = await budgetForChunks(model, { rows: variants.length + 1, chunk: 2, S, logitPositions: 1, edits: variants.flat() });
    const batched = await model.intervene([PROMPT], [], { variants, maxBatchBytes });
    const together = await model.intervene([PROMPT], [], { variants });
    expect(batched.rows).toBe(variants.length);
    for (let i = 0; i < variants.length; i++) {
      const one = await model.intervene([PROMPT], variants[i]!, { logits: "last" });
      expect(maxAbsDiff(together.edited.logitsAt({ batch: i }), one.edited.logitsAt())).toBeLessThan(1e-5);
      expect(maxAbsDiff(batched.edited.logitsAt({ batch: i }), one.edited.logitsAt())).toBeLessThan(1e-5);
    }
    const kl = together.kl();
    expect(kl[variants.length - 1]).toBeLessThan(1e-9);
    expect(Math.max(...kl)).toBeGreaterThan(0);
  });
});

describe("shared-prefix batching", () => {
  it("gives the same logits as plain batching, for mixed edit kinds and layers", async () => {
    const c = await model.trace([[9, 30, 2, 99, 41, 5, 250, 18]], { hooks: ["blocks.2.hook_resid_pre", "blocks.1.attn.hook_z"] });
    const v = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => Math.cos(i));
    const variants: Edit[][] = [
      [zeroHead(3, 0)],
      [],
      [patchFrom("blocks.2.hook_resid_pre", c, { positions: [1, 2] })],
      [steer("blocks.0.hook_resid_pre", v, 2)],
      [patchFrom("blocks.1.attn.hook_z", c, { at: { head: 2 } }), zeroNeuron(3, 7)],
      [steer("blocks.1.hook_resid_post", v, -1)],
      [zeroHead(0, 1, { positions: [-1] })],
    ];
    for (const logits of ["last", "all"] as const) {
      const S = c.tokens[0]!.length;
      const oneEach = await budgetForChunks(model, { rows: variants.length + 1, chunk: 2, S, logitPositions: S, edits: variants.flat() });
      const shared = await model.intervene([PROMPT], [], { variants, logits, maxBatchBytes: logits === "all" ? oneEach : undefined });
      const plain = await model.intervene([PROMPT], [], { variants, logits, prefixShare: false });
      expect(shared.edited.logits.dims).toEqual(plain.edited.logits.dims);
      expect(maxAbsDiff(shared.edited.logits.data, plain.edited.logits.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(shared.edited.logits.row(1), shared.clean.logits.row(0))).toBe(0);
    }
  });
});

describe("activation patching", () => {
  const clean = [7, 30, 2, 99, 41, 5, 250, 18];
  const corrupted = [7, 30, 2, 12, 41, 5, 250, 18];
  it("patching the whole clean residual stream at the last layer reproduces the clean logits", async () => {
    const last = FOUR_LAYER.n_layer - 1;
    const c = await model.trace([clean], { hooks: [`blocks.${last}.hook_resid_pre`, `blocks.${last}.hook_resid_post`] });
    for (const hook of [`blocks.${last}.hook_resid_pre`, `blocks.${last}.hook_resid_post`] as const) {
      const r = await model.intervene([corrupted], [patchFrom(hook, c)]);
      expect(maxAbsDiff(r.edited.logits.data, c.logits.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(r.clean.logits.data, c.logits.data)).toBeGreaterThan(1e-3);
    }
  });

  it("patching nothing reproduces the corrupted logits", async () => {
    const r = await model.intervene([corrupted], []);
    const plain = await model.forward([corrupted]);
    expect(maxAbsDiff(r.edited.logits.data, plain.data)).toBeLessThan(1e-6);
    const c = await model.trace([clean], { hooks: ["blocks.0.hook_resid_pre"] });
    const none = await model.intervene([corrupted], [patchFrom("blocks.0.hook_resid_pre", c, { positions: [] })]);
    expect(maxAbsDiff(none.edited.logits.data, plain.data)).toBeLessThan(1e-6);
  });
});
