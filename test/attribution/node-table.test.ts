/**
 * The attribution node table against the float64 reference: activations, write magnitudes and
 * direct effects computed by hand, total effects (activation x gradient) by central finite
 * differences of the reference's loss with the node scaled by (1 +- eps) and the final
 * LayerNorm scale frozen; the linearisation check against a small intervention; traceUpstream.
 */
import { describe, expect, it } from "vitest";
import { attribute, traceUpstream, type AttributionNode } from "../../src/attribution/node-table.js";
import { buildAttributionGraph } from "../../src/attribution/graph.js";
import type { Model } from "../../src/model/model.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { useTestModel, type TestModel } from "../helpers/models.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: TINY_GPT2, seed: 33 }, (t, m) => {
  tm = t;
  model = m;
});

const P = [5, 300, 41, 77, 130, 9, 250, 18];
const S = P.length;
const T = 100;
const D = 200;
const d = TINY_GPT2.n_embd;
const H = TINY_GPT2.n_head;
const dh = d / H;
const dm = TINY_GPT2.n_inner;
const V = TINY_GPT2.vocab_size;

const clean = () => gpt2Reference(tm.arch, tm.weights, [P]);

/** The reference loss (logit diff at the last position) with the final LN scale frozen at `scale`, after `edit`. */
function refLoss(scale: ArrayLike<number> | undefined, onHook?: (name: string, t: RefTensor) => void): number {
  const r = gpt2Reference(tm.arch, tm.weights, [P], undefined, { onHook, lnFinalScale: scale });
  const o = (S - 1) * V;
  return r.logits.data[o + T]! - r.logits.data[o + D]!;
}

/** Hook name and flat index of a node's activation in the reference tensors. */
function where(n: AttributionNode): { hook: string; at: number } {
  if (n.type === "mlp_neuron") return { hook: `blocks.${n.layer}.mlp.hook_post`, at: n.position * dm + n.index! };
  if (n.type === "attention_head") return { hook: `blocks.${n.layer}.attn.hook_pattern`, at: (n.head! * S + n.position) * S + n.keyPosition! };
  return { hook: "hook_embed", at: n.position * d };
}

/** Central difference of the loss when the node's activation (or embedding vector) is scaled by 1 +- eps. */
function fdTotal(n: AttributionNode, scale: ArrayLike<number> | undefined, eps = 1e-4): number {
  const { hook, at } = where(n);
  const width = n.type === "token_embedding" ? d : 1;
  const run = (f: number) =>
    refLoss(scale, (name, t) => {
      if (name === hook) for (let j = 0; j < width; j++) t.data[at + j]! *= f;
    });
  return (run(1 + eps) - run(1 - eps)) / (2 * eps);
}

