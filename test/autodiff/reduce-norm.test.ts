/**
 * ReduceSum / ReduceMean (opset 13 and 18 spellings, keepdims 0/1, negative axes), Softmax and
 * LogSoftmax on several axes, and LayerNormalization (opset 17), against finite differences.
 */
import { describe, it } from "vitest";
import { expectGradOk } from "./_helpers.js";

const X = [2, 3, 4];

function reducedDims(axes: number[] | undefined, keep: boolean): number[] {
  const all = axes === undefined || axes.length === 0;
  const norm = (axes ?? []).map((a) => (a < 0 ? a + X.length : a));
  return keep ? X.map((d, i) => (all || norm.includes(i) ? 1 : d)) : X.filter((_, i) => !(all || norm.includes(i)));
}

describe("ReduceSum and ReduceMean (float64)", () => {
  const axesCases: (number[] | undefined)[] = [[1], [-1], [0, 2], undefined];
  for (const op of ["ReduceSum", "ReduceMean"]) {
    for (const opset of [13, 18]) {
      for (const axes of axesCases) {
        for (const keep of [0, 1]) {
          it(`${op} opset ${opset} axes ${axes ? `[${axes}]` : "(all)"} keepdims ${keep}`, async () => {
            const inputForm = op === "ReduceSum" || opset >= 18;
            await expectGradOk({
              opset,
              inputs: { x: X },
              build: (g) => {
                if (!axes) return g.op(op, ["x"], { attrs: { keepdims: keep } });
                if (inputForm) return g.op(op, ["x", g.constant("/c", new BigInt64Array(axes.map(BigInt)), [axes.length])], { attrs: { keepdims: keep } });
                return g.op(op, ["x"], { attrs: { axes, keepdims: keep } });
              },
              outDims: reducedDims(axes, keep === 1),
            });
          });
        }
      }
    }
  }

  it("ReduceSum with noop_with_empty_axes and no axes is the identity", async () => {
    await expectGradOk({ inputs: { x: X }, build: (g) => g.op("ReduceSum", ["x"], { attrs: { noop_with_empty_axes: 1 } }), outDims: X });
  });

  it("ReduceMean opset 18 with noop_with_empty_axes and no axes", async () => {
    await expectGradOk({ opset: 18, inputs: { x: X }, build: (g) => g.op("ReduceMean", ["x"], { attrs: { noop_with_empty_axes: 1 } }), outDims: X });
  });

  it("ReduceSum with axes fed at run time (keepdims 0)", async () => {
    await expectGradOk({
      inputs: { x: X },
      otherInputs: { axes: { type: "int64", dims: [1] } },
      feeds: { axes: { type: "int64", data: new BigInt64Array([1n]), dims: [1] } },
      build: (g) => g.op("ReduceSum", ["x", "axes"], { attrs: { keepdims: 0 } }),
      outDims: [2, 4],
    });
  });
});

describe("Softmax and LogSoftmax (float64, opset 13)", () => {
  for (const op of ["Softmax", "LogSoftmax"]) {
    for (const axis of [-1, 1, 0]) {
      it(`${op} axis ${axis}`, async () => {
        await expectGradOk({ inputs: { x: X }, build: (g) => g.op(op, ["x"], { attrs: { axis } }), outDims: X });
      });
    }
  }
});

describe("LayerNormalization (opset 17)", () => {
  for (const type of ["float64", "float32"] as const) {
    it(`axis -1 with scale and bias (${type})`, async () => {
      await expectGradOk({ type, opset: 17, inputs: { x: X, scale: [4], bias: [4] }, build: (g) => g.op("LayerNormalization", ["x", "scale", "bias"], { attrs: { axis: -1 } }), outDims: X });
    });
  }
  it("axis 1 (normalizing the last two axes), scale [3,4], no bias", async () => {
    await expectGradOk({ opset: 17, inputs: { x: X, scale: [3, 4] }, build: (g) => g.op("LayerNormalization", ["x", "scale"], { attrs: { axis: 1, epsilon: 0.01 } }), outDims: X });
  });
  it("opset 18 (ReduceMean with axes as an input in the backward graph)", async () => {
    await expectGradOk({ opset: 18, inputs: { x: X, scale: [4], bias: [4] }, build: (g) => g.op("LayerNormalization", ["x", "scale", "bias"]), outDims: X });
  });
});
