/**
 * Explain, simulate and score one node with an LLM, from its harvested records (no model needed):
 * the top excerpts are split into an explanation half and a validation half, the LLM explains the
 * first, simulates the second together with as many random excerpts (1:1), and the explanation is
 * scored by correlation and R^2 (and, on request, by delphi's detection and fuzzing scorers).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { isItemFailure, mapLimit, publicUrl, type LlmClient, type LlmIdentity } from "./llm.js";
import { PROMPT_VERSION, explanationMessages, maxActivationOf, parseExplanation } from "./prompts.js";
import { scoreDetection, scoreFuzzing, scoreSimulations, type LlmBinaryScore, type SimulationScore } from "./scoring.js";
import { checkSimulationMode, simulateTokens, type SimulationMode } from "./simulate.js";
import { nodeKey, type ActivationRecord, type ExplainableNode, type NodeRecords } from "./types.js";

/** Scorers {@link explainWithLlm} can run besides the simulation scores. */
export type LlmScorer = "detection" | "fuzzing";

/** Options of {@link explainWithLlm}. */
export interface ExplainWithLlmOptions {
  /** Score this explanation instead of asking for one (then no explanation request is made). */
  explanation?: string;
  /** Top excerpts shown to the explainer (default 10): the 1st, 3rd, 5th... by peak. */
  explainRecords?: number;
  /** Top excerpts simulated (default 10): the 2nd, 4th, 6th... by peak; as many random excerpts join them. */
  validationRecords?: number;
  /** Extra scorers (default none). */
  scorers?: LlmScorer[];
  /** How simulated values are read (default `auto`). */
  simulation?: SimulationMode;
  /** Logprob alternatives per token for the expected-value simulator (default 15). */
  topLogprobs?: number;
  /** Requests in flight (default 4; the client may limit further). */
  concurrency?: number;
  /** Seed of the delphi scorers' shuffling (default 0). */
  seed?: number;
  /** Cancels everything. */
  signal?: AbortSignal;
}

/** One validation excerpt and what the simulator made of it. */
export interface SimulatedRecord {
  /** Which records it comes from. */
  set: "top" | "random";
  /** The excerpt. */
  record: ActivationRecord;
  /** Simulated activations (0..10, one per token), or `null` when the simulation failed. */
  simulated: number[] | null;
  /** How the values were read (`json` or `expected-value`), when there are values. */
  method?: "json" | "expected-value";
}

/** A simulation or scoring step that failed (its excerpts are left out of the scores). */
export interface ExplainFailure {
  /** Which step. */
  stage: "simulation" | "detection" | "fuzzing";
  /** Index into {@link LlmExplanation.simulations} (simulation failures). */
  record?: number;
  /** Why. */
  reason: string;
  /** The client's error code, when the request itself failed. */
  code?: string;
  /** The unusable reply (cut), when one came. */
  reply?: string;
}

/** The result of {@link explainWithLlm}. */
export interface LlmExplanation {
  /** The node explained. */
  node: ExplainableNode;
  /** The explanation (the phrase that completes "this neuron activates for"). */
  explanation: string;
  /** Scores; `correlation` and `r2` are `null` when no validation excerpt could be simulated. */
  scores: { correlation: number | null; r2: number | null; detection?: LlmBinaryScore; fuzzing?: LlmBinaryScore };
  /** Details of the simulation scores (counts, degenerate rule), when any simulation succeeded. */
  simulationScore?: SimulationScore;
  /** Validation excerpts (top then random) with their simulated activations. */
  simulations: SimulatedRecord[];
  /** Excerpts used: shown to the explainer, and simulated. */
  records: { explanation: ActivationRecord[]; validation: { top: ActivationRecord[]; random: ActivationRecord[] } };
  /** The activation shown as 10. */
  maxActivation: number;
  /** Everything that failed without stopping the run. */
  failures: ExplainFailure[];
  /** {@link PROMPT_VERSION} used. */
  promptVersion: string;
  /** The LLM, when the client says. */
  llm?: LlmIdentity;
}

const peakOf = (r: ActivationRecord): number => r.activations.reduce((m, a) => (a > m ? a : m), -Infinity);

function count(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new TdbError("E_BAD_OPTION", `${name} must be an integer >= 1, got ${x}`, { value: x, allowed: ">= 1" });
  return x;
}

