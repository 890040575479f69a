/**
 * Un-fusing the LayerNorm family and the fused activations: each single contrib op runs in
 * onnxruntime-node (its own CPU kernels are the reference), is rewritten as standard ONNX, runs
 * again, and every output must agree within 1e-5 on random inputs (batch 2, several lengths).
 */
import { describe, expect, it } from "vitest";
import { GraphBuilder, attr, type AttrInput } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { unfuseContribOps } from "../../src/onnx/unfuse/index.js";
import { compareUnfused, f32, i32, msModel, opsOf, rand } from "./_unfuse.js";

const D = 8;
const MS = "com.microsoft";
const LENGTHS = [1, 3, 7];

/** Feeds `x` [2,S,D] (and `skip` likewise) for each length, values scaled by `scale`. */
function feeds(names: string[], scale = 1, width = D) {
  return LENGTHS.map((S, k) => Object.fromEntries(names.map((n, j) => [n, f32(rand(2 * S * width, 100 * k + j + 1, scale), [2, S, width])])));
}

function gammaBeta(b: GraphBuilder) {
  const gamma = b.initializer("gamma", rand(D, 7).map((v) => 1 + v / 2), [D]);
  const beta = b.initializer("beta", rand(D, 8), [D]);
  return { gamma, beta };
}

describe("unfuse: LayerNormalization", () => {
  it.each([
    ["opset 17 ai.onnx, beta, epsilon 1e-5 default", 17, "", true, undefined],
    ["opset 13 ai.onnx (onnxruntime's LayerNormalization below 17)", 13, "", true, 1e-3],
    ["opset 12", 12, "", true, 1e-5],
    ["opset 18 (ReduceMean axes as input), no beta", 18, "", false, undefined],
  ] as const)("%s", async (_t, opset, domain, withBeta, eps) => {
    const b = new GraphBuilder({ opset });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const { gamma, beta } = gammaBeta(b);
    const attrs: Record<string, AttrInput> = eps === undefined ? {} : { epsilon: attr.float(eps) };
    const y = b.op("LayerNormalization", withBeta ? [x, gamma, beta] : [x, gamma], { name: "ln", domain, attrs });
    b.output("y", "float32", ["batch", "seq", D], y);
    // small inputs: the variance is of the order of epsilon, so a wrong default shows
    const r = await compareUnfused(msModel(b), [...feeds(["x"]), ...feeds(["x"], 3e-3)]);
    expect(r.maxDiff).toBeLessThan(1e-5);
    const ops = opsOf(r.unfused);
    expect(ops).not.toContain("LayerNormalization");
    // the export's decomposition, in order, with Sqrt as the scale
    const chain = ops.filter((o) => o !== "Constant" && o !== "Identity");
    expect(chain).toEqual(["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", ...(withBeta ? ["Add"] : [])]);
    expect(r.report.unfused).toEqual([{ op: "LayerNormalization", domain, node: "ln", emitted: expect.any(Number) }]);
    expect(r.unfused.graph!.node.filter((n) => n.opType !== "Identity").every((n) => n.name.startsWith("ln/"))).toBe(true);
  });

  it("SimplifiedLayerNormalization (onnxruntime's RMS norm, default domain)", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const { gamma } = gammaBeta(b);
    b.output("y", "float32", undefined, b.op("SimplifiedLayerNormalization", [x, gamma], { name: "rms", attrs: { epsilon: attr.float(1e-6) } }));
    const r = await compareUnfused(msModel(b), feeds(["x"]));
    expect(r.maxDiff).toBeLessThan(1e-5);
  });

  it("axis -2 normalises the last two axes; Mean and InvStdDev outputs keep their names", async () => {
    const b = new GraphBuilder({ opset: 17 });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const gamma = b.initializer("gamma", rand(3 * D, 7).map((v) => 1 + v / 2), [3, D]);
    const [y, mean, inv] = b.node("LayerNormalization", [x, gamma], { name: "ln", outputs: ["y", "mean", "inv"], attrs: { axis: -2 } });
    b.output(y!, "float32");
    b.output(mean!, "float32");
    b.output(inv!, "float32");
    const fs = [3].map((S) => ({ x: f32(rand(2 * S * D, 5), [2, S, D]) }));
    const r = await compareUnfused(msModel(b), fs);
    expect(Object.keys(r.perOutput)).toEqual(["y", "mean", "inv"]);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });
});

