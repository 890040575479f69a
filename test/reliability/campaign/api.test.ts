/**
 * Issue 12's bad-input campaign, through the library API: every public entry point and option of
 * `Model` and its results, called with wrong types, out-of-range, non-integer, non-finite and
 * unknown enum values, broken model directories, and a disposed model. Each case must end in a
 * typed error carrying the offending value and what is allowed, or in a defined result that
 * passes an independent check; anything else (an untyped error, a silently wrong answer, a hang)
 * fails the case. The outcome table prints at the end (see `_campaign.ts`).
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TdbErrorCode } from "../../../src/base/errors.js";
import { ablateDirection, meanAblate, patchFrom, resampleFrom, steer, zeroAttention, zeroHead, zeroNeuron, type Edit } from "../../../src/intervene/edits.js";
import type { HookName } from "../../../src/hooks/names.js";
import { Model } from "../../../src/model/model.js";
import type { Trace } from "../../../src/trace/trace.js";
import { makeTestModel, type TestModel } from "../../helpers/models.js";
import { fine, outcomes, runCase, summary, typed, typedNoAllowed, type Case, type Expectation } from "./_campaign.js";

let tm: TestModel;
let model: Model;
let t: Trace;
const scratch: string[] = [];

beforeAll(async () => {
  tm = await makeTestModel();
  model = await Model.load(tm.dir);
  t = await model.trace([P, P2]);
});
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
  for (const d of scratch) await rm(d, { recursive: true, force: true });
  console.log(summary("API campaign"));
});

/** Prompts of the test model (TINY_GPT2: 2 layers, 4 heads, d_model 64, d_mlp 256, vocab 512, n_ctx 64). */
const P = [3, 14, 15, 92, 65];
const P2 = [35, 89, 79];
const L = 2;
const H = 4;
const D = 64;
const D_MLP = 256;
const V = 512;
const N_CTX = 64;
const RESID = "blocks.1.hook_resid_pre" as HookName;

/** Bad values of a positive-integer option. */
const BAD_POSITIVE_INT: [string, unknown][] = [["0", 0], ["-1", -1], ["2.5", 2.5], ["Infinity", Infinity], ["NaN", Number.NaN], ['"2"', "2"], ["null", null]];
/** Bad values of an array option. */
const BAD_ARRAY: [string, unknown][] = [["a number", 42], ["a string", "0"], ["an object", {}], ["null", null]];

const cases: Case[] = [];
function add(entry: string, what: string, run: () => unknown, e: Expectation): void {
  cases.push({ entry, what, run, expect: e });
}
const BAD_OPT = typed("E_BAD_OPTION");
const BAD_IN = typed("E_BAD_INPUT", "E_BAD_OPTION");

// ---------------------------------------------------------------------------------------------
// Model.load
// No id: the shipped default model, tdb:brown-small (4 layers, vocabulary 8192).
add("Model.load", "id undefined (the default model)", async () => {
  const m = await Model.load(undefined);
  const dims = [m.config.nLayers, m.config.dVocab];
  await m.dispose();
  return dims;
}, fine((r) => expect(r).toEqual([4, 8192])));
add("Model.load", "a packaged id that is not shipped", () => Model.load("tdb:no-such-model"), typed("E_MISSING_FILE"));
add("Model.load", "a malformed packaged id", () => Model.load("tdb:../etc"), typed("E_BAD_INPUT"));
for (const [what, v] of [["null", null], ["42", 42], ["an empty string", ""], ["blanks", "   "], ["an object", {}], ["an array", []]] as [string, unknown][]) {
  add("Model.load", `id ${what}`, () => Model.load(v as string), BAD_IN);
}
add("Model.load", "a directory that does not exist", () => Model.load("/nonexistent/tdb-model"), typed("E_MISSING_FILE", "E_FILE_SYSTEM"));
add("Model.load", "a file as the directory", () => Model.load(tm.config), typed("E_FILE_SYSTEM"));
add("Model.load", "a hub id offline with no cache", () => Model.load("nobody/no-such-model", { cacheDir: join(tmpdir(), "tdb-campaign-empty-cache"), hub: { fetch: () => Promise.reject(new TypeError("fetch failed")) } }), typed("E_OFFLINE", "E_MISSING_FILE", "E_FILE_SYSTEM"));
for (const [what, v] of BAD_POSITIVE_INT) add("Model.load", `maxSessions ${what}`, () => Model.load(tm.dir, { maxSessions: v as number }), BAD_OPT);
for (const [what, v] of [["a number", 42], ["an unknown level", "loud"], ["null", null]] as [string, unknown][]) add("Model.load", `logLevel ${what}`, () => Model.load(tm.dir, { logLevel: v as "error" }), BAD_OPT);
for (const [what, v] of [["a number", 42], ["true", true], ["an object", {}]] as [string, unknown][]) add("Model.load", `weightsDir ${what}`, () => Model.load(tm.dir, { weightsDir: v as string }), BAD_OPT);
for (const [what, v] of [["a number", 42], ["unknown", "fp64"]] as [string, unknown][]) add("Model.load", `dtype ${what}`, () => Model.load(tm.dir, { dtype: v as "fp32" }), BAD_OPT);
for (const [what, v] of [["gpu", "gpu"], ["a number", 1]] as [string, unknown][]) add("Model.load", `device ${what}`, () => Model.load(tm.dir, { device: v as "cpu" }), BAD_OPT);
for (const [what, v] of [["-1", -1], ["unknown", "max"], ["a string number", "1"]] as [string, unknown][]) add("Model.load", `optimizationLevel ${what}`, () => Model.load(tm.dir, { optimizationLevel: v as "all" }), BAD_OPT);
for (const [what, v] of [["a number", 42], ["an unknown name", ["blocks.9.hook_resid_pre"]], ["a string that is not a selector", "none"]] as [string, unknown][]) {
  add("Model.load", `hooks ${what}`, () => Model.load(tm.dir, { hooks: v as "all" }), typed("E_BAD_OPTION", "E_UNKNOWN_HOOK", "E_LAYER_RANGE"));
}
add("Model.load", "files adapter without read()", () => Model.load(tm.dir, { files: {} as never }), BAD_OPT);

