/**
 * Issue 11's "new user" campaign: every export form tdb-js takes (the onnxruntime-optimized assets
 * of test/assets/exports and the generator's forms: unscoped names, int32 inputs, position_ids,
 * decoders with past in both layouts, no logits, float16, BeamSearch-wrapped) loaded with plain
 * `Model.load` and driven through the whole user API: traces (default, all hooks, one hook),
 * interventions (head and neuron ablation, steering, patching between two prompts), attribution
 * and upstream traces, direct logit attribution and the logit lens, generation with and without
 * edits, console display, an SAE spliced in and evaluated, an offline neuron explanation; a few
 * `tdb ... --json` runs; and broken or unusual files (truncated, fused ops the un-fuser refuses, an
 * op onnxruntime does not know, a config contradicting the graph, float16 with int32 inputs, token
 * inputs declared with a fixed batch or sequence length, a model from memory). Each case ends in a
 * checked result or a TdbError with a stable code, never an untyped error (see `_campaign.ts`).
 *
 * Checks are closed forms on the model's own runs, not values copied from the code: an ablated
 * neuron reads 0, a steered residual is the clean one plus the vector, patching the whole
 * residual stream of block 0 from prompt B gives B's logits, attribution's loss and DLA's total
 * are the trace's logit difference, greedy generation's first token is the trace's argmax, and
 * cached generation equals the full re-run token for token.
 */
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, type ModelProto } from "onnx-buf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HookName } from "../../../src/hooks/names.js";
import { patchFrom, steer, zeroHead, zeroNeuron } from "../../../src/intervene/edits.js";
import { TdbError } from "../../../src/base/errors.js";
import { Model } from "../../../src/model/model.js";
import { memoryFiles } from "../../../src/io/files.js";
import { makeAttribute } from "../../../src/onnx/builder.js";
import { externalizeData } from "../../../src/onnx/external.js";
import { decodeModel, encodeModel } from "../../../src/onnx/proto.js";
import { Sae } from "../../../src/sae/sae.js";
import { beamSearchWrapped } from "../../../src/synthetic/forms/beam-search.js";
import { float16Graph } from "../../../src/synthetic/forms/float16.js";
import { int32Inputs } from "../../../src/synthetic/forms/int32.js";
import { withoutLogits } from "../../../src/synthetic/forms/no-logits.js";
import { positionIdsInput } from "../../../src/synthetic/forms/position-ids.js";
import { unscopedNames } from "../../../src/synthetic/forms/unscoped.js";
import { withPastGraph } from "../../../src/synthetic/forms/with-past.js";
import type { Gpt2GraphVariant } from "../../../src/synthetic/gpt2-graph.js";
import type { Trace } from "../../../src/trace/trace.js";
import { tdb, type CliRun } from "../../cli/_run.js";
import { makeTestModel, type TestModel } from "../../helpers/models.js";
import { fine, outcomes, runCase, summary, typed, type Case, type Expectation } from "./_campaign.js";

const ASSETS = join(import.meta.dirname, "..", "..", "assets", "exports");
const ASSET_NAMES = [
  "tiny-opt",
  "tiny-fused",
  "tiny-fused-int32",
  "tiny-fused-fp16",
  "tiny-fused-fp16-io32",
  "tiny-fp16",
  "heads3-opt",
  "heads3-fused",
  "heads3-fused-int32",
  "heads3-fused-fp16",
  "heads3-fused-fp16-io32",
  "heads3-fp16",
  "heads3-fused-posids",
];

/** A generator form: the generated TINY_GPT2 (variant) rewritten by `make`. */
interface GenForm {
  name: string;
  variant: Gpt2GraphVariant;
  make: (m: ModelProto) => ModelProto;
}
const GEN_FORMS: GenForm[] = [
  { name: "gen-unscoped", variant: "decoder", make: (m) => unscopedNames(m) },
  { name: "gen-int32", variant: "decoder", make: int32Inputs },
  { name: "gen-position-ids", variant: "decoder", make: positionIdsInput },
  { name: "gen-with-past", variant: "merged", make: (m) => withPastGraph(m) },
  { name: "gen-with-past_N", variant: "merged", make: (m) => withPastGraph(m, { layout: "past_N" }) },
  { name: "gen-no-logits", variant: "decoder", make: withoutLogits },
  { name: "gen-float16", variant: "decoder", make: float16Graph },
  { name: "gen-unscoped-int32-past_N", variant: "merged", make: (m) => int32Inputs(unscopedNames(withPastGraph(m, { layout: "past_N" }))) },
  {
    name: "gen-beam-search",
    variant: "merged",
    make: (m) => beamSearchWrapped(int32Inputs(positionIdsInput(withPastGraph(m, { layout: "past_N" }))), { eosTokenId: 511, sharedInitializers: true }),
  },
];

/**
 * Forms that also get the costlier cases (an upstream trace from a head, an SAE spliced in and
 * evaluated, an offline explanation): one of each family, to keep the file's run short.
 */
const FULL = new Set(["tiny-fused", "tiny-fused-fp16-io32", "heads3-fused-fp16", "heads3-fused-posids", "heads3-opt", "gen-unscoped", "gen-with-past_N", "gen-no-logits", "gen-float16", "gen-beam-search"]);
const FP16 = (name: string): boolean => name.includes("fp16") || name.includes("float16");
const NO_LOGITS = (name: string): boolean => name.includes("no-logits");

