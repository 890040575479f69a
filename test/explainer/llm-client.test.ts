/**
 * The OpenAI-compatible client against a real HTTP server on loopback: request format, auth,
 * configuration from options and environment, retries with backoff on 429/5xx/timeouts/closed
 * connections (Retry-After honoured), no retries on 4xx or malformed bodies, the concurrency
 * limit, abort, logprobs, and the API key never leaking into errors or logs.
 */
import { inspect } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { TdbError } from "../../src/base/errors.js";
import { openAiClient, parseRetryAfter, type OpenAiClientOptions } from "../../src/explainer/openai-client.js";
import { mapLimit, publicUrl, redact } from "../../src/explainer/llm.js";
import { rejected, thrown } from "../helpers/errors.js";
import { startChatServer, status, text, type ChatServer } from "../helpers/chat-server.js";

const KEY = "sk-tdbTEST-9f8e7d6c5b4a";
const servers: ChatServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
  vi.restoreAllMocks();
});
async function server(...replies: Parameters<typeof startChatServer>): Promise<ChatServer> {
  const s = await startChatServer(...replies);
  servers.push(s);
  return s;
}
const user = (content: string) => ({ messages: [{ role: "user" as const, content }] });

/** A sleep that records the delays asked for and returns at once. */
function fakeSleep(): { delays: number[]; sleep: NonNullable<OpenAiClientOptions["sleep"]> } {
  const delays: number[] = [];
  return { delays, sleep: async (ms) => void delays.push(ms) };
}

