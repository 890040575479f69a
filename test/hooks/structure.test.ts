/**
 * The structural pass (src/hooks/gpt2-structure.ts) on graphs without module scopes: strip the
 * names of a generated export (the unscoped form, as torch.onnx < 1.13 wrote them), run the pass,
 * and every node must get back the name the scoped export gave it; discovery on the restored
 * graph equals discovery on the scoped one; a partly scoped graph (nodes renamed as un-fusing
 * names them) is restored; scoped exports are left alone; graphs that are not GPT-2 get a reason
 * naming what was found, never an exception.
 */
import type { ModelProto, NodeProto } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { gpt2Adapter } from "../../src/hooks/gpt2.js";
import { analyzeGpt2Structure, assignGpt2Scopes, normalizeGpt2 } from "../../src/hooks/gpt2-structure.js";
import type { ArchDims } from "../../src/hooks/adapter.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { cloneStructure } from "../../src/onnx/clone.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { gpt2Config, headDim, TINY_GPT2, type Gpt2Config } from "../../src/synthetic/config.js";
import { unscopedNames } from "../../src/synthetic/forms/unscoped.js";
import { positionIdsInput } from "../../src/synthetic/forms/position-ids.js";
import { buildGpt2Graph, UNEMBED_BIAS, type Gpt2GraphOptions } from "../../src/synthetic/gpt2-graph.js";
import { randomGpt2Weights } from "../../src/synthetic/weights.js";
import { FOUR_LAYER } from "../helpers/models.js";
import { addDropouts, gpt2DropoutSites } from "./_dropouts.js";

const ATTN_ONLY = gpt2Config({ n_layer: 2, n_head: 4, n_embd: 32, n_positions: 32, vocab_size: 300, attn_only: true });
const ONE_LAYER = gpt2Config({ n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16, vocab_size: 64 });

function dimsOf(c: Gpt2Config): ArchDims {
  return { nLayers: c.n_layer, nHeads: c.n_head, dModel: c.n_embd, dHead: headDim(c), dMlp: c.n_inner, nCtx: c.n_positions, dVocab: c.vocab_size, lnEps: c.layer_norm_epsilon };
}

function build(c: Gpt2Config, opts: Gpt2GraphOptions & { bias?: boolean } = {}): ModelProto {
  const w = randomGpt2Weights(c, 3);
  if (opts.bias) w.set(UNEMBED_BIAS, { data: new Float32Array(c.vocab_size).fill(0.5), dims: [c.vocab_size] });
  return buildGpt2Graph(c, w, opts);
}

const scopeOf = (name: string) => name.slice(0, name.lastIndexOf("/"));

const CASES: { label: string; c: Gpt2Config; opts?: Gpt2GraphOptions & { bias?: boolean } }[] = [
  { label: "TINY_GPT2", c: TINY_GPT2 },
  { label: "attention-only", c: ATTN_ONLY },
  { label: "FOUR_LAYER (3 heads, d_model 48)", c: FOUR_LAYER },
  { label: "one layer", c: ONE_LAYER },
  { label: "Gemm(transB=1) weights", c: FOUR_LAYER, opts: { gemmTransB: true } },
  { label: "final Reshape from Shape(input_ids), unembedding bias", c: TINY_GPT2, opts: { finalReshape: "input-shape", bias: true } },
];

