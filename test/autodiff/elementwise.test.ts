/**
 * Gradient checks of elementwise ops against central finite differences (float64 graphs,
 * relative error < 1e-6; Erf in float32 since onnxruntime has no float64 Erf, < 1e-3).
 */
import { describe, expect, it } from "vitest";
import { TensorProto_DataType as DT } from "onnx-buf";
import { gradcheck } from "../../src/autodiff/gradcheck.js";
import { GraphBuilder, attr } from "../../src/onnx/builder.js";
import { awayFromZero, bcast, expectGradOk, positive, tensor } from "./_helpers.js";

/** Broadcast pairs: [2,3,4] op [4], [2,1,4] op [3,1], with a scalar, same shape, and [1] op [2,3]. */
const PAIRS: [number[], number[]][] = [
  [[2, 3, 4], [4]],
  [[2, 1, 4], [3, 1]],
  [[2, 3], []],
  [[], [2, 3]],
  [[2, 3], [2, 3]],
  [[1], [2, 3]],
];

describe("binary ops with broadcasting (float64)", () => {
  for (const op of ["Add", "Sub", "Mul", "Div"]) {
    for (const [a, b] of PAIRS) {
      it(`${op} [${a}] op [${b}]`, async () => {
        await expectGradOk({
          inputs: { a, b },
          feeds: op === "Div" ? { b: awayFromZero(b, 7, "float64", 0.5) } : {},
          build: (g) => g.op(op, ["a", "b"]),
          outDims: bcast(a, b),
        });
      });
    }
  }

  for (const [a, b] of PAIRS.slice(0, 4)) {
    it(`Pow with a tensor exponent [${a}] ^ [${b}]`, async () => {
      await expectGradOk({ inputs: { a, b }, feeds: { a: positive(a, 3) }, build: (g) => g.op("Pow", ["a", "b"]), outDims: bcast(a, b) });
    });
  }

  it("Mul(x, x) accumulates both contributions", async () => {
    await expectGradOk({ inputs: { x: [3, 4] }, build: (g) => g.op("Mul", ["x", "x"]), outDims: [3, 4] });
  });

  it("Sum of three broadcast inputs", async () => {
    await expectGradOk({ inputs: { a: [2, 3], b: [3], c: [] }, build: (g) => g.op("Sum", ["a", "b", "c"]), outDims: [2, 3] });
  });
});

describe("Pow with a constant exponent (float64)", () => {
  for (const k of [2, 3, 0.5, 1, -1.5]) {
    it(`x ^ ${k}`, async () => {
      await expectGradOk({
        inputs: { x: [2, 5] },
        feeds: { x: positive([2, 5], 4) },
        build: (g) => g.op("Pow", ["x", g.constant("/c", new Float64Array([k]), [])]),
        outDims: [2, 5],
      });
    });
  }

  it("a float32 exponent on a float64 base (mixed types), gradient of the base", async () => {
    await expectGradOk({
      inputs: { x: [4] },
      feeds: { x: positive([4], 5) },
      build: (g) => g.op("Pow", ["x", g.constant("/c", new Float32Array([3]), [])]),
      outDims: [4],
    });
  });
});