describe("attribute: every column agrees with the float64 reference", () => {
  it("activation, write magnitude, direct effect and total effect", async () => {
    const table = await attribute(model, [P], { target: T, distractor: D, topK: 8 });
    const ref = clean();
    const scale = ref.cache.get("ln_final.hook_scale")!.data;
    expect(table.loss).toBeCloseTo(refLoss(undefined), 4);
    expect(table.counts).toEqual({ mlp_neuron: 2 * S * dm, attention_head: (2 * H * S * (S + 1)) / 2, token_embedding: S });
    // g = d loss / d final resid at the last position, frozen scale.
    const wte = tm.weights.get("transformer.wte.weight")!.data;
    const lnw = tm.weights.get("transformer.ln_f.weight")!.data;
    const gw = Array.from({ length: d }, (_, i) => (wte[T * d + i]! - wte[D * d + i]!) * lnw[i]!);
    const mean = gw.reduce((a, b) => a + b, 0) / d;
    const g = gw.map((x) => (x - mean) / scale[S - 1]!);
    const byType = new Map<string, number>();
    for (const n of table.nodes) {
      byType.set(n.type, (byType.get(n.type) ?? 0) + 1);
      const { hook, at } = where(n);
      let act: number;
      let write: number;
      let direct: number;
      if (n.type === "mlp_neuron") {
        act = ref.cache.get(hook)!.data[at]!;
        const W = tm.weights.get(`transformer.h.${n.layer}.mlp.c_proj.weight`)!.data;
        let norm = 0;
        let wg = 0;
        for (let j = 0; j < d; j++) {
          norm += W[n.index! * d + j]! ** 2;
          wg += W[n.index! * d + j]! * g[j]!;
        }
        write = Math.abs(act) * Math.sqrt(norm);
        direct = n.position === S - 1 ? act * wg : 0;
      } else if (n.type === "attention_head") {
        act = ref.cache.get(hook)!.data[at]!;
        const v = ref.cache.get(`blocks.${n.layer}.attn.hook_v`)!.data;
        const WO = tm.weights.get(`transformer.h.${n.layer}.attn.c_proj.weight`)!.data;
        const vw = new Float64Array(d);
        for (let e = 0; e < dh; e++) for (let j = 0; j < d; j++) vw[j]! += v[(n.keyPosition! * H + n.head!) * dh + e]! * WO[(n.head! * dh + e) * d + j]!;
        write = act * Math.sqrt(vw.reduce((s, x) => s + x * x, 0));
        direct = n.position === S - 1 ? act * vw.reduce((s, x, j) => s + x * g[j]!, 0) : 0;
      } else {
        const e = ref.cache.get("hook_embed")!.data.slice(at, at + d);
        act = Math.sqrt(e.reduce((s, x) => s + x * x, 0));
        write = act;
        direct = n.position === S - 1 ? e.reduce((s, x, j) => s + x * g[j]!, 0) : 0;
      }
      const close = (got: number, want: number, what: string) =>
        expect(Math.abs(got - want), `${n.id} ${what}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-4 + 2e-3 * Math.abs(want));
      close(n.activation, act, "activation");
      close(n.writeMagnitude, write, "write magnitude");
      close(n.directEffect, direct, "direct effect");
      close(n.totalEffect, fdTotal(n, scale), "total effect");
    }
    expect(byType.get("mlp_neuron")).toBeGreaterThanOrEqual(8);
    expect(byType.get("attention_head")).toBeGreaterThanOrEqual(8);
    expect(byType.get("token_embedding")).toBeGreaterThanOrEqual(1);
    // Union of top-k per column: the top total effect is in, sorted by |total| first.
    expect(Math.abs(table.nodes[0]!.totalEffect)).toBeGreaterThanOrEqual(Math.abs(table.nodes[table.nodes.length - 1]!.totalEffect));
    expect(table.topLogits).toHaveLength(10);
    expect(table.topLogits![0]!.logit).toBeGreaterThanOrEqual(table.bottomLogits![0]!.logit);
    // Token heatmap: the embeddings' and every node's total effects land on some token.
    expect(table.tokenEffects).toHaveLength(S);
  });

  it("linearisation: act x grad predicts a small scaling intervention of the node", async () => {
    const table = await attribute(model, [P], { target: T, distractor: D, topK: 5, nodeTypes: ["mlp_neuron"], detachFinalLnScale: false });
    const n = table.nodes[0]!;
    const eps = 0.02;
    const base = await model.trace([P], { hooks: [] });
    const r = await model.intervene([P], [{ hook: `blocks.${n.layer}.mlp.hook_post`, kind: "scale", value: 1 - eps, at: { d_mlp: [n.index!] }, positions: [n.position] }]);
    const change = r.edited.logitDiff(T, D) - base.logitDiff(T, D);
    // Zero-ablation scaled by eps: delta L ~= -eps * a * dL/da.
    expect(Math.abs(change + eps * n.totalEffect)).toBeLessThan(0.05 * Math.abs(eps * n.totalEffect) + 1e-5);
  });
});

describe("attribution graph", () => {
  it("reuses the model's W_out initializers instead of copying them", () => {
    const g = buildAttributionGraph(model, { kind: "logitDiff" }, true);
    const names = g.model.graph!.initializer.map((t) => t.name);
    expect(names.filter((n) => n.includes("/W_out") && !n.includes("norm"))).toEqual([]);
    expect(names.filter((n) => n.includes("/W_out_norm"))).toHaveLength(TINY_GPT2.n_layer);
  });
});

describe("traceUpstream", () => {
  it("an MLP neuron's pre-activation: total effects of upstream nodes by finite differences", async () => {
    const target = { type: "mlp_neuron" as const, layer: 1, index: 17, position: 6 };
    const table = await traceUpstream(model, [P], target, { topK: 6 });
    const pre = (onHook?: (name: string, t: RefTensor) => void) =>
      gpt2Reference(tm.arch, tm.weights, [P], undefined, { onHook }).cache.get("blocks.1.mlp.hook_pre")!.data[6 * dm + 17]!;
    expect(table.loss).toBeCloseTo(pre(), 4);
    for (const n of table.nodes) {
      // Nothing at or after the traced neuron's layer, or after its position, affects it.
      if (n.type === "mlp_neuron" && n.layer! >= 1) expect([n.totalEffect, n.directEffect]).toEqual([0, 0]);
      if (n.type === "attention_head" && n.layer! >= 2) expect(n.totalEffect).toBe(0);
      if (n.position > 6) expect(n.totalEffect).toBe(0);
      const { hook, at } = where(n);
      const width = n.type === "token_embedding" ? d : 1;
      const eps = 1e-4;
      const run = (f: number) => pre((name, t) => {
        if (name === hook) for (let j = 0; j < width; j++) t.data[at + j]! *= f;
      });
      const fd = (run(1 + eps) - run(1 - eps)) / (2 * eps);
      expect(Math.abs(n.totalEffect - fd), n.id).toBeLessThanOrEqual(1e-4 + 2e-3 * Math.abs(fd));
    }
  });

  it("an attention logit: gradient through query + through key = through both", async () => {
    const node = { type: "attention_head" as const, layer: 1, head: 2, position: 7, keyPosition: 3 };
    const [q, k, both] = await Promise.all(["query", "key", "both"].map((through) => traceUpstream(model, [P], node, { through: through as "query", topK: 30, nodeTypes: ["mlp_neuron"] })));
    const total = (t: typeof q, id: string) => t!.nodes.find((n) => n.id === id)?.totalEffect;
    let checked = 0;
    for (const n of both!.nodes) {
      const a = total(q, n.id);
      const b = total(k, n.id);
      if (a === undefined || b === undefined) continue;
      expect(n.totalEffect).toBeCloseTo(a + b, 4);
      checked++;
    }
    expect(checked).toBeGreaterThan(3);
  });

  it("through value: the loss is the node's direct effect from the attribution table", async () => {
    const table = await attribute(model, [P], { target: T, distractor: D, topK: 10, nodeTypes: ["attention_head"] });
    const n = table.nodes.find((x) => x.type === "attention_head" && x.layer === 1 && x.position === S - 1 && x.directEffect !== 0)!;
    expect(n).toBeDefined();
    const up = await traceUpstream(model, [P], { type: "attention_head", layer: 1, head: n.head!, position: S - 1, keyPosition: n.keyPosition! }, { through: "value", target: T, distractor: D });
    expect(up.loss).toBeCloseTo(n.directEffect, 5);
    // Only what feeds v[k] (positions <= k, layers < 1) has an effect.
    for (const x of up.nodes) if (x.position > n.keyPosition! || (x.layer ?? 0) >= 1) expect(x.totalEffect).toBe(0);
    await expect(traceUpstream(model, [P], { type: "attention_head", layer: 1, head: 0, position: S - 1, keyPosition: 0 }, { through: "value" })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(traceUpstream(model, [P], { type: "attention_head", layer: 1, head: 0, position: 3, keyPosition: 0 }, { through: "value", target: T, distractor: D })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
  });

  it("bad input: several tokens without a list, equal sides, unknown node, position out of range", async () => {
    await expect(attribute(model, "Hello world", { target: " internationalization", distractor: " a" })).rejects.toMatchObject({ code: "E_NOT_SINGLE_TOKEN" });
    await expect(attribute(model, [P], { target: [T, D], distractor: [D, T] })).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(traceUpstream(model, [P], { type: "mlp_neuron", layer: 1, index: dm, position: 0 })).rejects.toMatchObject({ code: "E_INDEX_RANGE" });
    await expect(traceUpstream(model, [P], { type: "bogus" } as never)).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(traceUpstream(model, [P], { type: "mlp_neuron", layer: 2, index: 0, position: 0 })).rejects.toMatchObject({ code: "E_LAYER_RANGE" });
    await expect(traceUpstream(model, [P], { type: "attention_head", layer: 0, head: 0, position: 2, keyPosition: 5 })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
    await expect(traceUpstream(model, [P], { type: "mlp_neuron", layer: 0, index: 1, position: S })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
  });
});
