/**
 * Broken model files get typed errors, never a raw `SyntaxError`/`TypeError` or a config with
 * impossible dims: `config.json` missing, malformed, `null`, empty, not an object, or
 * inconsistent (`n_head` not dividing `n_embd`, sizes <= 0 or fractional, eps <= 0), and
 * tokenizer files that are not JSON objects.
 */
import { describe, expect, it } from "vitest";
import type { TdbErrorCode } from "../../src/base/errors.js";
import { memoryFiles } from "../../src/io/files.js";
import { Model } from "../../src/model/model.js";
import { parseConfig, parseConfigText } from "../../src/runtime/config.js";
import { loadTokenizer } from "../../src/runtime/tokenizer.js";
import { buildGpt2Tokenizer } from "../../src/synthetic/tokenizer.js";
import { rejected, thrown } from "../helpers/errors.js";



const GOOD = { model_type: "gpt2", n_layer: 2, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 512, layer_norm_epsilon: 1e-5 };
const ORIGIN = "/models/tiny";

describe("parseConfigText", () => {
  it("parses a good config.json", () => {
    const c = parseConfigText(JSON.stringify(GOOD), ORIGIN);
    expect(c).toMatchObject({ nLayers: 2, nHeads: 4, dModel: 64, dHead: 16, dMlp: 256, nCtx: 64, dVocab: 512, lnEps: 1e-5, modelType: "gpt2" });
  });

  it("missing: E_MISSING_FILE", () => {
    const e = thrown(() => parseConfigText(null, ORIGIN));
    expect(e.code).toBe("E_MISSING_FILE");
    expect(e.message).toContain(ORIGIN);
  });

  it.each([
    ["malformed JSON", "{ \"n_layer\": 2, "],
    ["empty", ""],
    ["whitespace", "  \n"],
    ["null", "null"],
    ["an array", "[1, 2]"],
    ["a number", "42"],
    ["a string", "\"gpt2\""],
  ])("%s: E_BAD_INPUT naming the file", (_, text) => {
    const e = thrown(() => parseConfigText(text, ORIGIN));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.message).toContain(`${ORIGIN}/config.json`);
  });
});

describe("parseConfig: inconsistent values", () => {
  const bad: [string, Record<string, unknown>, string, unknown][] = [
    ["n_head not dividing n_embd", { n_head: 5 }, "n_head", 5],
    ["n_layer 0", { n_layer: 0 }, "n_layer", 0],
    ["negative n_embd", { n_embd: -64 }, "n_embd", -64],
    ["fractional n_head", { n_head: 2.5 }, "n_head", 2.5],
    ["n_positions 0", { n_positions: 0 }, "n_positions", 0],
    ["vocab_size 0", { vocab_size: 0 }, "vocab_size", 0],
    ["n_inner 0", { n_inner: 0 }, "n_inner", 0],
    ["fractional n_inner", { n_inner: 100.5 }, "n_inner", 100.5],
    ["eps 0", { layer_norm_epsilon: 0 }, "layer_norm_epsilon", 0],
    ["negative eps", { layer_norm_epsilon: -1e-5 }, "layer_norm_epsilon", -1e-5],
    ["n_layer as a string", { n_layer: "2" }, "n_layer", undefined],
  ];
  it.each(bad)("%s: E_BAD_INPUT with the value", (_, patch, key, value) => {
    const e = thrown(() => parseConfig({ ...GOOD, ...patch }));
    const code: TdbErrorCode = "E_BAD_INPUT";
    expect(e.code).toBe(code);
    expect(e.message).toContain(key);
    if (value !== undefined) expect(e.value).toBe(value);
  });

  it("null or a non-object: E_BAD_INPUT, not a TypeError", () => {
    for (const raw of [null, undefined, 42, "x", [1]]) expect(thrown(() => parseConfig(raw as unknown as Record<string, unknown>)).code).toBe("E_BAD_INPUT");
  });

  it("n_inner null means 4 * n_embd (as Hugging Face writes it)", () => {
    expect(parseConfig({ ...GOOD, n_inner: null }).dMlp).toBe(256);
  });
});

describe("tokenizer files", () => {
  const tok = buildGpt2Tokenizer({ vocabSize: 300 });
  const enc = (s: string) => new TextEncoder().encode(s);
  const files = (tokenizer: string, config: string) => memoryFiles("mem", { "tokenizer.json": enc(tokenizer), "tokenizer_config.json": enc(config) });
  const goodTok = JSON.stringify(tok.tokenizer);
  const goodCfg = JSON.stringify(tok.tokenizerConfig);

  it("good files load", async () => {
    const t = await loadTokenizer(files(goodTok, goodCfg));
    expect(t.encode("ab", { add_special_tokens: false }).length).toBeGreaterThan(0);
  });

  it.each([
    ["tokenizer.json not JSON", "{ not json", goodCfg, "tokenizer.json"],
    ["tokenizer.json empty", "", goodCfg, "tokenizer.json"],
    ["tokenizer.json null", "null", goodCfg, "tokenizer.json"],
    ["tokenizer.json an array", "[]", goodCfg, "tokenizer.json"],
    ["tokenizer_config.json null", goodTok, "null", "tokenizer_config.json"],
    ["tokenizer_config.json a number", goodTok, "7", "tokenizer_config.json"],
  ])("%s: E_BAD_INPUT naming the file", async (_, t, c, name) => {
    const e = await rejected(loadTokenizer(files(t, c)));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.message).toContain(name);
  });

  it("tokenizer.json an object transformers.js cannot build from: E_BAD_INPUT", async () => {
    const e = await rejected(loadTokenizer(files("{}", goodCfg)));
    expect(e.code).toBe("E_BAD_INPUT");
  });
});

describe("Model.load reads config.json through parseConfigText", () => {
  it.each([
    ["malformed", "{ n_layer: 2", "E_BAD_INPUT"],
    ["null", "null", "E_BAD_INPUT"],
    ["empty", "", "E_BAD_INPUT"],
    ["inconsistent", JSON.stringify({ model_type: "gpt2", n_layer: 2, n_head: 3, n_embd: 64, n_positions: 32, vocab_size: 300 }), "E_BAD_INPUT"],
  ] as const)("%s config.json: %s", async (_what, text, code) => {
    const files = memoryFiles("mem://broken", { "config.json": new TextEncoder().encode(text) });
    const err = await rejected(Model.load("mem://broken", { files }));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(/config\.json|n_head|n_embd/);
  });
});