describe("openAiClient: requests", () => {
  it("posts chat-completions with the model, messages, temperature, token limit and bearer key", async () => {
    const s = await server(text("hello there"));
    const llm = openAiClient({ baseURL: s.baseURL, model: "tiny-chat", apiKey: KEY, env: {} });
    const r = await llm.chat({ messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }], maxTokens: 77 });
    expect(r.text).toBe("hello there");
    expect(r.finishReason).toBe("stop");
    expect(r.logprobs).toBeUndefined();
    expect(s.requests).toHaveLength(1);
    const q = s.requests[0]!;
    expect(q.method).toBe("POST");
    expect(q.url).toBe("/v1/chat/completions");
    expect(q.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(q.body!.model).toBe("tiny-chat");
    expect(q.body!.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
    expect(q.body!.temperature).toBe(0);
    expect(q.body!.max_tokens).toBe(77);
    expect(q.body!.logprobs).toBeUndefined();
    expect(llm.identity).toEqual({ provider: "openai-compatible", baseURL: s.baseURL, model: "tiny-chat" });
    expect(llm.attempts).toBe(1);
  });

  it("reads base URL, model and key from the environment (TDB_* before OPENAI_*), options first", async () => {
    const s = await server(text("a"), text("b"), text("c"));
    const env = { OPENAI_BASE_URL: s.baseURL, OPENAI_API_KEY: "sk-env-openai", TDB_LLM_MODEL: "env-model" };
    await openAiClient({ env }).chat(user("x"));
    await openAiClient({ env: { ...env, TDB_LLM_API_KEY: "sk-env-tdb" } }).chat(user("x"));
    await openAiClient({ env, model: "opt-model", apiKey: "sk-opt" }).chat(user("x"));
    expect(s.requests.map((r) => [r.body!.model, r.headers.authorization])).toEqual([
      ["env-model", "Bearer sk-env-openai"],
      ["env-model", "Bearer sk-env-tdb"],
      ["opt-model", "Bearer sk-opt"],
    ]);
    expect(openAiClient({ env: { TDB_LLM_MODEL: "m" } }).settings.baseURL).toBe("https://api.openai.com/v1");
  });

  it("sends no Authorization header without a key (local servers), nor with apiKey: null", async () => {
    const s = await server(text("a"), text("b"));
    const noKey = openAiClient({ baseURL: s.baseURL, model: "m", env: {} });
    expect(noKey.settings.hasApiKey).toBe(false);
    await noKey.chat(user("x"));
    await openAiClient({ baseURL: s.baseURL, model: "m", apiKey: null, env: { OPENAI_API_KEY: KEY } }).chat(user("x"));
    expect(s.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
  });

  it("rejects a missing model, a non-http base URL and bad numeric options with typed errors", async () => {
    const e1 = thrown(() => openAiClient({ env: {} }));
    expect(e1.code).toBe("E_LLM_CONFIG");
    expect(e1.allowed).toBeTruthy();
    const e2 = thrown(() => openAiClient({ model: "m", baseURL: "ftp://host/v1", env: {} }));
    expect(e2.code).toBe("E_LLM_CONFIG");
    expect(e2.value).toBe("ftp://host/v1");
    const e3 = thrown(() => openAiClient({ model: "m", concurrency: 0, env: {} }));
    expect([e3.code, e3.value]).toEqual(["E_BAD_OPTION", 0]);
    const llm = openAiClient({ model: "m", env: {} });
    expect((await rejected(llm.chat({ messages: [] }))).code).toBe("E_BAD_INPUT");
    expect((await rejected(llm.chat({ ...user("x"), topLogprobs: 21 }))).code).toBe("E_BAD_OPTION");
  });

  it("asks for logprobs and returns them per generated token with the top alternatives", async () => {
    const s = await server(text("7", [{ token: "7", top: { "7": 0.6, "8": 0.3, "6": 0.1 } }]));
    const r = await openAiClient({ baseURL: s.baseURL, model: "m", env: {} }).chat({ ...user("x"), topLogprobs: 3 });
    expect(s.requests[0]!.body!.logprobs).toBe(true);
    expect(s.requests[0]!.body!.top_logprobs).toBe(3);
    expect(r.logprobs).toHaveLength(1);
    const t = r.logprobs![0]!;
    expect(t.token).toBe("7");
    expect(t.logprob).toBeCloseTo(Math.log(0.6), 12);
    expect(t.top.map((a) => a.token)).toEqual(["7", "8", "6"]);
    expect(t.top.map((a) => Math.exp(a.logprob))).toEqual([expect.closeTo(0.6, 12), expect.closeTo(0.3, 12), expect.closeTo(0.1, 12)]);
  });
});

describe("openAiClient: retries and backoff", () => {
  it("honours Retry-After (seconds) on 429 and succeeds on the retry", async () => {
    const s = await server(status(429, { "retry-after": "2" }), text("ok"));
    const { delays, sleep } = fakeSleep();
    const lines: string[] = [];
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, log: (l) => lines.push(l) });
    expect((await llm.chat(user("x"))).text).toBe("ok");
    expect(s.requests).toHaveLength(2);
    expect(delays).toEqual([2000]);
    expect(lines.some((l) => /429/.test(l) && /retry 1\/4/.test(l))).toBe(true);
  });

  it("waits for real: retry-after-ms 150 puts >= 150 ms between the attempts", async () => {
    const s = await server(status(429, { "retry-after-ms": "150" }), text("ok"));
    await openAiClient({ baseURL: s.baseURL, model: "m", env: {} }).chat(user("x"));
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1]!.at - s.requests[0]!.at).toBeGreaterThanOrEqual(140);
  });

  it("backs off exponentially with jitter on 5xx: delay = c/2 + u*c/2 with c = base*2^n capped", async () => {
    const s = await server(status(500), status(502), status(503), status(504), text("ok"));
    const { delays, sleep } = fakeSleep();
    const us = [0, 1, 0.5, 0.25];
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, random: () => us.shift()!, baseDelayMs: 100, maxDelayMs: 300, maxRetries: 4 });
    expect((await llm.chat(user("x"))).text).toBe("ok");
    expect(s.requests).toHaveLength(5);
    // c = 100, 200, 300 (capped from 400), 300 (capped from 800)
    expect(delays).toEqual([50 + 0 * 50, 100 + 1 * 100, 150 + 0.5 * 150, 150 + 0.25 * 150]);
  });

  it("gives up after maxRetries with E_LLM_SERVER / E_LLM_RATE_LIMIT carrying status and attempts", async () => {
    const s = await server();
    s.fallback = status(500);
    const { delays, sleep } = fakeSleep();
    const e = await rejected(openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, maxRetries: 2 }).chat(user("x")));
    expect(e.code).toBe("E_LLM_SERVER");
    expect(e.value).toMatchObject({ status: 500, attempts: 3, model: "m" });
    expect(s.requests).toHaveLength(3);
    expect(delays).toHaveLength(2);

    s.fallback = status(429, { "retry-after": "0" });
    const before = s.requests.length;
    const e2 = await rejected(openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, maxRetries: 1 }).chat(user("x")));
    expect(e2.code).toBe("E_LLM_RATE_LIMIT");
    expect(s.requests.length - before).toBe(2);
  });

  it("fails at once when Retry-After exceeds maxRetryAfterMs", async () => {
    const s = await server(status(429, { "retry-after": "3600" }), text("never"));
    const { delays, sleep } = fakeSleep();
    const e = await rejected(openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, maxRetryAfterMs: 10_000 }).chat(user("x")));
    expect(e.code).toBe("E_LLM_RATE_LIMIT");
    expect(e.message).toMatch(/exceeds maxRetryAfterMs/);
    expect(s.requests).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it("does not retry 400 (E_LLM_HTTP) or 401 (E_LLM_AUTH)", async () => {
    const s = await server(status(400), status(401));
    const { delays, sleep } = fakeSleep();
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep });
    expect((await rejected(llm.chat(user("x")))).code).toBe("E_LLM_HTTP");
    const e = await rejected(llm.chat(user("x")));
    expect(e.code).toBe("E_LLM_AUTH");
    expect(e.value).toMatchObject({ status: 401, attempts: 1 });
    expect(s.requests).toHaveLength(2);
    expect(delays).toEqual([]);
  });

  it("times out a reply that never comes, retries it, and fails with E_LLM_TIMEOUT", async () => {
    const s = await server({ kind: "hang" }, text("late but fine"), { kind: "hang" }, { kind: "hang" });
    const { sleep } = fakeSleep();
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, timeoutMs: 150, maxRetries: 1 });
    const t0 = Date.now();
    expect((await llm.chat(user("x"))).text).toBe("late but fine");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const e = await rejected(llm.chat(user("x")));
    expect(e.code).toBe("E_LLM_TIMEOUT");
    expect(e.value).toMatchObject({ attempts: 2 });
    expect(s.requests).toHaveLength(4);
    const noRetry = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep, timeoutMs: 100, retryOnTimeout: false });
    s.push({ kind: "hang" });
    expect((await rejected(noRetry.chat(user("x")))).code).toBe("E_LLM_TIMEOUT");
    expect(s.requests).toHaveLength(5);
  });

  it("retries a dropped connection (E_LLM_NETWORK) and an unreachable port fails with E_LLM_NETWORK", async () => {
    const s = await server({ kind: "close" }, text("ok"));
    const { sleep } = fakeSleep();
    expect((await openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep }).chat(user("x"))).text).toBe("ok");
    expect(s.requests).toHaveLength(2);
    const dead = await startChatServer();
    const url = dead.baseURL;
    await dead.close();
    const e = await rejected(openAiClient({ baseURL: url, model: "m", env: {}, sleep, maxRetries: 1 }).chat(user("x")));
    expect(e.code).toBe("E_LLM_NETWORK");
    expect(e.value).toMatchObject({ attempts: 2 });
  });

  it("does not retry a 200 whose body is not JSON or not a completion (E_LLM_BAD_REPLY)", async () => {
    const s = await server({ kind: "raw", body: "{not json" }, { kind: "raw", body: JSON.stringify({ choices: [] }) });
    const { sleep } = fakeSleep();
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, sleep });
    expect((await rejected(llm.chat(user("x")))).code).toBe("E_LLM_BAD_REPLY");
    expect((await rejected(llm.chat(user("x")))).code).toBe("E_LLM_BAD_REPLY");
    expect(s.requests).toHaveLength(2);
  });

  it("aborts in flight and while waiting to retry (E_LLM_ABORTED, no further attempts)", async () => {
    const s = await server({ kind: "hang" }, status(500), text("never"));
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, baseDelayMs: 5_000 });
    const a = new AbortController();
    setTimeout(() => a.abort(), 50);
    expect((await rejected(llm.chat({ ...user("x"), signal: a.signal }))).code).toBe("E_LLM_ABORTED");
    const b = new AbortController();
    const p = llm.chat({ ...user("x"), signal: b.signal });
    setTimeout(() => b.abort(), 100);
    expect((await rejected(p)).code).toBe("E_LLM_ABORTED");
    expect(s.requests).toHaveLength(2);
  });
});

