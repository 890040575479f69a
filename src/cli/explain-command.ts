/**
 * `tdb explain (--layer L --neuron I[,I...] | --node ID[,ID...]) [...]`: explains nodes (MLP
 * neurons, SAE latents, attention heads) with `model.explainNeuron`, offline (`--offline`, the
 * token-pattern explainer) or with an OpenAI-compatible LLM (`--llm-base-url`, `--llm-model`;
 * the API key only from the environment, `TDB_LLM_API_KEY` or `OPENAI_API_KEY`, never printed),
 * and prints each explanation with its scores and top excerpts.
 *
 * Records: from `--records <dir>` (written by `tdb harvest`), else harvested once for all the
 * nodes from `--corpus` (default Brown) over `--tokens` tokens (default 50000).
 *
 * Node ids are the attribution table's: `mlp.L.I`, `attn.L.H`, `sae.<hook>.I`. stdout gets the
 * result: with `--json` exactly one JSON object (`{"schema": "tdb.explain/1", ...}`), otherwise
 * a short table per node with its top excerpts, the peak token of each marked `[[like this]]`.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { LlmScorer } from "../explainer/explain-llm.js";
import type { LlmClient } from "../explainer/llm.js";
import { openAiClient } from "../explainer/openai-client.js";
import type { HarvestedRecords } from "../explainer/records-data.js";
import { readRecords } from "../explainer/records-node.js";
import { harvestRecords } from "../explainer/records.js";
import { nodeKey, type ActivationRecord, type ExplainableNode } from "../explainer/types.js";
import "../io/node-store.js";
import type { NodeExplanation } from "../model/explain.js";
import { Model } from "../model/model.js";
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import { corpusDocuments, harvestProgress, intFlag, intList } from "./harvest-command.js";
import { checkSaeFlags, loadSaeFlags } from "./sae-flags.js";
import { UsageError } from "./usage.js";

/** Tokens harvested when neither `--records` nor `--tokens` is given. */
export const DEFAULT_EXPLAIN_TOKENS = 50_000;

/** Parsed arguments of `tdb explain`. */
export interface ExplainArgs {
  /** Model directory, hub id or `tdb:<name>`. */
  model?: string;
  /** The nodes to explain. */
  nodes: ExplainableNode[];
  /** Record set directory. */
  records?: string;
  /** SAE sources (for harvesting SAE latents). */
  saes: string[];
  /** Corpus file (default Brown) when harvesting. */
  corpus?: string;
  /** Token budget when harvesting. */
  tokens: number;
  /** Harvest: tokens per excerpt, top and random excerpts. */
  context?: number;
  top?: number;
  random?: number;
  /** Offline explainer, or an LLM (base URL, model, retries). */
  offline: boolean;
  llmBaseUrl?: string;
  llmModel?: string;
  llmRetries?: number;
  /** LLM scorers. */
  scorers: LlmScorer[];
  /** Cache directory. */
  cache?: string;
  /** Machine-readable output. */
  json: boolean;
}

/** The flag values `tdb explain` reads. */
export interface ExplainFlags {
  model?: string;
  layer?: string;
  neuron?: string[];
  node?: string[];
  records?: string;
  sae?: string[];
  corpus?: string;
  tokens?: string;
  context?: string;
  top?: string;
  random?: string;
  offline?: boolean;
  "llm-base-url"?: string;
  "llm-model"?: string;
  "llm-retries"?: string;
  scorers?: string;
  cache?: string;
  json?: boolean;
}

/**
 * A node id: `mlp.L.I`, `attn.L.H` or `sae.<hook>.I` (a usage error otherwise; ranges are
 * checked against the model or the records later, as typed errors).
 */
export function parseNodeId(id: string): ExplainableNode {
  const s = id.trim();
  let m = /^mlp\.(\d+)\.(\d+)$/.exec(s);
  if (m) return { kind: "mlp_neuron", layer: Number(m[1]), index: Number(m[2]) };
  m = /^attn\.(\d+)\.(\d+)$/.exec(s);
  if (m) return { kind: "attention_head", layer: Number(m[1]), head: Number(m[2]) };
  m = /^sae\.([A-Za-z_][\w.]*)\.(\d+)$/.exec(s);
  if (m) return { kind: "sae_latent", hook: m[1]!, index: Number(m[2]) };
  throw new UsageError(`--node ${JSON.stringify(id)}: expected mlp.LAYER.INDEX, attn.LAYER.HEAD or sae.HOOK.INDEX, e.g. mlp.2.17`, id);
}

