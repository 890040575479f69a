/**
 * The language-model seam of the explainer: a minimal chat interface ({@link LlmClient}) that
 * explanation, simulation and the LLM scorers talk to, so that any provider (the OpenAI-compatible
 * adapter of `openai-client.ts`, a test double, a user's own wrapper) can be plugged in. Also the
 * small helpers every client needs: a concurrency limit and secret redaction.
 *
 * @module
 */

/** One chat message. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant";
  /** What is said (plain text). */
  content: string;
}

/** One chat request. */
export interface ChatRequest {
  /** The conversation, oldest first; the reply continues it. */
  messages: ChatMessage[];
  /** Upper bound on generated tokens (the client's default when absent). */
  maxTokens?: number;
  /** Sampling temperature (0 = greedy; the default of every prompt here). */
  temperature?: number;
  /**
   * Ask for log-probabilities of the generated tokens, with this many top alternatives per token
   * (1..20). Clients that cannot return them ignore it and leave {@link ChatResponse.logprobs} unset.
   */
  topLogprobs?: number;
  /** Cancels the request (and its retries). */
  signal?: AbortSignal;
}

/** A candidate token and its log-probability. */
export interface TokenAlternative {
  /** The token's text. */
  token: string;
  /** Natural log of its probability. */
  logprob: number;
}

/** A generated token, its log-probability and the most likely alternatives at its position. */
export interface TokenLogprob extends TokenAlternative {
  /** The top alternatives at this position (the generated token usually among them), most likely first. */
  top: TokenAlternative[];
}

/** A chat reply. */
export interface ChatResponse {
  /** The generated text. */
  text: string;
  /** Per generated token, in order, when the request asked for them and the endpoint returned them. */
  logprobs?: TokenLogprob[];
  /** Why generation stopped ("stop", "length", ...), when the endpoint says. */
  finishReason?: string;
}

/** What identifies an LLM for caching and reports: never credentials. */
export interface LlmIdentity {
  /** Provider family, e.g. "openai-compatible" or "scripted". */
  provider: string;
  /** Endpoint base URL without credentials or query string, when there is one. */
  baseURL?: string;
  /** Model name as the endpoint knows it. */
  model: string;
}

/**
 * A chat model: messages in, text out (with the log-probabilities of the generated tokens where
 * the endpoint provides them). Implementations handle their own retries; they reject with a
 * `TdbError` (`E_LLM_*` codes) and must never put credentials in errors or logs.
 *
 * @example
 * ```ts
 * const echo: LlmClient = {
 *   identity: { provider: "echo", model: "echo" },
 *   async chat(req) { return { text: req.messages.at(-1)?.content ?? "" }; },
 * };
 * ```
 */
export interface LlmClient {
  /** Sends one chat request. */
  chat(request: ChatRequest): Promise<ChatResponse>;
  /** Who answers, for cache keys and reports. */
  readonly identity?: LlmIdentity;
}

/**
 * Runs `f` over `items` with at most `limit` calls in flight, keeping the order of results.
 * A rejection rejects the whole map (the other in-flight calls are left to settle).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, f: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: lanes }, worker));
  return out;
}

/**
 * A counting semaphore: `run(f)` waits for one of `limit` slots, then runs `f`.
 *
 * @example
 * ```ts
 * const gate = new Semaphore(2);
 * await Promise.all(urls.map((u) => gate.run(() => fetch(u))));
 * ```
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  /** A semaphore with `limit` (>= 1) slots. */
  constructor(readonly limit: number) {}

  /** Slots in use now. */
  get inFlight(): number {
    return this.active;
  }

  /** Runs `f` once a slot is free; the slot is released when `f` settles. */
  async run<R>(f: () => Promise<R>): Promise<R> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await f();
    } finally {
      const wake = this.waiting.shift();
      if (wake) wake();
      else this.active--;
    }
  }
}

/** Replaces every occurrence of each non-empty secret in `text` (and any `Bearer <token>`) by `***`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length > 0) out = out.split(s).join("***");
  return out.replace(/(Bearer\s+)[^\s"',;]+/gi, "$1***");
}

/** A base URL without user info, query string or fragment, and without a trailing slash. */
export function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    return u.toString().replace(/\/+$/, "");
  } catch {
    return url.replace(/[?#].*$/, "").replace(/\/\/[^/@]*@/, "//").replace(/\/+$/, "");
  }
}

/**
 * Error codes after which a multi-request job (simulating many excerpts, scoring batches) records
 * a failure for the one item and goes on: the client already retried, and the next item may work.
 * Others (auth, bad request, configuration, abort) stop the job.
 */
export const ITEM_FAILURE_CODES: readonly string[] = Object.freeze(["E_LLM_BAD_REPLY", "E_LLM_TIMEOUT", "E_LLM_SERVER", "E_LLM_RATE_LIMIT", "E_LLM_NETWORK"]);

/** Whether `e` is an error that fails one item only (see {@link ITEM_FAILURE_CODES}). */
export function isItemFailure(e: unknown): e is { code: string; message: string } {
  return typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string" && ITEM_FAILURE_CODES.includes((e as { code: string }).code);
}
