/**
 * MatMul (1-D, 2-D, batched, broadcast batches) and Gemm (alpha, beta, transA, transB, bias
 * shapes) gradients against finite differences in float64, plus one closed-form check.
 */
import { describe, expect, it } from "vitest";
import { addGradients } from "../../src/autodiff/backward.js";
import { GraphBuilder, attr } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { createSession } from "../../src/backend/ort.js";
import { expectGradOk, tensor } from "./_helpers.js";

const MATMUL: [number[], number[], number[]][] = [
  [[3, 4], [4, 5], [3, 5]],
  [[2, 3, 4], [4, 5], [2, 3, 5]],
  [[2, 3, 4], [2, 4, 5], [2, 3, 5]],
  [[2, 1, 3, 4], [5, 4, 6], [2, 5, 3, 6]],
  [[4], [4], []],
  [[4], [4, 5], [5]],
  [[4], [2, 4, 5], [2, 5]],
  [[2, 3, 4], [4], [2, 3]],
  [[3, 4], [4], [3]],
];

describe("MatMul (float64)", () => {
  for (const [a, b, out] of MATMUL) {
    it(`[${a}] @ [${b}]`, async () => {
      await expectGradOk({ inputs: { a, b }, build: (g) => g.op("MatMul", ["a", "b"]), outDims: out });
    });
  }

  it("dA = dY B^T and dB = A^T dY, checked in closed form", async () => {
    const b = new GraphBuilder({ opset: 13 });
    b.input("a", "float64", [2, 3]);
    b.input("b", "float64", [3, 2]);
    b.output("loss", "float64", [], b.op("ReduceSum", [b.op("MatMul", ["a", "b"])], { attrs: { keepdims: 0 } }));
    const model = b.build();
    const g = OnnxGraph.fromModel(model);
    const { grads } = addGradients(g, { loss: "loss", wrt: ["a", "b"] });
    const A = tensor([2, 3], 1);
    const B = tensor([3, 2], 2);
    const s = await createSession(encodeModel(model));
    const out = await s.run({ a: A, b: B });
    await s.release();
    // With dY = ones: dA[i][k] = sum_j B[k][j], dB[k][j] = sum_i A[i][k].
    const da = out[grads.get("a")!]!.data as Float64Array;
    const db = out[grads.get("b")!]!.data as Float64Array;
    const Ad = A.data as Float64Array;
    const Bd = B.data as Float64Array;
    for (let i = 0; i < 2; i++) for (let k = 0; k < 3; k++) expect(da[i * 3 + k]).toBeCloseTo(Bd[k * 2]! + Bd[k * 2 + 1]!, 12);
    for (let k = 0; k < 3; k++) for (let j = 0; j < 2; j++) expect(db[k * 2 + j]).toBeCloseTo(Ad[k]! + Ad[3 + k]!, 12);
  });
});

describe("Gemm (float64)", () => {
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      it(`transA=${transA} transB=${transB}, alpha 0.7, beta 1.3, bias [5]`, async () => {
        await expectGradOk({
          inputs: { a: transA ? [4, 3] : [3, 4], b: transB ? [5, 4] : [4, 5], c: [5] },
          build: (g) => g.op("Gemm", ["a", "b", "c"], { attrs: { alpha: attr.float(0.7), beta: attr.float(1.3), transA, transB } }),
          outDims: [3, 5],
        });
      });
    }
  }
  for (const c of [[3, 5], [1, 5], [3, 1], []]) {
    it(`bias [${c}]`, async () => {
      await expectGradOk({ inputs: { a: [3, 4], b: [4, 5], c }, build: (g) => g.op("Gemm", ["a", "b", "c"], { attrs: { beta: attr.float(0.5) } }), outDims: [3, 5] });
    });
  }
  it("without a bias", async () => {
    await expectGradOk({ inputs: { a: [3, 4], b: [5, 4] }, build: (g) => g.op("Gemm", ["a", "b"], { attrs: { transB: 1 } }), outDims: [3, 5] });
  });
});