function checkRecords(records: NodeRecords): void {
  if (!records || !Array.isArray(records.top) || !Array.isArray(records.random)) {
    throw new TdbError("E_BAD_INPUT", "explainWithLlm needs NodeRecords { node, top, random, stats }", { value: typeof records, allowed: "NodeRecords" });
  }
  for (const [set, list] of [
    ["top", records.top],
    ["random", records.random],
  ] as const) {
    list.forEach((r, i) => {
      if (r.tokens.length !== r.activations.length) {
        throw new TdbError("E_BAD_INPUT", `${set}[${i}] has ${r.tokens.length} tokens but ${r.activations.length} activations`, { value: r.activations.length, allowed: r.tokens.length });
      }
    });
  }
  if (records.top.length < 2) {
    throw new TdbError("E_BAD_INPUT", `explainWithLlm needs at least 2 top excerpts (one to explain, one to validate), got ${records.top.length}`, {
      value: records.top.length,
      allowed: ">= 2",
    });
  }
}

/**
 * Explains `records.node` with `client`, simulates the validation excerpts from the explanation
 * and scores it. Unreadable simulation replies and transient request failures (after the client's
 * retries) are listed in `failures` and left out of the scores, never scored as zeros; auth,
 * configuration and abort errors reject. Rejects with `E_LLM_BAD_REPLY` when the explanation
 * reply holds no explanation.
 *
 * @example
 * ```ts
 * const llm = openAiClient({ model: "gpt-4o-mini" });
 * const r = await explainWithLlm(records, llm, { scorers: ["detection"] });
 * console.log(r.explanation, r.scores.correlation);
 * ```
 */
export async function explainWithLlm(records: NodeRecords, client: LlmClient, opts: ExplainWithLlmOptions = {}): Promise<LlmExplanation> {
  checkRecords(records);
  const mode = checkSimulationMode(opts.simulation ?? "auto");
  const nExplain = count("explainRecords", opts.explainRecords, 10);
  const nValidate = count("validationRecords", opts.validationRecords, 10);
  const concurrency = count("concurrency", opts.concurrency, 4);
  for (const s of opts.scorers ?? []) {
    if (s !== "detection" && s !== "fuzzing") throw new TdbError("E_BAD_OPTION", `unknown scorer ${JSON.stringify(s)}`, { value: s, allowed: ["detection", "fuzzing"] });
  }
  const top = records.top
    .map((r, i) => ({ r, i, p: peakOf(r) }))
    .sort((a, b) => b.p - a.p || a.i - b.i)
    .map((x) => x.r);
  const explainSet = top.filter((_, i) => i % 2 === 0).slice(0, nExplain);
  const validTop = top.filter((_, i) => i % 2 === 1).slice(0, nValidate);
  const validRandom = records.random.slice(0, validTop.length);
  const statsMax = Number.isFinite(records.stats?.max) ? records.stats.max : 0;
  const max = Math.max(statsMax, maxActivationOf(records.top), maxActivationOf(records.random));
  if (!(max > 0)) {
    throw new TdbError("E_BAD_INPUT", `node ${nodeKey(records.node)} never activates above 0 in its records: nothing to explain`, { value: max, allowed: "> 0" });
  }
  const node = records.node;
  const signal = opts.signal;

  let explanation = opts.explanation?.trim();
  if (explanation === undefined || explanation === "") {
    const reply = await client.chat({ messages: explanationMessages(node, explainSet, max), temperature: 0, maxTokens: 120, ...(signal ? { signal } : {}) });
    explanation = parseExplanation(reply.text, node);
    if (explanation === undefined) {
      throw new TdbError("E_LLM_BAD_REPLY", `the explanation reply for ${nodeKey(node)} holds no explanation`, { value: reply.text.slice(0, 200), allowed: "one line of text" });
    }
  }
  const expl = explanation;

  const simulations: SimulatedRecord[] = [...validTop.map((record) => ({ set: "top" as const, record, simulated: null })), ...validRandom.map((record) => ({ set: "random" as const, record, simulated: null }))];
  const failures: ExplainFailure[] = [];
  await mapLimit(simulations, concurrency, async (s, index) => {
    try {
      const sim = await simulateTokens(expl, s.record.tokens, client, { mode, node, ...(opts.topLogprobs ? { topLogprobs: opts.topLogprobs } : {}), ...(signal ? { signal } : {}) });
      if (sim.ok) {
        s.simulated = sim.values;
        s.method = sim.method;
      } else failures.push({ stage: "simulation", record: index, reason: sim.reason, ...(sim.reply !== undefined ? { reply: sim.reply } : {}) });
    } catch (e) {
      if (!isItemFailure(e)) throw e;
      failures.push({ stage: "simulation", record: index, reason: e.message, code: e.code });
    }
  });
  failures.sort((a, b) => (a.record ?? 0) - (b.record ?? 0));
  const done = simulations.filter((s) => s.simulated !== null);
  const simulationScore =
    done.length > 0
      ? scoreSimulations(
          done.map((s) => s.record.activations),
          done.map((s) => s.simulated!),
          max,
        )
      : undefined;

  const scores: LlmExplanation["scores"] = { correlation: simulationScore?.correlation ?? null, r2: simulationScore?.r2 ?? null };
  const scorerOpts = { concurrency, seed: opts.seed ?? 0, max, node, ...(signal ? { signal } : {}) };
  if (opts.scorers?.includes("detection")) {
    scores.detection = await scoreDetection(expl, { top: validTop, random: validRandom }, client, scorerOpts);
    for (const f of scores.detection.failures) failures.push({ stage: "detection", reason: f.reason, ...(f.code ? { code: f.code } : {}), ...(f.reply !== undefined ? { reply: f.reply } : {}) });
  }
  if (opts.scorers?.includes("fuzzing")) {
    scores.fuzzing = await scoreFuzzing(expl, validTop, client, scorerOpts);
    for (const f of scores.fuzzing.failures) failures.push({ stage: "fuzzing", reason: f.reason, ...(f.code ? { code: f.code } : {}), ...(f.reply !== undefined ? { reply: f.reply } : {}) });
  }
  return {
    node,
    explanation: expl,
    scores,
    ...(simulationScore ? { simulationScore } : {}),
    simulations,
    records: { explanation: explainSet, validation: { top: validTop, random: validRandom } },
    maxActivation: max,
    failures,
    promptVersion: PROMPT_VERSION,
    ...(client.identity ? { llm: client.identity } : {}),
  };
}

