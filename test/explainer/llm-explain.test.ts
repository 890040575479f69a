/**
 * explainWithLlm end to end against a scripted chat server: which excerpts are explained and
 * which simulated (top split by peak, random 1:1), the requests' format, scores of a perfect
 * scripted simulator (closed form: 1), malformed simulation replies listed as failures and left
 * out (scoring them as zeros would lower the score below 1), detection and fuzzing, abort and
 * auth errors, and cache keys without credentials.
 */
import { afterEach, describe, expect, it } from "vitest";
import { cacheKey, explainWithLlm, fnv1a64 } from "../../src/explainer/explain-llm.js";
import { openAiClient } from "../../src/explainer/openai-client.js";
import { PROMPT_VERSION } from "../../src/explainer/prompts.js";
import type { ActivationRecord, NodeRecords } from "../../src/explainer/types.js";
import { rejected } from "../helpers/errors.js";
import { lastUser, simulationTokens, startChatServer, text, type ChatServer, type Reply, type ReceivedRequest } from "../helpers/chat-server.js";

const KEY = "sk-explain-TEST-0123456789";
const DAYS = [" Monday", " Tuesday", " Wednesday", " Thursday", " Friday", " Saturday", " Sunday"];
const rec = (tokens: string[], activations: number[]): ActivationRecord => ({ tokens, ids: tokens.map((_, i) => i), activations });
/** Top excerpt i: a weekday at position 2 firing with activation 4 - 0.1 i (distinct peaks, known order). */
const topRec = (i: number): ActivationRecord => rec([" We", ` met${i}`, DAYS[i % 7]!, " at", " noon"], [0, 0, 4 - 0.1 * i, 0, 0]);
const randRec = (i: number): ActivationRecord => rec([" The", ` river${i}`, " ran", " dry"], [0, 0, 0, 0]);

/** Records whose top list is stored out of peak order, to check the split sorts it. */
function records(nTop = 8, nRandom = 8): NodeRecords {
  const top = Array.from({ length: nTop }, (_, i) => topRec(i)).reverse();
  return { node: { kind: "mlp_neuron", layer: 1, index: 3 }, top, random: Array.from({ length: nRandom }, (_, i) => randRec(i)), stats: { count: 1000, max: 4, mean: 0.1, density: 0.05, quantiles: [0, 0, 1, 3] } };
}

const isExplain = (req: ReceivedRequest): boolean => lastUser(req).includes("behavior: this neuron activates for");
/** A scripted LLM: explains "days of the week", simulates 10 on weekdays and 0 elsewhere. */
function scripted(overrides: (req: ReceivedRequest) => Reply | undefined = () => undefined): (req: ReceivedRequest) => Reply {
  return (req) => {
    const o = overrides(req);
    if (o) return o;
    if (isExplain(req)) return text(" days of the week.");
    const toks = simulationTokens(req);
    if (toks) return text(JSON.stringify({ activations: toks.map((t) => (DAYS.includes(t) ? 10 : 0)) }));
    const ex = [...lastUser(req).matchAll(/^Excerpt \d+: (".*")$/gm)].map((m) => JSON.parse(m[1]!) as string);
    if (ex.length > 0) return text(JSON.stringify(ex.map((e) => (DAYS.some((d) => e.includes(d.trim())) ? 1 : 0))));
    return { kind: "status", status: 400 };
  };
}

const servers: ChatServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
});
async function server(script: (req: ReceivedRequest) => Reply): Promise<ChatServer> {
  const s = await startChatServer();
  s.fallback = script;
  servers.push(s);
  return s;
}