describe("openAiClient: concurrency limit", () => {
  it("never has more than `concurrency` requests in flight, and answers every request in order", async () => {
    const s = await server();
    s.fallback = (req) => ({ kind: "text", text: `re:${req.body!.messages[0]!.content}`, delayMs: 40 });
    const llm = openAiClient({ baseURL: s.baseURL, model: "m", env: {}, concurrency: 2 });
    const out = await Promise.all(Array.from({ length: 7 }, (_, i) => llm.chat(user(`q${i}`))));
    expect(out.map((r) => r.text)).toEqual(Array.from({ length: 7 }, (_, i) => `re:q${i}`));
    expect(s.maxInFlight).toBe(2);
    expect(s.requests).toHaveLength(7);
  });

  it("mapLimit keeps order and bounds parallelism", async () => {
    let live = 0;
    let peak = 0;
    const r = await mapLimit([5, 4, 3, 2, 1], 3, async (x) => {
      live++;
      peak = Math.max(peak, live);
      await new Promise((res) => setTimeout(res, x * 3));
      live--;
      return x * 10;
    });
    expect(r).toEqual([50, 40, 30, 20, 10]);
    expect(peak).toBe(3);
  });
});

describe("openAiClient: the API key never leaks", () => {
  it("keeps the key out of every error (message, value, JSON, stack), every log line and the client itself", async () => {
    const echo = { error: { message: `Incorrect API key provided: ${KEY}. Header was Bearer ${KEY}`, type: "invalid_request_error" } };
    const s = await server();
    const scripted = [
      status(401, {}, echo),
      status(403, {}, echo),
      status(400, {}, echo),
      status(404, {}, echo),
      status(429, { "retry-after": "0" }, echo),
      status(500, {}, echo),
      status(503, {}, echo),
      { kind: "raw" as const, body: `not json ${KEY}` },
      { kind: "raw" as const, body: JSON.stringify({ choices: [{ message: { content: null } }], note: KEY }) },
      { kind: "hang" as const },
      { kind: "close" as const },
    ];
    const logged: string[] = [];
    const consoleSpies = (["log", "info", "warn", "error", "debug"] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(" "))),
    );
    const errors: TdbError[] = [];
    for (const reply of scripted) {
      s.queue = [reply];
      s.fallback = reply;
      const llm = openAiClient({ baseURL: s.baseURL, model: "m", apiKey: KEY, env: {}, timeoutMs: 100, maxRetries: 1, sleep: async () => {}, log: (l) => logged.push(l) });
      errors.push(await rejected(llm.chat(user("x"))));
      expect(JSON.stringify(llm)).not.toContain(KEY);
      expect(inspect(llm, { depth: 10, showHidden: true })).not.toContain(KEY);
    }
    // Unreachable endpoint, an abort, and a base URL that carries the key as credentials or query.
    const dead = await startChatServer();
    await dead.close();
    errors.push(await rejected(openAiClient({ baseURL: dead.baseURL, model: "m", apiKey: KEY, env: {}, maxRetries: 0, log: (l) => logged.push(l) }).chat(user("x"))));
    const a = new AbortController();
    a.abort();
    errors.push(await rejected(openAiClient({ baseURL: s.baseURL, model: "m", apiKey: KEY, env: {}, log: (l) => logged.push(l) }).chat({ ...user("x"), signal: a.signal })));
    errors.push(thrown(() => openAiClient({ baseURL: `ftp://u:${KEY}@host/v1?key=${KEY}`, model: "m", apiKey: KEY, env: {} })));
    const envKeyed = openAiClient({ baseURL: `${s.baseURL}?api-key=${KEY}`, model: "m", env: { OPENAI_API_KEY: KEY } });
    expect(envKeyed.identity.baseURL).toBe(s.baseURL);
    // The key as the password of the base URL: stripped before sending, redacted from errors.
    s.queue = [];
    s.fallback = status(500, {}, echo);
    const before = s.requests.length;
    const inUrl = openAiClient({ baseURL: s.baseURL.replace("http://", `http://tdb:${KEY}@`), model: "m", env: {}, maxRetries: 0, log: (l) => logged.push(l) });
    errors.push(await rejected(inUrl.chat(user("x"))));
    expect(s.requests.length).toBe(before + 1);
    expect(s.requests[before]!.headers.authorization).toBeUndefined();
    expect(JSON.stringify(inUrl)).not.toContain(KEY);
    for (const sp of consoleSpies) sp.mockRestore();

    expect(errors.map((e) => e.code)).toEqual([
      "E_LLM_AUTH",
      "E_LLM_AUTH",
      "E_LLM_HTTP",
      "E_LLM_HTTP",
      "E_LLM_RATE_LIMIT",
      "E_LLM_SERVER",
      "E_LLM_SERVER",
      "E_LLM_BAD_REPLY",
      "E_LLM_BAD_REPLY",
      "E_LLM_TIMEOUT",
      "E_LLM_NETWORK",
      "E_LLM_NETWORK",
      "E_LLM_ABORTED",
      "E_LLM_CONFIG",
      "E_LLM_SERVER",
    ]);
    for (const e of errors) {
      expect(e.message).not.toContain(KEY);
      expect(JSON.stringify(e)).not.toContain(KEY);
      expect(JSON.stringify(e.value ?? null)).not.toContain(KEY);
      expect(String(e.stack)).not.toContain(KEY);
      expect(e.cause).toBeUndefined();
      expect(inspect(e, { depth: 10 })).not.toContain(KEY);
    }
    // The server did receive the key (so the test would notice a leak), and the errors say why they failed.
    expect(s.requests.some((r) => r.headers.authorization === `Bearer ${KEY}`)).toBe(true);
    expect(errors[0]!.message).toMatch(/Incorrect API key provided: \*\*\*/);
    expect(logged.length).toBeGreaterThan(10);
    for (const l of logged) expect(l).not.toContain(KEY);
  });

  it("redact and publicUrl remove secrets, bearer tokens and URL credentials", () => {
    expect(redact(`x ${KEY} y Bearer abc.def z`, [KEY, undefined, ""])).toBe("x *** y Bearer *** z");
    expect(publicUrl("https://user:pw@example.com:8080/v1/?key=1#f")).toBe("https://example.com:8080/v1");
  });

  it("parseRetryAfter reads retry-after-ms, seconds and HTTP dates", () => {
    const h = (o: Record<string, string>) => new Headers(o);
    expect(parseRetryAfter(h({ "retry-after-ms": "250" }))).toBe(250);
    expect(parseRetryAfter(h({ "retry-after": "1.5" }))).toBe(1500);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter(h({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now)).toBe(3000);
    expect(parseRetryAfter(h({}))).toBeUndefined();
    expect(parseRetryAfter(h({ "retry-after": "soon" }))).toBeUndefined();
  });
});