/** What an explanation's cache entry depends on. */
export interface CacheKeyParts {
  /** The explained model's id (hub id, path or name). */
  modelId: string;
  /** The node, or its {@link nodeKey}. */
  node: ExplainableNode | string;
  /** The LLM (credentials are never part of it), or `"offline"` for the offline explainer. */
  llm: LlmIdentity | "offline";
  /** Prompt version (default {@link PROMPT_VERSION}). */
  promptVersion?: string;
  /** Other settings that change the result (record counts, simulation mode, scorers, ...), as JSON-able values. */
  settings?: Readonly<Record<string, unknown>>;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** 64-bit FNV-1a of a string's UTF-16 code units, as 16 hex digits. */
export function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

/**
 * The cache key of an explanation: a readable, canonical string made of the prompt version, the
 * model id, the node key, the LLM (provider, base URL without credentials or query, model) and a
 * hash of the other settings. Never contains an API key (an {@link LlmIdentity} carries none, and
 * the base URL is stripped of user info and query). Use {@link fnv1a64} of it for a file name.
 *
 * @example
 * ```ts
 * cacheKey({ modelId: "tdb:brown-small", node: { kind: "mlp_neuron", layer: 2, index: 17 }, llm: llm.identity! });
 * // "tdb-llm-1|tdb:brown-small|mlp.2.17|openai-compatible|https://api.openai.com/v1|gpt-4o-mini|<hash>"
 * ```
 */
export function cacheKey(parts: CacheKeyParts): string {
  if (typeof parts?.modelId !== "string" || parts.modelId === "") throw new TdbError("E_BAD_INPUT", "cacheKey needs a modelId", { value: parts?.modelId, allowed: "a non-empty string" });
  const node = typeof parts.node === "string" ? parts.node : nodeKey(parts.node);
  const llm = parts.llm === "offline" ? ["offline", "", ""] : [parts.llm.provider, parts.llm.baseURL ? publicUrl(parts.llm.baseURL) : "", parts.llm.model];
  const settings = fnv1a64(canonical(parts.settings ?? {}));
  return [parts.promptVersion ?? PROMPT_VERSION, parts.modelId, node, ...llm, settings].join("|");
}