describe("unfuse: SkipLayerNormalization", () => {
  it.each([
    ["gamma only", false, false, false],
    ["beta", true, false, false],
    ["beta + bias", true, true, false],
    ["beta + bias, output 3 (input+skip+bias) consumed", true, true, true],
    ["bias without beta, output 3", false, true, true],
  ] as const)("%s", async (_t, withBeta, withBias, sumOut) => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const skip = b.input("skip", "float32", ["batch", "seq", D]);
    const { gamma, beta } = gammaBeta(b);
    const bias = b.initializer("bias", rand(D, 9), [D]);
    const inputs = [x, skip, gamma, withBeta ? beta : "", withBias ? bias : ""];
    while (inputs[inputs.length - 1] === "") inputs.pop();
    const outs = b.node("SkipLayerNormalization", inputs, { name: "SkipLayerNorm_0", domain: MS, outputs: ["y", "", "", sumOut ? "sum" : ""], attrs: { epsilon: attr.float(1e-5) } });
    b.output(outs[0]!, "float32");
    if (sumOut) b.output("sum_copy", "float32", undefined, b.op("Identity", ["sum"]));
    const r = await compareUnfused(msModel(b), [...feeds(["x", "skip"]), ...feeds(["x", "skip"], 3e-3)]);
    expect(r.maxDiff).toBeLessThan(1e-5);
    if (sumOut) {
      // the residual stream keeps its name, produced by a plain Add
      const g = OnnxGraph.fromModel(r.unfused);
      expect(g.producer("sum")?.opType).toBe("Add");
    }
  });

  it("mean and inv_std_var outputs", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const skip = b.input("skip", "float32", ["batch", "seq", D]);
    const { gamma, beta } = gammaBeta(b);
    b.node("SkipLayerNormalization", [x, skip, gamma, beta], { name: "sln", domain: MS, outputs: ["y", "mean", "inv_std"], attrs: { epsilon: attr.float(1e-5) } });
    for (const o of ["y", "mean", "inv_std"]) b.output(o, "float32");
    const r = await compareUnfused(msModel(b), feeds(["x", "skip"]));
    expect(Object.keys(r.perOutput)).toEqual(["y", "mean", "inv_std"]);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });

  it("default epsilon (1e-12) and a [S, D] skip", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", [2, 5, D]);
    const skip = b.input("skip", "float32", [5, D]);
    const { gamma, beta } = gammaBeta(b);
    const y = b.op("SkipLayerNormalization", [x, skip, gamma, beta], { name: "sln", domain: MS });
    b.output("y", "float32", undefined, y);
    const fs = [1, 1e-3].map((s, k) => ({ x: f32(rand(2 * 5 * D, 30 + k, s), [2, 5, D]), skip: f32(rand(5 * D, 40 + k, s), [5, D]) }));
    const r = await compareUnfused(msModel(b), fs);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });

  it("SkipSimplifiedLayerNormalization (RMS norm) with bias and output 3", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", D]);
    const skip = b.input("skip", "float32", ["batch", "seq", D]);
    const { gamma } = gammaBeta(b);
    const bias = b.initializer("bias", rand(D, 9), [D]);
    const outs = b.node("SkipSimplifiedLayerNormalization", [x, skip, gamma, bias], { name: "ssln", domain: MS, outputs: ["y", "", "", "sum"], attrs: { epsilon: attr.float(1e-6) } });
    b.output(outs[0]!, "float32");
    b.output("sum", "float32");
    const r = await compareUnfused(msModel(b), feeds(["x", "skip"]));
    expect(r.maxDiff).toBeLessThan(1e-5);
  });
});

