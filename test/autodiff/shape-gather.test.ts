/**
 * Gradients of shape-moving ops (Reshape, Transpose, Squeeze/Unsqueeze, Flatten, Concat, Split,
 * Slice) and gathers (Gather, GatherND) against finite differences in float64, with an
 * independent closed-form check of an embedding gradient with repeated indices.
 */
import { describe, expect, it } from "vitest";
import { addGradients } from "../../src/autodiff/backward.js";
import { TdbError } from "../../src/base/errors.js";
import { GraphBuilder, attr } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { tensorToProto } from "../../src/onnx/tensor.js";
import { createSession } from "../../src/backend/ort.js";
import { expectGradOk, int64, opModel, tensor } from "./_helpers.js";

const i64 = (...v: (number | bigint)[]) => new BigInt64Array(v.map((x) => BigInt(x)));
const INT64_MAX = 9223372036854775807n;

describe("reshaping ops (float64)", () => {
  it("Reshape [2,3,4] -> [6,4]", async () => {
    await expectGradOk({ inputs: { x: [2, 3, 4] }, build: (g) => g.op("Reshape", ["x", g.constant("/c", i64(-1, 4), [2])]), outDims: [6, 4] });
  });
  it("Reshape to a shape computed in the graph", async () => {
    await expectGradOk({
      inputs: { x: [2, 3, 4], y: [4, 6] },
      build: (g) => g.op("Add", [g.op("Reshape", ["x", g.op("Shape", ["y"])]), "y"]),
      outDims: [4, 6],
    });
  });
  it("Transpose with perm and without", async () => {
    await expectGradOk({ inputs: { x: [2, 3, 4] }, build: (g) => g.op("Transpose", ["x"], { attrs: { perm: [2, 0, 1] } }), outDims: [4, 2, 3] });
    await expectGradOk({ inputs: { x: [2, 3, 4] }, build: (g) => g.op("Transpose", ["x"]), outDims: [4, 3, 2] });
  });
  it("Unsqueeze, Squeeze and Flatten", async () => {
    await expectGradOk({ inputs: { x: [2, 3] }, build: (g) => g.op("Unsqueeze", ["x", g.constant("/c", i64(0, -1), [2])]), outDims: [1, 2, 3, 1] });
    await expectGradOk({ inputs: { x: [2, 1, 3] }, build: (g) => g.op("Squeeze", ["x", g.constant("/c", i64(1), [1])]), outDims: [2, 3] });
    await expectGradOk({ inputs: { x: [2, 3, 4] }, build: (g) => g.op("Flatten", ["x"], { attrs: { axis: 2 } }), outDims: [6, 4] });
  });
});

