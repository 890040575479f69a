/**
 * Issue 12, validation at the public API boundary: every bad option or argument a JavaScript
 * caller can pass (NaN, strings for numbers, unknown enum values, null) gets a typed TdbError
 * naming the value and what is allowed, never a raw TypeError and never a silently wrong
 * answer. Where a boundary value is defined to work (maxNewTokens 0, a prompt that fills the
 * context) the test checks the defined result.
 */
import { budgetForChunks } from "../helpers/budget.js";
import { describe, expect, it } from "vitest";
import { TdbError, type TdbErrorCode } from "../../src/base/errors.js";
import { patchFrom, steer, zeroHead } from "../../src/intervene/edits.js";
import type { HookName } from "../../src/hooks/names.js";
import { Model } from "../../src/model/model.js";
import { useTestModel } from "../helpers/models.js";

let model: Model;
useTestModel({}, (_tm, m) => {
  model = m;
});

const P = [3, 14, 15, 92, 65];
const RESID = "blocks.1.hook_resid_pre" as HookName;
const V = [[zeroHead(0, 0)], [zeroHead(1, 2)]];
/** The default test model: d_model 64, vocabulary 512, context 64. */
const D_MODEL = 64;
const N_CTX = 64;

/** A vector of width D_MODEL with `x` at index `i` and 1 elsewhere. */
function vec(i: number, x: number): number[] {
  const v = new Array<number>(D_MODEL).fill(1);
  v[i] = x;
  return v;
}