describe("explainWithLlm", () => {
  it("explains the odd-ranked top excerpts, simulates the even-ranked ones plus as many random ones, and scores 1 for a perfect simulator", async () => {
    const s = await server(scripted());
    const llm = openAiClient({ baseURL: s.baseURL, model: "explainer-7b", apiKey: KEY, env: {}, concurrency: 3 });
    const r = await explainWithLlm(records(8, 8), llm, { explainRecords: 3, validationRecords: 3, simulation: "json" });
    expect(r.explanation).toBe("days of the week");
    // peaks 4 - 0.1 i: ranks 0..7 are i = 0..7; explanation = i 0, 2, 4; validation = i 1, 3, 5
    expect(r.records.explanation.map((x) => x.tokens[1])).toEqual([" met0", " met2", " met4"]);
    expect(r.records.validation.top.map((x) => x.tokens[1])).toEqual([" met1", " met3", " met5"]);
    expect(r.records.validation.random.map((x) => x.tokens[1])).toEqual([" river0", " river1", " river2"]);
    expect(r.simulations.map((x) => x.set)).toEqual(["top", "top", "top", "random", "random", "random"]);
    expect(r.simulations[0]!.simulated).toEqual([0, 0, 10, 0, 0]);
    expect(r.maxActivation).toBe(4);
    // Peaks differ (3.9, 3.7, 3.5) while the simulation says 10 for each, so the score is just under 1:
    // compute the pooled correlation independently, from the two series.
    const a = r.simulations.flatMap((x) => x.record.activations);
    const sim = r.simulations.flatMap((x) => x.simulated!);
    const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / v.length;
    const [ma, ms] = [mean(a), mean(sim)];
    const cov = a.reduce((p, x, i) => p + (x - ma) * (sim[i]! - ms), 0);
    const r0 = cov / Math.sqrt(a.reduce((p, x) => p + (x - ma) ** 2, 0) * sim.reduce((p, x) => p + (x - ms) ** 2, 0));
    expect(r.scores.correlation).toBeCloseTo(r0, 12);
    expect(r.scores.correlation!).toBeGreaterThan(0.99);
    expect(r.failures).toEqual([]);
    expect(r.promptVersion).toBe(PROMPT_VERSION);
    expect(r.llm).toEqual({ provider: "openai-compatible", baseURL: s.baseURL, model: "explainer-7b" });

    // 1 explanation + 6 simulations, all with the model name and the key
    expect(s.requests).toHaveLength(7);
    for (const q of s.requests) {
      expect(q.body!.model).toBe("explainer-7b");
      expect(q.headers.authorization).toBe(`Bearer ${KEY}`);
    }
    const ex = s.requests.find(isExplain)!;
    // excerpt i = 0: " Monday" at 4.0 -> 10; i = 2: " Wednesday" at 3.8 -> floor(9.5) = 9; i = 4: 3.6 -> 9
    expect(lastUser(ex)).toContain("<start>\n We\t0\n met0\t0\n Monday\t10\n at\t0\n noon\t0\n<end>");
    expect(lastUser(ex)).toContain(" Wednesday\t9\n");
    expect(lastUser(ex)).not.toContain("met1");
    expect(lastUser(ex).endsWith("Explanation of neuron 3 of the layer-1 MLP behavior: this neuron activates for")).toBe(true);
    expect(s.requests.filter((q) => simulationTokens(q)).map((q) => simulationTokens(q)![1]).sort()).toEqual([" met1", " met3", " met5", " river0", " river1", " river2"]);
  });

  it("an exactly proportional simulator scores correlation 1 and R^2 1", async () => {
    const s = await server(scripted());
    const recs = records(6, 6);
    recs.top = recs.top.map((x) => ({ ...x, activations: x.activations.map((v) => (v > 0 ? 4 : 0)) }));
    const r = await explainWithLlm(recs, openAiClient({ baseURL: s.baseURL, model: "m", env: {} }), { simulation: "json" });
    expect(r.scores.correlation).toBeCloseTo(1, 12);
    expect(r.scores.r2).toBeCloseTo(1, 12);
    expect(r.simulationScore).toMatchObject({ records: 6, n: 3 * 5 + 3 * 4 });
  });

  it("malformed simulation replies are failures, left out of the scores (never zeros); a given explanation is not re-asked", async () => {
    // All peaks tie at 4, so the stored order (i = 5..0) ranks them: validation = i 4, 2, 0.
    const broken = new Set([" met2", " river1"]);
    const s = await server(
      scripted((req) => {
        const t = simulationTokens(req);
        if (t && broken.has(t[1]!)) return text(t[1] === " met2" ? "It fires on the weekday." : '{"activations": [0, 0]}');
        return undefined;
      }),
    );
    const recs = records(6, 6);
    recs.top = recs.top.map((x) => ({ ...x, activations: x.activations.map((v) => (v > 0 ? 4 : 0)) }));
    const r = await explainWithLlm(recs, openAiClient({ baseURL: s.baseURL, model: "m", env: {} }), { explanation: "days of the week", simulation: "json" });
    expect(s.requests.some(isExplain)).toBe(false);
    expect(r.explanation).toBe("days of the week");
    expect(r.failures.map((f) => [f.stage, f.record])).toEqual([
      ["simulation", 1],
      ["simulation", 4],
    ]);
    expect(r.failures[1]!.reason).toMatch(/expected 4 activations, got 2/);
    expect(r.simulations[1]!.simulated).toBeNull();
    expect(r.simulations[4]!.simulated).toBeNull();
    expect(r.simulations.map((x) => x.record.tokens[1])).toEqual([" met4", " met2", " met0", " river0", " river1", " river2"]);
    // Scored on the 4 good excerpts only: still exactly 1. Zeros for met2 (a firing excerpt) would give < 1.
    expect(r.scores.correlation).toBeCloseTo(1, 12);
    expect(r.simulationScore!.records).toBe(4);
    // every broken excerpt was asked twice (one retry), the others once
    expect(s.requests).toHaveLength(4 + 2 * 2);
  });

  it("transient server errors after the client's retries fail one excerpt; all failing gives null scores", async () => {
    const s = await server(scripted((req) => (simulationTokens(req)?.[1] === " met1" ? { kind: "status", status: 503 } : undefined)));
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, maxRetries: 1, sleep: async () => {} });
    const r = await explainWithLlm(records(4, 4), llm, { simulation: "json" });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatchObject({ stage: "simulation", record: 0, code: "E_LLM_SERVER" });
    expect(r.scores.correlation).not.toBeNull();

    const dead = await server(scripted((req) => (simulationTokens(req) ? text("nope") : undefined)));
    const r2 = await explainWithLlm(records(4, 4), openAiClient({ baseURL: dead.baseURL, model: "m", env: {} }), { simulation: "json" });
    expect(r2.scores).toEqual({ correlation: null, r2: null });
    expect(r2.simulationScore).toBeUndefined();
    expect(r2.failures).toHaveLength(4);
  });

  it("runs detection and fuzzing on request, on the validation excerpts", async () => {
    const s = await server(scripted());
    const r = await explainWithLlm(records(8, 8), openAiClient({ baseURL: s.baseURL, model: "m", env: {} }), { scorers: ["detection", "fuzzing"], simulation: "json" });
    expect(r.scores.detection).toMatchObject({ balancedAccuracy: 1, positives: 4, negatives: 4 });
    expect(r.scores.fuzzing!.positives).toBe(4);
    expect(r.scores.fuzzing!.negatives).toBe(4);
  });

  it("explains attention heads from (query, key) pairs", async () => {
    const s = await server((req) => (lastUser(req).includes("this head attends to") ? text("the same word earlier") : text(JSON.stringify({ activations: simulationTokens(req)!.map(() => 0) }))));
    const head: NodeRecords = {
      node: { kind: "attention_head", layer: 0, head: 2 },
      top: [0, 1, 2, 3].map((i) => ({ ...rec([" Ann", " saw", ` x${i}`, " Ann"], [0, 0.1, 0, 0.9 - 0.1 * i]), keys: [-1, 0, 1, 0] })),
      random: [],
      stats: { count: 10, max: 0.9, mean: 0.2, density: 1, quantiles: [0, 0, 0, 0] },
    };
    const r = await explainWithLlm(head, openAiClient({ baseURL: s.baseURL, model: "m", env: {} }), { simulation: "json" });
    expect(r.explanation).toBe("the same word earlier");
    const ask = lastUser(s.requests[0]!);
    expect(ask).toContain(" Ann\t Ann\t10");
    expect(ask).toContain(" saw\t Ann\t1");
  });

  it("rejects bad records and options with typed errors; auth errors and aborts stop the run", async () => {
    const s = await server(scripted());
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {} });
    const r = records(4, 4);
    expect((await rejected(explainWithLlm({ ...r, top: r.top.slice(0, 1) }, llm))).code).toBe("E_BAD_INPUT");
    expect((await rejected(explainWithLlm({ ...r, top: [rec([" a"], [1, 2]), topRec(0)] }, llm))).code).toBe("E_BAD_INPUT");
    expect((await rejected(explainWithLlm(r, llm, { scorers: ["vibes" as never] }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(explainWithLlm(r, llm, { validationRecords: 0 }))).code).toBe("E_BAD_OPTION");
    const flat = { ...r, top: r.top.map((x) => ({ ...x, activations: x.activations.map(() => 0) })), stats: { ...r.stats, max: 0 } };
    expect((await rejected(explainWithLlm(flat, llm))).code).toBe("E_BAD_INPUT");

    const empty = await server(scripted((req) => (isExplain(req) ? text("  \n") : undefined)));
    expect((await rejected(explainWithLlm(r, openAiClient({ baseURL: empty.baseURL, model: "m", env: {} })))).code).toBe("E_LLM_BAD_REPLY");
    const auth = await server(() => ({ kind: "status", status: 401 }));
    expect((await rejected(explainWithLlm(r, openAiClient({ baseURL: auth.baseURL, model: "m", env: {} })))).code).toBe("E_LLM_AUTH");
    const a = new AbortController();
    a.abort();
    expect((await rejected(explainWithLlm(r, llm, { signal: a.signal }))).code).toBe("E_LLM_ABORTED");
  });
});

