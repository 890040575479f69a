/**
 * Attention-only GPT-2 graphs (TransformerLens `attn_only`): the generator writes blocks with no
 * ln_2 and no MLP and says so in config.json (`tdb_attn_only`), the GPT-2 adapter finds every
 * attention hook and reports the MLP side unavailable with the reason, every available hook
 * equals the float64 reference, and trace, intervene and attribute work on such a model (checked
 * against the reference with hand-edited weights and finite differences).
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { AttributionNode } from "../../src/attribution/node-table.js";
import { TdbError } from "../../src/base/errors.js";
import { zeroHead } from "../../src/intervene/edits.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
import { decodeModel } from "../../src/onnx/proto.js";
import { gpt2Config } from "../../src/synthetic/config.js";
import { gpt2WeightShapes, type Gpt2Weights } from "../../src/synthetic/weights.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { lcgRows, maxAbsDiff, realPositions, useTestModel, type TestModel } from "../helpers/models.js";
import { rejected, thrown } from "../helpers/errors.js";

const ARCH = gpt2Config({ n_layer: 2, n_head: 4, n_embd: 32, n_positions: 32, vocab_size: 300, attn_only: true });
const MLP_SIDE = ["hook_resid_mid", "ln2.hook_scale", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out"];

let tm: TestModel;
let model: Model;
useTestModel({ config: ARCH, seed: 21 }, (t, m) => {
  tm = t;
  model = m;
});

const P = [5, 200, 41, 77, 130, 9, 250, 18, 41, 77];
const S = P.length;
const T = 100;
const D = 201;
const d = ARCH.n_embd;
const H = ARCH.n_head;
const dh = d / H;
const V = ARCH.vocab_size;

describe("generator", () => {
  it("writes no ln_2 or MLP, and config.json says attention-only in an extra key", async () => {
    const names = gpt2WeightShapes(ARCH).map((w) => w.name);
    expect(names.filter((n) => /ln_2|mlp/.test(n))).toEqual([]);
    expect(names).toContain("transformer.h.1.attn.c_proj.weight");
    expect([...tm.weights.keys()].sort()).toEqual([...names].sort());
    const cfg = JSON.parse(await readFile(tm.config, "utf8")) as Record<string, unknown>;
    expect(cfg.tdb_attn_only).toBe(true);
    expect(cfg.model_type).toBe("gpt2");
    expect(cfg.architectures).toEqual(["GPT2LMHeadModel"]);
    const proto = decodeModel(await readFile(tm.model));
    const nodeNames = proto.graph!.node.map((n) => n.name);
    expect(nodeNames.filter((n) => /\/(mlp|ln_2)\//.test(n))).toEqual([]);
    // One residual Add per block, directly under its scope.
    for (let l = 0; l < ARCH.n_layer; l++) {
      const adds = proto.graph!.node.filter((n) => n.opType === "Add" && new RegExp(`^/transformer/h\\.${l}/Add`).test(n.name));
      expect(adds, `block ${l}`).toHaveLength(1);
    }
  });

  it("an attn_only that is not a boolean is E_BAD_OPTION", () => {
    const e = thrown(() => gpt2Config({ n_layer: 1, n_head: 1, n_embd: 8, n_positions: 8, vocab_size: 300, attn_only: "yes" as unknown as boolean }));
    expect(e).toBeInstanceOf(TdbError);
    expect((e as TdbError).code).toBe("E_BAD_OPTION");
  });
});

describe("adapter", () => {
  it("finds every attention hook; the MLP side is unavailable with the reason, resid_mid absent as in TransformerLens", () => {
    const map = runtimeOf(model).hookMap;
    for (let l = 0; l < ARCH.n_layer; l++) {
      for (const s of MLP_SIDE) {
        const why = map.unavailable.get(`blocks.${l}.${s}` as never);
        expect(why, `blocks.${l}.${s}`).toMatch(/attention-only block .*h\.\d+: no ln_2 and no MLP/);
        expect(map.sources.has(`blocks.${l}.${s}` as never)).toBe(false);
      }
    }
    expect(map.unavailable.size).toBe(MLP_SIDE.length * ARCH.n_layer);
    // 2 model hooks + 16 per block - 5 MLP-side hooks per block + ln_final.
    expect(model.hookNames).toHaveLength(2 + 11 * ARCH.n_layer + 1);
    expect(model.hookNames).toContain("blocks.1.attn.hook_pattern");
    expect(model.hookNames).toContain("blocks.1.hook_resid_post");
  });

  it("asking for an MLP hook is E_HOOK_UNAVAILABLE naming the reason", async () => {
    const e = await rejected(model.trace([P], { hooks: ["blocks.0.hook_resid_mid"] }));
    expect((e as TdbError).code).toBe("E_HOOK_UNAVAILABLE");
    expect((e as TdbError).message).toMatch(/attention-only/);
  });

  it("weights: attention weights read, MLP weights a typed error", () => {
    const w = runtimeOf(model).weights;
    const WO = tm.weights.get("transformer.h.1.attn.c_proj.weight")!.data;
    expect(Array.from(w.blocks[1]!.W_O.data)).toEqual(Array.from(WO));
    const e = thrown(() => w.blocks[0]!.W_out);
    expect((e as TdbError).code).toBe("E_UNSUPPORTED_GRAPH");
    expect((e as TdbError).message).toMatch(/no mlp weights.*attention-only/);
    expect(((thrown(() => w.blocks[0]!.ln2_w)) as TdbError).message).toMatch(/no ln_2 weights/);
  });
});


describe("trace", () => {
  it.each([
    { label: "batch 1", lengths: [9] },
    { label: "padded batch of 3", lengths: [7, 3, 5] },
  ])("every available hook equals the float64 reference within 1e-4 ($label)", async ({ lengths }) => {
    const rows = lcgRows(lengths, 17 + lengths.length, V);
    const t = await model.trace(rows, { hooks: () => true });
    const Smax = Math.max(...lengths);
    const padded = rows.map((r) => [...r, ...new Array<number>(Smax - r.length).fill(0)]);
    const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(Smax - r.length).fill(0)]);
    const ref = gpt2Reference(ARCH, tm.weights, padded, mask);
    const names = runtimeOf(model).selectHooks(() => true);
    expect(names).toHaveLength(model.hookNames.length);
    const worst: Record<string, number> = {};
    for (const name of names) {
      const r = ref.cache.get(name);
      expect(r, `reference lacks ${name}`).toBeDefined();
      const a = t.cache.get(name);
      expect(a.dims).toEqual(r!.dims);
      worst[name] = maxAbsDiff(a.data, r!.data, realPositions(a, lengths));
    }
    // The reference has no MLP-side tensors either.
    for (const s of MLP_SIDE) expect(ref.cache.has(`blocks.0.${s}`)).toBe(false);
    worst.logits = maxAbsDiff(t.logits.data, ref.logits.data, (i) => {
      const row = Math.floor(i / (Smax * V));
      const pos = Math.floor(i / V) % Smax;
      return pos < lengths[row]!;
    });
    expect(Object.entries(worst).filter(([, x]) => !(x <= 1e-4))).toEqual([]);
    // resid_post = resid_pre + attn_out exactly as the graph adds them.
    const pre = t.cache.get("resid_pre", 1).data;
    const out = t.cache.get("attn_out", 1).data;
    const post = t.cache.get("resid_post", 1).data;
    expect(maxAbsDiff(post, Float32Array.from(pre, (x, i) => x + out[i]!))).toBeLessThan(1e-6);
    // It can fail: a perturbed reference does not match.
    expect(maxAbsDiff(t.logits.data, Float64Array.from(ref.logits.data, (x, i) => (i === 0 ? x + 1e-3 : x)))).toBeGreaterThan(1e-4);
  });
});

describe("intervene", () => {
  it("zeroHead(l, h) = the reference with head h's rows of attn.c_proj.weight zeroed", async () => {
    for (const [l, h] of [
      [0, 1],
      [1, 3],
    ] as const) {
      const w: Gpt2Weights = new Map([...tm.weights].map(([k, v]) => [k, { data: v.data.slice(), dims: [...v.dims] }]));
      w.get(`transformer.h.${l}.attn.c_proj.weight`)!.data.fill(0, h * dh * d, (h + 1) * dh * d);
      const want = gpt2Reference(ARCH, w, [P]).logits.data;
      const r = await model.intervene([P], [zeroHead(l, h)], { logits: "all" });
      expect(maxAbsDiff(r.edited.logits.data, want)).toBeLessThan(1e-4);
      expect(maxAbsDiff(r.clean.logits.data, want)).toBeGreaterThan(1e-3);
    }
  });
});

/** Reference loss (logit diff T - D at the last position), final LN scale frozen at `scale`, after `onHook` edits. */
function refLoss(scale: ArrayLike<number> | undefined, onHook?: (name: string, t: RefTensor) => void): number {
  const r = gpt2Reference(ARCH, tm.weights, [P], undefined, { onHook, lnFinalScale: scale });
  const o = (S - 1) * V;
  return r.logits.data[o + T]! - r.logits.data[o + D]!;
}

