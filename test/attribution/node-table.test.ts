/**
 * The attribution node table against the float64 reference: activations, write magnitudes and
 * direct effects computed by hand, total effects (activation x gradient) by central finite
 * differences of the reference's loss with the node scaled by (1 +- eps) and the final
 * LayerNorm scale frozen; the linearisation check against a small intervention; the top-k row
 * selection against the full table (every node kept); the token heatmap against the reference's
 * derivative with all nodes at a token scaled together; traceUpstream.
 */
import { describe, expect, it } from "vitest";
import type { AttributionNode } from "../../src/attribution/node-table.js";
import { buildAttributionGraph } from "../../src/attribution/graph.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
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
    const table = await model.attribute([P], { target: T, distractor: D, topK: 8 });
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
    const table = await model.attribute([P], { target: T, distractor: D, topK: 5, nodeTypes: ["mlp_neuron"], detachFinalLnScale: false });
    const n = table.nodes[0]!;
    const eps = 0.02;
    const base = await model.trace([P], { hooks: [] });
    const r = await model.intervene([P], [{ hook: `blocks.${n.layer!}.mlp.hook_post`, kind: "scale", value: 1 - eps, at: { d_mlp: [n.index!] }, positions: [n.position] }]);
    const change = r.edited.logitDiff(T, D) - base.logitDiff(T, D);
    // Zero-ablation scaled by eps: delta L ~= -eps * a * dL/da.
    expect(Math.abs(change + eps * n.totalEffect)).toBeLessThan(0.05 * Math.abs(eps * n.totalEffect) + 1e-5);
  });
});

/** The table's columns, and the ones whose bottom-k is kept too. */
const COLUMNS = ["activation", "writeMagnitude", "directEffect", "totalEffect"] as const;
const BOTTOM = ["directEffect", "totalEffect"] as const;

/**
 * The rows a top-k table must keep, computed here from the full table: the union over columns
 * of the k largest (and for the effect columns also the k smallest) values. Ties at the k-th
 * value leave a choice: `required` holds the rows strictly beyond it, `allowed` every row at or
 * beyond it.
 */
function expectedSelection(full: readonly AttributionNode[], k: number): { required: Set<string>; allowed: Set<string>; ties: number } {
  const required = new Set<string>();
  const allowed = new Set<string>();
  let ties = 0;
  const sides = [...COLUMNS.map((c) => ({ c, sign: 1 })), ...BOTTOM.map((c) => ({ c, sign: -1 }))];
  for (const { c, sign } of sides) {
    const v = (n: AttributionNode) => sign * n[c];
    const kth = full.map(v).sort((a, b) => b - a)[k - 1]!;
    const atOrBeyond = full.filter((n) => v(n) >= kth);
    for (const n of atOrBeyond) {
      allowed.add(n.id);
      if (v(n) > kth) required.add(n.id);
    }
    if (atOrBeyond.length > k) ties++;
  }
  return { required, allowed, ties };
}

