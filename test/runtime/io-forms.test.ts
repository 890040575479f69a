/**
 * I/O conventions of real exports (issue 11), each on a generated form of the same model:
 * int32 token inputs (onnxruntime-genai), a `position_ids` input, decoder-with-past graphs fed
 * an empty past (`past_key_values.N.*` and the older `past_N`), float16 graphs (run in float32)
 * and a feature-extraction graph without logits. On each: every hook equals the float64
 * reference, logits too where there are logits, steering interventions equal the reference's
 * steered forward (single runs and shared-prefix variants), and the attribution loss equals the
 * reference's logit difference, with the node table agreeing with the plain decoder's. A
 * GPT-2 decoder wrapped in onnxruntime's BeamSearch loop is hooked inside.
 */
import { readFile, writeFile } from "node:fs/promises";
import { inspect } from "node:util";
import { TensorProto_DataType, type ModelProto } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { steer } from "../../src/intervene/edits.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { floatsToHalfs, halfsToFloats } from "../../src/onnx/half.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { beamSearchWrapped } from "../../src/synthetic/forms/beam-search.js";
import { float16Graph } from "../../src/synthetic/forms/float16.js";
import { int32Inputs } from "../../src/synthetic/forms/int32.js";
import { LAST_HIDDEN_STATE, withoutLogits } from "../../src/synthetic/forms/no-logits.js";
import { positionIdsInput } from "../../src/synthetic/forms/position-ids.js";
import { withPastGraph } from "../../src/synthetic/forms/with-past.js";
import type { Gpt2GraphVariant } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import type { Activation } from "../../src/trace/activation.js";
import { gpt2Reference, type RefOptions } from "../reference/gpt2-forward.js";
import { rejected, thrown } from "../helpers/errors.js";
import { FOUR_LAYER, makeTestModel, type TestModel } from "../helpers/models.js";

const ROWS = [
  [7, 30, 2, 99, 41, 5, 250, 18],
  [9, 12, 140, 3, 77],
];
const LENGTHS = ROWS.map((r) => r.length);
const S = Math.max(...LENGTHS);
const PADDED = ROWS.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]);
const MASK = ROWS.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]);
const D = FOUR_LAYER.n_embd;
const DIRECTION = Array.from({ length: D }, (_, i) => Math.sin(i + 1));
const TARGET = 17;
const DISTRACTOR = 42;

interface Form {
  name: string;
  variant: Gpt2GraphVariant;
  make: (m: ModelProto) => ModelProto;
  /** Declared element type each named input must have in the written file. */
  inputs: Record<string, TensorProto_DataType>;
  fp16?: boolean;
  noLogits?: boolean;
  /** The file's outer graph has no logits output (the decoder inside has). */
  noLogitsOutput?: boolean;
}

const I64 = TensorProto_DataType.INT64;
const I32 = TensorProto_DataType.INT32;
const F32 = TensorProto_DataType.FLOAT;
const F16 = TensorProto_DataType.FLOAT16;

const FORMS: Form[] = [
  { name: "int32 inputs", variant: "decoder", make: int32Inputs, inputs: { input_ids: I32, attention_mask: I32 } },
  { name: "position_ids input", variant: "decoder", make: positionIdsInput, inputs: { input_ids: I64, position_ids: I64 } },
  { name: "int32 position_ids", variant: "decoder", make: (m) => int32Inputs(positionIdsInput(m)), inputs: { input_ids: I32, attention_mask: I32, position_ids: I32 } },
  { name: "with past (past_key_values)", variant: "merged", make: (m) => withPastGraph(m), inputs: { input_ids: I64, "past_key_values.0.key": F32, "past_key_values.3.value": F32 } },
  { name: "with past (past_N)", variant: "merged", make: (m) => withPastGraph(m, { layout: "past_N" }), inputs: { past_0: F32, past_3: F32 } },
  {
    name: "with past, int32, position_ids",
    variant: "merged",
    make: (m) => int32Inputs(positionIdsInput(withPastGraph(m))),
    inputs: { input_ids: I32, position_ids: I32, "past_key_values.1.key": F32 },
  },
  { name: "float16", variant: "decoder", make: float16Graph, inputs: { input_ids: I64 }, fp16: true },
  { name: "float16 with past_N", variant: "merged", make: (m) => float16Graph(withPastGraph(m, { layout: "past_N" })), inputs: { past_0: F16 }, fp16: true },
  { name: "no logits", variant: "decoder", make: withoutLogits, inputs: { input_ids: I64 }, noLogits: true },
  {
    // onnxruntime's convert_generation form: the decoder (int32 inputs, position_ids, past_N) inside a BeamSearch node.
    name: "BeamSearch-wrapped decoder, weights in the outer graph",
    variant: "merged",
    make: (m) => beamSearchWrapped(int32Inputs(positionIdsInput(withPastGraph(m, { layout: "past_N" }))), { eosTokenId: FOUR_LAYER.vocab_size - 1, sharedInitializers: true }),
    inputs: { input_ids: I32, max_length: I32 },
    noLogitsOutput: true,
  },
];

