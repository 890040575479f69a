/**
 * Direct logit attribution and the logit lens on a model whose unembedding has a bias (`b_U`):
 * the bias is its own DLA component, so the components still sum to the logit difference; the
 * logit lens adds it too. And the logit lens takes one prompt (a batch is a typed error, not
 * row 0 silently).
 */
import { cp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { zeroHead } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { buildGpt2Graph, UNEMBED_BIAS } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { FOUR_LAYER, makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";

const P = [4, 99, 23, 180, 7, 64, 12];
const T = [31, 32];
const D = 77;
const V = FOUR_LAYER.vocab_size;
/** A bias that moves the logit difference by about 1: b[31] = 0.9, b[32] = 0.5, b[77] = -0.3, others small. */
const BIAS = Float32Array.from({ length: V }, (_, i) => (i === 31 ? 0.9 : i === 32 ? 0.5 : i === 77 ? -0.3 : 0.05 * Math.sin(i)));
const BIAS_DIFF = (0.9 + 0.5) / 2 - -0.3;

let tm: TestModel;
let plain: Model;
let biased: Model;
let dir: string;

beforeAll(async () => {
  tm = await makeTestModel({ config: FOUR_LAYER, seed: 21 });
  dir = `${tm.dir}-bias`;
  await cp(tm.dir, dir, { recursive: true });
  const w: Gpt2Weights = new Map(tm.weights);
  w.set(UNEMBED_BIAS, { data: BIAS, dims: [V] });
  await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(buildGpt2Graph(tm.arch, w)));
  plain = await Model.load(tm.dir);
  biased = await Model.load(dir);
});
afterAll(async () => {
  await plain?.dispose();
  await biased?.dispose();
  await tm?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe("unembedding bias", () => {
  it("the generated graph adds the bias to the logits; model.weights.b_U is that bias", async () => {
    const a = await biased.forward([P]);
    const b = await plain.forward([P]);
    const want = b.data.map((x, i) => x + BIAS[i % V]!);
    expect(maxAbsDiff(a.data, want)).toBeLessThan(1e-5);
    expect(Array.from(biased.weights.b_U.data)).toEqual(Array.from(BIAS));
    expect(Array.from(plain.weights.b_U.data).every((x) => x === 0)).toBe(true);
  });

  it("DLA: components sum to the logit difference, the bias is one of them", async () => {
    const r = await biased.directLogitAttribution([P], { target: T, distractor: D });
    const p = await plain.directLogitAttribution([P], { target: T, distractor: D });
    expect(r.logitDiff).toBeCloseTo(p.logitDiff + BIAS_DIFF, 4);
    expect(Math.abs(r.total - r.logitDiff)).toBeLessThan(1e-3 * Math.max(1, Math.abs(r.logitDiff)));
    const bias = r.components.find((c) => c.kind === "unembed_bias");
    expect(bias?.value).toBeCloseTo(BIAS_DIFF, 6);
    // Every other component is the plain model's.
    const others = r.components.filter((c) => c.kind !== "unembed_bias");
    expect(others.map((c) => c.name)).toEqual(p.components.map((c) => c.name));
    others.forEach((c, i) => expect(c.value, c.name).toBeCloseTo(p.components[i]!.value, 5));
  });

  it("logit lens: the last row is the model's own logit difference, bias included", async () => {
    const rows = await biased.logitLens([P], { target: T, distractor: D });
    const t = await biased.trace([P], { hooks: [] });
    expect(rows[rows.length - 1]!.logitDiff).toBeCloseTo(t.logitDiff(T, D), 4);
    const p = await plain.logitLens([P], { target: T, distractor: D });
    rows.forEach((r, i) => expect(r.logitDiff).toBeCloseTo(p[i]!.logitDiff + BIAS_DIFF, 4));
  });

  it("interventions with last-position logits work on a biased unembedding", async () => {
    const r = await biased.intervene([P], [], { variants: [[zeroHead(1, 0)], []] });
    const one = await biased.intervene([P], [zeroHead(1, 0)]);
    expect(maxAbsDiff(r.edited.logitsAt({ batch: 0 }), one.edited.logitsAt())).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.edited.logitsAt({ batch: 1 }), one.clean.logitsAt())).toBeLessThan(1e-5);
  });
});

describe("logit lens on a batch", () => {
  it("several prompts or token rows: E_BAD_INPUT (one prompt at a time), as for DLA", async () => {
    for (const input of [[P, P.slice(0, 4)], ["a b", "c"]] as const) {
      for (const f of [() => plain.logitLens(input, { target: T, distractor: D }), () => plain.directLogitAttribution(input, { target: T, distractor: D })]) {
        let err: unknown;
        try {
          await f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(TdbError);
        expect((err as TdbError).code).toBe("E_BAD_INPUT");
        expect((err as TdbError).value).toBe(2);
      }
    }
    // One row in a batch wrapper is one prompt.
    await expect(plain.logitLens([P], { target: T, distractor: D })).resolves.toHaveLength(FOUR_LAYER.n_layer + 1);
  });
});