describe("unfuse: EmbedLayerNormalization", () => {
  const V = 11;
  const P = 16;
  function embedModel(opts: { segment?: boolean; mask?: boolean; positionIds?: boolean; sumOut?: boolean; eps?: number; opset?: number }) {
    const b = new GraphBuilder({ opset: opts.opset ?? 13 });
    const ids = b.input("input_ids", "int32", ["batch", "seq"]);
    const seg = opts.segment ? b.input("segment_ids", "int32", ["batch", "seq"]) : "";
    const mask = opts.mask ? b.input("mask", "int32", ["batch", "seq"]) : "";
    const pos = opts.positionIds ? b.input("position_ids", "int32", ["batch", "seq"]) : "";
    const word = b.initializer("wte", rand(V * D, 21), [V, D]);
    const wpe = b.initializer("wpe", rand(P * D, 22), [P, D]);
    const segEmb = opts.segment ? b.initializer("seg", rand(2 * D, 23), [2, D]) : "";
    const { gamma, beta } = gammaBeta(b);
    const inputs = [ids, seg, word, wpe, segEmb, gamma, beta, mask, pos];
    while (inputs[inputs.length - 1] === "") inputs.pop();
    const outs = b.node("EmbedLayerNormalization", inputs, {
      name: "EmbedLayerNormalization_0",
      domain: MS,
      outputs: ["emb", "mask_index", ...(opts.sumOut ? ["emb_sum"] : [])],
      attrs: opts.eps === undefined ? {} : { epsilon: attr.float(opts.eps) },
    });
    b.output(outs[0]!, "float32");
    b.output("mask_index", "int32");
    if (opts.sumOut) b.output("emb_sum", "float32");
    return msModel(b);
  }
  function embedFeeds(opts: { segment?: boolean; mask?: boolean; positionIds?: boolean; sumOut?: boolean; eps?: number; opset?: number }) {
    return LENGTHS.map((S, k) => {
      const f: Record<string, ReturnType<typeof i32>> = {};
      const n = 2 * S;
      f.input_ids = i32(Array.from({ length: n }, (_, i) => (i * 7 + k) % V), [2, S]);
      if (opts.segment) f.segment_ids = i32(Array.from({ length: n }, (_, i) => (i + k) % 2), [2, S]);
      // row 0 full, row 1 right-padded by one
      if (opts.mask) f.mask = i32(Array.from({ length: n }, (_, i) => (i >= S && i === n - 1 ? 0 : 1)), [2, S]);
      if (opts.positionIds) f.position_ids = i32(Array.from({ length: n }, (_, i) => (i % S) + 2 * (i >= S ? 1 : 0)), [2, S]);
      return f;
    });
  }
  it.each([
    ["word + position, mask, default epsilon", { mask: true }],
    ["segment embedding, mask, embedding_sum output", { segment: true, mask: true, sumOut: true, eps: 1e-5 }],
    ["no mask (mask_index zeros)", { eps: 1e-5 }],
    ["position_ids input", { mask: true, positionIds: true, eps: 1e-5 }],
    ["opset 12 (ReduceSum axes as an attribute)", { mask: true, eps: 1e-5, opset: 12 }],
  ] as const)("%s", async (_t, opts) => {
    const r = await compareUnfused(embedModel(opts), embedFeeds(opts));
    expect(r.maxDiff).toBeLessThan(1e-5);
    expect(opsOf(r.unfused)).toContain("Gather");
  });
});

