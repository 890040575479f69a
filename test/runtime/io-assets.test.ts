/**
 * A float16 file made by onnxruntime's own converter (`convert_float_to_float16`, made by
 * helper scripts in scripts/assets/; see test/assets/exports/manifest.json): it loads, runs in
 * float32 (float16 logits and presents declared by the file), and every hook equals the float64
 * reference on the float16-rounded weights.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model, runtimeOf } from "../../src/model/model.js";
import { floatsToHalfs, halfsToFloats } from "../../src/onnx/half.js";
import { decodeModel } from "../../src/onnx/proto.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { randomGpt2Weights, type Gpt2Weights } from "../../src/synthetic/weights.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { maxAbsDiff, TEST_WEIGHTS } from "../helpers/models.js";

const DIR = resolve(import.meta.dirname, "../assets/exports/tiny-fp16");
const ROW = [7, 30, 2, 99, 41, 5, 250, 18];

describe.skipIf(!existsSync(DIR))("onnxruntime's float16 conversion of the generated decoder (tiny-fp16)", () => {
  let model: Model;
  let weights: Gpt2Weights;
  beforeAll(async () => {
    model = await Model.load(DIR);
    // As manifest.json records: TINY_GPT2, seed 11, the test weight scales; stored as float16.
    weights = new Map([...randomGpt2Weights(TINY_GPT2, 11, TEST_WEIGHTS)].map(([k, t]) => [k, { ...t, data: halfsToFloats(floatsToHalfs(t.data)) }]));
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it("is a float16 file", async () => {
    const g = decodeModel(await readFile(join(DIR, "onnx/model.onnx"))).graph!;
    const logits = g.output.find((o) => o.name === "logits")!;
    expect(logits.type?.value.case === "tensorType" ? logits.type.value.value.elemType : undefined).toBe(10); // FLOAT16
  });

  it("every hook and the logits equal the float64 reference within 1e-4", async () => {
    expect(runtimeOf(model).hookMap.unavailable.size).toBe(0);
    const t = await model.trace([ROW], { hooks: () => true });
    const ref = gpt2Reference(TINY_GPT2, weights, [ROW]);
    for (const name of t.cache.keys()) {
      const r = ref.cache.get(name)!;
      expect(maxAbsDiff(t.cache.get(name).data, r.data, (i) => !(r.data[i]! < -1e30)), name).toBeLessThan(1e-4);
    }
    expect(maxAbsDiff(t.logits.data, ref.logits.data)).toBeLessThan(1e-4);
    const table = await model.attribute([ROW], { target: 3, distractor: 4, topK: 3 });
    const l = ref.logits.data.subarray((ROW.length - 1) * TINY_GPT2.vocab_size);
    expect(Math.abs(table.loss - (l[3]! - l[4]!))).toBeLessThan(1e-4);
  });
});