/** Two prompts of the same length, all ids below 300 (the smallest vocabulary here). */
const A = [5, 100, 41, 77, 130, 9, 250, 18];
const B = [12, 7, 200, 44, 2, 91, 17, 66];
const TARGET = 65;
const DISTRACTOR = 66;
const CORPUS = [
  "The jury said it did find that many of the voters were there.",
  "A quick brown fox jumps over the lazy dog, and the dog sleeps.",
  "When John and Mary went to the shops, John gave the bag to Mary.",
  "It was the best of times, it was the worst of times.",
];

const scratch: string[] = [];
const testModels: TestModel[] = [];
const loadErrors = new Map<string, unknown>();

async function tempDir(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `tdb-exports-${tag}-`));
  scratch.push(d);
  return d;
}

/** A copy of asset `name` whose graph is `edit`ed and whose config.json is `config`-edited. */
async function editedAsset(name: string, edit?: (m: ModelProto) => ModelProto, config?: (c: Record<string, unknown>) => void): Promise<string> {
  const dir = await tempDir(name);
  await cp(join(ASSETS, name), dir, { recursive: true });
  const file = join(dir, "onnx", "model.onnx");
  if (edit) await writeFile(file, encodeModel(edit(decodeModel(await readFile(file)))));
  if (config) {
    const c = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    config(c);
    await writeFile(join(dir, "config.json"), JSON.stringify(c));
  }
  return dir;
}