describe("unfuse: activations and FusedMatMul", () => {
  const H = 12;
  it.each([
    ["FastGelu with bias", "FastGelu", true, {}],
    ["FastGelu without bias", "FastGelu", false, {}],
    ["BiasGelu", "BiasGelu", true, {}],
    ["Gelu", "Gelu", false, {}],
    ["QuickGelu default alpha", "QuickGelu", false, {}],
    ["QuickGelu alpha 1.5", "QuickGelu", false, { alpha: attr.float(1.5) }],
  ] as const)("%s", async (_t, op, withBias, attrs) => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", H]);
    const bias = b.initializer("bias", rand(H, 3), [H]);
    const y = b.op(op, withBias ? [x, bias] : [x], { name: `${op}_AddBias_0`, domain: MS, attrs });
    b.output("y", "float32", undefined, y);
    const r = await compareUnfused(msModel(b), feeds(["x"], 3, H));
    expect(r.maxDiff).toBeLessThan(1e-5);
    if (op === "FastGelu") {
      const chain = opsOf(r.unfused).filter((o) => o !== "Constant" && o !== "Identity");
      expect(chain).toEqual([...(withBias ? ["Add"] : []), "Mul", "Pow", "Mul", "Add", "Mul", "Tanh", "Add", "Mul"]);
    }
  });

  it.each([true, false])("GemmFastGelu, bias %s (no CPU kernel: the reference is MatMul + onnxruntime's FastGelu)", async (withBias) => {
    const { createSession } = await import("../../src/backend/ort.js");
    const build = (fusedGemm: boolean) => {
      const b = new GraphBuilder({ opset: 13 });
      const x = b.input("x", "float32", ["batch", "seq", D]);
      const w = b.initializer("w", rand(D * H, 5), [D, H]);
      const bias = b.initializer("bias", rand(H, 3), [H]);
      const y = fusedGemm
        ? b.op("GemmFastGelu", withBias ? [x, w, bias] : [x, w], { name: "gfg", domain: MS })
        : b.op("FastGelu", withBias ? [b.op("MatMul", [x, w]), bias] : [b.op("MatMul", [x, w])], { name: "fg", domain: MS });
      b.output("y", "float32", undefined, y);
      return msModel(b);
    };
    const g = OnnxGraph.fromModel(build(true));
    unfuseContribOps(g, { strict: true });
    const plain = await createSession(encodeModel(g.model), { optimizationLevel: "disabled" });
    const ref = await createSession(encodeModel(build(false)), { optimizationLevel: "disabled" });
    let d = 0;
    for (const f of feeds(["x"], 2)) {
      const a = (await ref.run(f)).y!.data as Float32Array;
      const c = (await plain.run(f)).y!.data as Float32Array;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - c[i]!));
    }
    await plain.release();
    await ref.release();
    expect(d).toBeLessThan(1e-5);
  });

  it("BiasAdd (no CPU kernel in onnxruntime: checked against x + bias + skip computed here)", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", "seq", H]);
    const skip = b.input("skip", "float32", ["batch", "seq", H]);
    const biasData = rand(H, 3);
    const bias = b.initializer("bias", biasData, [H]);
    b.output("y", "float32", undefined, b.op("BiasAdd", [x, bias, skip], { name: "ba", domain: MS }));
    const g = OnnxGraph.fromModel(msModel(b));
    unfuseContribOps(g, { strict: true });
    expect(opsOf(g.model).filter((o) => o !== "Identity")).toEqual(["Add", "Add"]);
    const { createSession } = await import("../../src/backend/ort.js");
    const s = await createSession(encodeModel(g.model));
    const f = feeds(["x", "skip"], 1, H)[1]!;
    const y = (await s.run(f)).y!.data as Float32Array;
    await s.release();
    const xs = f.x!.data as Float32Array;
    const ss = f.skip!.data as Float32Array;
    let d = 0;
    for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs(y[i]! - (xs[i]! + biasData[i % H]! + ss[i]!)));
    expect(d).toBeLessThan(1e-6);
  });

  it.each([
    [0, 0, 1],
    [1, 0, 0.125],
    [0, 1, 1],
    [1, 1, -2],
  ])("FusedMatMul transA=%i transB=%i alpha=%f", async (ta, tb, alpha) => {
    const b = new GraphBuilder({ opset: 13 });
    const a = b.input("a", "float32", ta ? [2, 3, 5, 4] : [2, 3, 4, 5]);
    const w = b.initializer("w", rand(5 * 6, 4), tb ? [6, 5] : [5, 6]);
    b.output("y", "float32", undefined, b.op("FusedMatMul", [a, w], { name: "fmm", domain: MS, attrs: { transA: ta, transB: tb, alpha: attr.float(alpha) } }));
    const r = await compareUnfused(msModel(b), [{ a: f32(rand(120, 9), ta ? [2, 3, 5, 4] : [2, 3, 4, 5]) }]);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });
});