/** Calls `f` (sync or async) and returns the TdbError it throws; fails on anything else. */
async function typedError(f: () => unknown): Promise<TdbError> {
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a TdbError, got ${String(err)}`).toBeInstanceOf(TdbError);
  return err as TdbError;
}

type Case = [string, () => unknown, TdbErrorCode, unknown];

/** [what, call, code, the `value` the error must carry (undefined: not checked)]. */
const cases: Case[] = [
  // maxBatchBytes: NaN used to make every variant row equal the clean run.
  ["maxBatchBytes NaN", () => model.intervene(P, [], { variants: V, maxBatchBytes: NaN }), "E_BAD_OPTION", NaN],
  ['maxBatchBytes "1GB"', () => model.intervene(P, [], { variants: V, maxBatchBytes: "1GB" as never }), "E_BAD_OPTION", "1GB"],
  ["maxBatchBytes 0", () => model.intervene(P, [], { variants: V, maxBatchBytes: 0 }), "E_BAD_OPTION", 0],
  ["maxBatchBytes -1", () => model.intervene(P, [], { variants: V, maxBatchBytes: -1 }), "E_BAD_OPTION", -1],
  ["maxBatchBytes Infinity", () => model.intervene(P, [], { variants: V, maxBatchBytes: Infinity }), "E_BAD_OPTION", Infinity],
  // topK: k is an integer >= 1.
  ["topK(-1)", async () => (await model.trace(P, { hooks: [] })).topK(-1), "E_BAD_OPTION", -1],
  ["topK(NaN)", async () => (await model.trace(P, { hooks: [] })).topK(NaN), "E_BAD_OPTION", NaN],
  ["topK(2.7)", async () => (await model.trace(P, { hooks: [] })).topK(2.7), "E_BAD_OPTION", 2.7],
  ["topK(0)", async () => (await model.trace(P, { hooks: [] })).topK(0), "E_BAD_OPTION", 0],
  ['topK("3")', async () => (await model.trace(P, { hooks: [] })).topK("3" as never), "E_BAD_OPTION", "3"],
  // Enums and option types.
  [
    'align: "middle"',
    async () => model.intervene(P, [patchFrom(RESID, await model.trace([...P, 7, 8], { hooks: [RESID] }), { align: "middle" as never })]),
    "E_BAD_OPTION",
    "middle",
  ],
  ['logits: "first"', () => model.intervene(P, [zeroHead(0, 0)], { logits: "first" as never }), "E_BAD_OPTION", "first"],
  ['intervene hooks: "none"', () => model.intervene(P, [zeroHead(0, 0)], { hooks: "none" as never }), "E_BAD_OPTION", "none"],
  ['trace hooks: "none"', () => model.trace(P, { hooks: "none" as never }), "E_BAD_OPTION", "none"],
  ["trace hooks: 42", () => model.trace(P, { hooks: 42 as never }), "E_BAD_OPTION", 42],
  ['prefixShare: "no"', () => model.intervene(P, [], { variants: V, prefixShare: "no" as never }), "E_BAD_OPTION", "no"],
  // Wrong argument types.
  ["Model.load(null)", () => Model.load(null as never), "E_BAD_INPUT", undefined],
  ["Model.load(42)", () => Model.load(42 as never), "E_BAD_INPUT", undefined],
  ["trace(null)", () => model.trace(null as never), "E_BAD_INPUT", undefined],
  ["trace(42)", () => model.trace(42 as never), "E_BAD_INPUT", undefined],
  ['trace positions: "0"', () => model.trace(P, { hooks: [RESID], positions: "0" as never }), "E_BAD_OPTION", undefined],
  ["variants: {}", () => model.intervene(P, [], { variants: {} as never }), "E_BAD_OPTION", undefined],
  ["edits: [null]", () => model.intervene(P, [null as never]), "E_BAD_INPUT", undefined],
  ["a variant holding null", () => model.intervene(P, [], { variants: [[null as never]] }), "E_BAD_INPUT", undefined],
  ["generate edits: [null]", () => model.generate(P, { edits: [null as never], maxNewTokens: 1 }), "E_BAD_INPUT", undefined],
  ["traceUpstream(P, null)", () => model.traceUpstream(P, null as never), "E_BAD_INPUT", undefined],
  // Non-finite edit values, checked after scaling and against the float32 range.
  ["steer scale NaN", () => model.intervene(P, [steer(RESID, vec(0, 1), NaN)]), "E_BAD_INPUT", NaN],
  ["steer scalar value, scale NaN", () => model.intervene(P, [{ hook: RESID, kind: "add", value: 1, scale: NaN }]), "E_BAD_INPUT", NaN],
  ["steer vector with NaN", () => model.intervene(P, [steer(RESID, vec(3, NaN))]), "E_BAD_INPUT", NaN],
  ["steer vector with Infinity", () => model.intervene(P, [steer(RESID, vec(5, Infinity))]), "E_BAD_INPUT", Infinity],
  ["steer scale overflowing float32", () => model.intervene(P, [steer(RESID, vec(2, 10), 1e38)]), "E_BAD_INPUT", 10 * 1e38],
  ["scalar add overflowing float64", () => model.intervene(P, [{ hook: RESID, kind: "add", value: 1e300, scale: 1e10 }]), "E_BAD_INPUT", Infinity],
  ["set value overflowing float32", () => model.intervene(P, [{ hook: RESID, kind: "set", value: 1e39 }]), "E_BAD_INPUT", 1e39],
  ["scale value overflowing float32", () => model.intervene(P, [{ hook: RESID, kind: "scale", value: -1e39 }]), "E_BAD_INPUT", -1e39],
  // generate options.
  ["generate topK 0", () => model.generate(P, { temperature: 1, topK: 0, maxNewTokens: 2 }), "E_BAD_OPTION", 0],
  ["generate topK NaN", () => model.generate(P, { temperature: 1, topK: NaN, maxNewTokens: 2 }), "E_BAD_OPTION", NaN],
  ["generate topK 2.5", () => model.generate(P, { temperature: 1, topK: 2.5, maxNewTokens: 2 }), "E_BAD_OPTION", 2.5],
  ["generate temperature -1", () => model.generate(P, { temperature: -1 }), "E_BAD_OPTION", -1],
  ["generate temperature NaN", () => model.generate(P, { temperature: NaN }), "E_BAD_OPTION", NaN],
  ['generate temperature "1"', () => model.generate(P, { temperature: "1" as never }), "E_BAD_OPTION", "1"],
  ["generate maxNewTokens -1", () => model.generate(P, { maxNewTokens: -1 }), "E_BAD_OPTION", -1],
  ["generate maxNewTokens NaN", () => model.generate(P, { maxNewTokens: NaN }), "E_BAD_OPTION", NaN],
  ["generate seed NaN", () => model.generate(P, { temperature: 1, seed: NaN }), "E_BAD_OPTION", NaN],
  ["generate a prompt longer than the context", () => model.generate(new Array<number>(N_CTX + 1).fill(7), { maxNewTokens: 3 }), "E_PROMPT_TOO_LONG", N_CTX + 1],
  ["generate prompt null", () => model.generate(null as never), "E_BAD_INPUT", undefined],
];

describe("bad options and arguments get typed errors", () => {
  it.each(cases)("%s", async (_what, call, code, value) => {
    const err = await typedError(call);
    expect(err.code, err.message).toBe(code);
    if (value !== undefined) expect(err.value).toBe(value);
    if (code === "E_BAD_OPTION") expect(err.allowed, "E_BAD_OPTION names what is allowed").toBeDefined();
  });
});

describe("defined boundary behaviour", () => {
  it("maxNewTokens 0 returns the prompt and an empty continuation", async () => {
    const g = await model.generate(P, { maxNewTokens: 0 });
    expect(g.newTokens).toEqual([]);
    expect(g.tokens).toEqual(P);
    expect(g.completion).toBe("");
  });

  it("a prompt that already fills the context returns an empty continuation", async () => {
    const full = Array.from({ length: N_CTX }, (_, i) => (i * 37) % 500);
    const g = await model.generate(full, { maxNewTokens: 5 });
    expect(g.newTokens).toEqual([]);
    expect(g.tokens).toEqual(full);
  });

  it("a prompt one short of the context gets exactly one new token", async () => {
    const g = await model.generate(new Array<number>(N_CTX - 1).fill(9), { maxNewTokens: 5, stopAtEos: false });
    expect(g.newTokens.length).toBe(1);
  });

  it("topK(k) returns k entries in descending probability, and the whole vocabulary when k exceeds it", async () => {
    const t = await model.trace(P, { hooks: [] });
    const lp = Array.from(t.logProbs());
    const top3 = t.topK(3);
    expect(top3.length).toBe(3);
    // Independent: the three largest log-probabilities by a plain sort of the values.
    const sorted = [...lp].sort((a, b) => b - a);
    expect(top3.map((e) => e.logProb)).toEqual(sorted.slice(0, 3));
    expect(t.topK(10_000).length).toBe(lp.length);
  });

  it("valid variant batches with a tiny budget still differ from the clean run", async () => {
    // One row per chunk: the variants must still act (NaN used to make them all clean).
    const S = (await model.trace(P, { hooks: [] })).tokens[0]!.length;
    const maxBatchBytes = await budgetForChunks(model, { rows: V.length + 1, chunk: 2, S, logitPositions: 1, edits: V.flat() });
    const r = await model.intervene(P, [], { variants: V, maxBatchBytes });
    const clean = r.clean.logitsAt();
    for (const row of [0, 1]) {
      const edited = r.edited.logitsAt({ batch: row });
      expect(Array.from(edited).some((x, i) => Math.abs(x - clean[i]!) > 1e-4)).toBe(true);
    }
  });
});
