/**
 * GatherElements' gradient (the cross-entropy's pick of the target log-probability) against
 * finite differences in float64: size-1 index axis at opset 13 (plain ScatterElements), repeated
 * indices at opset 16 (ScatterElements with reduction "add"), and the opset-13 refusal of
 * indices that could repeat.
 */
import { describe, expect, it } from "vitest";
import { addGradients } from "../../src/autodiff/backward.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { expectGradOk, int64, opModel } from "./_helpers.js";
import { rejected } from "../helpers/errors.js";

describe("GatherElements (float64)", () => {
  it("picks one element per row along the last axis (opset 13)", async () => {
    await expectGradOk({
      inputs: { x: [2, 3, 5] },
      otherInputs: { idx: { type: "int64", dims: [2, 3, 1] } },
      feeds: { idx: int64([4, 0, 2, 1, -1, 3], [2, 3, 1]) },
      build: (g) => g.op("GatherElements", ["x", "idx"], { attrs: { axis: -1 } }),
      outDims: [2, 3, 1],
    });
  });

  it("accumulates repeated indices (opset 16, axis 0)", async () => {
    await expectGradOk({
      opset: 16,
      inputs: { x: [3, 4] },
      otherInputs: { idx: { type: "int64", dims: [5, 4] } },
      feeds: { idx: int64([0, 1, 2, 0, 0, 1, 2, 2, 1, 1, 0, 2, 2, 0, 1, 1, 0, 0, 0, 0], [5, 4]) },
      build: (g) => g.op("GatherElements", ["x", "idx"], { attrs: { axis: 0 } }),
      outDims: [5, 4],
    });
  });

  it("refuses indices longer than 1 along the axis before opset 16", async () => {
    const { model } = opModel({
      inputs: { x: [3, 4] },
      otherInputs: { idx: { type: "int64", dims: [2, 4] } },
      build: (g) => g.op("GatherElements", ["x", "idx"], { attrs: { axis: 0 } }),
      outDims: [2, 4],
    });
    const err = await rejected(Promise.resolve().then(() => addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["x"] })));
    expect(err.code).toBe("E_NO_GRADIENT");
  });
});
