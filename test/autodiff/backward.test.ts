/**
 * addGradients as a whole: intermediate wrt values, values the loss does not depend on,
 * stop-gradient, dynamic shapes, every opset from 13 to 18, errors, and gradcheck itself: it
 * fails on a wrong gradient rule, probes what it is told, and reports float64 promotion.
 */
import type { ModelProto } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { addGradients } from "../../src/autodiff/backward.js";
import { gradcheck } from "../../src/autodiff/gradcheck.js";
import { registerGradient, supportedGradientOps } from "../../src/autodiff/registry.js";
import { GraphBuilder, valueInfo } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { exposeValue } from "../../src/onnx/surgery.js";
import { tensorFromProto, type HostTensor } from "../../src/onnx/tensor.js";
import { createSession } from "../../src/backend/ort.js";
import { thrown } from "../helpers/errors.js";
import { expectGradOk, int64, opModel, tensor } from "./_helpers.js";


async function runGrads(model: ModelProto, feeds: Record<string, HostTensor>, names: string[]): Promise<Record<string, HostTensor>> {
  const s = await createSession(encodeModel(model));
  try {
    return await s.run(feeds, names);
  } finally {
    await s.release();
  }
}

/** x -> h = tanh(x W) -> s = sqrt(h*h + 1) -> y = h * s; loss = sum(y * R). */
function stopModel() {
  return opModel({
    inputs: { x: [3, 4], w: [4, 5] },
    build: (g) => {
      const h = g.op("Tanh", [g.op("MatMul", ["x", "w"])], { output: "h" });
      const s = g.op("Sqrt", [g.op("Add", [g.op("Mul", [h, h]), g.constant("/c", new Float64Array([1]), [])])], { output: "s" });
      return g.op("Mul", [h, s], { output: "y" });
    },
    outDims: [3, 5],
  });
}

