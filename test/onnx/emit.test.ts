/**
 * GraphEmitter spells axes-taking ops for the graph's opset (attribute before, input from the
 * opset in AXES_INPUT_SINCE), places nodes where asked, and the graphs it writes run in
 * onnxruntime with the values computed by hand here.
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { axesAsInput, GraphEmitter } from "../../src/onnx/emit.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { exposeValue } from "../../src/onnx/surgery.js";
import { createSession } from "../../src/backend/ort.js";
import { fvi, graph, model } from "./_build.js";

const X = Float32Array.from([1, 2, 3, 4, 5, 6]); // [2, 3]

/** x [2,3] -> ReduceMean over the last axis, ReduceL2 over the last axis, Unsqueeze/Squeeze round trip. */
function emitted(opset: number) {
  const g = OnnxGraph.fromModel(model(graph([], [fvi("x", [2, 3])], []), opset));
  const e = new GraphEmitter(g, "/t");
  const mean = e.reduce("ReduceMean", "x", [1], false);
  const l2 = e.reduce("ReduceL2", "x", [-1], true);
  const plusEps = e.op("Add", [mean, e.scalar(0.5, DT.FLOAT)]);
  const round = e.squeeze(e.unsqueeze("x", [0]), [0]);
  for (const v of [mean, l2, plusEps, round]) exposeValue(g, v);
  return { g, names: { mean, l2, plusEps, round } };
}

describe("GraphEmitter", () => {
  it.each([13, 17, 18, 21])("opset %i: axes as the opset wants, values as computed by hand", async (opset) => {
    const { g, names } = emitted(opset);
    const reduces = g.nodes.filter((n) => n.opType.startsWith("Reduce"));
    expect(reduces).toHaveLength(2);
    for (const n of reduces) {
      const asInput = opset >= 18;
      expect(n.input.length).toBe(asInput ? 2 : 1);
      expect(n.attribute.some((a) => a.name === "axes")).toBe(!asInput);
    }
    const sq = g.nodes.filter((n) => n.opType === "Squeeze" || n.opType === "Unsqueeze");
    expect(sq.map((n) => n.input.length)).toEqual([2, 2]);
    const s = await createSession(encodeModel(g.model));
    const out = await s.run({ x: { type: "float32", data: X, dims: [2, 3] } });
    expect([...(out[names.mean]!.data as Float32Array)]).toEqual([2, 5]);
    expect(out[names.l2]!.dims).toEqual([2, 1]);
    const l2 = out[names.l2]!.data as Float32Array;
    expect(l2[0]).toBeCloseTo(Math.hypot(1, 2, 3), 5);
    expect(l2[1]).toBeCloseTo(Math.hypot(4, 5, 6), 5);
    expect([...(out[names.plusEps]!.data as Float32Array)]).toEqual([2.5, 5.5]);
    expect([...(out[names.round]!.data as Float32Array)]).toEqual([...X]);
    await s.release();
  });

  it("opset 12: Squeeze/Unsqueeze take attributes", () => {
    const { g } = emitted(12);
    expect(g.nodes.filter((n) => n.opType === "Unsqueeze")[0]!.input).toHaveLength(1);
    expect(axesAsInput("ReduceSum", 12)).toBe(false);
    expect(axesAsInput("ReduceSum", 13)).toBe(true);
    expect(axesAsInput("ReduceMean", 17)).toBe(false);
  });

  it("constants are emitted once per value; nodes go before or after an anchor", () => {
    const g = OnnxGraph.fromModel(model(graph([], [fvi("x", [2, 3])], []), 13));
    const e = new GraphEmitter(g, "/t");
    const last = e.op("Neg", ["x"], {}, "last");
    expect(e.ints([1, 2])).toBe(e.ints([1, 2]));
    expect(e.ints([1, 2])).not.toBe(e.ints([2, 1]));
    const lastNode = g.producer(last)!;
    e.placement = { before: lastNode };
    e.op("Abs", ["x"], {}, "first");
    e.placement = { after: g.producer(e.op("Relu", ["x"], {}, "second"))! };
    e.op("Sigmoid", ["x"], {}, "third");
    e.op("Tanh", ["x"], {}, "fourth");
    const order = g.nodes.filter((n) => n.opType !== "Constant").map((n) => n.name);
    expect(order).toEqual(["/t/first", "/t/second", "/t/third", "/t/fourth", "/t/last"]);
  });

  it("typed errors: an op without axes, dynamic axes before the input opset, a non-float scalar", () => {
    const g = OnnxGraph.fromModel(model(graph([], [fvi("x", [2, 3])], []), 13));
    const e = new GraphEmitter(g, "/t");
    expect(() => e.reduce("Relu", "x", [0], true)).toThrow(TdbError);
    expect(() => e.reduce("ReduceMean", "x", "axes_tensor", true)).toThrow(/before opset 18/);
    expect(() => e.scalar(1, DT.INT64)).toThrow(TdbError);
  });
});
