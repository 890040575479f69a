/**
 * The simulator: given an explanation, an LLM predicts the node's activation (0..10) at every
 * token of an excerpt. Two readings of the reply: the JSON values themselves (any chat model), or
 * the expected value over the probabilities of "0".."10" where the endpoint returns logprobs.
 * A reply that cannot be read is a failed simulation (with the reason), never zeros.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { LlmClient } from "./llm.js";
import { expectedValuesFromLogprobs, parseSimulation, simulationMessages } from "./prompts.js";
import type { ExplainableNode } from "./types.js";

/**
 * How simulated values are read: `json` (the integers in the reply), `expected-value` (requires
 * logprobs; a reply without them fails), `auto` (asks for logprobs, uses them when the reply has
 * them, else the integers).
 */
export type SimulationMode = "json" | "expected-value" | "auto";

/** The simulation modes. */
export const SIMULATION_MODES: readonly SimulationMode[] = Object.freeze(["json", "expected-value", "auto"]);

/** Options of {@link simulateTokens}. */
export interface SimulateOptions {
  /** Reading of the reply (default `auto`). */
  mode?: SimulationMode;
  /** Alternatives per token asked for in the logprob modes (default 15, at most 20). */
  topLogprobs?: number;
  /** Extra attempts after an unreadable reply (default 1). Transport errors are the client's to retry. */
  retries?: number;
  /** Token limit of the reply (default: 8 per token + 64). */
  maxTokens?: number;
  /** The node, to phrase the prompt ("this neuron activates for", ...). */
  node?: ExplainableNode;
  /** Cancels the simulation. */
  signal?: AbortSignal;
}

/** A simulation's outcome: the values (0..10, one per token) or why there are none. */
export type Simulation =
  | {
      ok: true;
      /** Simulated activation per token, on the 0..10 scale. */
      values: number[];
      /** How they were read from the reply. */
      method: "json" | "expected-value";
      /** Requests made (1 + retries used). */
      requests: number;
    }
  | {
      ok: false;
      /** Why the reply could not be used. */
      reason: string;
      /** The last reply's text (cut to 500 characters), if a reply came. */
      reply?: string;
      /** Requests made. */
      requests: number;
    };

/** Checks a {@link SimulationMode}. */
export function checkSimulationMode(mode: unknown): SimulationMode {
  if (typeof mode !== "string" || !(SIMULATION_MODES as readonly string[]).includes(mode)) {
    throw new TdbError("E_BAD_OPTION", `unknown simulation mode ${JSON.stringify(mode)}`, { value: mode, allowed: [...SIMULATION_MODES] });
  }
  return mode as SimulationMode;
}

/**
 * Simulates one excerpt: asks `client` for the activation of every token of `tokens` under
 * `explanation`. Resolves to a failed {@link Simulation} on unreadable replies; rejects only with
 * the client's errors (transport, auth, abort).
 *
 * @example
 * ```ts
 * const sim = await simulateTokens("days of the week", [" on", " Monday"], llm);
 * if (sim.ok) console.log(sim.values); // e.g. [0, 10]
 * ```
 */
export async function simulateTokens(explanation: string, tokens: readonly string[], client: LlmClient, opts: SimulateOptions = {}): Promise<Simulation> {
  const mode = checkSimulationMode(opts.mode ?? "auto");
  const retries = opts.retries ?? 1;
  if (!Number.isInteger(retries) || retries < 0) throw new TdbError("E_BAD_OPTION", `retries must be an integer >= 0, got ${retries}`, { value: retries, allowed: ">= 0" });
  const topLogprobs = opts.topLogprobs ?? 15;
  if (!Number.isInteger(topLogprobs) || topLogprobs < 1 || topLogprobs > 20) {
    throw new TdbError("E_BAD_OPTION", `topLogprobs must be an integer in 1..20, got ${topLogprobs}`, { value: topLogprobs, allowed: "1..20" });
  }
  if (tokens.length === 0) return { ok: true, values: [], method: "json", requests: 0 };
  const messages = simulationMessages(explanation, tokens, opts.node);
  let last: Simulation = { ok: false, reason: "no request made", requests: 0 };
  for (let attempt = 0; attempt <= retries; attempt++) {
    const reply = await client.chat({
      messages,
      temperature: 0,
      maxTokens: opts.maxTokens ?? tokens.length * 8 + 64,
      ...(mode === "json" ? {} : { topLogprobs }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const requests = attempt + 1;
    const cut = reply.text.slice(0, 500);
    if (mode !== "json" && reply.logprobs && reply.logprobs.length > 0) {
      const ev = expectedValuesFromLogprobs(reply.text, reply.logprobs, tokens.length);
      if (ev.ok) return { ok: true, values: ev.value.values, method: "expected-value", requests };
      if (mode === "expected-value") {
        last = { ok: false, reason: ev.reason, reply: cut, requests };
        continue;
      }
    }
    if (mode === "expected-value") {
      last = { ok: false, reason: "the endpoint returned no logprobs (expected-value mode needs them)", reply: cut, requests };
      break;
    }
    const parsed = parseSimulation(reply.text, tokens.length);
    if (parsed.ok) return { ok: true, values: parsed.value, method: "json", requests };
    last = { ok: false, reason: parsed.reason, reply: cut, requests };
  }
  return last;
}