describe("Concat and Split (float64)", () => {
  it("Concat of three inputs on axis 1 and on axis -1", async () => {
    await expectGradOk({ inputs: { a: [2, 1, 3], b: [2, 2, 3], c: [2, 3, 3] }, build: (g) => g.op("Concat", ["a", "b", "c"], { attrs: { axis: 1 } }), outDims: [2, 6, 3] });
    await expectGradOk({ inputs: { a: [2, 3, 1], b: [2, 3, 2] }, build: (g) => g.op("Concat", ["a", "b"], { attrs: { axis: -1 } }), outDims: [2, 3, 3] });
  });
  it("Concat with a constant piece and sizes known only at run time", async () => {
    await expectGradOk({
      inputs: { a: [2, 3] },
      otherInputs: { n: { type: "int64", dims: [2] } },
      feeds: { n: int64([2, 2]) },
      build: (g) => {
        // b has shape [2, 2] from a fed shape: its sizes are unknown statically.
        const b = g.op("ConstantOfShape", ["n"], { attrs: { value: attr.tensor(tensorToProto("", new Float64Array([0.5]), [1])) } });
        return g.op("Concat", ["a", b, "a"], { attrs: { axis: 1 } });
      },
      outDims: [2, 8],
    });
  });

  /** Splits x [2,6,3] on axis 1 and weights the pieces so that unused outputs are checked too. */
  const splitCase = (opset: number, build: (g: GraphBuilder) => string[], use: number[], outDims: number[]) =>
    expectGradOk({
      opset,
      inputs: { x: [2, 6, 3] },
      build: (g) => {
        const parts = build(g);
        return g.op("Concat", use.map((i) => parts[i]!), { attrs: { axis: 1 } });
      },
      outDims,
    });

  it("Split with a split input (opset 13), one output unused", async () => {
    await splitCase(13, (g) => g.node("Split", ["x", g.constant("/c", i64(1, 3, 2), [3])], { outputs: 3, attrs: { axis: 1 } }), [2, 0], [2, 3, 3]);
  });
  it("Split into equal parts without split (opset 13)", async () => {
    await splitCase(13, (g) => g.node("Split", ["x"], { outputs: 3, attrs: { axis: 1 } }), [0, 1, 2, 1], [2, 8, 3]);
  });
  it("Split with num_outputs (opset 18), one output unused", async () => {
    await splitCase(18, (g) => g.node("Split", ["x"], { outputs: 2, attrs: { axis: -2, num_outputs: 2 } }), [1], [2, 3, 3]);
  });
  it("Split with the split attribute spelled as an input at opset 18", async () => {
    await splitCase(18, (g) => g.node("Split", ["x", g.constant("/c", i64(4, 2), [2])], { outputs: 2, attrs: { axis: 1 } }), [0, 1], [2, 6, 3]);
  });
});