/** Checks `tdb explain`'s flags (usage errors, exit 2, before anything is loaded). */
export function parseExplainArgs(f: ExplainFlags, env: Record<string, string | undefined> = process.env): ExplainArgs {
  const nodes: ExplainableNode[] = [];
  if (f.neuron !== undefined) {
    if (f.layer === undefined) throw new UsageError("--neuron needs --layer L (or use --node mlp.L.I)", "--neuron");
    const layer = intFlag("layer", f.layer, 0)!;
    for (const v of f.neuron) for (const index of intList("neuron", v)) nodes.push({ kind: "mlp_neuron", layer, index });
  } else if (f.layer !== undefined) throw new UsageError("--layer needs --neuron I[,I...]", "--layer");
  for (const v of f.node ?? []) for (const id of v.split(",")) nodes.push(parseNodeId(id));
  if (nodes.length === 0) throw new UsageError("explain needs the nodes: --layer L --neuron I[,I...] or --node mlp.L.I|attn.L.H|sae.HOOK.I", "--node");
  const offline = f.offline ?? false;
  const llmModel = f["llm-model"] ?? (env.TDB_LLM_MODEL || undefined);
  if (offline && (f["llm-base-url"] !== undefined || f["llm-model"] !== undefined || f["llm-retries"] !== undefined)) {
    throw new UsageError("--offline takes no --llm-* flags", "--offline");
  }
  if (!offline && llmModel === undefined) throw new UsageError("explain needs --offline, or an LLM: --llm-model M [--llm-base-url URL] (or TDB_LLM_MODEL)", "--llm-model");
  if (f["llm-model"] !== undefined && f["llm-model"].trim() === "") throw new UsageError("--llm-model is empty", "");
  const scorers: LlmScorer[] = [];
  if (f.scorers !== undefined) {
    if (offline) throw new UsageError("--scorers are LLM scorers; --offline scores by simulation only", "--scorers");
    for (const s of f.scorers.split(",").map((x) => x.trim())) {
      if (s !== "detection" && s !== "fuzzing") throw new UsageError(`--scorers takes detection and/or fuzzing, got ${JSON.stringify(s)}`, s);
      if (!scorers.includes(s)) scorers.push(s);
    }
  }
  if (f.records !== undefined && (f.corpus !== undefined || f.tokens !== undefined || f.context !== undefined || f.top !== undefined || f.random !== undefined)) {
    throw new UsageError("--records is a harvested record set; --corpus, --tokens, --context, --top and --random are for harvesting without it", "--records");
  }
  if (f.records !== undefined && f.records.trim() === "") throw new UsageError("--records is empty", "");
  return {
    model: f.model,
    nodes,
    records: f.records,
    saes: checkSaeFlags(f.sae ?? []),
    corpus: f.corpus,
    tokens: intFlag("tokens", f.tokens, 1) ?? DEFAULT_EXPLAIN_TOKENS,
    context: intFlag("context", f.context, 1),
    top: intFlag("top", f.top, 1),
    random: intFlag("random", f.random, 0),
    offline,
    llmBaseUrl: f["llm-base-url"],
    llmModel,
    llmRetries: intFlag("llm-retries", f["llm-retries"], 0),
    scorers,
    cache: f.cache,
    json: f.json ?? false,
  };
}

/** An excerpt as text around its peak, the peak token marked `[[...]]`, at most `width` tokens. */
export function excerptText(r: ActivationRecord, width = 16): string {
  if (r.tokens.length === 0) return "";
  let peak = 0;
  r.activations.forEach((a, i) => {
    if (a > r.activations[peak]!) peak = i;
  });
  const from = Math.max(0, Math.min(peak - Math.floor((width * 3) / 4), r.tokens.length - width));
  const to = Math.min(r.tokens.length, from + width);
  const parts = r.tokens.slice(from, to).map((t, i) => (from + i === peak ? `[[${t}]]` : t));
  return `${from > 0 ? "…" : ""}${parts.join("")}${to < r.tokens.length ? "…" : ""}`.replace(/\n/g, "⏎");
}

const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? "n/a" : v.toFixed(3));