async function genDir(form: GenForm): Promise<string> {
  const tm = await makeTestModel({ variant: form.variant });
  testModels.push(tm);
  await writeFile(tm.model, encodeModel(form.make(decodeModel(await readFile(tm.model)))));
  return tm.dir;
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function scale(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The user API on every form

interface Subject {
  name: string;
  dir: () => Promise<string>;
}
const SUBJECTS: Subject[] = [
  ...ASSET_NAMES.map((n) => ({ name: n, dir: () => Promise.resolve(join(ASSETS, n)) })),
  ...GEN_FORMS.map((f) => ({ name: f.name, dir: () => genDir(f) })),
];

/** The campaign cases of one form, run against `get()` (the loaded model and its clean traces). */
function formCases(name: string, get: () => { model: Model; tA: Trace; tB: Trace }): Case[] {
  const out: Case[] = [];
  const fp16 = FP16(name);
  const noLogits = NO_LOGITS(name);
  // Same-model comparisons: float16 files run in float32 too, so only batching and graph variants differ.
  const tol = (x: number) => (fp16 ? 1e-3 : 1e-4) * Math.max(1, x);
  const add = (entry: string, what: string, run: () => unknown, e: Expectation): void => {
    out.push({ entry: `${name}: ${entry}`, what, run, expect: e });
  };
  const addFull: typeof add = (...args) => {
    if (FULL.has(name)) add(...args);
  };
  const noLogitsOr = (e: Expectation): Expectation => (noLogits ? typed("E_NO_LOGITS") : e);

  add("trace", "default options", () => get().tA, fine((r) => {
    const t = r as Trace;
    const { config } = get().model;
    expect(t.cache.size).toBeGreaterThan(0);
    if (noLogits) expect(t.logits.dims[2]).toBe(0);
    else {
      expect(t.logits.dims).toEqual([1, A.length, config.dVocab]);
      expect(allFinite(t.logits.data)).toBe(true);
      expect(t.nonFinite).toBe(false);
    }
  }));
  add("trace", "topK(5)", () => get().tA.topK(5), noLogitsOr(fine((r) => {
    const top = r as { token: number; logit: number }[];
    expect(top).toHaveLength(5);
    expect(top[0]!.token).toBe(argmax(get().tA.logitsAt()));
  })));
  add("trace", "hooks: () => true, a padded batch of 2", async () => {
    const m = get().model;
    return { t: await m.trace([A, B.slice(0, 5)], { hooks: () => true }), short: await m.trace(B.slice(0, 5)) };
  }, fine((r) => {
    const { t, short } = r as { t: Trace; short: Trace };
    const { config } = get().model;
    expect(get().model.unavailableHooks.size).toBe(0);
    expect([...t.cache.keys()]).toHaveLength(2 + 16 * config.nLayers + 1);
    for (const k of t.cache.keys()) {
      const a = t.cache.get(k);
      // Masked scores are large negative constants; everything else is finite.
      if (!k.endsWith("hook_attn_scores")) expect(allFinite(a.data), k).toBe(true);
    }
    // Row 0 of the batch equals the single-row trace (padding does not leak).
    const resid = t.cache.get(`blocks.${config.nLayers - 1}.hook_resid_post` as HookName);
    const single = get().tA.cache.get(`blocks.${config.nLayers - 1}.hook_resid_post` as HookName);
    expect(maxAbs(resid.data.subarray(0, single.data.length), single.data)).toBeLessThan(tol(scale(single.data)));
    // Row 1 (5 real tokens, 3 pads) equals its own unpadded trace on the real positions.
    const d = config.dModel;
    const other = short.cache.get(`blocks.${config.nLayers - 1}.hook_resid_post` as HookName).data;
    expect(maxAbs(resid.data.subarray(A.length * d, A.length * d + 5 * d), other)).toBeLessThan(tol(scale(other)));
  }));
  add("trace", "logits: \"last\"", () => get().model.trace(A, { logits: "last" }), noLogits ? fine(() => undefined) : fine((r) => {
    const t = r as Trace;
    expect(t.logits.dims).toEqual([1, 1, get().model.config.dVocab]);
    expect(maxAbs(t.logitsAt(), get().tA.logitsAt())).toBeLessThan(tol(scale(get().tA.logitsAt())));
  }));
  add("intervene", "variants [[zeroHead(0, 1)], []]: rows equal the single runs", async () => {
    const m = get().model;
    return { v: await m.intervene(A, [], { variants: [[zeroHead(0, 1)], []], hooks: ["blocks.1.hook_resid_post"] }), one: await m.intervene(A, [zeroHead(0, 1)], { hooks: ["blocks.1.hook_resid_post"] }) };
  }, fine((r) => {
    const { v, one } = r as { v: Awaited<ReturnType<Model["intervene"]>>; one: Awaited<ReturnType<Model["intervene"]>> };
    const h = "blocks.1.hook_resid_post";
    const n = one.edited.cache.get(h).data.length;
    const rows = v.edited.cache.get(h).data;
    expect(maxAbs(rows.subarray(0, n), one.edited.cache.get(h).data)).toBeLessThan(tol(scale(rows)));
    expect(maxAbs(rows.subarray(n, 2 * n), get().tA.cache.get(h).data)).toBeLessThan(tol(scale(rows)));
  }));
  add("trace", "one hook (blocks.1.attn.hook_pattern)", () => get().model.trace(A, { hooks: ["blocks.1.attn.hook_pattern"] }), fine((r) => {
    const t = r as Trace;
    const p = t.cache.get("blocks.1.attn.hook_pattern");
    expect(p.dims).toEqual([1, get().model.config.nHeads, A.length, A.length]);
    // Each query's pattern is a causal distribution.
    const S = A.length;
    for (let h = 0; h < p.dims[1]!; h++) {
      for (let q = 0; q < S; q++) {
        let sum = 0;
        for (let k = 0; k < S; k++) {
          const v = p.at(0, h, q, k);
          if (k > q) expect(v).toBe(0);
          sum += v;
        }
        expect(Math.abs(sum - 1)).toBeLessThan(1e-4);
      }
    }
  }));
  add("trace", "a text prompt", () => get().model.trace("Hello there friend"), fine((r) => expect((r as Trace).tokens[0]!.length).toBeGreaterThan(1)));

  add("intervene", "zeroNeuron(1, [3, 40]): the neurons read 0, clean equals the trace", () => get().model.intervene(A, [zeroNeuron(1, [3, 40])], { hooks: ["blocks.1.mlp.hook_post"] }), fine((r) => {
    const res = r as Awaited<ReturnType<Model["intervene"]>>;
    const post = res.edited.cache.get("blocks.1.mlp.hook_post");
    const dMlp = get().model.config.dMlp;
    for (let p = 0; p < A.length; p++) {
      expect(post.data[p * dMlp + 3]).toBe(0);
      expect(post.data[p * dMlp + 40]).toBe(0);
    }
    expect(scale(res.clean.cache.get("blocks.1.mlp.hook_post").data)).toBeGreaterThan(0);
    if (!noLogits) expect(maxAbs(res.clean.logits.data, get().tA.logits.data)).toBeLessThan(tol(scale(get().tA.logits.data)));
  }));
  add("intervene", "zeroHead(0, 1): hook_z of head 1 reads 0, the output changes", () => get().model.intervene(A, [zeroHead(0, 1)], { hooks: ["blocks.0.attn.hook_z", "blocks.1.hook_resid_pre"] }), fine((r) => {
    const res = r as Awaited<ReturnType<Model["intervene"]>>;
    const z = res.edited.cache.get("blocks.0.attn.hook_z");
    const { nHeads, dHead } = get().model.config;
    for (let p = 0; p < A.length; p++) for (let d = 0; d < dHead; d++) expect(z.data[(p * nHeads + 1) * dHead + d]).toBe(0);
    expect(maxAbs(res.edited.cache.get("blocks.1.hook_resid_pre").data, res.clean.cache.get("blocks.1.hook_resid_pre").data)).toBeGreaterThan(1e-3);
  }));
  add("intervene", "steer blocks.1.hook_resid_pre by v x 2: edited = clean + 2v", () => {
    const d = get().model.config.dModel;
    const v = Array.from({ length: d }, (_, i) => Math.sin(i + 1));
    return get().model.intervene(A, [steer("blocks.1.hook_resid_pre", v, 2)], { hooks: ["blocks.1.hook_resid_pre"] }).then((res) => ({ res, v }));
  }, fine((r) => {
    const { res, v } = r as { res: Awaited<ReturnType<Model["intervene"]>>; v: number[] };
    const e = res.edited.cache.get("blocks.1.hook_resid_pre").data;
    const c = res.clean.cache.get("blocks.1.hook_resid_pre").data;
    const d = v.length;
    let m = 0;
    for (let i = 0; i < e.length; i++) m = Math.max(m, Math.abs(e[i]! - c[i]! - 2 * v[i % d]!));
    expect(m).toBeLessThan(1e-4 * Math.max(1, scale(c)));
    if (!noLogits) expect(res.kl()[0]!).toBeGreaterThan(0);
  }));
  add("intervene", "patch blocks.0.hook_resid_pre from prompt B into A: B's output", () => get().model.intervene(A, [patchFrom("blocks.0.hook_resid_pre", get().tB)], { hooks: [`blocks.${get().model.config.nLayers - 1}.hook_resid_post` as HookName] }), fine((r) => {
    const res = r as Awaited<ReturnType<Model["intervene"]>>;
    const h = `blocks.${get().model.config.nLayers - 1}.hook_resid_post` as HookName;
    const want = get().tB.cache.get(h).data;
    expect(maxAbs(res.edited.cache.get(h).data, want)).toBeLessThan(tol(scale(want)));
    if (!noLogits) expect(maxAbs(res.edited.logits.data, get().tB.logits.data)).toBeLessThan(tol(scale(get().tB.logits.data)));
  }));

  add("attribute", "target/distractor: loss equals the trace's logit difference", () => get().model.attribute(A, { target: TARGET, distractor: DISTRACTOR, topK: 8 }), noLogitsOr(fine((r) => {
    const table = r as Awaited<ReturnType<Model["attribute"]>>;
    const want = get().tA.logitDiff(TARGET, DISTRACTOR);
    expect(Math.abs(table.loss - want)).toBeLessThan(tol(Math.abs(want)) * 10);
    expect(table.nodes.length).toBeGreaterThan(0);
    for (const n of table.nodes) expect(Number.isFinite(n.totalEffect) && Number.isFinite(n.activation)).toBe(true);
    expect(inspect(table).length).toBeGreaterThan(20);
  })));
  // traceUpstream builds on the logits graph: on a feature-extraction export it is E_NO_LOGITS (a known limit).
  add("traceUpstream", "an MLP neuron of the last layer", () => get().model.traceUpstream(A, { type: "mlp_neuron", layer: get().model.config.nLayers - 1, index: 3, position: -1 }), noLogitsOr(fine((r) => {
    const table = r as Awaited<ReturnType<Model["traceUpstream"]>>;
    // The loss is the neuron's pre-activation at the last position: the trace's hook_pre there.
    const L = get().model.config.nLayers - 1;
    const want = get().tA.cache.get(`blocks.${L}.mlp.hook_pre` as HookName).at(0, A.length - 1, 3);
    expect(table.nodes.length).toBeGreaterThan(0);
    expect(Math.abs(table.loss - want)).toBeLessThan(tol(Math.abs(want)) * 10);
  })));
  addFull("traceUpstream", "an attention head", () => get().model.traceUpstream(A, { type: "attention_head", layer: 1, head: 0, position: -1, keyPosition: 2 }), noLogitsOr(fine((r) => {
    const table = r as Awaited<ReturnType<Model["traceUpstream"]>>;
    // The loss is the attention score of head 1.0, last query, key 2: the trace's hook_attn_scores there.
    const want = get().tA.cache.get("blocks.1.attn.hook_attn_scores").at(0, 0, A.length - 1, 2);
    expect(Math.abs(table.loss - want)).toBeLessThan(tol(Math.abs(want)) * 10);
  })));
  add("directLogitAttribution", "sums to the trace's logit difference", () => get().model.directLogitAttribution(A, { target: TARGET, distractor: DISTRACTOR }), noLogitsOr(fine((r) => {
    const dla = r as Awaited<ReturnType<Model["directLogitAttribution"]>>;
    const want = get().tA.logitDiff(TARGET, DISTRACTOR);
    expect(Math.abs(dla.logitDiff - want)).toBeLessThan(tol(Math.abs(want)) * 10);
    expect(Math.abs(dla.total - want)).toBeLessThan(tol(Math.abs(want)) * 10);
  })));
  add("logitLens", "the last row is the trace's logit difference", () => get().model.logitLens(A, { target: TARGET, distractor: DISTRACTOR }), noLogitsOr(fine((r) => {
    const rows = r as Awaited<ReturnType<Model["logitLens"]>>;
    expect(rows).toHaveLength(get().model.config.nLayers + 1);
    const want = get().tA.logitDiff(TARGET, DISTRACTOR);
    expect(Math.abs(rows.at(-1)!.logitDiff - want)).toBeLessThan(tol(Math.abs(want)) * 10);
  })));

  add("generate", "greedy, 4 tokens: the first is the trace's argmax; cached", () => get().model.generate(A, { maxNewTokens: 4, stopAtEos: false }), noLogitsOr(fine((r) => {
    const g = r as Awaited<ReturnType<Model["generate"]>>;
    expect(g.newTokens).toHaveLength(4);
    expect(g.tokens.slice(0, A.length)).toEqual(A);
    expect(g.newTokens[0]).toBe(argmax(get().tA.logitsAt()));
    expect(g.cached).toBe(true);
  })));
  add("generate", "with a steering edit: cached equals the full re-run token for token", async () => {
    const m = get().model;
    const v = Array.from({ length: m.config.dModel }, (_, i) => Math.cos(i));
    const edits = [steer("blocks.1.hook_resid_pre", v, 4, { positions: [-1] }), zeroHead(0, 2)];
    const cached = await m.generate(A, { maxNewTokens: 5, stopAtEos: false, edits });
    const full = await m.generate(A, { maxNewTokens: 5, stopAtEos: false, edits, cache: false });
    return { cached, full };
  }, noLogitsOr(fine((r) => {
    const { cached, full } = r as { cached: Awaited<ReturnType<Model["generate"]>>; full: Awaited<ReturnType<Model["generate"]>> };
    expect(cached.cached).toBe(true);
    expect(full.cached).toBe(false);
    expect(cached.tokens).toEqual(full.tokens);
  })));

  add("console", "inspect(model), inspect(trace), inspect(intervention)", async () => {
    const m = get().model;
    const res = await m.intervene(A, [zeroHead(1, 0)]);
    return [inspect(m), inspect(get().tA), inspect(res), inspect(get().tA.cache.get("blocks.0.hook_resid_pre"))];
  }, fine((r) => {
    for (const s of r as string[]) {
      expect(s.length).toBeGreaterThan(10);
      expect(s.length).toBeLessThan(5000);
    }
    if (noLogits) expect((r as string[])[1]).toContain("no logits");
  }));

  addFull("SAE", "a random SAE on blocks.0.hook_mlp_out: trace with it, evaluateSae", async () => {
    const m = get().model;
    const dIn = m.config.dModel;
    const dSae = 16;
    const sae = Sae.create({ architecture: "standard", dIn, dSae, hookName: "blocks.0.hook_mlp_out" }, {
      W_enc: Float32Array.from({ length: dIn * dSae }, (_, i) => Math.sin(i) / 4),
      W_dec: Float32Array.from({ length: dIn * dSae }, (_, i) => Math.cos(i) / 4),
      b_enc: new Float32Array(dSae).fill(0.01),
      b_dec: new Float32Array(dIn),
    });
    const t = await m.trace(A, { saes: [sae] });
    const ev = noLogits ? undefined : await m.evaluateSae(sae, [A, B]);
    return { t, ev };
  }, fine((r) => {
    const { t, ev } = r as { t: Trace; ev?: Awaited<ReturnType<Model["evaluateSae"]>> };
    expect([...t.cache.keys()].some((k) => k.includes("hook_sae_acts_post"))).toBe(true);
    if (ev) expect(JSON.stringify(ev)).not.toContain("null");
  }));
  addFull("explainNeuron", "offline on a 4-text corpus", () => get().model.explainNeuron({ kind: "mlp_neuron", layer: 1, index: 7 }, "offline", { corpus: CORPUS, harvest: { contextTokens: 8, topK: 4, randomK: 4 } }), fine((r) => {
    const e = r as Awaited<ReturnType<Model["explainNeuron"]>>;
    expect(e.explainer).toBe("offline");
    expect(typeof e.explanation).toBe("string");
  }));
  return out;
}

describe.each(SUBJECTS)("export form $name", (subject) => {
  let model: Model | undefined;
  let tA: Trace;
  let tB: Trace;
  const get = () => {
    if (!model) throw new Error(`${subject.name} did not load`);
    return { model, tA, tB };
  };
  beforeAll(async () => {
    const dir = await subject.dir();
    try {
      model = await Model.load(dir);
      tA = await model.trace(A, { hooks: () => true });
      tB = await model.trace(B, { hooks: () => true });
    } catch (e) {
      // Recorded by the load case below.
      model = undefined;
      loadErrors.set(subject.name, e);
    }
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
  });
  it("Model.load", () =>
    runCase({
      entry: `${subject.name}: Model.load`,
      what: "loads with every hook",
      run: () => {
        if (loadErrors.has(subject.name)) throw loadErrors.get(subject.name);
        return model;
      },
      expect: fine(() => expect(model!.unavailableHooks.size).toBe(0)),
    }));
  for (const c of formCases(subject.name, get)) it(`${c.entry}: ${c.what}`, () => runCase(c), 60_000);
});

// ---------------------------------------------------------------------------------------------
// Broken files and contradicting configs

const BAD: Case[] = [];
function bad(what: string, run: () => unknown, e: Expectation): void {
  BAD.push({ entry: "Model.load", what, run, expect: e });
}
const loadAndTrace = async (dir: string) => {
  const m = await Model.load(dir);
  try {
    return await m.trace(A);
  } finally {
    await m.dispose();
  }
};

/** Sets an int attribute on every `op` node (adds it if missing). */
function setIntAttr(op: string, attr: string, value: number): (m: ModelProto) => ModelProto {
  return (m) => {
    for (const n of m.graph!.node.filter((x) => x.opType === op)) {
      n.attribute = n.attribute.filter((a) => a.name !== attr);
      n.attribute.push(makeAttribute(attr, value));
    }
    return m;
  };
}

bad("tiny-fused truncated to half", async () => {
  const dir = await editedAsset("tiny-fused");
  const f = join(dir, "onnx", "model.onnx");
  const size = (await readFile(f)).length;
  await truncate(f, Math.floor(size / 2));
  return loadAndTrace(dir);
}, typed("E_ONNX_DECODE", "E_ONNX_INVALID"));
bad("tiny-fused truncated to 10 bytes", async () => {
  const dir = await editedAsset("tiny-fused");
  await truncate(join(dir, "onnx", "model.onnx"), 10);
  return loadAndTrace(dir);
}, typed("E_ONNX_DECODE", "E_ONNX_INVALID"));
bad("tiny-fused, an empty model.onnx", async () => {
  const dir = await editedAsset("tiny-fused");
  await writeFile(join(dir, "onnx", "model.onnx"), new Uint8Array(0));
  return loadAndTrace(dir);
}, typed("E_ONNX_DECODE", "E_ONNX_INVALID"));
bad("tiny-fused: Attention with do_rotary=1", async () => loadAndTrace(await editedAsset("tiny-fused", setIntAttr("Attention", "do_rotary", 1))), typed("E_UNSUPPORTED_GRAPH"));
bad("tiny-fused: Attention renamed GroupQueryAttention", async () =>
  loadAndTrace(await editedAsset("tiny-fused", (m) => {
    for (const n of m.graph!.node) if (n.opType === "Attention") n.opType = "GroupQueryAttention";
    return m;
  })), typed("E_UNSUPPORTED_GRAPH"));
bad("tiny-fused: the first MatMul replaced by com.microsoft MatMulNBits", async () =>
  loadAndTrace(await editedAsset("tiny-fused", (m) => {
    const n = m.graph!.node.find((x) => x.opType === "MatMul")!;
    n.opType = "MatMulNBits";
    n.domain = "com.microsoft";
    n.attribute.push(makeAttribute("bits", 4), makeAttribute("block_size", 32), makeAttribute("K", 64), makeAttribute("N", 64));
    return m;
  })), typed("E_UNSUPPORTED_GRAPH"));
bad("tiny-fused: an unknown com.microsoft op between the blocks", async () =>
  loadAndTrace(await editedAsset("tiny-fused", (m) => {
    const g = m.graph!;
    const i = g.node.findIndex((x) => x.opType === "FastGelu");
    const n = g.node[i]!;
    const out = n.output[0]!;
    n.output[0] = `${out}_pre`;
    g.node.splice(i + 1, 0, create(NodeProtoSchema, { name: "mystery", opType: "MysteryOp", domain: "com.microsoft", input: [`${out}_pre`], output: [out] }));
    return m;
  })), typed("E_UNSUPPORTED_GRAPH", "E_ONNX_INVALID"));
bad("tiny-fused: an unknown com.microsoft op: the error names it", async () => {
  const dir = await editedAsset("tiny-fused", (m) => {
    const n = m.graph!.node.find((x) => x.opType === "FastGelu")!;
    n.opType = "MysteryGelu";
    return m;
  });
  try {
    await loadAndTrace(dir);
  } catch (e) {
    return e instanceof TdbError ? { code: e.code, value: e.value, message: e.message } : Promise.reject(e);
  }
  return "loaded";
}, fine((r) => {
  const e = r as { code: string; value: unknown; message: string };
  expect(["E_UNSUPPORTED_GRAPH", "E_ONNX_INVALID"]).toContain(e.code);
  expect(`${JSON.stringify(e.value)} ${e.message}`).toContain("MysteryGelu");
}));
bad("tiny-fused: Attention num_heads 8 against config n_head 4", async () => loadAndTrace(await editedAsset("tiny-fused", setIntAttr("Attention", "num_heads", 8))), typed("E_CONFIG_MISMATCH", "E_UNSUPPORTED_GRAPH"));
bad("tiny-fused: config n_head 8 against Attention num_heads 4", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => (c.n_head = 8))), typed("E_CONFIG_MISMATCH"));
bad("tiny-fused: config n_head 2 against Attention num_heads 4", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => (c.n_head = 2))), typed("E_CONFIG_MISMATCH"));
bad("tiny-fused: config n_layer 3 (the graph has 2)", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => (c.n_layer = 3))), typed("E_CONFIG_MISMATCH"));
bad("tiny-fused: config n_embd 32 (the graph has 64)", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => (c.n_embd = 32))), typed("E_CONFIG_MISMATCH"));
bad("tiny-fused: config vocab_size 600 (the graph has 512)", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => (c.vocab_size = 600))), typed("E_CONFIG_MISMATCH"));
bad("heads3-fused-fp16: config n_head 4 (Attention says 3; 48 = 4 x 12 divides)", async () => loadAndTrace(await editedAsset("heads3-fused-fp16", undefined, (c) => (c.n_head = 4))), typed("E_CONFIG_MISMATCH"));
bad("tiny-fused-fp16 with its ids and mask retyped int32", async () =>
  loadAndTrace(await editedAsset("tiny-fused-fp16", (m) => {
    for (const v of m.graph!.input) if ((v.name === "input_ids" || v.name === "attention_mask") && v.type?.value.case === "tensorType") v.type.value.value.elemType = 6;
    return m;
  })), fine((r) => expect(allFinite((r as Trace).logits.data)).toBe(true)));
