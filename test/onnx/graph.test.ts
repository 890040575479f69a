import { create } from "@bufbuild/protobuf";
import { OperatorSetIdProtoSchema } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { addTapOutput, insertEditPoint } from "../../src/onnx/surgery.js";
import { attr, f32, fvi, graph, mlpModel, model, node } from "./_build.js";

describe("OnnxGraph", () => {
  it("answers producer/consumer/initializer/input/output queries", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(g.producer("h")?.name).toBe("/mlp/fc/MatMul");
    expect(g.producer("x")).toBeUndefined();
    expect(g.consumers("h").map((n) => n.name)).toEqual(["/mlp/act/Relu"]);
    expect(g.consumers("y")).toEqual([]);
    expect(g.initializer("W1")?.dims).toEqual([4n, 4n]);
    expect(g.initializerNames()).toEqual(["W1", "W2"]);
    expect(g.inputNames()).toEqual(["x"]);
    expect(g.outputNames()).toEqual(["y"]);
    expect(["x", "h", "W1", "y"].map((v) => g.hasValue(v))).toEqual([true, true, true, true]);
    expect(g.hasValue("nope")).toBe(false);
    expect(g.valueInfo("x")?.type?.value.case).toBe("tensorType");
    expect(g.valueInfo("h")).toBeUndefined();
    expect(g.nodeByName("/mlp/act/Relu")?.opType).toBe("Relu");
    expect(g.opsetVersion()).toBe(13);
    expect(g.opsetVersion("ai.onnx")).toBe(13);
    expect(g.opsetVersion("com.microsoft")).toBe(0);
  });

  it("excludes initializers listed as inputs from inputNames", () => {
    const m = mlpModel();
    m.graph!.input.push(fvi("W1", [4, 4]));
    expect(OnnxGraph.fromModel(m).inputNames()).toEqual(["x"]);
  });

  it("knows name scopes", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(g.scopeOf(node("Softmax", [], [], { name: "/transformer/h.0/attn/Softmax" }))).toBe("/transformer/h.0/attn");
    expect(g.scopeOf(node("Softmax", [], [], { name: "Softmax" }))).toBe("");
    expect(g.nodesInScope("/mlp").map((n) => n.opType)).toEqual(["MatMul", "Relu", "MatMul"]);
    expect(g.nodesInScope("/mlp/act/").map((n) => n.opType)).toEqual(["Relu"]);
    expect(g.nodesInScope("/ml")).toEqual([]);
  });

  it("hands out fresh names, reserving them", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(g.uniqueName("fresh")).toBe("fresh");
    expect(g.uniqueName("fresh")).toBe("fresh_1");
    expect(g.uniqueName("h")).toBe("h_1");
    expect(g.uniqueName("/mlp/act/Relu")).toBe("/mlp/act/Relu_1");
    expect(g.uniqueName("W1")).toBe("W1_1");
  });

  it("keeps its maps right after mutations", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    expect(g.consumers("r")).toHaveLength(1);
    const n = g.addNode(node("Neg", ["r"], ["neg"], { name: "/extra/Neg" }));
    expect(g.producer("neg")).toBe(n);
    expect(g.consumers("r").map((c) => c.opType)).toEqual(["MatMul", "Neg"]);
    expect(g.nodeByName("/extra/Neg")).toBe(n);
    expect(g.uniqueName("neg")).toBe("neg_1");
    const first = g.addNode(node("Abs", ["x"], ["ax"]), { index: 0 });
    expect(g.nodes[0]).toBe(first);
    expect(g.consumers("x")).toEqual([first, g.nodes[1]]);
    g.addInitializer(f32("c", [1]));
    expect(g.initializer("c")).toBeDefined();
    expect(() => g.addInitializer(f32("h", [1]))).toThrow(TdbError);
    g.removeNodes([n]);
    expect(g.producer("neg")).toBeUndefined();
    expect(g.consumers("r").map((c) => c.opType)).toEqual(["MatMul"]);
    // Direct edits need invalidate().
    g.nodes.find((c) => c.opType === "MatMul" && c.input[0] === "r")!.input[0] = "h";
    g.invalidate();
    expect(g.consumers("r")).toEqual([]);
    expect(g.consumers("h").map((c) => c.opType)).toEqual(["Relu", "MatMul"]);
    expect(g.removeInitializer("c")).toBe(true);
    expect(g.initializer("c")).toBeUndefined();
  });

  it("keeps its maps right after surgery", () => {
    const g = OnnxGraph.fromModel(mlpModel());
    addTapOutput(g, "h");
    expect(g.producer("h__tap")?.opType).toBe("Identity");
    const { output } = insertEditPoint(g, "h", { mulInput: "m", addInput: "a" });
    expect(g.consumers("h").map((c) => c.opType)).toEqual(["Mul"]);
    expect(g.consumers(output).map((c) => c.opType).sort()).toEqual(["Identity", "Relu"]);
    expect(g.inputNames()).toEqual(["x", "m", "a"]);
    expect(g.topologicalOrder()).toEqual([...g.nodes]);
  });

  it("orders topologically, and reports cycles", () => {
    const m = mlpModel();
    m.graph!.node.reverse();
    const g = OnnxGraph.fromModel(m);
    expect(g.topologicalOrder().map((n) => n.opType)).toEqual(["MatMul", "Relu", "MatMul"]);
    g.sortTopologically();
    expect(g.nodes.map((n) => n.output[0])).toEqual(["h", "r", "y"]);
    const cyc = model(graph([node("Add", ["x", "b"], ["a"]), node("Neg", ["a"], ["b"])], [fvi("x")], [fvi("a")]));
    let err: unknown;
    try {
      OnnxGraph.fromModel(cyc).topologicalOrder();
    } catch (e) {
      err = e;
    }
    expect((err as TdbError).code).toBe("E_ONNX_INVALID");
  });

  it("counts a node whose subgraph reads a value as its consumer, and orders by it", () => {
    const then = graph([node("Neg", ["v"], ["t"])], [], [fvi("t")]);
    const els = graph([node("Identity", ["x"], ["e"])], [], [fvi("e")]);
    const ifNode = node("If", ["c"], ["y"], { attribute: [attr.graph("then_branch", then), attr.graph("else_branch", els)] });
    const producer = node("Relu", ["x"], ["v"]);
    const m = model(graph([ifNode, producer], [fvi("c", [], "bool"), fvi("x")], [fvi("y")]));
    const g = OnnxGraph.fromModel(m);
    expect(g.consumers("v")).toEqual([ifNode]);
    expect(g.consumers("x")).toEqual([ifNode, producer]);
    expect(g.topologicalOrder()).toEqual([producer, ifNode]);
    expect(g.subgraphs(ifNode).map((s) => s.outputNames())).toEqual([["t"], ["e"]]);
    expect(g.uniqueName("t")).toBe("t_1");
  });

  it("reads opsets of other domains", () => {
    const m = mlpModel();
    m.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }));
    expect(OnnxGraph.fromModel(m).opsetVersion("com.microsoft")).toBe(1);
  });

  it("rejects a model without graph", () => {
    const m = mlpModel();
    m.graph = undefined;
    expect(() => OnnxGraph.fromModel(m)).toThrow(/no graph/);
  });
});