describe("unfuse: onnxruntime's own fusions", () => {
  it("a graph fused by onnxruntime (LayerNormalization, FastGelu, ...) un-fuses back to the same function", async () => {
    const { lnGeluModel } = await import("./_fusion.js");
    const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { createSession } = await import("../../src/backend/ort.js");
    const dir = mkdtempSync(join(tmpdir(), "tdb-unfuse-"));
    try {
      const path = join(dir, "opt.onnx");
      const s = await createSession(encodeModel(lnGeluModel()), { optimizationLevel: "all", optimizedModelFilePath: path });
      await s.release();
      const fused = decodeModel(readFileSync(path));
      const ops = opsOf(fused);
      expect(ops.some((o) => o.includes("FastGelu") || o.includes("LayerNormalization"))).toBe(true);
      const fs = [1, 4].map((S) => ({ x: f32(rand(2 * S * D, S), [2, S, D]) }));
      const r = await compareUnfused(fused, fs);
      expect(r.maxDiff).toBeLessThan(1e-5);
      expect(opsOf(r.unfused)).not.toContain("LayerNormalization");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("unfuse: refusals", () => {
  function unknownOp() {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", 4]);
    const y = b.op("Gelu", [x], { name: "g0", domain: MS });
    b.output("y", "float32", undefined, b.op("Rfft", [y], { name: "weird_0", domain: MS }));
    return msModel(b);
  }
  it("an op without a rule is reported and left; the rest is rewritten", () => {
    const g = OnnxGraph.fromModel(unknownOp());
    const r = unfuseContribOps(g);
    expect(r.unfused.map((u) => u.op)).toEqual(["Gelu"]);
    expect(r.unsupported).toEqual([{ op: "Rfft", domain: MS, node: "weird_0", reason: expect.stringContaining("no un-fusing rule") }]);
    expect(g.nodes.filter((n) => n.domain === MS).map((n) => n.name)).toEqual(["weird_0"]);
    expect(g.model.opsetImport.some((o) => o.domain === MS)).toBe(true);
  });

  it("strict: E_UNSUPPORTED_GRAPH naming the op, the node and why", async () => {
    const { thrown } = await import("../helpers/errors.js");
    const e = thrown(() => unfuseContribOps(OnnxGraph.fromModel(unknownOp()), { strict: true }));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.message).toMatch(/Rfft/);
    expect(e.message).toMatch(/weird_0/);
    expect(e.value).toEqual({ op: "Rfft", node: "weird_0", reason: expect.stringContaining("no un-fusing rule") });
    expect(e.allowed).toEqual(expect.arrayContaining(["Attention", "SkipLayerNormalization", "FastGelu", "LayerNormalization"]));
  });

  it("a variant that cannot be spelled is rolled back and reported by name (FusedMatMul transA on an undeclared rank)", () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32");
    const w = b.initializer("w", rand(4, 1), [2, 2]);
    b.output("y", "float32", undefined, b.op("FusedMatMul", [b.op("Relu", [x]), w], { name: "fmm", domain: MS, attrs: { transA: 1 } }));
    const g = OnnxGraph.fromModel(msModel(b));
    const before = g.nodes.length;
    const r = unfuseContribOps(g);
    expect(r.unsupported).toEqual([{ op: "FusedMatMul", domain: MS, node: "fmm", reason: expect.stringContaining("rank") }]);
    expect(g.nodes.length).toBe(before);
  });
});

describe("unfuse: float16 graphs and subgraphs", () => {
  it("float16 SkipLayerNormalization + FastGelu are rewritten in float32 between Casts (as the kernels compute)", async () => {
    const { floatToHalf: float16Bits } = await import("../../src/onnx/half.js");
    const half = (a: Float32Array) => Uint16Array.from(a, (v) => float16Bits(v));
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float16", ["batch", "seq", D]);
    const skip = b.input("skip", "float16", ["batch", "seq", D]);
    const gamma = b.initializer("gamma", half(rand(D, 7).map((v) => 1 + v / 2)), [D], "float16");
    const beta = b.initializer("beta", half(rand(D, 8)), [D], "float16");
    const bias = b.initializer("bias", half(rand(D, 9)), [D], "float16");
    const outs = b.node("SkipLayerNormalization", [x, skip, gamma, beta, bias], { name: "sln", domain: MS, outputs: ["ln", "", "", "sum"], attrs: { epsilon: attr.float(1e-5) } });
    const y = b.op("FastGelu", [outs[0]!, bias], { name: "gelu", domain: MS });
    b.output("y", "float16", undefined, y);
    b.output("sum", "float16");
    const fs = LENGTHS.map((S, k) => ({
      x: { type: "float16" as const, data: half(rand(2 * S * D, 50 + k, 2)), dims: [2, S, D] },
      skip: { type: "float16" as const, data: half(rand(2 * S * D, 60 + k, 2)), dims: [2, S, D] },
    }));
    const r = await compareUnfused(msModel(b), fs);
    // one float16 rounding step apart at most (|y| < 4: ulp 2^-8)
    expect(r.maxDiff).toBeLessThan(4e-3);
    const ops = opsOf(r.unfused);
    expect(ops.filter((o) => o === "Cast").length).toBeGreaterThanOrEqual(4);
  });

  it("contrib ops inside If branches are rewritten too", async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input("x", "float32", ["batch", D]);
    const c = b.input("c", "bool", []);
    const branch = (name: string, op: string) => {
      const s = b.subgraph(name);
      const y = s.op(op, [x], { name: `${name}/${op}_0`, domain: MS });
      s.output(`${name}_y`, "float32", undefined, y);
      return s.buildGraph();
    };
    const y = b.op("If", [c], { name: "if", attrs: { then_branch: attr.graph(branch("then", "FastGelu")), else_branch: attr.graph(branch("else", "Gelu")) } });
    b.output("y", "float32", undefined, y);
    const xs = f32(rand(2 * D, 3, 3), [2, D]);
    const r = await compareUnfused(msModel(b), [true, false].map((v) => ({ x: xs, c: { type: "bool" as const, data: Uint8Array.from([v ? 1 : 0]), dims: [] } })));
    expect(r.maxDiff).toBeLessThan(1e-5);
    expect(r.report.unfused.map((u) => u.op).sort()).toEqual(["FastGelu", "Gelu"]);
    const branches = r.unfused.graph!.node.find((n) => n.opType === "If")!.attribute.map((a) => a.g!.node.map((n) => n.domain));
    expect(branches.flat().every((d) => d === "")).toBe(true);
  });
});
