/**
 * An {@link LlmClient} for OpenAI-compatible chat-completions endpoints (OpenAI, vLLM, Ollama,
 * llama.cpp server, ...), on the official `openai` package. The package is imported lazily, on
 * the first request, so that programs (and browser bundles) that never talk to an LLM never load
 * it. Retries, backoff, timeouts and the concurrency limit are this module's, not the SDK's (the
 * SDK's own retries are switched off), so that they behave the same on every endpoint.
 *
 * Configuration, options first, then the environment:
 * - base URL: `baseURL`, `TDB_LLM_BASE_URL`, `OPENAI_BASE_URL`, else `https://api.openai.com/v1`;
 * - model: `model`, `TDB_LLM_MODEL` (required);
 * - API key: `apiKey`, `TDB_LLM_API_KEY`, `OPENAI_API_KEY`; none is fine for local servers (then
 *   no `Authorization` header is sent).
 *
 * The key is never part of an error, an error's `value`, a log line or {@link OpenAiChatClient.identity}.
 *
 * @module
 */
import { TdbError, type TdbErrorCode } from "../base/errors.js";
import { Semaphore, publicUrl, redact, type ChatRequest, type ChatResponse, type LlmClient, type LlmIdentity, type TokenLogprob } from "./llm.js";

/** The default base URL (OpenAI's API). */
export const DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1";

/** Options of {@link openAiClient}. Every duration is in milliseconds. */
export interface OpenAiClientOptions {
  /** Endpoint base URL, e.g. `http://localhost:11434/v1` (Ollama). Default: see the module notes. */
  baseURL?: string;
  /** Model name. Default `TDB_LLM_MODEL`; required one way or the other. */
  model?: string;
  /** API key; `null` sends none even if the environment has one. Default: see the module notes. */
  apiKey?: string | null;
  /** Environment to read defaults from (default `process.env` where it exists). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Retries after the first attempt on 429, 5xx, timeouts and connection errors (default 4). */
  maxRetries?: number;
  /** First backoff delay; doubles each retry, with jitter (default 500). */
  baseDelayMs?: number;
  /** Cap of the exponential backoff (default 20000). */
  maxDelayMs?: number;
  /** Longest `Retry-After` honoured; a longer one fails at once with `E_LLM_RATE_LIMIT` (default 60000). */
  maxRetryAfterMs?: number;
  /** Per-attempt timeout (default 60000). */
  timeoutMs?: number;
  /** Retry attempts that timed out (default true). */
  retryOnTimeout?: boolean;
  /** Default `maxTokens` of requests that do not set one (default 1024). */
  maxTokens?: number;
  /** Name of the token-limit field: `max_tokens` (default, what local servers accept) or `max_completion_tokens` (newer OpenAI models). */
  maxTokensField?: "max_tokens" | "max_completion_tokens";
  /** Receives one line per retry or failure, credentials removed. Default: silent. */
  log?: (line: string) => void;
  /** The `fetch` to use (default the global one). */
  fetch?: typeof fetch;
  /** Passed to the SDK: allow use in a browser, where the key is visible to the page's users. */
  dangerouslyAllowBrowser?: boolean;
  /** Waits between retries (tests); must reject when `signal` aborts. Default: a timer. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Uniform [0, 1) source for the jitter (tests). Default `Math.random`. */
  random?: () => number;
}

/** Resolved, credential-free settings of an {@link OpenAiChatClient}. */
export interface OpenAiClientSettings {
  /** Base URL actually used (credentials and query removed). */
  baseURL: string;
  /** Model name. */
  model: string;
  /** Whether an API key is configured (the key itself is never exposed). */
  hasApiKey: boolean;
  /** Concurrency limit. */
  concurrency: number;
  /** Retries after the first attempt. */
  maxRetries: number;
  /** Per-attempt timeout. */
  timeoutMs: number;
}

/** What one failed attempt was, for the retry decision and the final error. */
interface Failure {
  code: TdbErrorCode;
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
  detail: string;
}

