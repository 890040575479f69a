/**
 * A real HTTP server on loopback that speaks (enough of) the OpenAI chat-completions protocol,
 * with scripted replies: normal completions (optionally with logprobs), error statuses with
 * headers (429 + Retry-After, 500, 401), bodies that are not JSON, and replies that never come.
 * Every request it receives is recorded (headers, parsed body, arrival time).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One recorded request. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined if it was not JSON). */
  body: ChatBody | undefined;
  /** Raw body text. */
  raw: string;
  /** Milliseconds since the server started. */
  at: number;
}

/** The fields of a chat-completions request body the tests look at. */
export interface ChatBody {
  model: string;
  messages: { role: string; content: string }[];
  temperature?: number;
  max_tokens?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  [k: string]: unknown;
}

/** A token with its top alternatives, for scripted logprobs. */
export interface ScriptedToken {
  token: string;
  /** Probabilities of alternatives (token -> probability); the token itself gets its own entry or 1. */
  top?: Record<string, number>;
}

/** One scripted reply. */
export type Reply =
  | { kind: "text"; text: string; logprobs?: ScriptedToken[]; finishReason?: string; delayMs?: number }
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: unknown }
  | { kind: "raw"; status?: number; body: string; contentType?: string }
  | { kind: "hang" }
  | { kind: "close" };

/** A reply, or a function of the request that makes one. */
export type Script = Reply | ((req: ReceivedRequest) => Reply);

/** A running scripted chat server. */
export interface ChatServer {
  /** `http://127.0.0.1:<port>/v1` */
  baseURL: string;
  /** Requests received so far, in arrival order. */
  requests: ReceivedRequest[];
  /** Requests being answered now, and the most there ever were at once. */
  inFlight: number;
  maxInFlight: number;
  /** Replies still queued. */
  queue: Script[];
  /** Reply used when the queue is empty (default: an error 599 so that tests notice). */
  fallback: Script | undefined;
  /** Adds replies to the queue. */
  push(...replies: Script[]): void;
  /** Stops the server (and drops hanging connections). */
  close(): Promise<void>;
}

/** Text completion reply. */
export const text = (t: string, logprobs?: ScriptedToken[]): Reply => ({ kind: "text", text: t, logprobs });
/** Error status reply. */
export const status = (s: number, headers?: Record<string, string>, body?: unknown): Reply => ({ kind: "status", status: s, headers, body });

function completion(model: string, r: Extract<Reply, { kind: "text" }>): unknown {
  const logprobs = r.logprobs
    ? {
        content: r.logprobs.map((t) => {
          const top = Object.entries(t.top ?? { [t.token]: 1 })
            .sort((a, b) => b[1] - a[1])
            .map(([token, p]) => ({ token, logprob: Math.log(p), bytes: null }));
          const own = top.find((a) => a.token === t.token)?.logprob ?? Math.log(0.5);
          return { token: t.token, logprob: own, bytes: null, top_logprobs: top };
        }),
      }
    : null;
  return {
    id: "chatcmpl-test",
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: r.text }, finish_reason: r.finishReason ?? "stop", logprobs }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

/** Starts a scripted chat server on 127.0.0.1 (a free port). */
export async function startChatServer(...initial: Script[]): Promise<ChatServer> {
  const t0 = Date.now();
  const hanging = new Set<ServerResponse>();
  const state: ChatServer = {
    baseURL: "",
    requests: [],
    inFlight: 0,
    maxInFlight: 0,
    queue: [...initial],
    fallback: undefined,
    push: (...r) => state.queue.push(...r),
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let body: ChatBody | undefined;
      try {
        body = JSON.parse(raw) as ChatBody;
      } catch {
        body = undefined;
      }
      const rec: ReceivedRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, raw, at: Date.now() - t0 };
      state.requests.push(rec);
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      res.on("close", () => state.inFlight--);
      const script = state.queue.shift() ?? state.fallback ?? status(599, {}, { error: { message: "chat-server: no scripted reply left" } });
      const reply = typeof script === "function" ? script(rec) : script;
      switch (reply.kind) {
        case "text": {
          const send = (): void => {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify(completion(body?.model ?? "?", reply)));
          };
          if (reply.delayMs) setTimeout(send, reply.delayMs);
          else send();
          return;
        }
        case "status":
          res.writeHead(reply.status, { "content-type": "application/json", ...(reply.headers ?? {}) });
          res.end(JSON.stringify(reply.body ?? { error: { message: `scripted status ${reply.status}`, type: "test" } }));
          return;
        case "raw":
          res.writeHead(reply.status ?? 200, { "content-type": reply.contentType ?? "application/json" });
          res.end(reply.body);
          return;
        case "hang":
          hanging.add(res);
          return;
        case "close":
          req.socket.destroy();
          return;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  state.baseURL = `http://127.0.0.1:${port}/v1`;
  return state;
}

/** The last user message of a request ("" if none). */
export function lastUser(req: ReceivedRequest): string {
  const users = (req.body?.messages ?? []).filter((m) => m.role === "user");
  return users[users.length - 1]?.content ?? "";
}

/** The token list of a simulation request (the JSON array after "as a JSON array:"), or undefined. */
export function simulationTokens(req: ReceivedRequest): string[] | undefined {
  const m = /as a JSON array: (\[.*\])\n/.exec(lastUser(req));
  return m ? (JSON.parse(m[1]!) as string[]) : undefined;
}

/** Splits a reply into scripted logprob tokens: `pieces` must spell `text`; `top` gives alternatives per piece index. */
export function tokensOf(pieces: string[], top: Record<number, Record<string, number>> = {}): ScriptedToken[] {
  return pieces.map((token, i) => ({ token, top: top[i] ?? { [token]: 1 } }));
}