bad("tiny-fused: a float64 past input (declared type nobody feeds)", async () =>
  loadAndTrace(await editedAsset("tiny-fused", (m) => {
    for (const v of m.graph!.input) if (v.name.startsWith("past") && v.type?.value.case === "tensorType") v.type.value.value.elemType = 11;
    return m;
  })), typed("E_UNSUPPORTED_GRAPH", "E_ONNX_INVALID", "E_RUNTIME"));
/** Fixes dim `axis` of every token input (not the past) to `v`, as an export without dynamic axes declares it. */
function fixedTokenDim(axis: number, v: number): (m: ModelProto) => ModelProto {
  return (m) => {
    for (const i of m.graph!.input) {
      if (i.name.startsWith("past") || i.type?.value.case !== "tensorType") continue;
      const d = i.type.value.value.shape?.dim[axis];
      if (d) d.value = { case: "dimValue", value: BigInt(v) };
    }
    return m;
  };
}
const withModel = async <T>(dir: string, f: (m: Model) => Promise<T>, opts?: Parameters<typeof Model.load>[1]): Promise<T> => {
  const m = await Model.load(dir, opts);
  try {
    return await f(m);
  } finally {
    await m.dispose();
  }
};
bad("tiny-fused declared with a fixed batch of 1: a trace of 2 rows", async () => withModel(await editedAsset("tiny-fused", fixedTokenDim(0, 1)), (m) => m.trace([A, B])), typed("E_BAD_INPUT"));
bad("tiny-fused declared with a fixed batch of 1: one row, variants, attribute, generate work", async () =>
  withModel(await editedAsset("tiny-fused", fixedTokenDim(0, 1)), async (m) => {
    const v = await m.intervene(A, [], { variants: [[zeroHead(0, 1)], []] });
    const table = await m.attribute(A, { target: TARGET, distractor: DISTRACTOR, topK: 3 });
    const g = await m.generate(A, { maxNewTokens: 3, stopAtEos: false });
    return { t: await m.trace(A), v, table, g };
  }), fine((r) => {
  const { t, v, table, g } = r as { t: Trace; v: Awaited<ReturnType<Model["intervene"]>>; table: Awaited<ReturnType<Model["attribute"]>>; g: Awaited<ReturnType<Model["generate"]>> };
  expect(maxAbs(v.edited.logitsAt({ batch: 1 }), t.logitsAt())).toBeLessThan(1e-4);
  expect(Math.abs(table.loss - t.logitDiff(TARGET, DISTRACTOR))).toBeLessThan(1e-3);
  expect(g.newTokens[0]).toBe(argmax(t.logitsAt()));
}));
bad("tiny-opt declared with a fixed sequence length of 8: a 5-token trace", async () => withModel(await editedAsset("tiny-opt", fixedTokenDim(1, 8)), (m) => m.trace(A.slice(0, 5))), typed("E_BAD_INPUT"));
bad("tiny-opt declared with a fixed sequence length of 8: an 8-token trace works", async () => withModel(await editedAsset("tiny-opt", fixedTokenDim(1, 8)), (m) => m.trace(A)), fine((r) => expect((r as Trace).logits.dims).toEqual([1, 8, 512])));
bad("tiny-fused, config.json without n_head", async () => loadAndTrace(await editedAsset("tiny-fused", undefined, (c) => delete c.n_head)), typed("E_BAD_INPUT", "E_CONFIG_MISMATCH"));
bad("heads3-fused: a 40-token prompt (n_ctx 32)", async () => withModel(join(ASSETS, "heads3-fused"), (m) => m.trace(new Array<number>(40).fill(3))), typed("E_PROMPT_TOO_LONG"));
bad("heads3-fused: generate 40 tokens stops at n_ctx", async () => withModel(join(ASSETS, "heads3-fused"), (m) => m.generate(A, { maxNewTokens: 40, stopAtEos: false })), fine((r) => expect((r as { tokens: number[] }).tokens.length).toBe(32)));
bad("tiny-fused-fp16: headScores and a patching sweep", async () =>
  withModel(join(ASSETS, "tiny-fused-fp16"), async (m) => ({ s: await m.headScores(), sweep: await m.patchingSweep(A, B, { hook: "resid_pre", target: TARGET, distractor: DISTRACTOR }) })), fine((r) => {
  const { s } = r as { s: Awaited<ReturnType<Model["headScores"]>> };
  expect(JSON.stringify(s.scores)).not.toContain("null");
}));
bad("heads3-fused-fp16 from memory (memoryFiles, the browser's path)", async () => {
  const dir = join(ASSETS, "heads3-fused-fp16");
  const entries: Record<string, Uint8Array> = {};
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) entries[f] = new Uint8Array(await readFile(join(dir, f)));
  const fromMemory = await withModel("mem", (m) => m.trace(A), { files: memoryFiles("mem", entries) });
  return { fromMemory, fromDisk: await withModel(dir, (m) => m.trace(A)) };
}, fine((r) => {
  const { fromMemory, fromDisk } = r as { fromMemory: Trace; fromDisk: Trace };
  expect(maxAbs(fromMemory.logits.data, fromDisk.logits.data)).toBe(0);
}));
/** A copy of asset `name` with its weights in onnx/model.onnx_data (large exports' layout), then `damage`d. */
async function externalAsset(name: string, damage?: (data: string) => Promise<void>): Promise<string> {
  const dir = await editedAsset(name);
  const file = join(dir, "onnx", "model.onnx");
  const { model: small, data } = externalizeData(decodeModel(await readFile(file)), { location: "model.onnx_data", sizeThreshold: 256 });
  await writeFile(file, encodeModel(small));
  await writeFile(join(dir, "onnx", "model.onnx_data"), data);
  await damage?.(join(dir, "onnx", "model.onnx_data"));
  return dir;
}
bad("tiny-fused-fp16 with external data: equals the one-file asset", async () => ({
  ext: await withModel(await externalAsset("tiny-fused-fp16"), (m) => m.trace(A)),
  one: await withModel(join(ASSETS, "tiny-fused-fp16"), (m) => m.trace(A)),
}), fine((r) => {
  const { ext, one } = r as { ext: Trace; one: Trace };
  expect(maxAbs(ext.logits.data, one.logits.data)).toBe(0);
}));
bad("tiny-fused with its external data file missing", async () => loadAndTrace(await externalAsset("tiny-fused", (f) => rm(f))), typed("E_MISSING_FILE"));
bad("tiny-fused with its external data file cut short", async () => loadAndTrace(await externalAsset("tiny-fused", (f) => truncate(f, 1000))), typed("E_ONNX_DECODE", "E_ONNX_INVALID", "E_MISSING_FILE"));
bad("generate on a graph without logits", async () => {
  const dir = await genDir(GEN_FORMS.find((f) => f.name === "gen-no-logits")!);
  const m = await Model.load(dir);
  try {
    return await m.generate(A, { maxNewTokens: 2 });
  } finally {
    await m.dispose();
  }
}, typed("E_NO_LOGITS"));