describe("attribute: row selection", () => {
  it("the top-k table is the union of per-column top/bottom-k of the full table, rows unchanged", async () => {
    const opts = { target: T, distractor: D };
    const probe = await model.attribute([P], { ...opts, topK: 1 });
    const all = probe.counts.mlp_neuron + probe.counts.attention_head + probe.counts.token_embedding;
    expect(all).toBe(2 * S * dm + (2 * H * S * (S + 1)) / 2 + S);
    const full = await model.attribute([P], { ...opts, topK: all });
    // topK >= the node count keeps every node, once.
    expect(full.nodes).toHaveLength(all);
    const byId = new Map(full.nodes.map((n) => [n.id, n]));
    expect(byId.size).toBe(all);
    let exact = 0;
    for (const k of [1, 3, 8, 40]) {
      const table = await model.attribute([P], { ...opts, topK: k });
      expect(table.nodes.length, `k=${k}`).toBeGreaterThan(0);
      for (const n of table.nodes) expect(n, n.id).toEqual(byId.get(n.id));
      const picked = new Set(table.nodes.map((n) => n.id));
      expect(picked.size).toBe(table.nodes.length);
      const { required, allowed, ties } = expectedSelection(full.nodes, k);
      for (const id of required) expect(picked.has(id), `k=${k}: ${id} must be kept`).toBe(true);
      for (const id of picked) expect(allowed.has(id), `k=${k}: ${id} is in no column's top/bottom ${k}`).toBe(true);
      if (ties === 0) {
        expect([...picked].sort()).toEqual([...allowed].sort());
        exact++;
      }
      // Sorted by |total effect|, largest first.
      for (let i = 1; i < table.nodes.length; i++) expect(Math.abs(table.nodes[i - 1]!.totalEffect)).toBeGreaterThanOrEqual(Math.abs(table.nodes[i]!.totalEffect));
      // The token heatmap sums over every node, whatever k keeps.
      expect(table.tokenEffects).toEqual(full.tokenEffects);
    }
    // Some k had no ties at the boundary, so the selection was checked exactly.
    expect(exact).toBeGreaterThan(0);
  });

  it("tokenEffects: the derivative of the float64 reference's loss with every node at the token scaled together", async () => {
    const table = await model.attribute([P], { target: T, distractor: D, topK: 4 });
    const scale = clean().cache.get("ln_final.hook_scale")!.data;
    expect(table.tokenEffects.map((e) => e.position)).toEqual([...Array(S).keys()]);
    const eps = 1e-4;
    let nonZero = 0;
    for (const { position: t, totalEffect } of table.tokenEffects) {
      // Sum over nodes at t of a dL/da = d/df L(every such node scaled by f) at f = 1: neurons at
      // position t, attention probabilities with key t (any head, query, layer), the embedding at t.
      const loss = (f: number) =>
        refLoss(scale, (name, x) => {
          if (name === "hook_embed") for (let j = 0; j < d; j++) x.data[t * d + j]! *= f;
          else if (name.endsWith("mlp.hook_post")) for (let i = 0; i < dm; i++) x.data[t * dm + i]! *= f;
          else if (name.endsWith("attn.hook_pattern")) for (let h = 0; h < H; h++) for (let q = t; q < S; q++) x.data[(h * S + q) * S + t]! *= f;
        });
      const fd = (loss(1 + eps) - loss(1 - eps)) / (2 * eps);
      expect(Math.abs(totalEffect - fd), `token ${t}: ${totalEffect} vs ${fd}`).toBeLessThanOrEqual(1e-5 + 5e-4 * Math.abs(fd));
      if (Math.abs(fd) > 1e-3) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(S / 2);
  });
});

describe("attribution graph", () => {
  it("reuses the model's W_out initializers instead of copying them", () => {
    const g = buildAttributionGraph(runtimeOf(model), { kind: "logitDiff" }, true);
    const names = g.model.graph!.initializer.map((t) => t.name);
    expect(names.filter((n) => n.includes("/W_out") && !n.includes("norm"))).toEqual([]);
    expect(names.filter((n) => n.includes("/W_out_norm"))).toHaveLength(TINY_GPT2.n_layer);
  });
});

describe("traceUpstream", () => {
  it("an MLP neuron's pre-activation: total effects of upstream nodes by finite differences", async () => {
    const target = { type: "mlp_neuron" as const, layer: 1, index: 17, position: 6 };
    const table = await model.traceUpstream([P], target, { topK: 6 });
    const pre = (onHook?: (name: string, t: RefTensor) => void) =>
      gpt2Reference(tm.arch, tm.weights, [P], undefined, { onHook }).cache.get("blocks.1.mlp.hook_pre")!.data[6 * dm + 17]!;
    expect(table.loss).toBeCloseTo(pre(), 4);
    expect(table.nodes.length).toBeGreaterThan(0);
    let unreachable = 0;
    let effective = 0;
    for (const n of table.nodes) {
      // Nothing at or after the traced neuron's layer, or after its position, affects it.
      if (n.type === "mlp_neuron" && n.layer! >= 1) expect([n.totalEffect, n.directEffect]).toEqual([0, 0]);
      if (n.type === "attention_head" && n.layer! >= 2) expect(n.totalEffect).toBe(0);
      if (n.position > 6) expect(n.totalEffect).toBe(0);
      if ((n.type === "mlp_neuron" && n.layer! >= 1) || n.position > 6) unreachable++;
      const { hook, at } = where(n);
      const width = n.type === "token_embedding" ? d : 1;
      const eps = 1e-4;
      const run = (f: number) => pre((name, t) => {
        if (name === hook) for (let j = 0; j < width; j++) t.data[at + j]! *= f;
      });
      const fd = (run(1 + eps) - run(1 - eps)) / (2 * eps);
      expect(Math.abs(n.totalEffect - fd), n.id).toBeLessThanOrEqual(1e-4 + 2e-3 * Math.abs(fd));
      if (Math.abs(fd) > 1e-3) effective++;
    }
    // Both kinds of row were checked: nodes that cannot reach the neuron (kept by the activation
    // and write columns) and nodes with a real effect.
    expect(unreachable).toBeGreaterThan(0);
    expect(effective).toBeGreaterThan(0);
  });

  it("an attention logit: gradient through query + through key = through both", async () => {
    const node = { type: "attention_head" as const, layer: 1, head: 2, position: 7, keyPosition: 3 };
    const [q, k, both] = await Promise.all(["query", "key", "both"].map((through) => model.traceUpstream([P], node, { through: through as "query", topK: 30, nodeTypes: ["mlp_neuron"] })));
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
    const table = await model.attribute([P], { target: T, distractor: D, topK: 10, nodeTypes: ["attention_head"] });
    const n = table.nodes.find((x) => x.type === "attention_head" && x.layer === 1 && x.position === S - 1 && x.directEffect !== 0)!;
    expect(n).toBeDefined();
    const up = await model.traceUpstream([P], { type: "attention_head", layer: 1, head: n.head!, position: S - 1, keyPosition: n.keyPosition! }, { through: "value", target: T, distractor: D });
    expect(up.loss).toBeCloseTo(n.directEffect, 5);
    // Only what feeds v[k] (positions <= k, layers < 1) has an effect.
    const cut = up.nodes.filter((x) => x.position > n.keyPosition! || (x.layer ?? 0) >= 1);
    const fed = up.nodes.filter((x) => !cut.includes(x));
    expect(cut.length).toBeGreaterThan(0);
    for (const x of cut) expect(x.totalEffect, x.id).toBe(0);
    expect(fed.some((x) => x.totalEffect !== 0)).toBe(true);
    await expect(model.traceUpstream([P], { type: "attention_head", layer: 1, head: 0, position: S - 1, keyPosition: 0 }, { through: "value" })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(model.traceUpstream([P], { type: "attention_head", layer: 1, head: 0, position: 3, keyPosition: 0 }, { through: "value", target: T, distractor: D })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
  });

  it("bad input: several tokens without a list, equal sides, unknown node, position out of range", async () => {
    await expect(model.attribute("Hello world", { target: " internationalization", distractor: " a" })).rejects.toMatchObject({ code: "E_NOT_SINGLE_TOKEN" });
    await expect(model.attribute([P], { target: [T, D], distractor: [D, T] })).rejects.toMatchObject({ code: "E_BAD_INPUT" });
    await expect(model.traceUpstream([P], { type: "mlp_neuron", layer: 1, index: dm, position: 0 })).rejects.toMatchObject({ code: "E_INDEX_RANGE" });
    await expect(model.traceUpstream([P], { type: "bogus" } as never)).rejects.toMatchObject({ code: "E_BAD_OPTION" });
    await expect(model.traceUpstream([P], { type: "mlp_neuron", layer: 2, index: 0, position: 0 })).rejects.toMatchObject({ code: "E_LAYER_RANGE" });
    await expect(model.traceUpstream([P], { type: "attention_head", layer: 0, head: 0, position: 2, keyPosition: 5 })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
    await expect(model.traceUpstream([P], { type: "mlp_neuron", layer: 0, index: 1, position: S })).rejects.toMatchObject({ code: "E_POSITION_RANGE" });
  });
});
