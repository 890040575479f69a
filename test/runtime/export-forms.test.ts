/**
 * Export forms seen on other GPT-2 exports: shared-prefix variants (rows gathered per block)
 * must equal one-by-one runs whether the graph reads its batch dim from the tensor flowing or
 * from `Shape(input_ids)` (older transformers' final Reshape, or any shape computed from a
 * graph input downstream of the row expansion).
 */
import { budgetForChunks } from "../helpers/budget.js";
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema } from "onnx-buf";
import { afterAll, describe, expect, it } from "vitest";
import { patchFrom, steer, zeroHead, zeroNeuron, type Edit } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { tensorToProto } from "../../src/onnx/tensor.js";
import type { Gpt2FinalReshape } from "../../src/synthetic/gpt2-graph.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { FOUR_LAYER, makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";

const PROMPT = [7, 30, 2, 99, 41, 5, 250, 18];
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

async function load(tm: TestModel, dir = tm.dir): Promise<Model> {
  const m = await Model.load(dir);
  cleanup.push(() => m.dispose());
  return m;
}

/** Variants first edited in every block (so each block gathers a different row count), and one clean row. */
function variantsFor(c: Awaited<ReturnType<Model["trace"]>>): Edit[][] {
  const v = Array.from({ length: FOUR_LAYER.n_embd }, (_, i) => Math.cos(i));
  return [
    [zeroHead(3, 0)],
    [],
    [patchFrom("blocks.2.hook_resid_pre", c, { positions: [1, 2] })],
    [steer("blocks.0.hook_resid_pre", v, 2)],
    [zeroNeuron(1, 7), zeroHead(3, 1)],
    [steer("blocks.1.hook_resid_post", v, -1)],
    [zeroHead(0, 1, { positions: [-1] })],
  ];
}

/** Shared-prefix variants vs the same edits run one by one (and vs plain batching), all and last logits. */
async function expectSharedEqualsOneByOne(model: Model): Promise<void> {
  const c = await model.trace([[9, 30, 2, 99, 41, 5, 250, 18]], { hooks: ["blocks.2.hook_resid_pre"] });
  const variants = variantsFor(c);
  const shared = await model.intervene([PROMPT], [], { variants });
  // One variant per chunk (each chunk also carries the clean row).
  const maxBatchBytes = await budgetForChunks(model, { rows: variants.length + 1, chunk: 2, S: PROMPT.length, logitPositions: PROMPT.length, edits: variants.flat() });
  const sharedAll = await model.intervene([PROMPT], [], { variants, logits: "all", maxBatchBytes });
  const plain = await model.intervene([PROMPT], [], { variants, logits: "all", prefixShare: false });
  expect(maxAbsDiff(sharedAll.edited.logits.data, plain.edited.logits.data)).toBeLessThan(1e-5);
  for (let i = 0; i < variants.length; i++) {
    const one = await model.intervene([PROMPT], variants[i]!, { logits: "all" });
    expect(maxAbsDiff(shared.edited.logitsAt({ batch: i }), one.edited.logitsAt()), `variant ${i}`).toBeLessThan(1e-5);
    expect(maxAbsDiff(sharedAll.edited.logits.row(i), one.edited.logits.data), `variant ${i}, all logits`).toBeLessThan(1e-5);
  }
  // The edits did something.
  expect(maxAbsDiff(shared.edited.logitsAt({ batch: 0 }), shared.edited.logitsAt({ batch: 1 }))).toBeGreaterThan(1e-4);
}

describe.each<Gpt2FinalReshape>(["minus-one", "input-shape"])("final Reshape form %s", (finalReshape) => {
  it("computes the same logits as the float64 reference", async () => {
    const tm = await makeTestModel({ config: FOUR_LAYER, seed: 5, finalReshape });
    cleanup.push(() => tm.cleanup());
    const model = await load(tm);
    const short = PROMPT.slice(0, 5);
    const got = await model.forward([PROMPT, short]);
    expect(maxAbsDiff(got.row(0), gpt2Reference(tm.arch, tm.weights, [PROMPT]).logits.data)).toBeLessThan(1e-4);
    // Row 1 is right-padded: its real positions are the short prompt's logits.
    const V = FOUR_LAYER.vocab_size;
    expect(maxAbsDiff(got.row(1).subarray(0, short.length * V), gpt2Reference(tm.arch, tm.weights, [short]).logits.data)).toBeLessThan(1e-4);
    await expectSharedEqualsOneByOne(model);
  });
});

/**
 * Rewrites the shape of `Reshape` `reshapeScope/.../Reshape_1`-style nodes: the Concat that builds
 * the target shape of the Reshape producing `value` gets its first element from
 * `Shape(input)[0]` instead of the tensor flowing.
 */
async function batchFromInput(dir: string, scope: string, input: string): Promise<void> {
  const path = join(dir, "onnx", "model.onnx");
  const proto = decodeModel(await readFile(path));
  const g = OnnxGraph.fromModel(proto);
  const reshape = g.nodesInScope(scope).filter((n) => n.opType === "Reshape").at(-1)!;
  const concat = g.producer(reshape.input[1]!)!;
  expect(concat.opType).toBe("Concat");
  const p = `${scope}/from_input`;
  const idx = `${p}/idx`;
  const axes = `${p}/axes`;
  g.addInitializer(tensorToProto(idx, new BigInt64Array([0n]), []));
  g.addInitializer(tensorToProto(axes, new BigInt64Array([0n]), [1]));
  const int = (name: string, i: bigint) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i });
  const nodes = [
    create(NodeProtoSchema, { opType: "Shape", name: `${p}/Shape`, input: [input], output: [`${p}/Shape_output_0`] }),
    create(NodeProtoSchema, { opType: "Gather", name: `${p}/Gather`, input: [`${p}/Shape_output_0`, idx], output: [`${p}/Gather_output_0`], attribute: [int("axis", 0n)] }),
    create(NodeProtoSchema, { opType: "Unsqueeze", name: `${p}/Unsqueeze`, input: [`${p}/Gather_output_0`, axes], output: [`${p}/Unsqueeze_output_0`] }),
  ];
  for (const n of nodes) g.addNode(n, { before: concat });
  concat.input[0] = `${p}/Unsqueeze_output_0`;
  g.invalidate();
  await writeFile(path, encodeModel(proto));
}

describe("shapes read from graph inputs inside blocks", () => {
  it("a block's Conv1D reshaped with the batch of input_ids or attention_mask: shared prefix still equals one by one", async () => {
    const tm = await makeTestModel({ config: FOUR_LAYER, seed: 5 });
    cleanup.push(() => tm.cleanup());
    const dir = `${tm.dir}-inblock`;
    await cp(tm.dir, dir, { recursive: true });
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await batchFromInput(dir, "/transformer/h.2/mlp/c_proj", "input_ids");
    await batchFromInput(dir, "/transformer/h.1/attn/c_attn", "attention_mask");
    const model = await load(tm, dir);
    // Same function as the unmodified export.
    const ref = gpt2Reference(tm.arch, tm.weights, [PROMPT]);
    expect(maxAbsDiff((await model.forward([PROMPT])).data, ref.logits.data)).toBeLessThan(1e-4);
    await expectSharedEqualsOneByOne(model);
  });
});