describe("broken exports", () => {
  for (const c of BAD) it(`${c.entry}: ${c.what}`, () => runCase(c), 60_000);
});

// ---------------------------------------------------------------------------------------------
// The CLI in --json mode (few runs: each spawns a process)

interface CliCase {
  what: string;
  args: () => Promise<string[]>;
  /** 0: a JSON result with `schema`; otherwise the error code. */
  want: { exit: 0; schema: string } | { exit: 1; codes: string[] };
}
const CLI: CliCase[] = [
  { what: "trace on tiny-fused", args: async () => ["trace", "Hello there friend", "--model", join(ASSETS, "tiny-fused"), "--json"], want: { exit: 0, schema: "tdb.trace/1" } },
  { what: "attribute on heads3-fused-fp16", args: async () => ["attribute", "Hello there friend", "--target", "e", "--distractor", "a", "--model", join(ASSETS, "heads3-fused-fp16"), "--json"], want: { exit: 0, schema: "tdb.attribute/1" } },
  { what: "ablate on heads3-fused-posids", args: async () => ["ablate", "Hello there friend", "--head", "1.2", "--neuron", "0.5@-1", "--model", join(ASSETS, "heads3-fused-posids"), "--json"], want: { exit: 0, schema: "tdb.ablate/1" } },
  { what: "trace on a BeamSearch-wrapped decoder", args: async () => ["trace", "Hello there friend", "--hooks", "all", "--model", await genDir(GEN_FORMS.find((f) => f.name === "gen-beam-search")!), "--json"], want: { exit: 0, schema: "tdb.trace/1" } },
  { what: "trace on a graph without logits", args: async () => ["trace", "Hello there friend", "--model", await genDir(GEN_FORMS.find((f) => f.name === "gen-no-logits")!), "--json"], want: { exit: 1, codes: ["E_NO_LOGITS"] } },
  {
    what: "attribute on a truncated fused file",
    args: async () => {
      const dir = await editedAsset("tiny-fused");
      await truncate(join(dir, "onnx", "model.onnx"), 5000);
      return ["attribute", "Hello", "--target", "e", "--distractor", "a", "--model", dir, "--json"];
    },
    want: { exit: 1, codes: ["E_ONNX_DECODE", "E_ONNX_INVALID"] },
  },
  { what: "ablate on a fused file with do_rotary=1", args: async () => ["ablate", "Hello", "--head", "0.1", "--model", await editedAsset("tiny-fused", setIntAttr("Attention", "do_rotary", 1)), "--json"], want: { exit: 1, codes: ["E_UNSUPPORTED_GRAPH"] } },
];