function jsonOf(e: NodeExplanation): unknown {
  return {
    node: nodeKey(e.node),
    spec: e.node,
    explainer: e.explainer,
    llm: e.llm ?? null,
    explanation: e.explanation,
    scores: e.scores,
    version: e.version,
    cached: e.cached,
    stats: e.records.stats,
    top: e.records.top.slice(0, 5).map((r) => ({ tokens: r.tokens, activations: r.activations, source: r.source ?? null })),
    simulated: e.simulated.map((s) => ({ set: s.set, tokens: s.record.tokens, activations: s.record.activations, simulated: s.simulated })),
  };
}

function printText(e: NodeExplanation): void {
  const who = e.explainer === "llm" ? `llm ${e.llm?.model ?? "?"}` : "offline";
  const extra = [e.scores.detection !== undefined ? `detection ${fmt(e.scores.detection)}` : "", e.scores.fuzzing !== undefined ? `fuzzing ${fmt(e.scores.fuzzing)}` : ""].filter(Boolean);
  console.log(`${nodeKey(e.node)}  (${who}${e.cached ? ", cached" : ""})`);
  console.log(`  explanation  ${e.explanation}`);
  console.log(`  scores       correlation ${fmt(e.scores.correlation)}  r2 ${fmt(e.scores.r2)}${extra.length ? `  ${extra.join("  ")}` : ""}`);
  console.log(`  stats        max ${e.records.stats.max.toFixed(3)}  mean ${e.records.stats.mean.toFixed(3)}  density ${e.records.stats.density.toFixed(3)}  (${e.records.stats.count} tokens)`);
  console.log("  top excerpts (peak token in [[ ]])");
  for (const r of e.records.top.slice(0, 5)) console.log(`    ${Math.max(...r.activations).toFixed(3).padStart(8)}  ${excerptText(r)}`);
}

/** Runs `tdb explain`; returns the exit code. */
export async function runExplain(args: ExplainArgs): Promise<number> {
  const modelId = args.model ?? DEFAULT_MODEL_ID;
  // The client first: a bad base URL is reported before anything loads. The key comes from the environment only.
  let explainer: LlmClient | "offline" = "offline";
  if (!args.offline) {
    explainer = openAiClient({
      model: args.llmModel,
      ...(args.llmBaseUrl !== undefined ? { baseURL: args.llmBaseUrl } : {}),
      ...(args.llmRetries !== undefined ? { maxRetries: args.llmRetries } : {}),
      // Retry notices only (the final error is printed once, by main); the client redacts the key.
      log: (line) => {
        if (line.startsWith("tdb llm:")) process.stderr.write(`${line}\n`);
      },
    });
  }
  const saes = await loadSaeFlags(args.saes);
  const model = await Model.load(modelId);
  try {
    let records: HarvestedRecords;
    if (args.records !== undefined) records = await readRecords(args.records);
    else {
      const progress = harvestProgress(args.json);
      records = await harvestRecords(model, corpusDocuments(args.corpus), {
        nodes: args.nodes,
        saes: saes.map((s) => s.sae),
        tokens: args.tokens,
        ...(args.context !== undefined ? { contextTokens: args.context } : {}),
        ...(args.top !== undefined ? { topK: args.top } : {}),
        ...(args.random !== undefined ? { randomK: args.random } : {}),
        onProgress: progress.onProgress,
      });
      progress.done();
    }
    for (const node of args.nodes) {
      if (!records.has(node)) {
        const keys = records.nodes.map(nodeKey);
        throw new TdbError("E_BAD_INPUT", `the records${args.records !== undefined ? ` in ${args.records}` : ""} hold no ${nodeKey(node)}`, {
          value: nodeKey(node),
          allowed: keys.length > 20 ? [...keys.slice(0, 19), "…"] : keys,
        });
      }
    }
    const results: NodeExplanation[] = [];
    for (const node of args.nodes) {
      const e = await model.explainNeuron(node, explainer, {
        records,
        modelId,
        ...(args.scorers.length ? { scorers: args.scorers } : {}),
        ...(args.cache !== undefined ? { cache: args.cache } : {}),
      });
      results.push(e);
      if (!args.json) printText(e);
    }
    if (args.json) console.log(JSON.stringify({ schema: "tdb.explain/1", model: modelId, records: args.records ?? null, explanations: results.map(jsonOf) }));
    return 0;
  } finally {
    for (const s of saes) await s.sae.dispose();
    await model.dispose();
  }
}
