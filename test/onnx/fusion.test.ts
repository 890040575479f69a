import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { ModelProto } from "onnx-buf";
import { afterAll, describe, expect, it } from "vitest";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { addTapOutput, insertEditPoint } from "../../src/onnx/surgery.js";
import { fvi, randn } from "./_build.js";
import { lnGeluModel } from "./_fusion.js";

const dir = mkdtempSync(join(tmpdir(), "tdb-fusion-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

/** Op types of the model onnxruntime runs after `all` optimizations. */
async function optimizedOps(m: ModelProto): Promise<string[]> {
  const path = join(dir, `opt${seq++}.onnx`);
  const s = await ort.InferenceSession.create(encodeModel(m), { graphOptimizationLevel: "all", optimizedModelFilePath: path, logSeverityLevel: 3 });
  await s.release();
  return decodeModel(readFileSync(path)).graph!.node.map((n) => n.opType);
}

const count = (ops: string[], op: string) => ops.filter((o) => o === op).length;

function tapped(values: string[]): { model: ModelProto; outputs: string[] } {
  const g = OnnxGraph.fromModel(lnGeluModel());
  const outputs = values.map((v) => addTapOutput(g, v));
  return { model: g.model, outputs };
}

describe("onnxruntime fusions around taps (opset 13, level all)", () => {
  it("fuses the decomposed LayerNorm and tanh GELU of the untapped graph", async () => {
    const ops = await optimizedOps(lnGeluModel());
    expect(count(ops, "LayerNormalization")).toBe(1);
    expect(count(ops, "FastGelu")).toBe(1);
    expect(ops).not.toContain("Tanh");
  });

  it("keeps both fusions when the LayerNorm output and GELU output are tapped through Identity", async () => {
    const { model } = tapped(["ln_out", "gelu_out"]);
    const ops = await optimizedOps(model);
    expect(count(ops, "LayerNormalization")).toBe(1);
    expect(count(ops, "FastGelu")).toBe(1);
    expect(count(ops, "Identity")).toBe(2);
  });

  it("keeps FastGelu behind an edit point on the GELU output", async () => {
    const g = OnnxGraph.fromModel(lnGeluModel());
    insertEditPoint(g, "gelu_out", { mulInput: "m", addInput: "a" });
    const ops = await optimizedOps(g.model);
    expect(count(ops, "FastGelu")).toBe(1);
    expect(count(ops, "LayerNormalization")).toBe(1);
  });

  it("blocks FastGelu when the GELU output is itself a graph output (why taps use Identity)", async () => {
    const m = lnGeluModel();
    m.graph!.output.push(fvi("gelu_out"));
    const ops = await optimizedOps(m);
    expect(count(ops, "FastGelu")).toBe(0);
    expect(ops).toContain("Tanh");
  });

  it("blocks the LayerNorm fusion when a value inside it (the Sqrt) is tapped: interior taps need a side chain", async () => {
    const { model } = tapped(["ln_sqrt", "gelu_out"]);
    const ops = await optimizedOps(model);
    expect(count(ops, "LayerNormalization")).toBe(0);
    expect(count(ops, "FastGelu")).toBe(1);
  });

  it("tapped values from the fused session match the unoptimized ones", async () => {
    const { model, outputs } = tapped(["ln_out", "gelu_out"]);
    const bytes = encodeModel(model);
    const x = new ort.Tensor("float32", randn(2 * 3 * 8, 5), [2, 3, 8]);
    const fused = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "all", logSeverityLevel: 3 });
    const plain = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "disabled" });
    const a = await fused.run({ x });
    const b = await plain.run({ x });
    for (const o of [...outputs, "y"]) {
      const u = a[o]!.data as Float32Array;
      const v = b[o]!.data as Float32Array;
      expect(a[o]!.dims).toEqual(b[o]!.dims);
      for (let i = 0; i < u.length; i++) expect(u[i]).toBeCloseTo(v[i]!, 4);
    }
  });
});