/** The subset of the `openai` module this adapter uses. */
interface OpenAiModule {
  default: new (options: Record<string, unknown>) => {
    chat: { completions: { create(body: Record<string, unknown>, options: Record<string, unknown>): Promise<unknown> } };
  };
}

type SdkClient = InstanceType<OpenAiModule["default"]>;

const defaultEnv = (): Readonly<Record<string, string | undefined>> =>
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

const safeDecode = (v: string): string => {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
};

const nonEmpty = (s: string | undefined | null): string | undefined => (typeof s === "string" && s.trim() !== "" ? s.trim() : undefined);

function positiveInt(name: string, v: number | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  if (!Number.isFinite(v) || v < min || Math.floor(v) !== v) {
    throw new TdbError("E_BAD_OPTION", `${name} must be an integer >= ${min}, got ${v}`, { value: v, allowed: `integer >= ${min}` });
  }
  return v;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Parses `retry-after-ms` (milliseconds) or `retry-after` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(headers: { get(name: string): string | null } | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  const s = Number(ra);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const date = Date.parse(ra);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/**
 * A chat client for an OpenAI-compatible endpoint, with a concurrency limit, retries with
 * exponential backoff and jitter (honouring `Retry-After`) on 429, 5xx, timeouts and connection
 * errors, a per-attempt timeout, and typed `E_LLM_*` errors that never contain the API key.
 * A request keeps its concurrency slot while it waits to retry, so a rate-limited endpoint sees
 * less traffic. Build it with {@link openAiClient}.
 */
export class OpenAiChatClient implements LlmClient {
  /** Endpoint and model, without credentials. */
  readonly identity: LlmIdentity;
  /** Resolved settings, without credentials. */
  readonly settings: OpenAiClientSettings;
  readonly #apiKey: string | undefined;
  readonly #urlSecrets: string[];
  readonly #baseURL: string;
  readonly #options: OpenAiClientOptions;
  readonly #gate: Semaphore;
  #sdk: Promise<SdkClient> | undefined;
  #attempts = 0;

  /** Prefer {@link openAiClient}; throws `E_LLM_CONFIG` when no model is configured. */
  constructor(options: OpenAiClientOptions = {}) {
    const env = options.env ?? defaultEnv();
    const model = nonEmpty(options.model) ?? nonEmpty(env.TDB_LLM_MODEL);
    if (!model) {
      throw new TdbError("E_LLM_CONFIG", "no LLM model configured: pass `model` or set TDB_LLM_MODEL", {
        value: undefined,
        allowed: "a model name the endpoint serves, e.g. gpt-4o-mini or llama3.1:8b",
      });
    }
    this.#apiKey = options.apiKey === null ? undefined : (nonEmpty(options.apiKey) ?? nonEmpty(env.TDB_LLM_API_KEY) ?? nonEmpty(env.OPENAI_API_KEY));
    const rawBase = nonEmpty(options.baseURL) ?? nonEmpty(env.TDB_LLM_BASE_URL) ?? nonEmpty(env.OPENAI_BASE_URL) ?? DEFAULT_LLM_BASE_URL;
    let parsed: URL | undefined;
    try {
      parsed = new URL(rawBase);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol)) {
      throw new TdbError("E_LLM_CONFIG", `LLM base URL is not an http(s) URL: ${redact(publicUrl(rawBase), [this.#apiKey])}`, {
        value: redact(publicUrl(rawBase), [this.#apiKey]),
        allowed: "http(s)://host[:port]/path, e.g. http://localhost:11434/v1",
      });
    }
    // Credentials in the URL are sent by no one and shown to no one: removed here, redacted everywhere.
    this.#urlSecrets = [parsed.username, parsed.password, ...[...parsed.searchParams.values()].filter((v) => v.length >= 4)]
      .flatMap((v) => [v, safeDecode(v)])
      .filter((v) => v.length > 0);
    parsed.username = "";
    parsed.password = "";
    this.#baseURL = parsed.toString().replace(/\/+$/, "");
    this.#options = options;
    const concurrency = positiveInt("concurrency", options.concurrency, 4, 1);
    this.#gate = new Semaphore(concurrency);
    this.settings = {
      baseURL: publicUrl(this.#baseURL),
      model,
      hasApiKey: this.#apiKey !== undefined,
      concurrency,
      maxRetries: positiveInt("maxRetries", options.maxRetries, 4, 0),
      timeoutMs: positiveInt("timeoutMs", options.timeoutMs, 60_000, 1),
    };
    positiveInt("baseDelayMs", options.baseDelayMs, 500, 0);
    positiveInt("maxDelayMs", options.maxDelayMs, 20_000, 0);
    positiveInt("maxRetryAfterMs", options.maxRetryAfterMs, 60_000, 0);
    positiveInt("maxTokens", options.maxTokens, 1024, 1);
    this.identity = { provider: "openai-compatible", baseURL: this.settings.baseURL, model };
  }

  /** HTTP attempts made so far (first tries and retries), for reports and tests. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Keeps the key out of `JSON.stringify(client)` and of inspection. */
  toJSON(): { identity: LlmIdentity; settings: OpenAiClientSettings } {
    return { identity: this.identity, settings: this.settings };
  }

  /** Sends one chat request (queued behind the concurrency limit), retrying as configured. */
  async chat(request: ChatRequest): Promise<ChatResponse> {
    if (!Array.isArray(request.messages) || request.messages.length === 0) {
      throw new TdbError("E_BAD_INPUT", "chat request has no messages", { value: request.messages, allowed: "a non-empty array of { role, content }" });
    }
    if (request.topLogprobs !== undefined && !(Number.isInteger(request.topLogprobs) && request.topLogprobs >= 0 && request.topLogprobs <= 20)) {
      throw new TdbError("E_BAD_OPTION", `topLogprobs must be an integer in 0..20, got ${request.topLogprobs}`, { value: request.topLogprobs, allowed: "0..20" });
    }
    return this.#gate.run(() => this.#withRetries(request));
  }

  #secrets(): (string | undefined)[] {
    return [this.#apiKey, ...this.#urlSecrets];
  }

  #log(line: string): void {
    this.#options.log?.(redact(line, this.#secrets()));
  }

  async #withRetries(request: ChatRequest): Promise<ChatResponse> {
    const o = this.#options;
    const sleep = o.sleep ?? defaultSleep;
    const random = o.random ?? Math.random;
    const maxRetries = this.settings.maxRetries;
    const base = o.baseDelayMs ?? 500;
    const cap = o.maxDelayMs ?? 20_000;
    const maxRetryAfter = o.maxRetryAfterMs ?? 60_000;
    for (let attempt = 0; ; attempt++) {
      if (request.signal?.aborted) throw this.#error({ code: "E_LLM_ABORTED", retryable: false, detail: "aborted by the caller" }, attempt);
      const result = await this.#attempt(request);
      if ("text" in result) return result;
      const failure = result;
      const retriesLeft = attempt < maxRetries;
      const retryable = failure.retryable && (failure.code !== "E_LLM_TIMEOUT" || o.retryOnTimeout !== false);
      if (!retryable || !retriesLeft) throw this.#error(failure, attempt + 1);
      let delay: number;
      if (failure.retryAfterMs !== undefined) {
        if (failure.retryAfterMs > maxRetryAfter) {
          throw this.#error({ ...failure, detail: `${failure.detail}; Retry-After ${Math.round(failure.retryAfterMs)} ms exceeds maxRetryAfterMs ${maxRetryAfter}` }, attempt + 1);
        }
        delay = failure.retryAfterMs;
      } else {
        const exp = Math.min(cap, base * 2 ** attempt);
        delay = exp / 2 + (random() * exp) / 2;
      }
      this.#log(`tdb llm: ${failure.detail}; retry ${attempt + 1}/${maxRetries} in ${Math.round(delay)} ms (${this.settings.model} at ${this.settings.baseURL})`);
      try {
        await sleep(delay, request.signal);
      } catch {
        throw this.#error({ code: "E_LLM_ABORTED", retryable: false, detail: "aborted by the caller while waiting to retry" }, attempt + 1);
      }
    }
  }

  #error(f: Failure, attempts: number): TdbError {
    const s = this.#secrets();
    const detail = redact(f.detail, s);
    const where = `${this.settings.model} at ${this.settings.baseURL}`;
    const message = redact(`LLM request failed (${f.code}) after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${detail} [${where}]`, s);
    this.#log(message);
    const allowed: Partial<Record<TdbErrorCode, string>> = {
      E_LLM_AUTH: "a valid API key (TDB_LLM_API_KEY / OPENAI_API_KEY or the apiKey option)",
      E_LLM_RATE_LIMIT: "fewer requests (lower concurrency) or more retries (maxRetries)",
      E_LLM_TIMEOUT: "a larger timeoutMs or a faster endpoint",
      E_LLM_HTTP: "a request the endpoint accepts (check model name and base URL)",
      E_LLM_NETWORK: "a reachable endpoint (check baseURL)",
      E_LLM_SERVER: "a healthy endpoint (retry later)",
      E_LLM_BAD_REPLY: "a chat-completions JSON reply with choices[0].message.content",
    };
    return new TdbError(f.code, message, {
      value: { status: f.status, attempts, model: this.settings.model, baseURL: this.settings.baseURL, detail },
      allowed: allowed[f.code],
    });
  }

  #client(): Promise<SdkClient> {
    this.#sdk ??= (import("openai") as unknown as Promise<OpenAiModule>).then((mod) => {
      const o = this.#options;
      return new mod.default({
        apiKey: this.#apiKey ?? "unused",
        adminAPIKey: null,
        baseURL: this.#baseURL,
        maxRetries: 0,
        timeout: this.settings.timeoutMs + 5_000,
        logLevel: "off",
        ...(this.#apiKey === undefined ? { defaultHeaders: { Authorization: null } } : {}),
        ...(o.fetch ? { fetch: o.fetch } : {}),
        ...(o.dangerouslyAllowBrowser ? { dangerouslyAllowBrowser: true } : {}),
      });
    });
    return this.#sdk;
  }

  async #attempt(request: ChatRequest): Promise<ChatResponse | Failure> {
    let sdk: SdkClient;
    try {
      sdk = await this.#client();
    } catch (e) {
      this.#sdk = undefined;
      return { code: "E_LLM_CONFIG", retryable: false, detail: `cannot create the openai client: ${e instanceof Error ? e.message : String(e)}` };
    }
    this.#attempts++;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.settings.timeoutMs);
    const onAbort = (): void => controller.abort();
    request.signal?.addEventListener("abort", onAbort, { once: true });
    const o = this.#options;
    const body: Record<string, unknown> = {
      model: this.settings.model,
      messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
      temperature: request.temperature ?? 0,
      [o.maxTokensField ?? "max_tokens"]: request.maxTokens ?? o.maxTokens ?? 1024,
    };
    if (request.topLogprobs !== undefined && request.topLogprobs > 0) {
      body.logprobs = true;
      body.top_logprobs = request.topLogprobs;
    }
    try {
      const reply = await sdk.chat.completions.create(body, { signal: controller.signal });
      return toResponse(reply);
    } catch (e) {
      if (request.signal?.aborted) return { code: "E_LLM_ABORTED", retryable: false, detail: "aborted by the caller" };
      if (timedOut) return { code: "E_LLM_TIMEOUT", retryable: true, detail: `no reply within ${this.settings.timeoutMs} ms` };
      return classify(e);
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** A reply that is not a chat completion. */
class BadReply extends Error {}

function toResponse(reply: unknown): ChatResponse | Failure {
  try {
    if (typeof reply !== "object" || reply === null) throw new BadReply("reply is not a JSON object");
    const choices = (reply as { choices?: unknown }).choices;
    if (!Array.isArray(choices) || choices.length === 0) throw new BadReply("reply has no choices");
    const choice = choices[0] as { message?: { content?: unknown }; finish_reason?: unknown; logprobs?: { content?: unknown } | null };
    const content = choice.message?.content;
    if (typeof content !== "string") throw new BadReply("reply has no choices[0].message.content string");
    const out: ChatResponse = { text: content };
    if (typeof choice.finish_reason === "string") out.finishReason = choice.finish_reason;
    const lp = choice.logprobs?.content;
    if (Array.isArray(lp)) {
      const tokens: TokenLogprob[] = [];
      for (const t of lp as { token?: unknown; logprob?: unknown; top_logprobs?: unknown }[]) {
        if (typeof t?.token !== "string" || typeof t.logprob !== "number") throw new BadReply("malformed logprobs entry");
        const top = Array.isArray(t.top_logprobs)
          ? (t.top_logprobs as { token?: unknown; logprob?: unknown }[])
              .filter((a) => typeof a?.token === "string" && typeof a.logprob === "number")
              .map((a) => ({ token: a.token as string, logprob: a.logprob as number }))
          : [];
        tokens.push({ token: t.token, logprob: t.logprob, top });
      }
      out.logprobs = tokens;
    }
    return out;
  } catch (e) {
    return { code: "E_LLM_BAD_REPLY", retryable: false, detail: e instanceof Error ? e.message : String(e) };
  }
}

/** Maps an exception of the SDK (or of `fetch`/JSON parsing under it) to a failure kind. */
function classify(e: unknown): Failure {
  const err = e as { status?: unknown; headers?: unknown; message?: unknown; name?: unknown; constructor?: { name?: string } };
  const msg = typeof err?.message === "string" ? err.message.slice(0, 500) : String(e).slice(0, 500);
  const name = err?.constructor?.name ?? (typeof err?.name === "string" ? err.name : "Error");
  if (typeof err?.status === "number") {
    const status = err.status;
    const headers = err.headers as { get(name: string): string | null } | undefined;
    const retryAfterMs = typeof headers?.get === "function" ? parseRetryAfter(headers) : undefined;
    const detail = `HTTP ${status}: ${msg}`;
    if (status === 429) return { code: "E_LLM_RATE_LIMIT", retryable: true, status, retryAfterMs, detail };
    if (status >= 500) return { code: "E_LLM_SERVER", retryable: true, status, retryAfterMs, detail };
    if (status === 408) return { code: "E_LLM_TIMEOUT", retryable: true, status, retryAfterMs, detail };
    if (status === 401 || status === 403) return { code: "E_LLM_AUTH", retryable: false, status, detail };
    return { code: "E_LLM_HTTP", retryable: false, status, detail };
  }
  if (e instanceof SyntaxError || /JSON/i.test(name) || /Unexpected token|is not valid JSON|JSON/.test(msg)) {
    return { code: "E_LLM_BAD_REPLY", retryable: false, detail: `reply body is not valid JSON (${msg})` };
  }
  if (name === "APIConnectionTimeoutError") return { code: "E_LLM_TIMEOUT", retryable: true, detail: msg };
  if (name === "APIConnectionError" || name === "TypeError") return { code: "E_LLM_NETWORK", retryable: true, detail: `connection failed: ${msg}` };
  return { code: "E_LLM_NETWORK", retryable: true, detail: `${name}: ${msg}` };
}

/**
 * A chat client for an OpenAI-compatible endpoint (see {@link OpenAiClientOptions} for the
 * configuration and its environment variables). Throws `E_LLM_CONFIG` when no model is set.
 *
 * @example
 * ```ts
 * const llm = openAiClient({ baseURL: "http://localhost:11434/v1", model: "llama3.1:8b" });
 * const { text } = await llm.chat({ messages: [{ role: "user", content: "Say hi" }] });
 * ```
 */
export function openAiClient(options: OpenAiClientOptions = {}): OpenAiChatClient {
  return new OpenAiChatClient(options);
}
