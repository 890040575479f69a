/**
 * `Model.explainNeuron`: records (given, or harvested from a corpus), then an explanation with
 * its scores, from an LLM (explain, simulate, score) or offline (the token-pattern explainer for
 * neurons and SAE latents, the (query, key) relation explainer for attention heads),
 * cached in a key-value store keyed by model, node, explainer version and LLM. Composition of
 * the explainer feature with the model; the explaining itself lives in `src/explainer/`.
 *
 * @module
 */
import { object, oneOf } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { cacheKey, explainWithLlm, fnv1a64, type ExplainWithLlmOptions, type LlmScorer } from "../explainer/explain-llm.js";
import type { LlmClient, LlmIdentity } from "../explainer/llm.js";
import { explainOffline, type OfflineExplainOptions } from "../explainer/offline.js";
import { explainHeadOffline, type OfflineHeadExplainOptions } from "../explainer/offline-heads.js";
import { PROMPT_VERSION } from "../explainer/prompts.js";
import type { HarvestedRecords } from "../explainer/records-data.js";
import { harvestRecords, type HarvestRecordsOptions, type RecordsCorpus } from "../explainer/records.js";
import { nodeKey, type ActivationRecord, type ExplainableNode, type NodeRecords } from "../explainer/types.js";
import { directoryStore, type KeyValueStore } from "../io/store.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { Sae } from "../sae/sae.js";

/** Version of the offline explainer's output for neurons and SAE latents, part of its cache keys. */
export const OFFLINE_EXPLAINER_VERSION = "tdb-offline-1";

/** Version of the offline explainer's output for attention heads (`explainHeadOffline`), part of its cache keys. */
export const OFFLINE_HEAD_EXPLAINER_VERSION = "tdb-offline-heads-1";

/** Options of {@link Model.explainNeuron}. */
export interface ExplainNeuronOptions {
  /** The node's records: one node's, or a harvest that holds it. Without them, `corpus` is harvested. */
  records?: NodeRecords | HarvestedRecords;
  /** Text to harvest records from when `records` is not given (strings or corpus documents). */
  corpus?: RecordsCorpus;
  /** Harvest settings (context tokens, top and random excerpts, token budget, ...). */
  harvest?: Omit<HarvestRecordsOptions, "nodes" | "saes">;
  /** SAEs whose latents may be explained (harvesting an `sae_latent` node needs the SAE at its hook). */
  saes?: readonly Sae[];
  /** LLM explainers: extra scorers (`detection`, `fuzzing`). */
  scorers?: readonly LlmScorer[];
  /** LLM explainers: prompt and simulation settings. */
  llm?: Omit<ExplainWithLlmOptions, "scorers">;
  /** The offline explainer's settings (MLP neurons and SAE latents: `explainOffline`). */
  offline?: OfflineExplainOptions;
  /** The offline explainer's settings for attention heads (`explainHeadOffline`). */
  offlineHeads?: OfflineHeadExplainOptions;
  /** Where results are cached: a store, or a directory (Node.js, Deno). [default: no cache] */
  cache?: KeyValueStore | string;
  /** The model's name in cache keys. [default: what the model was loaded from] */
  modelId?: string;
}

/** One validation excerpt with the explainer's simulation of it. */
export interface SimulatedExcerpt {
  /** Top-activating or random excerpt. */
  set: "top" | "random";
  /** The excerpt with its true activations. */
  record: ActivationRecord;
  /** Simulated activations on the 0..10 scale, one per token, or null when the simulation failed. */
  simulated: number[] | null;
}

/** What {@link Model.explainNeuron} returns. */
export interface NodeExplanation {
  /** The node explained. */
  node: ExplainableNode;
  /** Who explained it. */
  explainer: "offline" | "llm";
  /** The LLM, for `llm` (never its key). */
  llm?: LlmIdentity;
  /** The explanation ("this neuron activates for ..." completed, or the offline patterns). */
  explanation: string;
  /**
   * Correlation of true and simulated activations over validation excerpts (top and random, 1:1),
   * the simulation's R^2 on the 0..10 scale, and the LLM scorers' balanced accuracies. `null`
   * when no simulation could be scored.
   */
  scores: { correlation: number | null; r2: number | null; detection?: number; fuzzing?: number };
  /** The validation excerpts and their simulations. */
  simulated: SimulatedExcerpt[];
  /** The records explained. */
  records: NodeRecords;
  /** Prompt or explainer version (part of the cache key). */
  version: string;
  /** Whether this came from the cache. */
  cached: boolean;
}

function isHarvested(r: unknown): r is HarvestedRecords {
  return typeof r === "object" && r !== null && typeof (r as HarvestedRecords).node === "function" && typeof (r as HarvestedRecords).has === "function";
}

function checkNode(node: unknown): ExplainableNode {
  object("node", node, 'a node: { kind: "mlp_neuron", layer, index }, { kind: "sae_latent", hook, index } or { kind: "attention_head", layer, head }');
  oneOf("node.kind", (node as { kind: unknown }).kind, ["mlp_neuron", "sae_latent", "attention_head"] as const);
  return node as ExplainableNode;
}