describe("unscoped form", () => {
  it("has no scope in any node name; keeps inputs, outputs and parameter names; values renamed as torch.onnx < 1.13", () => {
    const m = build(TINY_GPT2);
    const u = unscopedNames(m);
    const names = u.graph!.node.map((n) => n.name);
    expect(names.filter((n) => n.includes("/"))).toEqual([]);
    expect(names.every((n) => /^[A-Za-z]+_\d+$/.test(n))).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    expect(u.graph!.input.map((v) => v.name)).toEqual(m.graph!.input.map((v) => v.name));
    expect(u.graph!.output.map((v) => v.name)).toEqual(m.graph!.output.map((v) => v.name));
    expect(u.graph!.initializer.map((t) => t.name)).toEqual(m.graph!.initializer.map((t) => t.name));
    expect(u.graph!.initializer.some((t) => /^onnx::MatMul_\d+$/.test(t.name))).toBe(true);
    const values = u.graph!.node.flatMap((n) => n.output).filter((v) => !m.graph!.output.some((o) => o.name === v));
    expect(values.every((v) => /^\d+$/.test(v) || /^onnx::[A-Za-z]+_\d+$/.test(v))).toBe(true);
    expect(values.some((v) => v.startsWith("onnx::"))).toBe(true);
    // The original is untouched (structure cloned, tensors shared).
    expect(m.graph!.node[0]!.name).toMatch(/^\/transformer\//);
    // Same op sequence and wiring, up to names.
    expect(u.graph!.node.map((n) => n.opType)).toEqual(m.graph!.node.map((n) => n.opType));
    // Discovery by scopes alone finds no block there (the issue this pass fixes).
    const map = gpt2Adapter.discover(OnnxGraph.fromModel(u), dimsOf(TINY_GPT2));
    expect([...map.sources.keys()].filter((k) => k.startsWith("blocks."))).toEqual([]);
    expect(map.unavailable.get("blocks.0.hook_resid_pre")).toMatch(/structural pass finds .*2 blocks.*normalize/);
  });

  it("numericInitializers renames every initializer to a number, unembedding included", () => {
    const u = unscopedNames(build(TINY_GPT2), { numericInitializers: true });
    expect(u.graph!.initializer.every((t) => /^\d+$/.test(t.name))).toBe(true);
    const used = new Set(u.graph!.node.flatMap((n) => n.input));
    expect(u.graph!.initializer.every((t) => used.has(t.name))).toBe(true);
  });
});

describe("assignGpt2Scopes", () => {
  it.each(CASES)("gives every node of the unscoped $label back the scoped export's name", ({ c, opts }) => {
    const m = build(c, opts);
    for (const numericInitializers of [false, true]) {
      const u = unscopedNames(m, { numericInitializers });
      const g = OnnxGraph.fromModel(u);
      const r = assignGpt2Scopes(g, { dVocab: c.vocab_size, nCtx: c.n_positions });
      expect(r.result.ok, r.note).toBe(true);
      expect(r.renamed).toBe(m.graph!.node.length);
      const want = m.graph!.node.map((n) => n.name);
      const got = g.nodes.map((n) => n.name);
      const wrong = want.flatMap((w, i) => (w === got[i] ? [] : [`${i} ${g.nodes[i]!.opType}: ${w} -> ${got[i]}`]));
      expect(wrong).toEqual([]);
      if (r.result.ok) expect(r.result.structure.blocks).toEqual(Array.from({ length: c.n_layer }, () => ({ attnOnly: c.attn_only === true })));
    }
  });

  it("without hints (no config dims) as well", () => {
    const m = build(FOUR_LAYER);
    const g = OnnxGraph.fromModel(unscopedNames(m));
    expect(assignGpt2Scopes(g).result.ok).toBe(true);
    expect(g.nodes.map((n) => n.name)).toEqual(m.graph!.node.map((n) => n.name));
  });

  it("position_ids as a graph input: the same scope for every node", () => {
    const m = positionIdsInput(build(TINY_GPT2));
    const g = OnnxGraph.fromModel(unscopedNames(m));
    expect(assignGpt2Scopes(g, { dVocab: TINY_GPT2.vocab_size, nCtx: TINY_GPT2.n_positions }).result.ok).toBe(true);
    expect(g.nodes.map((n) => scopeOf(n.name))).toEqual(m.graph!.node.map((n) => scopeOf(n.name)));
  });

  it("discovery on the restored graph equals discovery on the scoped export, hook by hook", () => {
    for (const c of [TINY_GPT2, ATTN_ONLY]) {
      const m = build(c);
      const g = OnnxGraph.fromModel(unscopedNames(m));
      const report = normalizeGpt2(g, dimsOf(c));
      expect(report.changed).toBe(true);
      expect(report.problems).toEqual([]);
      expect(report.steps[0]).toMatch(/named \d+ nodes from the graph's structure: .*2 blocks/);
      const a = gpt2Adapter.discover(g, dimsOf(c));
      const b = gpt2Adapter.discover(OnnxGraph.fromModel(m), dimsOf(c));
      // Value names differ (numbers vs /transformer/... names); map them through the producers' positions.
      const pos = (gg: OnnxGraph, v: string) => {
        const p = gg.producer(v);
        return p ? `${gg.nodes.indexOf(p)}:${p.output.indexOf(v)}` : v;
      };
      expect([...a.sources.keys()]).toEqual([...b.sources.keys()]);
      expect([...a.unavailable]).toEqual([...b.unavailable]);
      for (const [k, s] of a.sources) {
        const t = b.sources.get(k)!;
        expect(s.kind, k).toBe(t.kind);
        if (s.kind === "tap" && t.kind === "tap") {
          expect(pos(g, s.value), k).toBe(pos(OnnxGraph.fromModel(m), t.value));
          expect([s.broadcastBatch, s.fusionTail]).toEqual([t.broadcastBatch, t.fusionTail]);
        }
      }
      expect(gpt2Adapter.checkDims(g, dimsOf(c))).toEqual([]);
      expect(gpt2Adapter.finalNormScale(g, dimsOf(c))).toBeDefined();
      if (!c.attn_only) expect(gpt2Adapter.mlpOutWeight(g, 1, dimsOf(c))).toBe(gpt2Adapter.mlpOutWeight(OnnxGraph.fromModel(m), 1, dimsOf(c)));
    }
  });

  it("a scoped export is left as it is", () => {
    for (const c of [TINY_GPT2, ATTN_ONLY]) {
      const m = build(c);
      const before = m.graph!.node.map((n) => n.name);
      const report = normalizeGpt2(OnnxGraph.fromModel(m), dimsOf(c));
      expect(report.changed).toBe(false);
      expect(report.steps[0]).toMatch(/already match/);
      expect(m.graph!.node.map((n) => n.name)).toEqual(before);
    }
  });

  it("a partly scoped graph (one block's nodes named as un-fusing names them) is restored", () => {
    const m = build(TINY_GPT2);
    const p = cloneStructure(m);
    let k = 0;
    for (const n of p.graph!.node) {
      if (n.name.startsWith("/transformer/h.1/attn/") || n.name.startsWith("/transformer/h.1/ln_1/")) n.name = `Attention_0/${n.opType}_${k++}`;
    }
    expect(k).toBeGreaterThan(50);
    const g = OnnxGraph.fromModel(p);
    const report = normalizeGpt2(g, dimsOf(TINY_GPT2));
    expect(report.changed).toBe(true);
    expect(g.nodes.map((n) => n.name)).toEqual(m.graph!.node.map((n) => n.name));
  });
});

/** A copy of the unscoped TINY_GPT2 graph with `edit` applied to the node that was named `scopedName`. */
function edited(scopedName: string, edit: (n: NodeProto) => void): OnnxGraph {
  const m = build(TINY_GPT2);
  const u = unscopedNames(m);
  const i = m.graph!.node.findIndex((n) => n.name === scopedName);
  expect(i).toBeGreaterThanOrEqual(0);
  edit(u.graph!.node[i]!);
  const g = OnnxGraph.fromModel(u);
  g.invalidate();
  return g;
}

describe("graphs that are not GPT-2: a reason naming what was found, never an exception", () => {
  it("no embedding table", () => {
    const b = new GraphBuilder({ opset: 13 });
    b.input("x", "float32", [2, 4]);
    b.initializer("w", new Float32Array(16), [4, 4]);
    b.output(b.op("MatMul", ["x", "w"]), "float32");
    const g = OnnxGraph.fromModel(b.build());
    const r = analyzeGpt2Structure(g);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/no Gather over a 2-D initializer/);
    const report = normalizeGpt2(g, dimsOf(TINY_GPT2));
    expect(report.changed).toBe(false);
    expect(report.problems[0]).toMatch(/structure not understood: no Gather/);
    const map = gpt2Adapter.discover(g, dimsOf(TINY_GPT2));
    expect(map.unavailable.get("blocks.0.hook_resid_pre")).toMatch(/structural pass could not find GPT-2 blocks: no Gather over a 2-D initializer/);
  });

  it("an attention without Softmax: names the segment and what was found before", () => {
    const g = edited("/transformer/h.0/attn/Softmax", (n) => (n.opType = "Sigmoid"));
    const r = analyzeGpt2Structure(g, { dVocab: 512, nCtx: 64 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/segment ending at residual Add Add_\d+ \(number 1\) has no Softmax/);
      expect(r.found).toMatch(/token embedding Gather_\d+ \[512, 64\], position embedding Gather_\d+ \[64, 64\].*4 residual Adds/);
    }
    const names = g.nodes.map((n) => n.name);
    expect(normalizeGpt2(g, dimsOf(TINY_GPT2)).changed).toBe(false);
    expect(g.nodes.map((n) => n.name)).toEqual(names);
    expect(gpt2Adapter.discover(g, dimsOf(TINY_GPT2)).unavailable.get("blocks.0.hook_resid_pre")).toMatch(/no Softmax .*found: token embedding/);
  });

  it("a LayerNorm that is not one (ReduceMax instead of ReduceMean)", () => {
    const g = edited("/transformer/h.1/ln_2/ReduceMean", (n) => (n.opType = "ReduceMax"));
    const r = analyzeGpt2Structure(g);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/block 1 MLP: .*LayerNorm/);
  });

  it("fused onnxruntime ops", () => {
    const g = edited("/transformer/h.0/attn/Softmax", (n) => {
      n.opType = "Attention";
      n.domain = "com.microsoft";
    });
    const r = analyzeGpt2Structure(g);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/fused onnxruntime ops Attention/);
  });

  it("no position embedding added to the token embedding", () => {
    const g = edited("/transformer/Add", (n) => (n.opType = "Sub"));
    const r = analyzeGpt2Structure(g);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/Gathers over embedding tables \(Gather_\d+ \[512, 64\], Gather_\d+ \[64, 64\]\) but no Add/);
  });
});

