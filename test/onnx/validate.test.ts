import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { graphProblems, validateGraph } from "../../src/onnx/validate.js";
import { attr, fvi, graph, mlpModel, model, node } from "./_build.js";

describe("validateGraph", () => {
  it("accepts a sound graph, with optional inputs left empty", () => {
    const m = mlpModel();
    m.graph!.node.push(node("Clip", ["r", "", ""], ["c"]));
    expect(graphProblems(OnnxGraph.fromModel(m))).toEqual([]);
  });

  it("reports undefined inputs, duplicate values, missing outputs and misordered nodes", () => {
    const m = mlpModel();
    m.graph!.node.push(node("Neg", ["ghost"], ["n1"]));
    m.graph!.node.push(node("Neg", ["x"], ["h"]));
    m.graph!.output.push(fvi("nowhere"));
    m.graph!.node.unshift(node("Abs", ["r"], ["early"]));
    const problems = graphProblems(OnnxGraph.fromModel(m));
    expect(problems).toHaveLength(4);
    expect(problems.join("\n")).toMatch(/undefined value "ghost"/);
    expect(problems.join("\n")).toMatch(/"h" is defined twice/);
    expect(problems.join("\n")).toMatch(/output "nowhere" is not produced/);
    expect(problems.join("\n")).toMatch(/reads "r" before it is produced/);
    expect(graphProblems(OnnxGraph.fromModel(m), { ordered: false })).toHaveLength(3);
    let err: unknown;
    try {
      validateGraph(OnnxGraph.fromModel(m));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_ONNX_INVALID");
    expect((err as TdbError).message).toMatch(/ghost/);
  });

  it("checks subgraphs with outer names visible", () => {
    const then = graph([node("Neg", ["x"], ["t"]), node("Neg", ["missing"], ["u"])], [], [fvi("t")], [], "then");
    const els = graph([node("Identity", ["x"], ["e"])], [], [fvi("e")], [], "else");
    const m = model(graph([node("If", ["c"], ["y"], { name: "if", attribute: [attr.graph("then_branch", then), attr.graph("else_branch", els)] })], [fvi("c", [], "bool"), fvi("x")], [fvi("y")]));
    const problems = graphProblems(OnnxGraph.fromModel(m));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^if\/then: node "[^"]+" reads undefined value "missing"$/);
    const sub = new OnnxGraph(m, els);
    expect(graphProblems(sub)).toHaveLength(1);
    expect(graphProblems(sub, { outerNames: ["x"] })).toEqual([]);
  });
});
