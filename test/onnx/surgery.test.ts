import * as ort from "onnxruntime-node";
import type { ModelProto } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { addTapOutput, exposeValue, inlineIfBranch, insertEditPoint, pruneDeadNodes, removeUnusedInitializers, removeUnusedInputs } from "../../src/onnx/surgery.js";
import { validateGraph } from "../../src/onnx/validate.js";
import { attr, f32, fvi, graph, mlpModel, model, node, randn } from "./_build.js";

type Feeds = Record<string, ort.Tensor>;

async function run(m: ModelProto, feeds: Feeds): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(encodeModel(m), { logSeverityLevel: 3 });
  const out = await s.run(feeds);
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

const X = () => new ort.Tensor("float32", randn(2 * 3 * 4, 9), [2, 3, 4]);

/** r @ W2 in JS for rows of 4 -> 3. */
function project(r: Float32Array, m: ModelProto): Float32Array {
  const w = new Float32Array(m.graph!.initializer.find((t) => t.name === "W2")!.rawData.slice().buffer);
  const rows = r.length / 4;
  const out = new Float32Array(rows * 3);
  for (let i = 0; i < rows; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) out[i * 3 + j]! += r[i * 4 + k]! * w[k * 3 + j]!;
  return out;
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof TdbError ? e.code : `not a TdbError: ${String(e)}`;
  }
  return undefined;
}

describe("exposeValue", () => {
  it("lists an intermediate value as an output without a copy node", async () => {
    const base = await run(mlpModel(), { x: X() });
    const g = OnnxGraph.fromModel(mlpModel());
    const nodes = g.nodes.length;
    expect(exposeValue(g, "h")).toBe("h");
    expect(exposeValue(g, "h")).toBe("h");
    expect(exposeValue(g, "y")).toBe("y");
    expect(g.nodes.length).toBe(nodes);
    expect(g.outputNames()).toEqual(["y", "h"]);
    validateGraph(g);
    const out = await run(g.model, { x: X() });
    expect(out.y).toEqual(base.y);
    expect(out.h!.some((v) => v < 0)).toBe(true); // pre-ReLU values, not a copy of a later tensor
  });

  it("taps graph inputs through an Identity, and rejects unknown values", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(exposeValue(g, "x")).toBe("x__tap");
    expect(g.producer("x__tap")?.opType).toBe("Identity");
    expect(code(() => exposeValue(g, "nope"))).toBe("E_ONNX_INVALID");
  });
});

describe("addTapOutput", () => {
  it("exposes intermediate values without changing the outputs", async () => {
    const base = await run(mlpModel(), { x: X() });
    const g = OnnxGraph.fromModel(mlpModel());
    const h = addTapOutput(g, "h");
    const r = addTapOutput(g, "r", { outputName: "relu" });
    expect([h, r]).toEqual(["h__tap", "relu"]);
    expect(g.outputNames()).toEqual(["y", "h__tap", "relu"]);
    validateGraph(g);
    const out = await run(g.model, { x: X() });
    expect(out.y).toEqual(base.y);
    expect(out.relu).toEqual(out.h__tap!.map((v) => Math.max(v, 0)));
    expect(out.h__tap!.some((v) => v < 0)).toBe(true);
  });

  it("is idempotent per value and output name, and allows two names for one value", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(addTapOutput(g, "r")).toBe("r__tap");
    expect(addTapOutput(g, "r")).toBe("r__tap");
    expect(addTapOutput(g, "r", { outputName: "blocks.0.hook_x" })).toBe("blocks.0.hook_x");
    expect(g.outputNames()).toEqual(["y", "r__tap", "blocks.0.hook_x"]);
    expect(g.nodes.filter((n) => n.opType === "Identity")).toHaveLength(2);
  });

  it("rejects unknown values and taken output names", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(code(() => addTapOutput(g, "nope"))).toBe("E_ONNX_INVALID");
    expect(code(() => addTapOutput(g, "h", { outputName: "y" }))).toBe("E_ONNX_INVALID");
    expect(code(() => addTapOutput(g, "h", { outputName: "r" }))).toBe("E_ONNX_INVALID");
  });
});