describe("addGradients", () => {
  it("gradients w.r.t. intermediate activations used several times", async () => {
    await expectGradOk(
      {
        inputs: { x: [3, 4], w: [4, 5] },
        build: (g) => {
          const h = g.op("Tanh", [g.op("MatMul", ["x", "w"])], { output: "h" });
          const u = g.op("Mul", [h, g.op("Exp", [h])], { output: "u" });
          return g.op("Add", [g.op("Softmax", [u]), h]);
        },
        outDims: [3, 5],
      },
      ["h", "u", "x", "w"],
    );
  });

  it("a value the loss does not depend on gets an all-zero gradient of its shape", async () => {
    const { model, feeds } = opModel({ inputs: { x: [2, 3], unused: [4, 2] }, build: (g) => g.op("Exp", ["x"]), outDims: [2, 3] });
    const { grads } = addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["unused", "x"] });
    const out = await runGrads(model, feeds, [...grads.values()]);
    const z = out[grads.get("unused")!]!;
    expect(z.dims).toEqual([4, 2]);
    expect([...(z.data as Float64Array)].every((v) => v === 0)).toBe(true);
    expect([...(out[grads.get("x")!]!.data as Float64Array)].some((v) => v !== 0)).toBe(true);
  });

  it("stop-gradient: a value connected only through a stopped value gets exactly zero", async () => {
    // loss = sum(exp(x * w) * R) + sum(x * R2), exp(x * w) stopped: d/dw = 0, d/dx = R2.
    const b = new GraphBuilder({ opset: 13 });
    b.input("x", "float64", [2, 3]);
    b.input("w", "float64", [3]);
    const R = tensor([2, 3], 11);
    const R2 = tensor([2, 3], 12);
    const e = b.op("Exp", [b.op("Mul", ["x", "w"])], { output: "e" });
    const t1 = b.op("ReduceSum", [b.op("Mul", [e, b.initializer("R", R.data as Float64Array, [2, 3])])], { attrs: { keepdims: 0 } });
    const t2 = b.op("ReduceSum", [b.op("Mul", ["x", b.initializer("R2", R2.data as Float64Array, [2, 3])])], { attrs: { keepdims: 0 } });
    b.output("loss", "float64", [], b.op("Add", [t1, t2]));
    const feeds = { x: tensor([2, 3], 1), w: tensor([3], 2) };

    const stopped = b.build();
    const { grads } = addGradients(OnnxGraph.fromModel(stopped), { loss: "loss", wrt: ["x", "w"], stopGradient: ["e"] });
    const out = await runGrads(stopped, feeds, [...grads.values()]);
    expect([...(out[grads.get("w")!]!.data as Float64Array)]).toEqual([0, 0, 0]);
    expect([...(out[grads.get("x")!]!.data as Float64Array)]).toEqual([...(R2.data as Float64Array)]);

    const free = b.build();
    const g2 = addGradients(OnnxGraph.fromModel(free), { loss: "loss", wrt: ["x", "w"] }).grads;
    const out2 = await runGrads(free, feeds, [...g2.values()]);
    expect([...(out2[g2.get("w")!]!.data as Float64Array)].every((v) => v !== 0)).toBe(true);
  });

  it("stop-gradient equals the gradient of the graph with the stopped value fed as a constant", async () => {
    const { feeds } = stopModel();
    const probe = stopModel().model;
    exposeValue(OnnxGraph.fromModel(probe), "s");
    const sValue = (await runGrads(probe, feeds, ["s"])).s!;

    const stopped = stopModel().model;
    const { grads } = addGradients(OnnxGraph.fromModel(stopped), { loss: "loss", wrt: ["x", "w"], stopGradient: ["s"] });
    const got = await runGrads(stopped, feeds, [...grads.values()]);

    // The reference: s cut off from its producer and fed; its plain gradient is gradchecked.
    const cut = () => {
      const m = stopModel().model;
      const g = OnnxGraph.fromModel(m);
      g.removeNodes([g.producer("s")!]);
      g.addInput(valueInfo("s", "float64", [3, 5]));
      return m;
    };
    const cutFeeds = { ...feeds, s: sValue };
    expect((await gradcheck(cut(), { loss: "loss", wrt: ["x", "w"] }, cutFeeds, { samples: 8 })).ok).toBe(true);
    const ref = cut();
    const refGrads = addGradients(OnnxGraph.fromModel(ref), { loss: "loss", wrt: ["x", "w"] }).grads;
    const want = await runGrads(ref, cutFeeds, [...refGrads.values()]);
    for (const w of ["x", "w"]) {
      const a = got[grads.get(w)!]!.data as Float64Array;
      const b = want[refGrads.get(w)!]!.data as Float64Array;
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 12);
    }

    // ...and differs from the unstopped gradient (itself gradchecked).
    expect((await gradcheck(stopModel().model, { loss: "loss", wrt: ["x"] }, feeds)).ok).toBe(true);
    const free = stopModel().model;
    const freeGrads = addGradients(OnnxGraph.fromModel(free), { loss: "loss", wrt: ["x"] }).grads;
    const freeX = (await runGrads(free, feeds, [freeGrads.get("x")!]))[freeGrads.get("x")!]!.data as Float64Array;
    const stoppedX = got[grads.get("x")!]!.data as Float64Array;
    expect(Math.max(...freeX.map((v, i) => Math.abs(v - stoppedX[i]!)))).toBeGreaterThan(1e-3);
  });

  it("dynamic shapes: broadcast reductions decided at run time", async () => {
    // x [n, 3] + b [m, 3] where n, m are unknown statically (m = 1 or n at run time).
    for (const m of [1, 4]) {
      const b = new GraphBuilder({ opset: 13 });
      b.input("x", "float64", ["n", 3]);
      b.input("b", "float64", ["m", 3]);
      b.input("r", "float64", ["n", 3]);
      const y = b.op("Mul", [b.op("Tanh", [b.op("Add", ["x", "b"])]), "r"]);
      b.output("loss", "float64", [], b.op("ReduceSum", [y], { attrs: { keepdims: 0 } }));
      const model = b.build();
      const copy = b.build();
      addGradients(OnnxGraph.fromModel(copy), { loss: "loss", wrt: ["x", "b"] });
      expect(copy.graph!.node.some((n) => n.opType === "NonZero")).toBe(true);
      const r = await gradcheck(model, { loss: "loss", wrt: ["x", "b"] }, { x: tensor([4, 3], 1), b: tensor([m, 3], 2), r: tensor([4, 3], 3) });
      expect(r.maxRelError).toBeLessThan(1e-6);
    }
  });

  it("static shapes: the broadcast reduction is a ReduceSum over constant axes", () => {
    const { model } = opModel({ inputs: { x: [2, 3, 4], b: [4] }, build: (g) => g.op("Add", ["x", "b"]), outDims: [2, 3, 4] });
    const g = OnnxGraph.fromModel(model);
    const before = g.nodes.length;
    addGradients(g, { loss: "loss", wrt: ["b"] });
    const added = g.nodes.slice(before).map((n) => n.opType);
    expect(added).not.toContain("NonZero");
    expect(added).toContain("ReduceSum");
  });

  for (const opset of [13, 14, 15, 16, 17, 18, 19, 21]) {
    it(`a small network differentiates and gradchecks at opset ${opset}`, async () => {
      await expectGradOk(
        {
          opset,
          inputs: { emb: [7, 4], w: [4, 6], bias: [6], scale: [6] },
          otherInputs: { ids: { type: "int64", dims: [2, 3] } },
          feeds: { ids: int64([1, 6, 1, 0, 3, 1], [2, 3]) },
          build: (g) => {
            const x = g.op("Gather", ["emb", "ids"]);
            const h = g.op("Gemm", [g.op("Reshape", [x, g.constant("/c", new BigInt64Array([-1n, 4n]), [2])]), "w", "bias"]);
            const mean = opset >= 18 ? g.op("ReduceMean", [h, g.constant("/c", new BigInt64Array([-1n]), [1])]) : g.op("ReduceMean", [h], { attrs: { axes: [-1] } });
            const c = g.op("Sub", [h, mean]);
            const p = g.op("Softmax", [g.op("Mul", [c, "scale"])], { attrs: { axis: -1 } });
            const [p1, p2] = g.node("Split", [p, g.constant("/c", new BigInt64Array([2n, 4n]), [2])], { outputs: 2, attrs: { axis: 1 } }) as [string, string];
            return g.op("Concat", [g.op("Sqrt", [g.op("Add", [p2, g.constant("/c", new Float64Array([0.1]), [])])]), p1], { attrs: { axis: 1 } });
          },
          outDims: [6, 6],
        },
        ["emb", "w", "bias", "scale"],
      );
    });
  }

  it("the gradient outputs are named after the prefix", () => {
    const { model } = opModel({ inputs: { x: [2] }, build: (g) => g.op("Exp", ["x"]), outDims: [2] });
    const g = OnnxGraph.fromModel(model);
    const { grads } = addGradients(g, { loss: "loss", wrt: ["x"], prefix: "/my/grad" });
    expect(grads.get("x")).toBe("/my/grad/x");
    expect(g.outputNames()).toContain("/my/grad/x");
    expect(g.nodes.some((n) => n.name.startsWith("/my/grad/"))).toBe(true);
  });
});

