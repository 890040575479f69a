/**
 * Prompts and the simulator: the 0..10 normalisation, the token<TAB>activation format, the
 * explanation and simulation requests as a real chat server receives them, robust parsing (a
 * malformed reply is a failed simulation, never zeros), and the expected-value simulator over
 * logprobs, checked against hand-computed expectations.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  PROMPT_VERSION,
  explanationMessages,
  expectedValuesFromLogprobs,
  formatHeadRecord,
  formatRecord,
  normalizeActivations,
  parseExplanation,
  parseSimulation,
  parseBinaryList,
  highlight,
  showToken,
} from "../../src/explainer/prompts.js";
import { simulateTokens } from "../../src/explainer/simulate.js";
import { openAiClient } from "../../src/explainer/openai-client.js";
import type { TokenLogprob } from "../../src/explainer/llm.js";
import type { ActivationRecord, ExplainableNode } from "../../src/explainer/types.js";
import { rejected } from "../helpers/errors.js";
import { lastUser, simulationTokens, startChatServer, text, tokensOf, type ChatServer } from "../helpers/chat-server.js";

const servers: ChatServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
});
async function server(): Promise<ChatServer> {
  const s = await startChatServer();
  servers.push(s);
  return s;
}
const rec = (tokens: string[], activations: number[], keys?: number[]): ActivationRecord => ({ tokens, ids: tokens.map((_, i) => i), activations, ...(keys ? { keys } : {}) });
const neuron: ExplainableNode = { kind: "mlp_neuron", layer: 1, index: 3 };

describe("normalisation and record format", () => {
  it("maps activations to min(10, floor(10 relu(a) / max))", () => {
    // hand values: 10*0.5/4 = 1.25 -> 1; 10*3.99/4 = 9.975 -> 9; 4 -> 10; 8 -> 20 -> 10; -1 -> 0
    expect(normalizeActivations([0, 0.5, 3.99, 4, 8, -1, 0.39], 4)).toEqual([0, 1, 9, 10, 10, 0, 0]);
    expect(normalizeActivations([1, 2], 0)).toEqual([0, 0]);
    expect(normalizeActivations([1, NaN], 1)).toEqual([10, 0]);
  });

  it("writes token<TAB>activation lines between <start> and <end>, with tabs and newlines made visible", () => {
    expect(formatRecord(rec([" See", " you", " Monday"], [0, 0.5, 4]), 4)).toBe("<start>\n See\t0\n you\t1\n Monday\t10\n<end>");
    expect(showToken("a\tb\nc\\")).toBe("a\\tb\\nc\\\\");
  });

  it("attention heads: the text, then query<TAB>key<TAB>strength pairs, strongest first, weak ones left out", () => {
    const r = rec([" Anna", " met", " Tom", ",", " Anna", " smiled"], [0, 0.1, 0.2, 0, 2, 1], [-1, 0, 1, 2, 0, 4]);
    // levels with max 2: [0, 0, 1, 0, 10, 5]
    expect(formatHeadRecord(r, 2)).toBe('<start>\ntext: " Anna met Tom, Anna smiled"\n Anna\t Anna\t10\n smiled\t Anna\t5\n Tom\t met\t1\n<end>');
  });
});

describe("explanation prompt", () => {
  it("gives worked examples, then the node's excerpts, ending with 'this neuron activates for'", () => {
    const records = [rec([" See", " you", " Monday"], [0, 0.5, 4]), rec([" on", " Friday"], [0, 2])];
    const m = explanationMessages(neuron, records, 4);
    expect(m[0]!.role).toBe("system");
    expect(m.filter((x) => x.role === "assistant").length).toBeGreaterThanOrEqual(2);
    const last = m[m.length - 1]!;
    expect(last.role).toBe("user");
    expect(last.content).toContain("<start>\n See\t0\n you\t1\n Monday\t10\n<end>\n<start>\n on\t0\n Friday\t5\n<end>");
    expect(last.content.endsWith("Explanation of neuron 3 of the layer-1 MLP behavior: this neuron activates for")).toBe(true);
    const latent = explanationMessages({ kind: "sae_latent", hook: "blocks.0.hook_mlp_out", index: 9 }, records, 4);
    expect(latent[latent.length - 1]!.content.endsWith("this latent activates for")).toBe(true);
    const head = explanationMessages({ kind: "attention_head", layer: 2, head: 5 }, [rec([" a", " a"], [0, 1], [-1, 0])], 1);
    expect(head[head.length - 1]!.content).toContain(" a\t a\t10");
    expect(head[head.length - 1]!.content.endsWith("attention head 2.5 behavior: from each token, this head attends to")).toBe(true);
    expect(PROMPT_VERSION).toMatch(/^tdb-llm-/);
  });

  it("parses the explanation: first line, repeated lead and quotes and final period removed; empty is undefined", () => {
    expect(parseExplanation(" names of weekdays.\nmore text")).toBe("names of weekdays");
    expect(parseExplanation('This neuron activates for "closing brackets".', neuron)).toBe("closing brackets");
    expect(parseExplanation("Explanation of neuron 3 behavior: this neuron activates for years")).toBe("years");
    // A quoted token at the end keeps its quotes; quotes around the whole explanation go.
    expect(parseExplanation(" the token \" t\".")).toBe("the token \" t\"");
    expect(parseExplanation("\"the word \" of\"\"")).toBe("\"the word \" of\"\"");
    expect(parseExplanation("  \n ")).toBeUndefined();
    expect(parseExplanation(".")).toBeUndefined();
  });
});

describe("simulation parsing", () => {
  it("accepts {activations: [...]}, a bare array, fenced JSON and JSON inside prose; clamps to 0..10", () => {
    expect(parseSimulation('{"activations": [0, 3, 10]}', 3)).toEqual({ ok: true, value: [0, 3, 10] });
    expect(parseSimulation("[1, 2]", 2)).toEqual({ ok: true, value: [1, 2] });
    expect(parseSimulation('Sure:\n```json\n{"activations": [4, "5"]}\n```', 2)).toEqual({ ok: true, value: [4, 5] });
    expect(parseSimulation('Here: {"activations": [12, -3]} done', 2)).toEqual({ ok: true, value: [10, 0] });
  });

  it("fails (never zeros) on prose, truncated JSON, wrong length, non-numbers", () => {
    for (const [reply, n] of [
      ["I think the neuron is quiet here.", 3],
      ['{"activations": [0, 1,', 3],
      ['{"activations": [0, 1]}', 3],
      ['{"activations": [0, "high", 2]}', 3],
      ['{"acts": 5}', 1],
      ["[null]", 1],
    ] as const) {
      const p = parseSimulation(reply, n);
      expect(p.ok, reply).toBe(false);
      expect("value" in p).toBe(false);
    }
  });

  it("parses the detection/fuzzing answers strictly", () => {
    expect(parseBinaryList("[1, 0, true, \"0\"]", 4)).toEqual({ ok: true, value: [true, false, true, false] });
    expect(parseBinaryList('{"answers": [1, 1]}', 2)).toEqual({ ok: true, value: [true, true] });
    expect(parseBinaryList("[1, 2]", 2).ok).toBe(false);
    expect(parseBinaryList("[1]", 2).ok).toBe(false);
    expect(parseBinaryList("yes, no", 2).ok).toBe(false);
  });

  it("highlights marked tokens inside their leading space", () => {
    expect(highlight([" on", " Monday", "."], new Set([1]))).toBe(" on [[Monday]].");
  });
});

describe("expected-value simulator", () => {
  const reply = '{"activations": [0, 7, 10]}';
  const pieces = ['{"', "activations", '":', " [", "0", ",", " 7", ",", " 10", "]}"];
  it("takes sum p v / sum p over the 0..10 alternatives of each number's token", () => {
    const lp = tokensOf(pieces, { 4: { "0": 0.9, "1": 0.1 }, 6: { " 7": 0.5, " 8": 0.25, " 6": 0.2, " seven": 0.05 }, 8: { " 10": 0.8, " 9": 0.2 } });
    const toLogprobs = (xs: typeof lp): TokenLogprob[] => xs.map((t) => ({ token: t.token, logprob: Math.log(t.top![t.token] ?? 0.5), top: Object.entries(t.top!).map(([token, p]) => ({ token, logprob: Math.log(p) })) }));
    const ev = expectedValuesFromLogprobs(reply, toLogprobs(lp), 3);
    expect(ev.ok).toBe(true);
    if (!ev.ok) return;
    // by hand: 0.1*1 = 0.1; (0.5*7 + 0.25*8 + 0.2*6) / 0.95 = 6.7/0.95; 0.8*10 + 0.2*9 = 9.8
    expect(ev.value.values[0]).toBeCloseTo(0.1, 12);
    expect(ev.value.values[1]).toBeCloseTo(6.7 / 0.95, 12);
    expect(ev.value.values[2]).toBeCloseTo(9.8, 12);
    expect(ev.value.fromProbabilities).toBe(3);
  });

  it("keeps the sampled value when a number spans two tokens; handles a number glued to punctuation", () => {
    const r = "[3, 10]";
    const lp: TokenLogprob[] = [
      { token: "[3", logprob: Math.log(0.6), top: [{ token: "[3", logprob: Math.log(0.6) }, { token: "[5", logprob: Math.log(0.4) }] },
      { token: ",", logprob: 0, top: [] },
      { token: " 1", logprob: Math.log(0.7), top: [{ token: " 1", logprob: Math.log(0.7) }, { token: " 2", logprob: Math.log(0.3) }] },
      { token: "0]", logprob: 0, top: [] },
    ];
    const ev = expectedValuesFromLogprobs(r, lp, 2);
    expect(ev.ok && ev.value.values).toEqual([0.6 * 3 + 0.4 * 5, 10]);
    expect(ev.ok && [ev.value.fromProbabilities, ev.value.fromSamples]).toEqual([1, 1]);
    expect(expectedValuesFromLogprobs(r, lp.slice(1), 2).ok).toBe(false); // tokens do not spell the reply
  });
});

describe("simulateTokens against a chat server", () => {
  const tokens = [" We", " met", " on", " Monday"];
  it("json mode: sends the explanation and the tokens, reads the integers", async () => {
    const s = await server();
    s.push(text('{"activations": [0, 0, 1, 10]}'));
    const llm = openAiClient({ baseURL: s.baseURL, model: "sim-model", env: {} });
    const sim = await simulateTokens("names of weekdays", tokens, llm, { mode: "json", node: neuron });
    expect(sim).toEqual({ ok: true, values: [0, 0, 1, 10], method: "json", requests: 1 });
    const req = s.requests[0]!;
    expect(req.body!.model).toBe("sim-model");
    expect(req.body!.logprobs).toBeUndefined();
    expect(lastUser(req)).toContain("Explanation: this neuron activates for names of weekdays");
    expect(simulationTokens(req)).toEqual(tokens);
    expect(lastUser(req)).toContain("exactly 4 integers");
  });

  it("a malformed reply is retried once, then reported as a failed simulation with the reply (never zeros)", async () => {
    const s = await server();
    s.push(text("The neuron fires on Monday."), text('{"activations": [0, 0, 0, 9]}'));
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {} });
    expect(await simulateTokens("weekdays", tokens, llm, { mode: "json" })).toEqual({ ok: true, values: [0, 0, 0, 9], method: "json", requests: 2 });
    s.push(text("no idea"), text('{"activations": [0, 0]}'));
    const bad = await simulateTokens("weekdays", tokens, llm, { mode: "json" });
    expect(bad.ok).toBe(false);
    expect(bad).toMatchObject({ ok: false, requests: 2, reply: '{"activations": [0, 0]}' });
    expect(!bad.ok && bad.reason).toMatch(/expected 4 activations, got 2/);
    expect("values" in bad).toBe(false);
    expect(s.requests).toHaveLength(4);
  });

  it("auto mode asks for logprobs and uses the expected value when they come, the integers when not", async () => {
    const s = await server();
    const reply = '{"activations": [0, 0, 1, 10]}';
    const pieces = ['{"', "activations", '":', " [", "0", ",", " 0", ",", " 1", ",", " 10", "]}"];
    s.push(text(reply, tokensOf(pieces, { 8: { " 1": 0.5, " 0": 0.5 }, 10: { " 10": 0.75, " 6": 0.25 } })));
    s.push(text(reply));
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {} });
    const ev = await simulateTokens("weekdays", tokens, llm, { topLogprobs: 5 });
    expect(s.requests[0]!.body!.top_logprobs).toBe(5);
    expect(ev.ok && ev.method).toBe("expected-value");
    expect(ev.ok && ev.values).toEqual([0, 0, 0.5, expect.closeTo(0.75 * 10 + 0.25 * 6, 12)]);
    const plain = await simulateTokens("weekdays", tokens, llm);
    expect(plain).toEqual({ ok: true, values: [0, 0, 1, 10], method: "json", requests: 1 });
    // auto mode with logprobs that do not spell the reply falls back to the integers
    s.push(text(reply, tokensOf(["{", "oops"])));
    expect(await simulateTokens("weekdays", tokens, llm)).toEqual({ ok: true, values: [0, 0, 1, 10], method: "json", requests: 1 });
    // expected-value mode without logprobs fails instead of falling back
    s.push(text(reply));
    const strict = await simulateTokens("weekdays", tokens, llm, { mode: "expected-value" });
    expect(strict.ok).toBe(false);
  });

  it("transport errors reject with the client's typed error; bad options are typed errors", async () => {
    const s = await server();
    s.fallback = { kind: "status", status: 401 };
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {} });
    expect((await rejected(simulateTokens("x", tokens, llm))).code).toBe("E_LLM_AUTH");
    expect((await rejected(simulateTokens("x", tokens, llm, { mode: "bogus" as never }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(simulateTokens("x", tokens, llm, { topLogprobs: 0 }))).code).toBe("E_BAD_OPTION");
  });
});