describe("insertEditPoint", () => {
  const ones = (n: number) => new Float32Array(n).fill(1);

  it("mul=1, add=0 leaves every output bit-identical; mul=2, add=1 doubles plus one", async () => {
    const base = await run(mlpModel(), { x: X() });
    const g = OnnxGraph.fromModel(mlpModel());
    const edit = insertEditPoint(g, "r", { mulInput: "edit.mul", addInput: "edit.add", shape: ["batch", "seq", 4] });
    expect(edit).toEqual({ output: "r__edit", mulInput: "edit.mul", addInput: "edit.add" });
    addTapOutput(g, "r", { outputName: "clean" });
    addTapOutput(g, edit.output, { outputName: "edited" });
    validateGraph(g);
    expect(g.inputNames()).toEqual(["x", "edit.mul", "edit.add"]);
    expect(g.consumers("r").map((n) => n.opType).sort()).toEqual(["Identity", "Mul"]);

    const id = await run(g.model, { x: X(), "edit.mul": new ort.Tensor("float32", ones(24), [2, 3, 4]), "edit.add": new ort.Tensor("float32", new Float32Array(24), [2, 3, 4]) });
    expect(id.y).toEqual(base.y);
    expect(id.edited).toEqual(id.clean);

    const ed = await run(g.model, { x: X(), "edit.mul": new ort.Tensor("float32", ones(24).fill(2), [2, 3, 4]), "edit.add": new ort.Tensor("float32", ones(24), [2, 3, 4]) });
    expect(ed.clean).toEqual(id.clean);
    expect(ed.edited).toEqual(ed.clean!.map((v) => 2 * v + 1));
    const want = project(ed.edited!, g.model);
    ed.y!.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  });

  it("broadcasts a per-feature mask when no shape is declared (zero-ablating one feature)", async () => {
    const g = OnnxGraph.fromModel(mlpModel());
    insertEditPoint(g, "r", { mulInput: "m", addInput: "a" });
    addTapOutput(g, "r__edit", { outputName: "edited" });
    const out = await run(g.model, { x: X(), m: new ort.Tensor("float32", new Float32Array([1, 0, 1, 1]), [4]), a: new ort.Tensor("float32", new Float32Array([0]), [1]) });
    for (let i = 0; i < 6; i++) expect(out.edited![i * 4 + 1]).toBe(0);
  });

  it("edits a value that is a graph output, keeping the output name", async () => {
    const base = await run(mlpModel(), { x: X() });
    const g = OnnxGraph.fromModel(mlpModel());
    const { output } = insertEditPoint(g, "y", { mulInput: "m", addInput: "a" });
    expect(output).toBe("y");
    expect(g.outputNames()).toEqual(["y"]);
    validateGraph(g);
    const out = await run(g.model, { x: X(), m: new ort.Tensor("float32", new Float32Array([2]), [1]), a: new ort.Tensor("float32", new Float32Array([1]), [1]) });
    out.y!.forEach((v, i) => expect(v).toBe(Math.fround(2 * base.y![i]! + 1)));
  });

  it("rejects unknown values and taken input names", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(code(() => insertEditPoint(g, "nope", { mulInput: "m", addInput: "a" }))).toBe("E_ONNX_INVALID");
    expect(code(() => insertEditPoint(g, "r", { mulInput: "x", addInput: "a" }))).toBe("E_BAD_OPTION");
    expect(code(() => insertEditPoint(g, "r", { mulInput: "m", addInput: "m" }))).toBe("E_BAD_OPTION");
    expect(g.inputNames()).toEqual(["x"]);
  });
});

/**
 * y = If(cond, then: (x + 1) * 3, else: -x), with a branch initializer and a node name that collide
 * with the main graph's (onnxruntime rejects a branch value shadowing an outer node output).
 */
function ifModel(): ModelProto {
  const thenG = graph(
    [node("Add", ["x", "one"], ["t_tmp"], { name: "/main/Relu" }), node("Mul", ["t_tmp", "bias"], ["t_out"])],
    [],
    [fvi("t_out")],
    [f32("one", [1]), f32("bias", [3])],
    "then",
  );
  // (onnxruntime rejects a subgraph output that is an outer-scope value: hence the Identity.)
  const elseG = graph([node("Neg", ["x"], ["e_out"]), node("Identity", ["x"], ["e_x"])], [], [fvi("e_out"), fvi("e_x")], [], "else");
  return model(
    graph(
      [
        node("Relu", ["x"], ["tmp"], { name: "/main/Relu" }),
        node("If", ["cond"], ["y", "passthrough"], { attribute: [attr.graph("then_branch", thenG), attr.graph("else_branch", elseG)], name: "/main/If" }),
        node("Add", ["y", "tmp"], ["z"], { name: "/main/Add" }),
      ],
      [fvi("cond", [], "bool"), fvi("x", [3])],
      [fvi("z", [3]), fvi("passthrough")],
      [f32("bias", [100])],
    ),
  );
}