describe("errors", () => {
  it("an op without a gradient rule is E_NO_GRADIENT naming the op and the node", () => {
    const { model } = opModel({ inputs: { x: [2, 3] }, build: (g) => g.op("Sin", [g.op("Exp", ["x"])], { name: "/block/my_sin" }), outDims: [2, 3] });
    const e = thrown(() => addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["x"] }));
    expect(e.code).toBe("E_NO_GRADIENT");
    expect(e.message).toContain("Sin");
    expect(e.message).toContain("/block/my_sin");
    expect(e.value).toBe("Sin");
    expect(e.allowed).toEqual(supportedGradientOps());
    expect(e.allowed).toContain("MatMul");
  });

  it("an op off the path needs no rule", () => {
    const { model } = opModel({ inputs: { x: [2, 3], y: [2, 3] }, build: (g) => g.op("Add", [g.op("Sin", ["y"]), g.op("Exp", ["x"])]), outDims: [2, 3] });
    expect(() => addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["x"] })).not.toThrow();
  });

  it("an unknown loss or wrt value is E_ONNX_INVALID naming it", () => {
    const { model } = opModel({ inputs: { x: [2] }, build: (g) => g.op("Exp", ["x"]), outDims: [2] });
    const g = OnnxGraph.fromModel(model);
    const e1 = thrown(() => addGradients(g, { loss: "nope", wrt: ["x"] }));
    expect(e1.code).toBe("E_ONNX_INVALID");
    expect(e1.message).toContain("nope");
    const e2 = thrown(() => addGradients(g, { loss: "loss", wrt: ["x", "missing_value"] }));
    expect(e2.code).toBe("E_ONNX_INVALID");
    expect(e2.value).toBe("missing_value");
  });

  it("an integer wrt value is E_BAD_OPTION", () => {
    const { model } = opModel({ inputs: { x: [2] }, otherInputs: { ids: { type: "int64", dims: [2] } }, build: (g) => g.op("Exp", ["x"]), outDims: [2] });
    expect(thrown(() => addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["ids"] })).code).toBe("E_BAD_OPTION");
  });

  it("opsets before 13 are E_UNSUPPORTED_GRAPH", () => {
    const { model } = opModel({ opset: 12, inputs: { x: [2] }, build: (g) => g.op("Exp", ["x"]), outDims: [2] });
    expect(thrown(() => addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["x"] })).code).toBe("E_UNSUPPORTED_GRAPH");
  });
});