describe("Slice (float64)", () => {
  const x = [3, 5, 4];
  const slice = (starts: (number | bigint)[], ends: (number | bigint)[], axes?: number[], steps?: number[]) => (g: GraphBuilder) => {
    const ins = ["x", g.constant("/c", i64(...starts), [starts.length]), g.constant("/c", i64(...ends), [ends.length])];
    if (axes || steps) ins.push(axes ? g.constant("/c", i64(...axes), [axes.length]) : "");
    if (steps) ins.push(g.constant("/c", i64(...steps), [steps.length]));
    return g.op("Slice", ins);
  };
  it("positive starts, negative ends", async () => {
    await expectGradOk({ inputs: { x }, build: slice([1], [-1], [1]), outDims: [3, 3, 4] });
  });
  it("clamped ends (INT64_MAX, past the end) and clamped starts (-100)", async () => {
    await expectGradOk({ inputs: { x }, build: slice([2n, -100n], [INT64_MAX, 3n], [2, 0]), outDims: [3, 5, 2] });
    await expectGradOk({ inputs: { x }, build: slice([1], [99], [-2], [1]), outDims: [3, 4, 4] });
  });
  it("without axes (leading axes), explicit steps of 1", async () => {
    await expectGradOk({ inputs: { x }, build: slice([1, 0], [3, 2], undefined, [1, 1]), outDims: [2, 2, 4] });
  });
  it("an empty slice gets a zero gradient", async () => {
    await expectGradOk({ inputs: { x, y: [3, 5, 4] }, build: (g) => g.op("Add", ["y", g.op("ReduceSum", [slice([3], [2], [1])(g)], { attrs: { keepdims: 1 } })]), outDims: [3, 5, 4], zeroGradient: ["x"] });
  });
  it("starts and ends fed at run time (negative and clamped)", async () => {
    await expectGradOk({
      inputs: { x },
      otherInputs: { s: { type: "int64", dims: [2] }, e: { type: "int64", dims: [2] } },
      feeds: { s: int64([-4, 1]), e: int64([1000, -1]) },
      build: (g) => g.op("Slice", ["x", "s", "e", g.constant("/c", i64(1, 2), [2])]),
      outDims: [3, 4, 2],
    });
  });
  it("steps other than 1 are E_NO_GRADIENT", () => {
    const { model } = opModel({ inputs: { x }, build: slice([0], [5], [1], [2]), outDims: [3, 3, 4] });
    let err: unknown;
    try {
      addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["x"] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_NO_GRADIENT");
    expect((err as TdbError).message).toMatch(/Slice/);
  });
});

describe("Gather (float64)", () => {
  const ids = [
    [1, 1, 3, 1, 9],
    [3, 0, 1, -1, 2],
  ];
  for (const opset of [13, 16]) {
    it(`embedding [10,4] with repeated and negative indices (opset ${opset})`, async () => {
      await expectGradOk({
        opset,
        inputs: { table: [10, 4] },
        otherInputs: { ids: { type: "int64", dims: [2, 5] } },
        feeds: { ids: int64(ids.flat(), [2, 5]) },
        build: (g) => g.op("Gather", ["table", "ids"]),
        outDims: [2, 5, 4],
      });
    });
    it(`axis 1 and axis -1 (opset ${opset})`, async () => {
      const idx = { ids: int64([2, 0, 2], [3]) };
      const other = { ids: { type: "int64" as const, dims: [3] } };
      await expectGradOk({ opset, inputs: { x: [2, 4, 3] }, otherInputs: other, feeds: idx, build: (g) => g.op("Gather", ["x", "ids"], { attrs: { axis: 1 } }), outDims: [2, 3, 3] });
      await expectGradOk({ opset, inputs: { x: [2, 4, 3] }, otherInputs: other, feeds: idx, build: (g) => g.op("Gather", ["x", "ids"], { attrs: { axis: -1 } }), outDims: [2, 4, 3] });
    });
    it(`a scalar index (opset ${opset})`, async () => {
      await expectGradOk({
        opset,
        inputs: { x: [4, 3] },
        build: (g) => g.op("Gather", ["x", g.constant("/c", i64(2), [])]),
        outDims: [3],
      });
    });
  }

  it("embedding gradient = sum of the weight rows of each occurrence (closed form, initializer table)", async () => {
    for (const opset of [13, 16]) {
      const b = new GraphBuilder({ opset });
      const table = tensor([6, 3], 4);
      b.initializer("wte", table.data as Float64Array, [6, 3]);
      b.input("ids", "int64", [4]);
      b.input("w", "float64", [4, 3]);
      const rows = b.op("Gather", ["wte", "ids"]);
      b.output("loss", "float64", [], b.op("ReduceSum", [b.op("Mul", [rows, "w"])], { attrs: { keepdims: 0 } }));
      const model = b.build();
      const { grads } = addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["wte"] });
      const w = tensor([4, 3], 5);
      const idx = [2, 5, 2, 2];
      const s = await createSession(encodeModel(model));
      const got = (await s.run({ ids: int64(idx), w }))[grads.get("wte")!]!;
      await s.release();
      const want = new Float64Array(18);
      idx.forEach((r, k) => {
        for (let j = 0; j < 3; j++) want[r * 3 + j]! += (w.data as Float64Array)[k * 3 + j]!;
      });
      expect(got.dims).toEqual([6, 3]);
      for (let i = 0; i < 18; i++) expect(got.data[i]).toBeCloseTo(want[i]!, 12);
    }
  });
});

describe("GatherND (float64)", () => {
  for (const opset of [13, 16, 18]) {
    it(`batch_dims 0, repeated and negative index tuples (opset ${opset})`, async () => {
      await expectGradOk({
        opset,
        inputs: { x: [4, 5, 3] },
        otherInputs: { idx: { type: "int64", dims: [4, 2] } },
        feeds: { idx: int64([1, 2, 3, 0, 1, 2, -3, -3], [4, 2]) },
        build: (g) => g.op("GatherND", ["x", "idx"]),
        outDims: [4, 3],
      });
    });
    it(`batch_dims 1 (opset ${opset})`, async () => {
      await expectGradOk({
        opset,
        inputs: { x: [2, 4, 5] },
        otherInputs: { idx: { type: "int64", dims: [2, 3, 1] } },
        feeds: { idx: int64([3, 0, 3, 1, 1, -1], [2, 3, 1]) },
        build: (g) => g.op("GatherND", ["x", "idx"], { attrs: { batch_dims: 1 } }),
        outDims: [2, 3, 5],
      });
    });
  }
});