/** Broken copies of the test model, made in beforeAll of the describe below. */
const broken: { what: string; write: (dir: string) => Promise<void>; codes: TdbErrorCode[] }[] = [
  { what: "config.json empty", write: (d) => writeFile(join(d, "config.json"), ""), codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH"] },
  { what: "config.json null", write: (d) => writeFile(join(d, "config.json"), "null"), codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH"] },
  { what: "config.json an array", write: (d) => writeFile(join(d, "config.json"), "[]"), codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH"] },
  { what: "config.json malformed", write: (d) => writeFile(join(d, "config.json"), '{"n_layer": 2,'), codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH"] },
  { what: "config.json truncated by a writer", write: async (d) => writeFile(join(d, "config.json"), (await readFile(join(d, "config.json"), "utf8")).slice(0, 40)), codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH"] },
  ...(
    [
      ["n_layer as a string", { n_layer: "two" }],
      ["n_layer 0", { n_layer: 0 }],
      ["n_layer 1e9", { n_layer: 1e9 }],
      ["n_layer 1", { n_layer: 1 }],
      ["n_head 3", { n_head: 3 }],
      ["n_head 0", { n_head: 0 }],
      ["n_embd 65", { n_embd: 65 }],
      ["n_inner 100", { n_inner: 100 }],
      ["vocab_size 511", { vocab_size: 511 }],
      ["vocab_size -5", { vocab_size: -5 }],
      ["n_positions 128", { n_positions: 128 }],
      ["n_positions 2.5", { n_positions: 2.5 }],
      ["layer_norm_epsilon -1", { layer_norm_epsilon: -1 }],
      ["layer_norm_epsilon a string", { layer_norm_epsilon: "1e-5" }],
      ["model_type unknown", { model_type: "mamba" }],
    ] as [string, Record<string, unknown>][]
  ).map(([what, patch]) => ({
    what: `config.json ${what}`,
    write: async (d: string) => writeFile(join(d, "config.json"), JSON.stringify({ ...JSON.parse(await readFile(join(d, "config.json"), "utf8")), ...patch })),
    codes: ["E_BAD_INPUT", "E_CONFIG_MISMATCH", "E_UNSUPPORTED_GRAPH"] as TdbErrorCode[],
  })),
  { what: "config.json missing", write: (d) => rm(join(d, "config.json")), codes: ["E_MISSING_FILE"] },
  { what: "onnx/model.onnx missing", write: (d) => rm(join(d, "onnx", "model.onnx")), codes: ["E_MISSING_FILE"] },
  { what: "onnx/model.onnx empty", write: (d) => writeFile(join(d, "onnx", "model.onnx"), ""), codes: ["E_ONNX_DECODE", "E_ONNX_INVALID"] },
  { what: "onnx/model.onnx garbage", write: (d) => writeFile(join(d, "onnx", "model.onnx"), "this is not a protobuf at all"), codes: ["E_ONNX_DECODE", "E_ONNX_INVALID"] },
  { what: "onnx/model.onnx truncated", write: async (d) => writeFile(join(d, "onnx", "model.onnx"), (await readFile(join(d, "onnx", "model.onnx"))).subarray(0, 5000)), codes: ["E_ONNX_DECODE", "E_ONNX_INVALID"] },
  { what: "onnx/model.onnx a directory", write: async (d) => (await rm(join(d, "onnx", "model.onnx")), await mkdir(join(d, "onnx", "model.onnx"))), codes: ["E_FILE_SYSTEM"] },
  { what: "tokenizer.json missing", write: (d) => rm(join(d, "tokenizer.json")), codes: ["E_MISSING_FILE"] },
  { what: "tokenizer.json malformed", write: (d) => writeFile(join(d, "tokenizer.json"), "{"), codes: ["E_BAD_INPUT"] },
  { what: "tokenizer.json null", write: (d) => writeFile(join(d, "tokenizer.json"), "null"), codes: ["E_BAD_INPUT"] },
  { what: "tokenizer_config.json malformed", write: (d) => writeFile(join(d, "tokenizer_config.json"), "{"), codes: ["E_BAD_INPUT"] },
];
const brokenDirs = new Map<string, string>();
for (const b of broken) {
  add("Model.load", b.what, () => Model.load(brokenDirs.get(b.what)!), typed(...b.codes));
}

// ---------------------------------------------------------------------------------------------
// trace / forward: inputs
const BAD_INPUTS: [string, unknown, TdbErrorCode[]][] = [
  ["null", null, ["E_BAD_INPUT"]],
  ["undefined", undefined, ["E_BAD_INPUT"]],
  ["a number", 42, ["E_BAD_INPUT"]],
  ["an object", {}, ["E_BAD_INPUT"]],
  ["an empty string", "", ["E_EMPTY_PROMPT"]],
  ["an empty array", [], ["E_EMPTY_PROMPT", "E_BAD_INPUT"]],
  ["an empty row", [[]], ["E_EMPTY_PROMPT"]],
  ["a batch with an empty string", ["a", ""], ["E_EMPTY_PROMPT"]],
  ["a fractional token", [1.5], ["E_BAD_INPUT", "E_INDEX_RANGE"]],
  ["a negative token", [-1], ["E_BAD_INPUT", "E_INDEX_RANGE"]],
  ["a token = vocab size", [V], ["E_BAD_INPUT", "E_INDEX_RANGE"]],
  ["a NaN token", [Number.NaN], ["E_BAD_INPUT", "E_INDEX_RANGE"]],
  ["a string token in a row", [1, "2"], ["E_BAD_INPUT"]],
  ["strings and numbers mixed", ["a", 3], ["E_BAD_INPUT"]],
  ["a row that is not an array", [[1, 2], 3], ["E_BAD_INPUT"]],
  ["a null row", [[1, 2], null], ["E_BAD_INPUT"]],
  ["a prompt over n_ctx", new Array(N_CTX + 1).fill(5), ["E_PROMPT_TOO_LONG"]],
  ["a text prompt over n_ctx", "word ".repeat(200), ["E_PROMPT_TOO_LONG"]],
];
for (const [what, v, codes] of BAD_INPUTS) {
  add("trace", `input ${what}`, () => model.trace(v as string), typed(...codes));
  add("forward", `input ${what}`, () => model.forward(v as string), typed(...codes));
}
add("trace", "a prompt of exactly n_ctx tokens", () => model.trace([new Array(N_CTX).fill(5)], { hooks: [] }), fine((r) => expect((r as Trace).logits.dims).toEqual([1, N_CTX, V])));
add("trace", "ragged rows (right-padded)", () => model.trace([P, P2], { hooks: [] }), fine((r) => expect((r as Trace).lengths).toEqual([P.length, P2.length])));

// trace options
for (const [what, v] of [["a number", 42], ['"none"', "none"], ["an unknown name", ["blocks.0.hook_nope"]], ["a layer out of range", ["blocks.9.hook_resid_pre"]], ["a number in the list", [42]], ["null in the list", [null]], ["an object", {}]] as [string, unknown][]) {
  add("trace", `hooks ${what}`, () => model.trace(P, { hooks: v as "all" }), typed("E_BAD_OPTION", "E_UNKNOWN_HOOK", "E_LAYER_RANGE"));
}
for (const [what, v] of BAD_ARRAY) add("trace", `positions ${what}`, () => model.trace(P, { positions: v as number[] }), BAD_OPT);
for (const [what, v] of [["out of range", [99]], ["below -length", [-99]], ["fractional", [1.5]], ["NaN", [Number.NaN]], ["a string", ["0"]]] as [string, unknown][]) {
  add("trace", `positions ${what}`, () => model.trace(P, { positions: v as number[] }), typed("E_POSITION_RANGE", "E_BAD_OPTION", "E_BAD_INPUT"));
}
for (const [what, v] of [["a string", "yes"], ["a number", 1], ["null", null]] as [string, unknown][]) add("trace", `prependBos ${what}`, () => model.trace("Hi", { prependBos: v as boolean }), BAD_OPT);
for (const [what, v] of [["NaN", Number.NaN], ['"1GB"', "1GB"], ["0", 0], ["-1", -1], ["Infinity", Infinity], ["null", null]] as [string, unknown][]) {
  add("trace", `maxBatchBytes ${what}`, () => model.trace([P, P2], { maxBatchBytes: v as number }), BAD_OPT);
}
add("trace", "maxBatchBytes below the result", () => model.trace([P, P2], { maxBatchBytes: 1000 }), typed("E_MEMORY_BUDGET"));
for (const [what, v] of [['"first"', "first"], ["a number", 1], ["null", null]] as [string, unknown][]) add("trace", `logits ${what}`, () => model.trace(P, { logits: v as "all" }), BAD_OPT);
add("trace", "options not an object", () => model.trace(P, 42 as never), BAD_OPT);
for (const [what, v] of [["a string", "x"], ["null", null]] as [string, unknown][]) add("forward", `prependBos ${what}`, () => model.forward("Hi", { prependBos: v as boolean }), BAD_OPT);

// ---------------------------------------------------------------------------------------------
// Trace, cache and activation methods
for (const [what, v] of [["-1", -1], ["NaN", Number.NaN], ["2.7", 2.7], ['"3"', "3"], ["Infinity", Infinity], ["null", null]] as [string, unknown][]) {
  add("Trace.topK", `k ${what}`, () => t.topK(v as number), BAD_OPT);
}
add("Trace.topK", "k over the vocabulary (clamped)", () => t.topK(10_000), fine((r) => expect((r as unknown[]).length).toBe(V)));
add("Trace.topK", "k 0", () => t.topK(0), BAD_OPT);
const POSITION_OPTS: [string, unknown][] = [
  ["batch out of range", { batch: 5 }],
  ["batch -1", { batch: -1 }],
  ["batch 0.5", { batch: 0.5 }],
  ["batch a string", { batch: "0" }],
  ["position out of range", { position: 99 }],
  ["position below -length", { position: -99 }],
  ["position NaN", { position: Number.NaN }],
  ["position past the row's real tokens (padding)", { batch: 1, position: P2.length }],
];
for (const [what, o] of POSITION_OPTS) {
  add("Trace.logitsAt", what, () => t.logitsAt(o as never), typed("E_INDEX_RANGE", "E_POSITION_RANGE", "E_BAD_OPTION"));
  add("Trace.logProbs", what, () => t.logProbs(o as never), typed("E_INDEX_RANGE", "E_POSITION_RANGE", "E_BAD_OPTION"));
  add("Trace.topK", what, () => t.topK(3, o as never), typed("E_INDEX_RANGE", "E_POSITION_RANGE", "E_BAD_OPTION"));
}
for (const [what, a, b] of [
  ["a multi-token target", " hello there friends", 5],
  ["an empty target", "", 5],
  ["a token id out of range", V + 3, 5],
  ["a negative token id", -1, 5],
  ["a fractional token id", 2.5, 5],
  ["a null target", null, 5],
  ["an empty target list", [], 5],
] as [string, unknown, unknown][]) {
  add("Trace.logitDiff", what, () => t.logitDiff(a as string, b as string), typed("E_NOT_SINGLE_TOKEN", "E_INDEX_RANGE", "E_BAD_INPUT", "E_BAD_OPTION", "E_EMPTY_PROMPT"));
}
for (const [what, v] of [["row out of range", 5], ["-1", -1], ["1.5", 1.5], ["a string", "0"]] as [string, unknown][]) add("Trace.loss", what, () => t.loss(v as number), typed("E_INDEX_RANGE", "E_BAD_OPTION"));
for (const [what, v] of [["out of range", [9]], ["a string", "0"], ["negative", [-1]], ["fractional", [0.5]], ["empty", []]] as [string, unknown][]) {
  add("Trace.selectRows", what, () => t.selectRows(v as number[]), typed("E_INDEX_RANGE", "E_BAD_OPTION", "E_BAD_INPUT"));
}
for (const [what, args] of [
  ["an unknown hook", ["blocks.0.hook_nope"]],
  ["a layer out of range", ["resid_pre", 9]],
  ["a fractional layer", ["resid_pre", 0.5]],
  ["null", [null]],
  ["a number", [42]],
  ["a short name without a layer", ["resid_pre"]],
] as [string, unknown[]][]) {
  add("ActivationCache.get", what, () => (t.cache.get as (...a: unknown[]) => unknown)(...args), typed("E_UNKNOWN_HOOK", "E_LAYER_RANGE", "E_BAD_INPUT", "E_BAD_OPTION", "E_NOT_CACHED"));
}
for (const [what, idx] of [
  ["too few indices", [0, 0]],
  ["an index out of range", [0, 0, D]],
  ["a fractional index", [0, 0.5, 0]],
  ["a NaN index", [0, Number.NaN, 0]],
] as [string, number[]][]) {
  add("Activation.at", what, () => t.cache.get("resid_pre", 1).at(...idx), typed("E_INDEX_RANGE", "E_POSITION_RANGE", "E_BAD_INPUT"));
}
for (const [what, idx] of [["a row out of range", [9]], ["a fractional row", [0.5]], ["too many indices", [0, 0, 0, 0]]] as [string, number[]][]) {
  add("Activation.row", what, () => t.cache.get("resid_pre", 1).row(...idx), typed("E_INDEX_RANGE", "E_POSITION_RANGE", "E_BAD_INPUT"));
}

// Negative layers and indices count from the end (documented): defined results.
add("ActivationCache.get", "a negative layer (from the end)", () => t.cache.get("resid_pre", -1), fine((r) => expect((r as { name: string }).name).toBe(`blocks.${L - 1}.hook_resid_pre`)));
add("Activation.at", "a negative index (from the end)", () => t.cache.get("resid_pre", 1).at(0, -1, 0), fine((r) => expect(r).toBe(t.cache.get("resid_pre", 1).at(0, P.length - 1, 0))));

// ---------------------------------------------------------------------------------------------
// Tokens
for (const [what, v] of [["a number", 42], ["null", null], ["an object", {}]] as [string, unknown][]) {
  add("toTokens", what, () => model.toTokens(v as string), BAD_IN);
  add("toStrTokens", what, () => model.toStrTokens(v as string), BAD_IN);
}
for (const [what, v] of [["several tokens", " hello there friends"], ["empty", ""], ["a number", 42], ["null", null]] as [string, unknown][]) {
  add("toSingleToken", what, () => model.toSingleToken(v as string), typed("E_NOT_SINGLE_TOKEN", "E_BAD_INPUT"));
}

// ---------------------------------------------------------------------------------------------
// Edits (through intervene)
const EDIT_CASES: [string, () => Edit, TdbErrorCode[]][] = [
  ["zeroHead layer -1", () => zeroHead(-1, 0), ["E_LAYER_RANGE", "E_BAD_INPUT", "E_UNKNOWN_HOOK"]],
  ["zeroHead layer out of range", () => zeroHead(L, 0), ["E_LAYER_RANGE", "E_UNKNOWN_HOOK"]],
  ["zeroHead layer fractional", () => zeroHead(0.5, 0), ["E_LAYER_RANGE", "E_BAD_INPUT", "E_UNKNOWN_HOOK"]],
  ["zeroHead head out of range", () => zeroHead(0, H), ["E_INDEX_RANGE"]],
  ["zeroHead head -1", () => zeroHead(0, -1), ["E_INDEX_RANGE"]],
  ["zeroHead head NaN", () => zeroHead(0, Number.NaN), ["E_INDEX_RANGE", "E_BAD_INPUT"]],
  ["zeroHead heads list with one bad", () => zeroHead(0, [0, 9]), ["E_INDEX_RANGE"]],
  ["zeroNeuron neuron out of range", () => zeroNeuron(0, D_MLP), ["E_INDEX_RANGE"]],
  ["zeroNeuron neuron 1e9", () => zeroNeuron(0, 1e9), ["E_INDEX_RANGE"]],
  ["zeroNeuron at a position out of range", () => zeroNeuron(0, 1, { positions: [99] }), ["E_POSITION_RANGE", "E_INDEX_RANGE"]],
  ["zeroAttention query position out of range", () => zeroAttention(0, 0, [99]), ["E_POSITION_RANGE", "E_INDEX_RANGE"]],
  ["steer with a vector too short", () => steer(RESID, [1, 2, 3]), ["E_BAD_INPUT"]],
  ["steer with a NaN in the vector", () => steer(RESID, Object.assign(new Array<number>(D).fill(1), { 3: Number.NaN })), ["E_BAD_INPUT", "E_NON_FINITE"]],
  ["steer scaled by NaN", () => steer(RESID, new Array<number>(D).fill(1), Number.NaN), ["E_BAD_INPUT", "E_BAD_OPTION", "E_NON_FINITE"]],
  ["steer scaled past float32", () => steer(RESID, new Array<number>(D).fill(1), 1e39), ["E_BAD_INPUT", "E_BAD_OPTION", "E_NON_FINITE"]],
  ["steer with a string vector", () => steer(RESID, "abc" as never), ["E_BAD_INPUT"]],
  ["steer an unknown hook", () => steer("blocks.0.hook_nope" as HookName, new Array<number>(D).fill(1)), ["E_UNKNOWN_HOOK"]],
  ["ablateDirection with the zero vector", () => ablateDirection(RESID, new Array<number>(D).fill(0)), ["E_BAD_INPUT"]],
  ["ablateDirection with a short vector", () => ablateDirection(RESID, [1]), ["E_BAD_INPUT"]],
  ["patchFrom a non-trace", () => patchFrom(RESID, {} as Trace), ["E_BAD_OPTION"]],
  ["meanAblate with an empty mean", () => meanAblate(RESID, new Float32Array(0)), ["E_BAD_INPUT", "E_EMPTY_PROMPT"]],
  ["meanAblate with a short mean", () => meanAblate(RESID, new Float32Array(3)), ["E_BAD_INPUT"]],
  ["resampleFrom a number", () => resampleFrom(RESID, 42 as never), ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["resampleFrom a prompt of another length, no align", () => resampleFrom(RESID, [1, 2]), ["E_BAD_INPUT"]],
  ["resampleFrom with align middle", () => resampleFrom(RESID, [1, 2], { align: "middle" as "start" }), ["E_BAD_OPTION"]],
  ["an edit of unknown kind", () => ({ hook: RESID, kind: "explode" }) as unknown as Edit, ["E_BAD_OPTION"]],
  ["an edit without a hook", () => ({ kind: "zero" }) as unknown as Edit, ["E_BAD_INPUT", "E_BAD_OPTION", "E_UNKNOWN_HOOK"]],
  ["an edit of a non-editable hook (pattern scale)", () => ({ hook: "blocks.0.ln1.hook_scale", kind: "set", value: 1 }) as unknown as Edit, ["E_HOOK_UNAVAILABLE", "E_BAD_OPTION", "E_UNKNOWN_HOOK"]],
  ["set with a NaN value", () => ({ hook: RESID, kind: "set", value: Number.NaN }) as unknown as Edit, ["E_BAD_INPUT", "E_NON_FINITE"]],
  ["scale with a string value", () => ({ hook: RESID, kind: "scale", value: "2" }) as unknown as Edit, ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["edit rows out of range", () => ({ ...zeroHead(0, 0), rows: [7] }), ["E_INDEX_RANGE", "E_BAD_OPTION"]],
  ["edit positions not an array", () => ({ ...zeroHead(0, 0), positions: "0" }) as unknown as Edit, ["E_BAD_OPTION", "E_BAD_INPUT"]],
];
for (const [what, make, codes] of EDIT_CASES) {
  add("intervene", `edit: ${what}`, async () => model.intervene(P, [make()]), typed(...codes));
  add("intervene variants", `edit: ${what}`, async () => model.intervene(P, [], { variants: [[zeroHead(0, 0)], [make()]] }), typed(...codes));
}
// intervene arguments and options
for (const [what, v] of [["null", null], ["an object", {}], ["a string", "zero"], ["[null]", [null]], ["[42]", [42]]] as [string, unknown][]) {
  add("intervene", `edits ${what}`, () => model.intervene(P, v as Edit[]), BAD_IN);
}
for (const [what, v] of [["an object", {}], ["a number", 3], ["[{}]", [{}]], ["[[null]]", [[null]]], ["[null]", [null]], ["empty", []]] as [string, unknown][]) {
  add("intervene", `variants ${what}`, () => model.intervene(P, [], { variants: v as Edit[][] }), BAD_IN);
}
add("intervene", "variants on two prompts", () => model.intervene([P, P2], [], { variants: [[zeroHead(0, 0)]] }), BAD_IN);
add("intervene", "a variant edit with rows", () => model.intervene(P, [], { variants: [[{ ...zeroHead(0, 0), rows: [0] }]] }), BAD_IN);
for (const [what, v] of [['"first"', "first"], ["1", 1]] as [string, unknown][]) add("intervene", `logits ${what}`, () => model.intervene(P, [zeroHead(0, 0)], { logits: v as "all" }), BAD_OPT);
for (const [what, v] of [["a string", "yes"], ["1", 1]] as [string, unknown][]) add("intervene", `prefixShare ${what}`, () => model.intervene(P, [], { variants: [[zeroHead(0, 0)]], prefixShare: v as boolean }), BAD_OPT);
add("intervene", "clean not a trace", () => model.intervene(P, [zeroHead(0, 0)], { clean: {} as Trace }), BAD_OPT);
add("intervene", "clean of another prompt", () => model.intervene(P, [zeroHead(0, 0)], { clean: t }), BAD_IN);
for (const [what, v] of [["NaN", Number.NaN], ['"1GB"', "1GB"], ["0", 0], ["-1", -1]] as [string, unknown][]) {
  add("intervene", `maxBatchBytes ${what}`, () => model.intervene(P, [], { variants: [[zeroHead(0, 0)], [zeroHead(1, 2)]], maxBatchBytes: v as number }), BAD_OPT);
}
add("intervene", "maxBatchBytes below the results", () => model.intervene(P, [], { variants: Array.from({ length: 20 }, () => [zeroHead(0, 0)]), maxBatchBytes: 5000 }), typed("E_MEMORY_BUDGET"));
add(
  "intervene",
  "variants with a tiny (but sufficient) budget still act",
  async () => {
    const r = await model.intervene(P, [], { variants: [[zeroHead(0, 0)], []], maxBatchBytes: 3e5 });
    return r;
  },
  fine((r) => {
    const res = r as { edited: Trace; clean: Trace };
    const e0 = res.edited.logitsAt({ batch: 0 });
    const e1 = res.edited.logitsAt({ batch: 1 });
    const c = res.clean.logitsAt();
    expect(Array.from(e1)).toEqual(Array.from(c)); // the empty variant is the clean run
    expect(Array.from(e0).some((x, i) => Math.abs(x - c[i]!) > 1e-5)).toBe(true); // the ablation acts
  }),
);

// ---------------------------------------------------------------------------------------------
// patchingSweep
for (const [what, o, codes] of [
  ["an unknown hook", { hook: "blocks.0.hook_nope" }, ["E_BAD_OPTION", "E_UNKNOWN_HOOK"]],
  ["by an unknown axis", { hook: "resid_pre", by: "neuron", target: " a", distractor: " b" }, ["E_BAD_OPTION"]],
  ["no metric and no target", { hook: "resid_pre" }, ["E_BAD_OPTION", "E_BAD_INPUT"]],
  ["a metric that is not a function", { hook: "resid_pre", metric: 3 }, ["E_BAD_OPTION"]],
  ["options null", null, ["E_BAD_OPTION"]],
] as [string, unknown, TdbErrorCode[]][]) {
  add("patchingSweep", what, () => model.patchingSweep(P, [5, 6, 7, 8, 9], o as never), typed(...codes));
}
add("patchingSweep", "prompts of different lengths", () => model.patchingSweep(P, P2, { hook: "resid_pre", target: " a", distractor: " b" } as never), BAD_IN);
add("patchingSweep", "a metric returning NaN", () => model.patchingSweep(P, [5, 6, 7, 8, 9], { hook: "resid_pre", metric: () => Number.NaN } as never), typed("E_NON_FINITE", "E_BAD_INPUT"));

// ---------------------------------------------------------------------------------------------
// generate
for (const [what, v] of [["-1", -1], ["1.5", 1.5], ["NaN", Number.NaN], ['"3"', "3"]] as [string, unknown][]) add("generate", `maxNewTokens ${what}`, () => model.generate("Hi", { maxNewTokens: v as number }), BAD_OPT);
for (const [what, v] of [["-1", -1], ["NaN", Number.NaN], ["Infinity", Infinity]] as [string, unknown][]) add("generate", `temperature ${what}`, () => model.generate("Hi", { temperature: v as number }), BAD_OPT);
for (const [what, v] of [["0", 0], ["-1", -1], ["1.5", 1.5]] as [string, unknown][]) add("generate", `topK ${what}`, () => model.generate("Hi", { temperature: 1, topK: v as number }), BAD_OPT);
for (const [what, v] of [["a string", "x"], ["NaN", Number.NaN]] as [string, unknown][]) add("generate", `seed ${what}`, () => model.generate("Hi", { temperature: 1, seed: v as number }), BAD_OPT);
add("generate", "an empty prompt", () => model.generate(""), typed("E_EMPTY_PROMPT"));
add("generate", "a prompt over n_ctx", () => model.generate(new Array(N_CTX + 1).fill(5)), typed("E_PROMPT_TOO_LONG"));
add("generate", "maxNewTokens 0 (no new tokens)", () => model.generate([1, 2, 3], { maxNewTokens: 0 }), fine((r) => expect((r as { newTokens: number[] }).newTokens).toEqual([])));
add("generate", "a prompt at n_ctx (nothing can be added)", () => model.generate(new Array(N_CTX).fill(5), { maxNewTokens: 3 }), fine((r) => expect((r as { newTokens: number[] }).newTokens).toEqual([])));
add("generate", "edits not an array", () => model.generate("Hi", { edits: {} as Edit[] }), BAD_IN);

// ---------------------------------------------------------------------------------------------
// attribute / traceUpstream / DLA / logit lens
const ATTR = { target: " the", distractor: " a" };
for (const [what, o, codes] of [
  ["no options", undefined, ["E_BAD_OPTION"]],
  ["no target", { distractor: " a" }, ["E_BAD_OPTION", "E_BAD_INPUT"]],
  ["target = distractor", { target: " a", distractor: " a" }, ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["a multi-token target", { target: " hello there friends", distractor: " a" }, ["E_NOT_SINGLE_TOKEN"]],
  ["a token id out of range", { target: V, distractor: 1 }, ["E_INDEX_RANGE", "E_BAD_INPUT"]],
  ["topK -1", { ...ATTR, topK: -1 }, ["E_BAD_OPTION"]],
  ["topK NaN", { ...ATTR, topK: Number.NaN }, ["E_BAD_OPTION"]],
  ["topK 2.7", { ...ATTR, topK: 2.7 }, ["E_BAD_OPTION"]],
  ["nodeTypes unknown", { ...ATTR, nodeTypes: ["sae_latent_x"] }, ["E_BAD_OPTION"]],
  ["nodeTypes not an array", { ...ATTR, nodeTypes: "mlp_neuron" }, ["E_BAD_OPTION"]],
  ["detachFinalLnScale a string", { ...ATTR, detachFinalLnScale: "no" }, ["E_BAD_OPTION"]],
] as [string, unknown, TdbErrorCode[]][]) {
  add("attribute", what, () => model.attribute(P, o as never), typed(...codes));
}
add("attribute", "two prompts", () => model.attribute([P, P2], ATTR), BAD_IN);
add("attribute", "an empty prompt", () => model.attribute("", ATTR), typed("E_EMPTY_PROMPT"));
for (const [what, node, codes] of [
  ["null", null, ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["an empty object", {}, ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["an unknown type", { type: "sae_latent", layer: 0, index: 0, position: 0 }, ["E_BAD_INPUT", "E_BAD_OPTION"]],
  ["a layer out of range", { type: "mlp_neuron", layer: 9, index: 0, position: 1 }, ["E_LAYER_RANGE", "E_INDEX_RANGE"]],
  ["a neuron out of range", { type: "mlp_neuron", layer: 1, index: D_MLP, position: 1 }, ["E_INDEX_RANGE"]],
  ["a position out of range", { type: "mlp_neuron", layer: 1, index: 0, position: 99 }, ["E_POSITION_RANGE", "E_INDEX_RANGE"]],
  ["a head out of range", { type: "attention_head", layer: 1, head: H, position: 2, keyPosition: 1 }, ["E_INDEX_RANGE"]],
  ["a key position after the query", { type: "attention_head", layer: 1, head: 0, position: 1, keyPosition: 3 }, ["E_POSITION_RANGE", "E_INDEX_RANGE", "E_BAD_INPUT"]],
  ["a fractional layer", { type: "mlp_neuron", layer: 0.5, index: 0, position: 1 }, ["E_LAYER_RANGE", "E_INDEX_RANGE", "E_BAD_INPUT"]],
] as [string, unknown, TdbErrorCode[]][]) {
  add("traceUpstream", `node ${what}`, () => model.traceUpstream(P, node as never), typed(...codes));
}
add("traceUpstream", "through unknown", () => model.traceUpstream(P, { type: "attention_head", layer: 1, head: 0, position: 2, keyPosition: 1 }, { through: "sideways" as "key" }), BAD_OPT);
add("traceUpstream", "through value without target", () => model.traceUpstream(P, { type: "attention_head", layer: 1, head: 0, position: 2, keyPosition: 1 }, { through: "value" }), BAD_OPT);
for (const [what, o, codes] of [
  ["no options", undefined, ["E_BAD_OPTION"]],
  ["a multi-token target", { target: " hello there friends", distractor: " a" }, ["E_NOT_SINGLE_TOKEN"]],
  ["a position out of range", { ...ATTR, position: 99 }, ["E_POSITION_RANGE", "E_INDEX_RANGE"]],
  ["a fractional position", { ...ATTR, position: 1.5 }, ["E_POSITION_RANGE", "E_BAD_OPTION"]],
] as [string, unknown, TdbErrorCode[]][]) {
  add("directLogitAttribution", what, () => model.directLogitAttribution(P, o as never), typed(...codes));
  add("logitLens", what, () => model.logitLens(P, o as never), typed(...codes));
}

// ---------------------------------------------------------------------------------------------
// headScores
for (const [what, o] of [
  ["detectors unknown", { detectors: ["copying"] }],
  ["seqLen 0", { seqLen: 0 }],
  ["seqLen over n_ctx", { seqLen: 10_000 }],
  ["batch -1", { batch: -1 }],
  ["seed a string", { seed: "x" }],
  ["options a number", 42],
] as [string, unknown][]) {
  add("headScores", what, () => model.headScores(o as never), typed("E_BAD_OPTION", "E_BAD_INPUT", "E_PROMPT_TOO_LONG"));
}

describe("bad-input campaign: library API", () => {
  beforeAll(async () => {
    for (const b of broken) {
      const d = await mkdtemp(join(tmpdir(), "tdb-campaign-"));
      scratch.push(d);
      await cp(tm.dir, d, { recursive: true });
      await b.write(d);
      brokenDirs.set(b.what, d);
    }
  });

  it(`has at least 300 cases (${cases.length + 6})`, () => {
    expect(cases.length + 6).toBeGreaterThanOrEqual(300);
  });

  for (const c of cases) {
    it(`${c.entry}: ${c.what}`, () => runCase(c), 30_000);
  }

  // A disposed model: every call is a typed E_DISPOSED (the dispose test covers calls in flight).
  describe("after dispose", () => {
    let gone: Model;
    beforeAll(async () => {
      gone = await Model.load(tm.dir);
      await gone.dispose();
    });
    const calls: [string, () => unknown][] = [
      ["trace", () => gone.trace(P)],
      ["forward", () => gone.forward(P)],
      ["intervene", () => gone.intervene(P, [zeroHead(0, 0)])],
      ["attribute", () => gone.attribute(P, ATTR)],
      ["generate", () => gone.generate(P)],
      ["dispose again (no-op)", () => gone.dispose()],
    ];
    for (const [what, call] of calls) {
      it(what, () =>
        runCase({
          entry: "disposed model",
          what,
          run: call,
          expect: what.startsWith("dispose") ? fine((r) => expect(r).toBeUndefined()) : typedNoAllowed("E_DISPOSED"),
        }),
      );
    }
  });

  it("records an outcome for every case", () => {
    expect(outcomes.length).toBe(cases.length + 6);
  });
});
