/**
 * Graphs that onnxruntime has already optimized: `Model.load` un-fuses the fused ops, so every
 * hook is a tensor again, with the values of the unfused export. Hooks hidden inside a fused op
 * tdb-js cannot un-fuse are listed as unavailable with the reason, and asking for them is a typed
 * error naming the available ones.
 */
import { cp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType } from "onnx-buf";
import { TdbError } from "../../src/base/errors.js";
import type { HookName } from "../../src/hooks/names.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { createSession } from "../../src/backend/ort.js";
import { fuseAttention } from "../helpers/fuse-attention.js";
import { makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";

const PROMPTS = [
  [5, 17, 33, 2, 9, 41, 8],
  [7, 3, 11],
];
const LENGTHS = PROMPTS.map((r) => r.length);

let tm: TestModel;
let unfused: Model;
const dirs: string[] = [];

async function variantDir(name: string, onnx: Uint8Array): Promise<string> {
  const dir = `${tm.dir}-${name}`;
  dirs.push(dir);
  await cp(tm.dir, dir, { recursive: true });
  await writeFile(join(dir, "onnx", "model.onnx"), onnx);
  return dir;
}

/** Compares every cached hook of `a` with the same hook of `b` on real (unpadded) positions. */
async function compareHooks(fused: Model, hooks: readonly HookName[]): Promise<Record<string, number>> {
  const a = await fused.trace(PROMPTS, { hooks });
  const b = await unfused.trace(PROMPTS, { hooks });
  const worst: Record<string, number> = {};
  for (const h of hooks) {
    const x = a.cache.get(h);
    const y = b.cache.get(h);
    expect(x.dims).toEqual(y.dims);
    const S = x.dims[x.labels.indexOf("pos") >= 0 ? x.labels.indexOf("pos") : 2]!;
    const inner = x.data.length / (x.dims[0]! * S);
    worst[h] = x.labels.includes("pos")
      ? maxAbsDiff(x.data, y.data, (i) => Math.floor(i / inner) % S < LENGTHS[Math.floor(i / (inner * S))]!)
      : maxAbsDiff(x.data, y.data, () => true);
  }
  return worst;
}

beforeAll(async () => {
  tm = await makeTestModel();
  unfused = await Model.load(tm.dir);
});
afterAll(async () => {
  await unfused?.dispose();
  await tm?.cleanup();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("a model file onnxruntime optimized at level all (fused LayerNorm and FastGelu)", () => {
  it("still maps every hook, with the unfused values", async () => {
    const path = join(`${tm.dir}-opt.onnx`);
    dirs.push(path);
    const s = await createSession(encodeModel(runtimeOf(unfused).base), { optimizationLevel: "all", optimizedModelFilePath: path });
    await s.release();
    const { readFile } = await import("node:fs/promises");
    const dir = await variantDir("ort-all", await readFile(path));
    const fused = await Model.load(dir);
    try {
      // The file has the fused ops; the loaded graph has them un-fused.
      const { decodeModel } = await import("../../src/onnx/proto.js");
      const fileOps = decodeModel(await readFile(path)).graph!.node.map((n) => n.opType);
      expect(fileOps).toContain("LayerNormalization");
      expect(fileOps).toContain("FastGelu");
      const ops = runtimeOf(fused).base.graph!.node.map((n) => n.opType);
      expect(ops).not.toContain("LayerNormalization");
      expect(ops).not.toContain("FastGelu");
      expect(runtimeOf(fused).hookMap.unavailable.size).toBe(0);
      const worst = await compareHooks(fused, runtimeOf(unfused).selectHooks("all").filter((h) => !h.includes("attn_scores")));
      expect(Object.entries(worst).filter(([, d]) => !(d <= 1e-4))).toEqual([]);
    } finally {
      await fused.dispose();
    }
  });
});

describe("a graph whose layer-1 attention is one fused Attention op", () => {
  let fused: Model;
  beforeAll(async () => {
    fused = await Model.load(await variantDir("attn-fused", encodeModel(fuseAttention(runtimeOf(unfused).base, 1, tm.arch.n_head))));
  });
  afterAll(() => fused?.dispose());

  it("is un-fused at load: every hook, the attention pattern included, has the unfused values", async () => {
    expect(runtimeOf(fused).base.graph!.node.some((n) => n.opType === "Attention")).toBe(false);
    expect(runtimeOf(fused).hookMap.unavailable.size).toBe(0);
    const t = await fused.trace(PROMPTS);
    expect([...t.cache.keys()]).toEqual(runtimeOf(fused).selectHooks("all"));
    // Scores differ where masked (each export's own large negative constant); the pattern is compared.
    const worst = await compareHooks(fused, runtimeOf(fused).selectHooks("all").filter((h) => !h.includes("attn_scores")));
    expect(Object.keys(worst)).toContain("blocks.1.attn.hook_pattern");
    expect(Object.entries(worst).filter(([, d]) => !(d <= 1e-4))).toEqual([]);
  });
});

describe("a fused Attention op tdb-js cannot un-fuse (rotary embeddings)", () => {
  let fused: Model;
  beforeAll(async () => {
    const model = fuseAttention(runtimeOf(unfused).base, 1, tm.arch.n_head);
    const node = model.graph!.node.find((n) => n.opType === "Attention")!;
    node.attribute.push(create(AttributeProtoSchema, { name: "do_rotary", type: AttributeProto_AttributeType.INT, i: 1n }));
    fused = await Model.load(await variantDir("attn-rotary", encodeModel(model)));
  });
  afterAll(() => fused?.dispose());

  it("lists the hidden hooks with the reason", () => {
    const hidden = ["q", "k", "v", "attn_scores", "pattern", "z", "result"].map((s) => `blocks.1.attn.hook_${s}`);
    expect([...runtimeOf(fused).hookMap.unavailable.keys()].sort()).toEqual(hidden.sort());
    for (const h of hidden) expect(runtimeOf(fused).hookMap.unavailable.get(h as never)).toMatch(/fused Attention/);
  });

  it("asking for a hidden hook is E_HOOK_UNAVAILABLE naming the available hooks", async () => {
    let err: unknown;
    try {
      await fused.trace(PROMPTS, { hooks: ["blocks.1.attn.hook_pattern"] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdbError);
    const e = err as TdbError;
    expect(e.code).toBe("E_HOOK_UNAVAILABLE");
    expect(e.message).toMatch(/fused Attention.*available: "hook_embed"/);
    expect(e.allowed).toEqual(fused.hookNames);
    expect(fused.hookNames).toContain("blocks.0.attn.hook_pattern");
  });
});
