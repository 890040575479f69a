/**
 * Conv1D weights stored transposed (`[out, in]`, read by `Gemm(transB=1)`), as an `nn.Linear`
 * style export writes them: `model.weights`, DLA and `hook_result` must be those of the plain
 * export with the same parameters; weights whose dims fit neither layout are a typed error.
 */
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import type { ModelWeights } from "../../src/hooks/adapter.js";
import type { HookName } from "../../src/hooks/names.js";
import { Model } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";

const P = [4, 99, 23, 180, 7, 64, 12];
let plainTm: TestModel;
let transTm: TestModel;
let plain: Model;
let trans: Model;
const dirs: string[] = [];

beforeAll(async () => {
  plainTm = await makeTestModel({ config: FOUR_LAYER, seed: 21 });
  transTm = await makeTestModel({ config: FOUR_LAYER, seed: 21, gemmTransB: true });
  plain = await Model.load(plainTm.dir);
  trans = await Model.load(transTm.dir);
});
afterAll(async () => {
  await plain?.dispose();
  await trans?.dispose();
  await plainTm?.cleanup();
  await transTm?.cleanup();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Every tensor of `a` equals the same tensor of `b`, dims and values. */
function expectSameWeights(a: ModelWeights, b: ModelWeights): void {
  const flat = (w: ModelWeights) => {
    const out: [string, { dims: number[]; data: Float32Array }][] = [];
    for (const [k, v] of Object.entries(w)) if (k !== "blocks") out.push([k, v as { dims: number[]; data: Float32Array }]);
    w.blocks.forEach((blk, l) => {
      for (const [k, v] of Object.entries(blk)) out.push([`${l}.${k}`, v as { dims: number[]; data: Float32Array }]);
    });
    return out;
  };
  const fb = new Map(flat(b));
  const fa = flat(a);
  expect(fa.map(([k]) => k).sort()).toEqual([...fb.keys()].sort());
  for (const [k, t] of fa) {
    expect(t.dims, k).toEqual(fb.get(k)!.dims);
    expect(maxAbsDiff(t.data, fb.get(k)!.data), k).toBe(0);
  }
}

describe("Gemm(transB=1) exports", () => {
  it("the graph really stores the weights transposed, and computes the same function", async () => {
    const g = OnnxGraph.fromModel(decodeModel(await readFile(transTm.model)));
    const gemm = g.nodesInScope("/transformer/h.0/mlp/c_fc").find((n) => n.opType === "Gemm")!;
    expect(gemm.attribute.find((a) => a.name === "transB")?.i).toBe(1n);
    expect(g.initializer(gemm.input[1]!)!.dims.map(Number)).toEqual([FOUR_LAYER.n_inner, FOUR_LAYER.n_embd]);
    const ref = gpt2Reference(transTm.arch, transTm.weights, [P]);
    expect(maxAbsDiff((await trans.forward([P])).data, ref.logits.data)).toBeLessThan(1e-4);
  });

  it("model.weights equal the plain export's (TransformerLens layout)", () => {
    expectSameWeights(trans.weights, plain.weights);
    // And the plain export's are the raw parameters (Conv1D [in, out]).
    expect(Array.from(plain.weights.blocks[1]!.W_in.data)).toEqual(Array.from(plainTm.weights.get("transformer.h.1.mlp.c_fc.weight")!.data));
  });

  it("hook_result equals the plain export's and the float64 reference", async () => {
    const hooks = Array.from({ length: FOUR_LAYER.n_layer }, (_, l) => `blocks.${l}.attn.hook_result` as HookName);
    const a = await trans.trace([P], { hooks });
    const b = await plain.trace([P], { hooks });
    const ref = gpt2Reference(plainTm.arch, plainTm.weights, [P]);
    for (const h of hooks) {
      expect(maxAbsDiff(a.cache.get(h).data, b.cache.get(h).data), h).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.cache.get(h).data, ref.cache.get(h)!.data), h).toBeLessThan(1e-4);
    }
  });

  it("DLA equals the plain export's, component by component", async () => {
    const opts = { target: [31, 32], distractor: 77, position: 4 };
    const a = await trans.directLogitAttribution([P], opts);
    const b = await plain.directLogitAttribution([P], opts);
    expect(a.components.map((c) => c.name)).toEqual(b.components.map((c) => c.name));
    a.components.forEach((c, i) => expect(c.value, c.name).toBeCloseTo(b.components[i]!.value, 5));
    expect(Math.abs(a.total - a.logitDiff)).toBeLessThan(1e-3 * Math.max(1, Math.abs(a.logitDiff)));
  });

  it("a Conv1D weight whose dims fit neither layout is a typed error naming it, at load", async () => {
    // The plain export with one weight's dims swapped but transB left 0: [d_mlp, d_model] for c_fc.
    // Every block's widths are checked against config.json at load (issue 12), so the error
    // comes from Model.load, not from the first read of the weights.
    const dir = `${plainTm.dir}-baddims`;
    dirs.push(dir);
    await cp(plainTm.dir, dir, { recursive: true });
    const proto = decodeModel(await readFile(plainTm.model));
    const g = OnnxGraph.fromModel(proto);
    const w = g.initializer("transformer.h.2.mlp.c_fc.weight")!;
    w.dims = [BigInt(FOUR_LAYER.n_inner), BigInt(FOUR_LAYER.n_embd)];
    await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(proto));
    let err: unknown;
    try {
      await (await Model.load(dir)).dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_CONFIG_MISMATCH");
    expect((err as TdbError).message).toMatch(/h\.2\/mlp\/c_fc/);
    expect((err as TdbError).value).toBe(FOUR_LAYER.n_inner);
    expect((err as TdbError).allowed).toBe(FOUR_LAYER.n_embd);
  });
});