describe("unary ops (float64)", () => {
  const cases: [string, "any" | "positive" | "nonzero"][] = [
    ["Neg", "any"],
    ["Exp", "any"],
    ["Log", "positive"],
    ["Sqrt", "positive"],
    ["Tanh", "any"],
    ["Sigmoid", "any"],
    ["Relu", "nonzero"],
    ["Abs", "nonzero"],
    ["Reciprocal", "nonzero"],
    ["Identity", "any"],
  ];
  for (const [op, domain] of cases) {
    it(op, async () => {
      const dims = [3, 4];
      const x = domain === "positive" ? positive(dims, 2) : domain === "nonzero" ? awayFromZero(dims, 2) : tensor(dims, 2);
      await expectGradOk({ inputs: { x: dims }, feeds: { x }, build: (g) => g.op(op, ["x"]), outDims: dims });
    });
  }

  it("LeakyRelu (float32: onnxruntime has no float64 LeakyRelu)", async () => {
    await expectGradOk({
      type: "float32",
      inputs: { x: [3, 4] },
      feeds: { x: awayFromZero([3, 4], 3, "float32", 0.5) },
      build: (g) => g.op("LeakyRelu", ["x"], { attrs: { alpha: attr.float(0.2) } }),
      outDims: [3, 4],
      promotes: false,
    }, undefined, { eps: 0.1 }); // piecewise linear: a large step has no truncation error and less float32 noise
  });

  it("Clip with min and max inputs", async () => {
    const x = tensor([4, 5], 8);
    const d = x.data as Float64Array;
    // keep values away from the bounds -0.5 and 0.7
    for (let i = 0; i < d.length; i++) if (Math.abs(d[i]! + 0.5) < 0.05 || Math.abs(d[i]! - 0.7) < 0.05) d[i] = 0;
    await expectGradOk({
      inputs: { x: [4, 5] },
      feeds: { x },
      build: (g) => g.op("Clip", ["x", g.constant("/c", new Float64Array([-0.5]), []), g.constant("/c", new Float64Array([0.7]), [])]),
      outDims: [4, 5],
    });
  });

  it("Dropout in inference mode passes the gradient through (ratio set, training off)", async () => {
    await expectGradOk({
      type: "float32",
      inputs: { x: [3, 4] },
      build: (g) => g.node("Dropout", ["x", g.constant("/c", new Float32Array([0.3]), [])], { scope: "/d", outputs: 1 })[0]!,
      outDims: [3, 4],
    });
  });

  it("Erf (float32: onnxruntime has no float64 Erf)", async () => {
    const r = await expectGradOk({ type: "float32", inputs: { x: [3, 4] }, build: (g) => g.op("Erf", ["x"]), outDims: [3, 4], promotes: false });
    expect(r.maxRelError).toBeLessThan(1e-3);
    expect(r.promotionError).toBeDefined();
  });

  it("the tanh-GELU of GPT-2, spelled out as the exporter does", async () => {
    await expectGradOk({
      inputs: { x: [2, 6] },
      build: (g) => {
        const c = (v: number) => g.constant("/act", new Float64Array([v]), []);
        const half = g.op("Mul", ["x", c(0.5)]);
        const cube = g.op("Mul", [g.op("Pow", ["x", c(3)]), c(0.044715)]);
        const inner = g.op("Mul", [g.op("Add", ["x", cube]), c(Math.sqrt(2 / Math.PI))]);
        return g.op("Mul", [half, g.op("Add", [g.op("Tanh", [inner]), c(1)])]);
      },
      outDims: [2, 6],
    });
  });
});

describe("Where, Expand, Cast", () => {
  it("Where with a broadcast condition, X [2,3,4] and Y [4]", async () => {
    const cond = { type: "bool" as const, data: new Uint8Array([1, 0, 1]), dims: [3, 1] };
    await expectGradOk({
      inputs: { x: [2, 3, 4], y: [4] },
      otherInputs: { c: { type: "bool", dims: [3, 1] } },
      feeds: { c: cond },
      build: (g) => g.op("Where", ["c", "x", "y"]),
      outDims: [2, 3, 4],
    });
  });

  it("Where with a scalar Y constant, only X differentiable", async () => {
    const cond = { type: "bool" as const, data: new Uint8Array([1, 0, 0, 1, 1, 0]), dims: [2, 3] };
    await expectGradOk({
      inputs: { x: [2, 3] },
      otherInputs: { c: { type: "bool", dims: [2, 3] } },
      feeds: { c: cond },
      build: (g) => g.op("Where", ["c", "x", g.constant("/c", new Float64Array([-3]), [])]),
      outDims: [2, 3],
    });
  });

  it("Expand [3,1] to [2,3,4]", async () => {
    await expectGradOk({
      inputs: { x: [3, 1] },
      build: (g) => g.op("Expand", ["x", g.constant("/c", new BigInt64Array([2n, 3n, 4n]), [3])]),
      outDims: [2, 3, 4],
    });
  });

  it("Cast float32 -> float64 passes the gradient back as float32", async () => {
    const b = new GraphBuilder({ opset: 13 });
    b.input("x", "float32", [3, 4]);
    const y = b.op("Cast", ["x"], { attrs: { to: DT.DOUBLE } });
    const sq = b.op("Mul", [y, y]);
    const w = b.initializer("R", new Float64Array(tensor([3, 4], 9).data as Float64Array), [3, 4]);
    b.output("loss", "float64", [], b.op("ReduceSum", [b.op("Mul", [sq, w])], { attrs: { keepdims: 0 } }));
    const r = await gradcheck(b.build(), { loss: "loss", wrt: ["x"] }, { x: tensor([3, 4], 1, "float32") }, { samples: 12 });
    expect(r.maxRelError).toBeLessThan(1e-3);
    expect(r.ok).toBe(true);
    // The float32 input was promoted: the reference ran in float64 throughout.
    expect([r.promoted, r.referenceType]).toEqual([true, "float64"]);
    expect(r.probes.x!.length).toBe(12);
  });
});