// Fix the then-branch to have two outputs as well.
function ifModel2(): ModelProto {
  const m = ifModel();
  const then = m.graph!.node[1]!.attribute[0]!.g!;
  then.output.push(fvi("one"));
  return m;
}

describe("inlineIfBranch", () => {
  const x = () => new ort.Tensor("float32", new Float32Array([-1, 2, 3]), [3]);
  const cond = (b: boolean) => new ort.Tensor("bool", new Uint8Array([b ? 1 : 0]), []);

  it.each(["then", "else"] as const)("gives the same outputs as the If with the condition fed (%s)", async (branch) => {
    const want = await run(ifModel2(), { x: x(), cond: cond(branch === "then") });
    const g = OnnxGraph.fromModel(ifModel2());
    inlineIfBranch(g, g.nodes.find((n) => n.opType === "If")!, branch);
    expect(g.nodes.some((n) => n.opType === "If")).toBe(false);
    validateGraph(g);
    expect(removeUnusedInputs(g)).toEqual(["cond"]);
    expect(pruneDeadNodes(g)).toEqual([]);
    validateGraph(g);
    const got = await run(g.model, { x: x() });
    expect(got).toEqual(want);
    // Colliding branch names were renamed; the main graph's initializer "bias" (100) is untouched.
    expect(g.initializer("bias")?.rawData).toEqual(new Uint8Array(new Float32Array([100]).buffer));
    if (branch === "then") expect(g.initializerNames()).toEqual(["bias", "one", "bias_1"]);
    const names = g.nodes.map((n) => n.name).filter((n) => n);
    expect(new Set(names).size).toBe(names.length);
  });

  it("bridges branch outputs that are outer-scope values with Identity", async () => {
    const m = ifModel2();
    const elseG = m.graph!.node[1]!.attribute[1]!.g!;
    elseG.node.pop();
    elseG.output[1]!.name = "x";
    const g = OnnxGraph.fromModel(m);
    inlineIfBranch(g, g.nodes[1]!, "else");
    removeUnusedInputs(g);
    validateGraph(g);
    expect(g.producer("passthrough")?.opType).toBe("Identity");
    const got = await run(g.model, { x: x() });
    expect(got.passthrough).toEqual(new Float32Array([-1, 2, 3]));
  });

  it("rejects a node that is not an If", () => {
    const g = OnnxGraph.fromModel(ifModel2());
    expect(code(() => inlineIfBranch(g, g.nodes[0]!, "then"))).toBe("E_ONNX_INVALID");
  });
});

describe("removeUnusedInputs / pruneDeadNodes / removeUnusedInitializers", () => {
  it("drops dead nodes, unread inputs and unread initializers", async () => {
    const m = mlpModel();
    const g = OnnxGraph.fromModel(m);
    g.addInput(fvi("unused", [1]));
    g.addInitializer(f32("W_dead", [1, 2]));
    g.addNode(node("Mul", ["h", "W_dead"], ["dead1"]));
    g.addNode(node("Neg", ["dead1"], ["dead2"]));
    const removedNodes = pruneDeadNodes(g);
    expect(removedNodes.map((n) => n.output[0])).toEqual(["dead1", "dead2"]);
    expect(removeUnusedInputs(g)).toEqual(["unused"]);
    expect(removeUnusedInitializers(g)).toEqual(["W_dead"]);
    expect(g.nodes).toHaveLength(3);
    validateGraph(g);
    const out = await run(g.model, { x: X() });
    expect(out.y).toEqual((await run(mlpModel(), { x: X() })).y);
  });

  it("keeps inputs read only inside subgraphs", () => {
    const g = OnnxGraph.fromModel(ifModel2());
    expect(removeUnusedInputs(g)).toEqual([]);
    expect(g.consumers("x").map((n) => n.opType)).toEqual(["Relu", "If"]);
  });
});
