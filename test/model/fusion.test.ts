/**
 * Acceptance: exposing every hook leaves onnxruntime's LayerNormalization and FastGelu fusions
 * in place (checked in the optimized model file onnxruntime writes at level "all").
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelProto } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model, runtimeOf } from "../../src/model/model.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { createSession } from "../../src/backend/ort.js";
import { FOUR_LAYER, makeTestModel, type TestModel } from "../helpers/models.js";

let dir: string;
let seq = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-fusion-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function optimizedOps(m: ModelProto): Promise<Map<string, number>> {
  const path = join(dir, `opt${seq++}.onnx`);
  const s = await createSession(encodeModel(m), { optimizationLevel: "all", optimizedModelFilePath: path });
  await s.release();
  const counts = new Map<string, number>();
  for (const n of decodeModel(await readFile(path)).graph!.node) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
  return counts;
}

describe.each(["decoder", "merged"] as const)("fusions survive patching (%s export)", (variant) => {
  let tm: TestModel;
  let model: Model;
  beforeAll(async () => {
    tm = await makeTestModel({ config: FOUR_LAYER, variant });
    model = await Model.load(tm.dir);
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });

  it("every hook exposed: same LayerNormalization and FastGelu counts as the unpatched graph", async () => {
    const L = FOUR_LAYER.n_layer;
    const base = await optimizedOps(runtimeOf(model).base);
    expect(base.get("LayerNormalization")).toBe(2 * L + 1);
    expect(base.get("FastGelu")).toBe(L);
    expect(base.get("Tanh") ?? 0).toBe(0);

    const { model: patched, outputs } = runtimeOf(model).patchedModel(() => true);
    expect(outputs.size).toBe(model.hookNames.length);
    const ops = await optimizedOps(patched);
    expect(ops.get("LayerNormalization")).toBe(base.get("LayerNormalization"));
    expect(ops.get("FastGelu")).toBe(base.get("FastGelu"));
    expect(ops.get("Tanh") ?? 0).toBe(0);
  });
});