/** The node's records: from `records`, else harvested from `corpus`. */
async function recordsFor(rt: ModelRuntime, node: ExplainableNode, opts: ExplainNeuronOptions): Promise<NodeRecords> {
  const key = nodeKey(node);
  if (opts.records !== undefined) {
    if (isHarvested(opts.records)) {
      if (!opts.records.has(node)) {
        throw new TdbError("E_BAD_INPUT", `the records given do not hold ${key}`, { value: key, allowed: opts.records.nodes.slice(0, 20).map(nodeKey) });
      }
      return opts.records.node(node);
    }
    object("records", opts.records, "NodeRecords or harvested records");
    const got = opts.records.node ? nodeKey(opts.records.node) : undefined;
    if (got !== key) throw new TdbError("E_BAD_INPUT", `the records given are of ${got}, not ${key}`, { value: got, allowed: key });
    return opts.records;
  }
  if (opts.corpus === undefined) {
    throw new TdbError("E_BAD_OPTION", "explainNeuron needs the node's records or a corpus to harvest them from", { value: "neither records nor corpus", allowed: ["records", "corpus"] });
  }
  const harvested = await harvestRecords(rt, opts.corpus, { ...opts.harvest, nodes: [node], saes: opts.saes });
  return harvested.node(node);
}

/**
 * Explains `node` with `explainer` (an {@link LlmClient}, or `"offline"`): see
 * {@link ExplainNeuronOptions}. Cached results are returned as they were stored (`cached: true`).
 */
export async function explainNeuron(rt: ModelRuntime, node: ExplainableNode, explainer: LlmClient | "offline", opts: ExplainNeuronOptions = {}): Promise<NodeExplanation> {
  checkNode(node);
  object("options", opts, "an options object");
  const offline = explainer === "offline";
  if (!offline && (typeof explainer !== "object" || explainer === null || typeof (explainer as LlmClient).chat !== "function")) {
    throw new TdbError("E_BAD_OPTION", 'the explainer must be an LlmClient (openAiClient(...)) or "offline"', { value: explainer === null ? null : typeof explainer, allowed: ["an LlmClient", "offline"] });
  }
  const store = typeof opts.cache === "string" ? directoryStore(opts.cache) : opts.cache;
  const head = node.kind === "attention_head";
  const version = offline ? (head ? OFFLINE_HEAD_EXPLAINER_VERSION : OFFLINE_EXPLAINER_VERSION) : PROMPT_VERSION;
  const llm: LlmIdentity | "offline" = offline ? "offline" : (explainer.identity ?? { provider: "custom", model: "unknown" });
  const settings = offline
    ? { offline: (head ? opts.offlineHeads : opts.offline) ?? {}, harvest: opts.harvest ?? {} }
    : { llm: opts.llm ?? {}, scorers: opts.scorers ?? [], harvest: opts.harvest ?? {} };
  // Given records key the cache by their content; harvested ones by the harvest settings.
  const given = opts.records === undefined ? undefined : await recordsFor(rt, node, opts);
  const key = store
    ? cacheKey({ modelId: opts.modelId ?? rt.source, node, llm, promptVersion: version, settings: { ...settings, records: given ? fnv1a64(JSON.stringify(given)) : "harvested" } })
    : "";
  if (store) {
    const hit = await store.get(key);
    if (hit !== undefined) {
      try {
        return { ...(JSON.parse(hit) as NodeExplanation), cached: true };
      } catch {
        // a damaged entry: explain again and overwrite it
      }
    }
  }
  const records = given ?? (await recordsFor(rt, node, opts));
  let result: NodeExplanation;
  if (offline) {
    // Heads: the (query, key) relation explainer; neurons and latents: token patterns.
    const r = head ? explainHeadOffline(records, opts.offlineHeads) : explainOffline(records, opts.offline);
    result = {
      node,
      explainer: "offline",
      explanation: r.explanation,
      scores: { correlation: r.scores.correlation, r2: r.scores.r2 },
      simulated: r.validation.map((record, i) => ({
        set: records.top.includes(record) ? ("top" as const) : ("random" as const),
        record,
        simulated: r.simulated[i]!.map((v) => (r.maxActivation > 0 ? Math.min(10, (10 * Math.max(0, v)) / r.maxActivation) : 0)),
      })),
      records,
      version,
      cached: false,
    };
  } else {
    const r = await explainWithLlm(records, explainer, { ...opts.llm, scorers: opts.scorers ? [...opts.scorers] : undefined });
    result = {
      node,
      explainer: "llm",
      llm: explainer.identity,
      explanation: r.explanation,
      scores: {
        correlation: r.scores.correlation,
        r2: r.scores.r2,
        ...(r.scores.detection ? { detection: r.scores.detection.balancedAccuracy } : {}),
        ...(r.scores.fuzzing ? { fuzzing: r.scores.fuzzing.balancedAccuracy } : {}),
      },
      simulated: r.simulations.map((s) => ({ set: s.set, record: s.record, simulated: s.simulated })),
      records,
      version,
      cached: false,
    };
  }
  if (store) await store.set(key, JSON.stringify(result));
  return result;
}
