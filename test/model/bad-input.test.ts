/**
 * Acceptance: bad input gets a TdbError with a stable code, the offending value, and a message
 * naming what is allowed, never a crash inside onnxruntime.
 */
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError, type TdbErrorCode } from "../../src/base/errors.js";
import type { HookName } from "../../src/hooks/names.js";
import { Model } from "../../src/model/model.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";

async function rejects(p: Promise<unknown> | (() => unknown), code: TdbErrorCode, mentions: RegExp): Promise<TdbError> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(TdbError);
  const te = err as TdbError;
  expect(te.code).toBe(code);
  expect(te.message).toMatch(mentions);
  return te;
}

let tm: TestModel;
let model: Model;
const copies: string[] = [];

/** A copy of the fixture directory to damage. */
async function copy(): Promise<string> {
  const dir = `${tm.dir}-copy${copies.length}`;
  copies.push(dir);
  await cp(tm.dir, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  tm = await makeTestModel();
  model = await Model.load(tm.dir);
});
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
  for (const d of copies) await rm(d, { recursive: true, force: true });
});

describe("prompts", () => {
  it("empty prompt", async () => {
    const e = await rejects(model.trace(""), "E_EMPTY_PROMPT", /empty/);
    expect(e.value).toBe("");
    await rejects(model.trace([]), "E_EMPTY_PROMPT", /empty/);
    await rejects(model.trace([[1, 2], []]), "E_EMPTY_PROMPT", /prompt 1/);
  });

  it("prompt longer than n_ctx", async () => {
    const n = tm.arch.n_positions;
    const e = await rejects(model.trace(new Array<number>(n + 1).fill(5)), "E_PROMPT_TOO_LONG", new RegExp(`${n + 1} tokens.*context is ${n}`));
    expect(e.allowed).toEqual([1, n]);
    await expect(model.trace(new Array<number>(n).fill(5), { hooks: [] })).resolves.toBeDefined();
  });

  it("token ids outside the vocabulary", async () => {
    const e = await rejects(model.trace([1, tm.arch.vocab_size]), "E_BAD_INPUT", /outside the vocabulary \[0, 511\]/);
    expect(e.value).toBe(tm.arch.vocab_size);
    await rejects(model.trace([1, 2.5]), "E_BAD_INPUT", /outside the vocabulary/);
  });

  it("multi-token strings where one token is needed", async () => {
    const e = await rejects(() => model.toSingleToken(" internationalization"), "E_NOT_SINGLE_TOKEN", /tokens/);
    expect(e.value).toBe(" internationalization");
    const t = await model.trace("Hello world", { hooks: [] });
    await rejects(() => t.logitDiff(" internationalization", " a"), "E_NOT_SINGLE_TOKEN", /exactly one token|tokens/);
  });

  it("positions out of range", async () => {
    const e = await rejects(model.trace([1, 2, 3], { positions: [3] }), "E_POSITION_RANGE", /\[-3, 2\]/);
    expect(e.allowed).toEqual([-3, 2]);
  });
});

describe("hook names", () => {
  it("unknown hook name lists the allowed names", async () => {
    const e = await rejects(model.trace("hi", { hooks: ["blocks.0.attn.hook_patern" as HookName] }), "E_UNKNOWN_HOOK", /attn\.hook_pattern/);
    expect(e.value).toBe("blocks.0.attn.hook_patern");
    expect(e.allowed).toContain("blocks.{0..1}.attn.hook_pattern");
    await rejects(model.trace("hi", { hooks: ["hook_embedding" as HookName] }), "E_UNKNOWN_HOOK", /hook_embed/);
  });

  it("out-of-range layer names the model's layers", async () => {
    const e = await rejects(model.trace("hi", { hooks: ["blocks.2.mlp.hook_post"] }), "E_LAYER_RANGE", /layers 0\.\.1/);
    expect(e.allowed).toEqual([0, 1]);
    const t = await model.trace("hi", { hooks: ["blocks.1.mlp.hook_post"] });
    await rejects(() => t.cache.get("post", 2), "E_LAYER_RANGE", /\[-2, 1\]|0\.\.1/);
    await rejects(() => t.cache.get("post", 0), "E_NOT_CACHED", /blocks\.1\.mlp\.hook_post/);
    expect(t.cache.get("post", -1).name).toBe("blocks.1.mlp.hook_post");
  });
});

describe("model files", () => {
  it("non-GPT-2 model_type", async () => {
    const dir = await copy();
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, model_type: "llama" }));
    const e = await rejects(Model.load(dir), "E_UNSUPPORTED_GRAPH", /llama.*supported: gpt2/);
    expect(e.allowed).toContain("gpt2");
  });

  it("GPT-2 config over a graph that is not GPT-2", async () => {
    const dir = await copy();
    const b = new GraphBuilder({ name: "not-gpt2" });
    const ids = b.input("input_ids", "int64", ["batch", "seq"]);
    const mask = b.input("attention_mask", "int64", ["batch", "seq"]);
    const table = b.initializer("emb", new Float32Array(tm.arch.vocab_size * 4), [tm.arch.vocab_size, 4]);
    const w = b.initializer("w", new Float32Array(4 * tm.arch.vocab_size), [4, tm.arch.vocab_size]);
    const e1 = b.op("Gather", [table, ids], { name: "/emb/Gather" });
    const logits = b.op("MatMul", [e1, w], { name: "/head/MatMul", output: "logits" });
    b.op("Identity", [mask], { name: "/mask/Identity", output: "mask_out" });
    b.output(logits, "float32", ["batch", "seq", tm.arch.vocab_size]);
    b.output("mask_out", "int64", ["batch", "seq"]);
    await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(b.build()));
    const e = await rejects(Model.load(dir), "E_UNSUPPORTED_GRAPH", /no hook points.*GPT-2.*still available: "hook_embed"/);
    expect(e.allowed).toEqual(["hook_embed"]);
  });

  it("corrupt ONNX bytes", async () => {
    const dir = await copy();
    const bytes = await readFile(join(dir, "onnx", "model.onnx"));
    await writeFile(join(dir, "onnx", "model.onnx"), bytes.subarray(0, Math.floor(bytes.length / 3)));
    await rejects(Model.load(dir), "E_ONNX_DECODE", /ONNX/);
    const junk = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    await writeFile(join(dir, "onnx", "model.onnx"), junk);
    await rejects(Model.load(dir), "E_ONNX_DECODE", /ONNX|\.onnx/);
  });

  it("missing tokenizer file", async () => {
    const dir = await copy();
    await rm(join(dir, "tokenizer.json"));
    const e = await rejects(Model.load(dir), "E_MISSING_FILE", /tokenizer\.json/);
    expect(e.allowed).toContain("tokenizer.json");
  });

  it("missing ONNX file and missing directory", async () => {
    const dir = await copy();
    await rm(join(dir, "onnx", "model.onnx"));
    const e = await rejects(Model.load(dir), "E_MISSING_FILE", /onnx\/model\.onnx/);
    expect(e.allowed).toContain("onnx/model.onnx");
    await rejects(Model.load(join(dir, "does-not-exist")), "E_MISSING_FILE", /neither an existing directory nor a hub id/);
  });
});
