/**
 * `upgradeToOpset13` (run by the GPT-2 adapter's normalize step on opset 11/12 graphs): the
 * upgraded legacy graph computes the same logits as the opset 11 original in onnxruntime, with
 * no `split`/`axes` attributes left on the ops that take them as inputs at opset 13; a Softmax
 * whose axis is not the last one is refused with the reason, and the graph left unchanged.
 */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { upgradeToOpset13 } from "../../src/onnx/opset-upgrade.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { legacyGpt2Graph } from "../../src/synthetic/forms/legacy.js";
import { randomGpt2Weights } from "../../src/synthetic/weights.js";
import { maxAbsDiff, TEST_WEIGHTS } from "../helpers/models.js";

const c = TINY_GPT2;
const i64 = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0]!.length]);

describe("upgradeToOpset13", () => {
  it("a legacy opset 11 graph (Split/Squeeze/Unsqueeze attributes) runs at opset 13 with the same logits", async () => {
    const w = randomGpt2Weights(c, 3, TEST_WEIGHTS);
    const old = legacyGpt2Graph(c, w, { pastUnstack: "split" });
    const up = legacyGpt2Graph(c, w, { pastUnstack: "split" });
    const g = OnnxGraph.fromModel(up);
    const r = upgradeToOpset13(g, 4);
    expect(r).toMatchObject({ upgraded: true, from: 11 });
    expect(up.opsetImport[0]!.version).toBe(13n);
    const withAttr = g.nodes.filter((n) => ["Split", "Squeeze", "Unsqueeze"].includes(n.opType) && n.attribute.some((a) => a.name === "split" || a.name === "axes"));
    expect(withAttr).toEqual([]);
    expect(r.upgraded && r.rewritten).toBe(g.nodes.filter((n) => ["Split", "Squeeze", "Unsqueeze"].includes(n.opType)).length);
    const ids = [[5, 9, 200, 41, 7, 77]];
    const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids), attention_mask: i64([ids[0]!.map(() => 1)]) };
    for (let l = 0; l < c.n_layer; l++) feeds[`past_${l}`] = new ort.Tensor("float32", new Float32Array(0), [2, 1, c.n_head, 0, c.n_embd / c.n_head]);
    const run = async (m: typeof old) => (await (await ort.InferenceSession.create(encodeModel(m))).run(feeds)).logits!.data as Float32Array;
    const a = await run(old);
    const b = await run(up);
    expect(a.length).toBe(ids[0]!.length * c.vocab_size);
    expect(maxAbsDiff(a, b)).toBe(0);
    // Already opset 13: nothing to do.
    expect(upgradeToOpset13(g, 4)).toMatchObject({ upgraded: false, from: 13 });
  });

  it("refuses a Softmax over a non-last axis (opset 11 flattens the trailing axes) and leaves the graph as it was", () => {
    const b = new GraphBuilder({ opset: 11 });
    b.input("x", "float32", [2, 3, 4]);
    b.op("Softmax", ["x"], { attrs: { axis: 1 }, output: "y" });
    b.output("y", "float32", [2, 3, 4]);
    const m = b.build();
    const r = upgradeToOpset13(OnnxGraph.fromModel(m), 3);
    expect(r.upgraded).toBe(false);
    expect(r.upgraded ? "" : r.reason).toMatch(/Softmax .* has axis 1/);
    expect(m.opsetImport[0]!.version).toBe(11n);
  });
});