describe("gradcheck", () => {
  it("fails on a wrong gradient rule", async () => {
    const { model, feeds } = opModel({ inputs: { x: [3, 4] }, build: (g) => g.op("Tanh", ["x"]), outDims: [3, 4] });
    const previous = registerGradient("Tanh", ({ dy }) => [dy()]); // forgets the (1 - y^2) factor
    try {
      const r = await gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds);
      expect(r.ok).toBe(false);
      expect(r.maxRelError).toBeGreaterThan(1e-2);
      expect(r.worst?.wrt).toBe("x");
    } finally {
      registerGradient("Tanh", previous);
    }
    expect((await gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds)).ok).toBe(true);
  });

  it("fails a gradient of the wrong shape", async () => {
    const { model, feeds } = opModel({ inputs: { x: [3, 4] }, build: (g) => g.op("Exp", ["x"]), outDims: [3, 4] });
    const previous = registerGradient("Exp", ({ e, dy }) => [e.reduceSum(dy(), [0], true)]); // [1, 4]
    try {
      const r = await gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds);
      expect(r.ok).toBe(false);
      expect(r.perWrt.x).toBe(Infinity);
      expect(r.worst?.index).toBe(-1);
    } finally {
      registerGradient("Exp", previous);
    }
  });

  it("reports per-wrt errors and probes all elements of small tensors", async () => {
    const { model, feeds } = opModel({ inputs: { a: [2, 2], b: [3] }, build: (g) => g.op("Add", [g.op("ReduceSum", ["a"], { attrs: { keepdims: 0 } }), "b"]), outDims: [3] });
    const r = await gradcheck(model, { loss: "loss", wrt: ["a", "b"] }, feeds, { samples: 100 });
    expect(Object.keys(r.perWrt).sort()).toEqual(["a", "b"]);
    expect(r.ok).toBe(true);
    expect(r.probes.a!.map((p) => p.index)).toEqual([0, 1, 2, 3]);
    expect(r.probes.b!.map((p) => p.index)).toEqual([0, 1, 2]);
    // loss = sum((sum(a) + b) * R): d/da_i = sum(R), d/db_j = R_j (closed form).
    const rv = tensorFromProto(model.graph!.initializer.find((t) => t.name === "R")!).data as Float64Array;
    const sumR = rv.reduce((x, y) => x + y, 0);
    for (const p of r.probes.a!) expect(p.analytic).toBeCloseTo(sumR, 12);
    r.probes.b!.forEach((p, j) => expect(p.analytic).toBeCloseTo(rv[j]!, 12));
  });

  it("probes the given indices, and rejects indices outside the tensor", async () => {
    const { model, feeds } = opModel({ inputs: { x: [4, 5] }, build: (g) => g.op("Tanh", ["x"]), outDims: [4, 5] });
    const r = await gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds, { indices: { x: [19, 0, 7] } });
    expect(r.ok).toBe(true);
    expect(r.probes.x!.map((p) => p.index)).toEqual([19, 0, 7]);
    await expect(gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds, { indices: { x: [20] } })).rejects.toMatchObject({ code: "E_INDEX_RANGE", value: 20 });
    await expect(gradcheck(model, { loss: "loss", wrt: ["x"] }, feeds, { indices: { x: [1.5] } })).rejects.toMatchObject({ code: "E_INDEX_RANGE" });
  });

  it("reports whether the numeric reference ran promoted to float64", async () => {
    const f32 = opModel({ type: "float32", inputs: { x: [3, 4] }, build: (g) => g.op("Tanh", ["x"]), outDims: [3, 4] });
    const promoted = await gradcheck(f32.model, { loss: "loss", wrt: ["x"] }, f32.feeds);
    expect([promoted.promoted, promoted.referenceType, promoted.promotionError]).toEqual([true, "float64", undefined]);
    const plain = await gradcheck(f32.model, { loss: "loss", wrt: ["x"] }, f32.feeds, { promote: false });
    expect([plain.promoted, plain.referenceType]).toEqual([false, "float32"]);
    // onnxruntime has no float64 Erf kernel: the check falls back to float32 and says why.
    const erf = opModel({ type: "float32", inputs: { x: [3, 4] }, build: (g) => g.op("Erf", ["x"]), outDims: [3, 4] });
    const fallback = await gradcheck(erf.model, { loss: "loss", wrt: ["x"] }, erf.feeds);
    expect([fallback.promoted, fallback.referenceType]).toEqual([false, "float32"]);
    expect(fallback.promotionError).toMatch(/Erf|double|kernel/i);
    // Float32 rounding shows in the unpromoted check's error and not in the promoted one's.
    expect(promoted.maxRelError).toBeLessThan(plain.maxRelError);
  });
});