describe("cacheKey", () => {
  it("is made of prompt version, model, node, LLM (no credentials) and a settings hash", () => {
    const llm = openAiClient({ baseURL: `https://user:${KEY}@llm.example.com/v1?api-key=${KEY}`, model: "gpt-x", apiKey: KEY, env: {} });
    const k = cacheKey({ modelId: "tdb:brown-small", node: { kind: "mlp_neuron", layer: 2, index: 17 }, llm: llm.identity });
    expect(k).not.toContain(KEY);
    expect(k.startsWith(`${PROMPT_VERSION}|tdb:brown-small|mlp.2.17|openai-compatible|https://llm.example.com/v1|gpt-x|`)).toBe(true);
    const again = cacheKey({ modelId: "tdb:brown-small", node: "mlp.2.17", llm: { provider: "openai-compatible", baseURL: "https://llm.example.com/v1/", model: "gpt-x" } });
    expect(again).toBe(k);
    const withSettings = (o: Record<string, unknown>) => cacheKey({ modelId: "m", node: "mlp.0.0", llm: "offline", settings: o });
    expect(withSettings({ a: 1, b: [1, 2] })).toBe(withSettings({ b: [1, 2], a: 1 }));
    expect(withSettings({ a: 1 })).not.toBe(withSettings({ a: 2 }));
    expect(cacheKey({ modelId: "m", node: "mlp.0.0", llm: "offline", promptVersion: "v9" }).startsWith("v9|m|mlp.0.0|offline||")).toBe(true);
  });

  it("fnv1a64 matches the published FNV-1a 64 test vectors", () => {
    expect(fnv1a64("")).toBe("cbf29ce484222325");
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
  });
});