describe("CLI --json on export forms", () => {
  const runs = new Map<string, CliRun>();
  beforeAll(async () => {
    const argv = await Promise.all(CLI.map((c) => c.args()));
    // Two at a time: the machine is shared.
    for (let i = 0; i < CLI.length; i += 2) {
      const pair = await Promise.all(argv.slice(i, i + 2).map((a) => tdb(a)));
      pair.forEach((r, j) => runs.set(CLI[i + j]!.what, r));
    }
  }, 120_000);
  for (const c of CLI) {
    it(`cli: ${c.what}`, () => {
      const r = runs.get(c.what)!;
      let outcome: "typed" | "fine" | "untyped" | "wrong-code" | "crash" = "crash";
      let detail = `exit ${r.code}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`;
      let json: { schema?: string; error?: { code?: string } } | undefined;
      try {
        json = JSON.parse(r.stdout) as typeof json;
      } catch {
        json = undefined;
      }
      if (json && r.code === c.want.exit) {
        if (c.want.exit === 0 && json.schema === c.want.schema) outcome = "fine";
        else if (c.want.exit === 1 && c.want.codes.includes(json.error?.code ?? "")) outcome = "typed";
        else outcome = "wrong-code";
      } else if (r.code === 70 || json?.error?.code === "E_INTERNAL") outcome = "untyped";
      if (outcome === "typed" || outcome === "fine") detail = "";
      outcomes.push({ entry: "cli", what: c.what, outcome, detail });
      expect(outcome === "typed" || outcome === "fine", `${c.what}: ${outcome}: ${detail}`).toBe(true);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

afterAll(async () => {
  for (const tm of testModels) await tm.cleanup();
  for (const d of scratch) await rm(d, { recursive: true, force: true });
  console.log(summary("export-forms campaign"));
});

it("records an outcome for every case", () => {
  expect(outcomes.length).toBeGreaterThan(0);
});