/** Central difference of the loss with the node's activation (an embedding vector) scaled by 1 +- eps. */
function fdTotal(n: AttributionNode, scale: ArrayLike<number>, eps = 1e-4): number {
  const hook = n.type === "attention_head" ? `blocks.${n.layer}.attn.hook_pattern` : "hook_embed";
  const at = n.type === "attention_head" ? (n.head! * S + n.position) * S + n.keyPosition! : n.position * d;
  const width = n.type === "token_embedding" ? d : 1;
  const run = (f: number) =>
    refLoss(scale, (name, t) => {
      if (name === hook) for (let j = 0; j < width; j++) t.data[at + j]! *= f;
    });
  return (run(1 + eps) - run(1 - eps)) / (2 * eps);
}

describe("attribute", () => {
  it("heads and embeddings agree with finite differences of the reference; no neuron rows, no error", async () => {
    const table = await model.attribute([P], { target: T, distractor: D, topK: 6 });
    expect(table.counts).toEqual({ mlp_neuron: 0, attention_head: (ARCH.n_layer * H * S * (S + 1)) / 2, token_embedding: S });
    expect(table.loss).toBeCloseTo(refLoss(undefined), 4);
    const scale = gpt2Reference(ARCH, tm.weights, [P]).cache.get("ln_final.hook_scale")!.data;
    const types = new Set(table.nodes.map((n) => n.type));
    expect([...types].sort()).toEqual(["attention_head", "token_embedding"]);
    const ref = gpt2Reference(ARCH, tm.weights, [P]);
    for (const n of table.nodes) {
      const want = fdTotal(n, scale);
      expect(Math.abs(n.totalEffect - want), `${n.id}: ${n.totalEffect} vs ${want}`).toBeLessThanOrEqual(1e-4 + 2e-3 * Math.abs(want));
      if (n.type === "attention_head") {
        expect(n.activation).toBeCloseTo(ref.cache.get(`blocks.${n.layer}.attn.hook_pattern`)!.data[(n.head! * S + n.position) * S + n.keyPosition!]!, 5);
      }
    }
    // Only neurons asked for: an empty table, not an error.
    const neurons = await model.attribute([P], { target: T, distractor: D, topK: 6, nodeTypes: ["mlp_neuron"] });
    expect(neurons.nodes).toEqual([]);
    expect(neurons.counts.mlp_neuron).toBe(0);
  });

  it("traceUpstream: attention nodes work; a neuron is E_HOOK_UNAVAILABLE saying the block has no MLP", async () => {
    const up = await model.traceUpstream([P], { type: "attention_head", layer: 1, head: 2, position: S - 1, keyPosition: 3 });
    expect(up.counts.mlp_neuron).toBe(0);
    expect(up.nodes.length).toBeGreaterThan(0);
    expect(up.nodes.every((n) => n.type !== "mlp_neuron")).toBe(true);
    const e = await rejected(model.traceUpstream([P], { type: "mlp_neuron", layer: 1, index: 0, position: S - 1 }));
    expect(e.code).toBe("E_HOOK_UNAVAILABLE");
    expect(e.message).toMatch(/layer 1 has no MLP neurons.*attention-only/);
  });

  it("direct logit attribution: heads, biases and embeddings sum to the logit difference, no MLP component", async () => {
    const dla = await model.directLogitAttribution([P], { target: T, distractor: D });
    expect(dla.components.filter((c) => c.kind === "mlp")).toEqual([]);
    expect(dla.components.filter((c) => c.kind === "head")).toHaveLength(ARCH.n_layer * H);
    const ref = gpt2Reference(ARCH, tm.weights, [P]).logits.data;
    const want = ref[(S - 1) * V + T]! - ref[(S - 1) * V + D]!;
    expect(dla.total).toBeCloseTo(want, 4);
    expect(dla.logitDiff).toBeCloseTo(want, 4);
  });
});