/** Writes `form` of a generated FOUR_LAYER model over its onnx/model.onnx. */
async function writeForm(form: Form, seed: number): Promise<TestModel> {
  const tm = await makeTestModel({ config: FOUR_LAYER, seed, variant: form.variant });
  await writeFile(tm.model, encodeModel(form.make(decodeModel(await readFile(tm.model)))));
  return tm;
}

/** The weights as a float16 file holds them (rounded to float16). */
function roundedToHalf(w: Gpt2Weights): Gpt2Weights {
  return new Map([...w].map(([k, t]) => [k, { ...t, data: halfsToFloats(floatsToHalfs(t.data)) }]));
}

/** Max |a - b| over the real positions of each row; entries masked on both sides (scores) are skipped. */
function maxDiff(act: Activation, ref: { data: Float64Array; dims: number[] }, lengths: readonly number[]): number {
  expect(act.dims).toEqual(ref.dims);
  const posAxes = act.labels.flatMap((l, i) => (l === "pos" || l === "query_pos" || l === "key_pos" ? [i] : []));
  const idx = new Array<number>(act.dims.length);
  let m = 0;
  for (let flat = 0; flat < act.data.length; flat++) {
    let r = flat;
    for (let a = act.dims.length - 1; a >= 0; a--) {
      idx[a] = r % act.dims[a]!;
      r = Math.floor(r / act.dims[a]!);
    }
    if (!posAxes.every((a) => idx[a]! < lengths[idx[0]!]!)) continue;
    const x = act.data[flat]!;
    const y = ref.data[flat]!;
    // Masked scores: float32's most negative number (float16's in float16 files) on both sides.
    if (y < -1e30 && x <= -65504) continue;
    const d = Math.abs(x - y);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Reference logits of row b at position p. */
function refLogitsAt(ref: ReturnType<typeof gpt2Reference>, b: number, p: number): Float64Array {
  const V = ref.logits.dims[2]!;
  const off = (b * ref.logits.dims[1]! + p) * V;
  return ref.logits.data.subarray(off, off + V);
}

const TOL = 1e-4;

// The plain decoder of the same weights: the table every form's attribution must agree with.
let plain: { tm: TestModel; model: Model } | undefined;
beforeAll(async () => {
  const tm = await makeTestModel({ config: FOUR_LAYER, seed: 5 });
  plain = { tm, model: await Model.load(tm.dir) };
});
afterAll(async () => {
  await plain?.model.dispose();
  await plain?.tm.cleanup();
});

describe.each(FORMS)("$name", (form) => {
  let tm: TestModel;
  let model: Model;
  let weights: Gpt2Weights;
  beforeAll(async () => {
    tm = await writeForm(form, 5);
    model = await Model.load(tm.dir);
    weights = form.fp16 ? roundedToHalf(tm.weights) : tm.weights;
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });

  it("the file declares the form's inputs", async () => {
    const g = decodeModel(await readFile(tm.model)).graph!;
    for (const [name, type] of Object.entries(form.inputs)) {
      const v = g.input.find((i) => i.name === name);
      expect(v, name).toBeDefined();
      expect(v!.type?.value.case === "tensorType" ? v!.type.value.value.elemType : undefined, name).toBe(type);
    }
    expect(g.output.some((o) => o.name === "logits")).toBe(!form.noLogits && !form.noLogitsOutput);
  });

  it("every hook equals the float64 reference (padded batch)", async () => {
    expect(runtimeOf(model).hookMap.unavailable.size).toBe(0);
    const t = await model.trace(ROWS, { hooks: () => true });
    const ref = gpt2Reference(FOUR_LAYER, weights, PADDED, MASK);
    const names = [...t.cache.keys()];
    expect(names.length).toBe(2 + 16 * FOUR_LAYER.n_layer + 1);
    for (const name of names) expect(maxDiff(t.cache.get(name), ref.cache.get(name)!, LENGTHS), name).toBeLessThan(TOL);
    if (form.noLogits) return;
    for (let b = 0; b < ROWS.length; b++) {
      for (let p = 0; p < LENGTHS[b]!; p++) expect(maxAbs(t.logitsAt({ batch: b, position: p }), refLogitsAt(ref, b, p)), `logits ${b},${p}`).toBeLessThan(TOL);
    }
  });

  it("steering equals the reference's steered forward, alone and as shared-prefix variants", async () => {
    const hook = "blocks.3.hook_resid_post" as const;
    const steered = (l: number, c: number): RefOptions => ({ addToResidPre: new Map([[l, DIRECTION.map((x) => x * c)]]) });
    const one = await model.intervene([ROWS[0]!], [steer("blocks.1.hook_resid_pre", DIRECTION, 2)], { hooks: [hook] });
    const ref1 = gpt2Reference(FOUR_LAYER, weights, [ROWS[0]!], undefined, steered(1, 2));
    expect(maxDiff(one.edited.cache.get(hook), ref1.cache.get(hook)!, [LENGTHS[0]!])).toBeLessThan(TOL);
    const clean = gpt2Reference(FOUR_LAYER, weights, [ROWS[0]!]);
    expect(maxDiff(one.edited.cache.get(hook), clean.cache.get(hook)!, [LENGTHS[0]!])).toBeGreaterThan(1e-2);
    if (form.noLogits) {
      expect((await rejected(Promise.resolve().then(() => one.kl()))).code).toBe("E_NO_LOGITS");
      return;
    }
    // Variants of one prompt (shared-prefix batching: each block gathers its own rows, so an
    // empty past must have each block's row count).
    const variants = [[steer("blocks.2.hook_resid_pre", DIRECTION, -1)], [], [steer("blocks.0.hook_resid_pre", DIRECTION, 0.5)]];
    const r = await model.intervene([ROWS[0]!], [], { variants });
    const last = LENGTHS[0]! - 1;
    const refs = [steered(2, -1), {}, steered(0, 0.5)].map((o) => gpt2Reference(FOUR_LAYER, weights, [ROWS[0]!], undefined, o));
    refs.forEach((ref, i) => expect(maxAbs(r.edited.logitsAt({ batch: i }), refLogitsAt(ref, 0, last)), `variant ${i}`).toBeLessThan(TOL));
  });

  it(form.noLogits ? "what needs logits is E_NO_LOGITS, naming the outputs" : "attribution: loss equals the reference, table equals the plain decoder's", async () => {
    const prompt = ROWS[0]!;
    if (form.noLogits) {
      const t = await model.trace([prompt]);
      // Printing a trace or an intervention result still works: it says there are no logits.
      expect(inspect(t)).toContain("no logits");
      expect(inspect(await model.intervene([prompt], [steer("blocks.1.hook_resid_pre", DIRECTION, 1)]))).toContain("no logits");
      for (const f of [() => t.topK(3), () => t.logitsAt(), () => t.logitDiff(TARGET, DISTRACTOR), () => runtimeOf(model).weights.W_U]) {
        const e = thrown(f);
        expect(e.code).toBe("E_NO_LOGITS");
        expect(e.value).toBe("logits");
      }
      for (const p of [
        model.attribute([prompt], { target: TARGET, distractor: DISTRACTOR }),
        model.forward([prompt]),
        model.generate(prompt, { maxNewTokens: 2 }),
        model.directLogitAttribution([prompt], { target: TARGET, distractor: DISTRACTOR }),
        model.logitLens([prompt], { target: TARGET, distractor: DISTRACTOR }),
      ]) {
        const e = await rejected(p);
        expect(e.code).toBe("E_NO_LOGITS");
        expect(e.value).toBe("logits");
      }
      const e = await rejected(model.attribute([prompt], { target: TARGET, distractor: DISTRACTOR }));
      expect(e.allowed).toContain(LAST_HIDDEN_STATE);
      expect(e.message).toMatch(/no "logits" output/);
      return;
    }
    const table = await model.attribute([prompt], { target: TARGET, distractor: DISTRACTOR, topK: 6 });
    const ref = refLogitsAt(gpt2Reference(FOUR_LAYER, weights, [prompt]), 0, prompt.length - 1);
    expect(Math.abs(table.loss - (ref[TARGET]! - ref[DISTRACTOR]!))).toBeLessThan(TOL);
    if (form.fp16) return; // other weights than the plain decoder's
    const want = await plain!.model.attribute([prompt], { target: TARGET, distractor: DISTRACTOR, topK: 6 });
    expect(table.nodes.map((n) => n.id)).toEqual(want.nodes.map((n) => n.id));
    for (const [i, n] of table.nodes.entries()) {
      const w = want.nodes[i]!;
      for (const k of ["activation", "directEffect", "totalEffect", "writeMagnitude"] as const) expect(Math.abs(n[k] - w[k]), `${n.id} ${k}`).toBeLessThan(TOL);
    }
  });
});