describe("eval-mode Dropout nodes (older exports)", () => {
  it("are looked through: every block found, the same hooks as the scoped export", () => {
    for (const c of [TINY_GPT2, ATTN_ONLY]) {
      const m = build(c);
      const u = unscopedNames(m);
      // Embedding sum, one Softmax and one or two projections per block.
      expect(addDropouts(u, gpt2DropoutSites)).toBe(1 + c.n_layer * (c.attn_only ? 2 : 3));
      const g = OnnxGraph.fromModel(u);
      const report = normalizeGpt2(g, dimsOf(c));
      expect(report.problems).toEqual([]);
      expect(report.changed).toBe(true);
      const a = gpt2Adapter.discover(g, dimsOf(c));
      const b = gpt2Adapter.discover(OnnxGraph.fromModel(m), dimsOf(c));
      expect([...a.sources.keys()]).toEqual([...b.sources.keys()]);
      expect([...a.unavailable.keys()]).toEqual([...b.unavailable.keys()]);
      // resid_pre of block 0 is the Dropout's output (what the blocks read).
      const pre = a.sources.get("blocks.0.hook_resid_pre");
      expect(pre?.kind === "tap" ? g.producer(pre.value)?.opType : undefined).toBe("Dropout");
      // The Dropouts on the branches belong to their block's attention or MLP.
      const drops = g.nodes.filter((n) => n.opType === "Dropout").map((n) => scopeOf(n.name));
      expect(drops[0]).toBe("/transformer");
      expect(drops.slice(1).every((s) => /^\/transformer\/h\.\d+\/(attn|mlp)/.test(s))).toBe(true);
    }
  });
});
