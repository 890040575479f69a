/**
 * `Model`: a tokenizer, a config and an ONNX graph patched so that hooks become graph outputs.
 *
 * @module
 */
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import type { ModelProto } from "onnx-buf";
import { Activation } from "../trace/activation.js";
import { ActivationCache } from "../trace/cache.js";
import { parseConfig, type ModelConfig } from "../runtime/config.js";
import { TdbError, formatAllowed } from "../base/errors.js";
import type { ArchitectureAdapter, HookMap, ModelWeights } from "../hooks/adapter.js";
import { gpt2Adapter } from "../hooks/gpt2.js";
import { hookKindOf, hookNamesFor, parseHookName, type HookName } from "../hooks/names.js";
import { readText, type ModelFiles } from "../io/files.js";
import type { HubOptions } from "../io/hub.js";
import { resolveExternalData } from "../onnx/external.js";
import { OnnxGraph } from "../onnx/graph.js";
import { decodeModel } from "../onnx/proto.js";
import { inlineIfBranch, pruneDeadNodes, removeUnusedInputs } from "../onnx/surgery.js";
import { buildPatchedGraph, LOGIT_POSITIONS_INPUT, rowsInput, type PatchedGraph } from "../runtime/patched-graph.js";
import type { HostTensor } from "../onnx/tensor.js";
import { padBatch, type TokenBatch } from "../runtime/batch.js";
import type { Device, OptimizationLevel, Session } from "../runtime/ort.js";
import { SessionPool, type PatchedSession } from "../runtime/sessions.js";
import { Trace, type TokenCodec } from "../trace/trace.js";
import { loadTokenizer } from "../runtime/tokenizer.js";
import { resolvePosition } from "../base/positions.js";
import type { Edit } from "../intervene/edits.js";
import { intervene, type InterveneOptions } from "../intervene/intervene.js";
import type { InterventionResult } from "../intervene/result.js";
import { patchingSweep, type SweepOptions, type SweepResult } from "../intervene/sweep.js";
import { generate, type GenerateOptions, type Generation } from "../intervene/generate.js";
import { attribute, traceUpstream, type AttributeOptions, type NodeTable, type UpstreamNode, type UpstreamOptions } from "../attribution/node-table.js";
import { directLogitAttribution, logitLens, type DlaResult, type LogitDiffOptions, type LogitLensRow } from "../attribution/dla.js";

/** Adapters by config `model_type`. */
const ADAPTERS: readonly ArchitectureAdapter[] = [gpt2Adapter];

/** ONNX file names tried in order for each dtype, as transformers.js names them. */
export const ONNX_FILES = {
  fp32: ["onnx/model.onnx", "onnx/decoder_model_merged.onnx", "onnx/decoder_model.onnx", "model.onnx"],
} as const;

/** Weight dtypes tdb-js can hook today. */
export type Dtype = keyof typeof ONNX_FILES;

/** Which hooks to cache: names, a predicate over names, or `"all"` (every non-opt-in hook). */
export type HookSelector = "all" | readonly string[] | ((name: HookName) => boolean);

/** Options for {@link Model.load}. */
export interface LoadOptions {
  /** Weight dtype; selects the ONNX file. [default: "fp32"] */
  dtype?: Dtype;
  /** Execution device. [default: "cpu"] */
  device?: Device;
  /** Hooks to build the first patched session for, at load time. [default: none until the first trace] */
  hooks?: HookSelector;
  /** Download cache for hub ids. [default: transformers.js `env.cacheDir`] */
  cacheDir?: string;
  /** Hub revision. [default: "main"] */
  revision?: string;
  /** onnxruntime graph optimization level. [default: "all"] */
  optimizationLevel?: OptimizationLevel;
  /** Patched sessions kept alive at once (each holds the weights). [default: 2] */
  maxSessions?: number;
  /** Read files through this adapter instead of the filesystem or the hub. */
  files?: ModelFiles;
  /** Hub download settings (timeout, custom fetch) for hub ids. */
  hub?: Pick<HubOptions, "timeoutMs" | "fetch">;
}

/** Options for {@link Model.trace}. */
export interface TraceOptions {
  /** Hooks to cache. [default: "all"] */
  hooks?: HookSelector;
  /** Keep only these positions (negative counts from the end) on `pos`/`query_pos` axes. */
  positions?: readonly number[];
  /** Prepend the BOS token to string prompts, as TransformerLens does. [default: true] */
  prependBos?: boolean;
}

/** A prompt, a batch of prompts, a token row, or a batch of token rows. */
export type ModelInput = string | readonly string[] | readonly number[] | readonly (readonly number[])[];

/** Multiplier and addend fed to one edit point, full shape of the hook tensor. */
export interface EditFeed {
  mul: Float32Array;
  add: Float32Array;
  dims: number[];
  /** Rank-1 update `x + (x . p) r` before mul/add ([batch, pos, width] tensors only): p [batch, width, 1], r like mul. */
  projP?: Float32Array;
  projR?: Float32Array;
}

/** What {@link Model.run} runs: the internal entry point of trace, intervene and sweeps. */
export interface RunSpec {
  /** Hooks to cache. */
  hooks: readonly HookName[];
  /** Edit feeds by hook name (hooks that are one tensor must not both appear). */
  edits?: ReadonlyMap<HookName, EditFeed>;
  /** Positions (absolute, per row) whose logits are computed; all when undefined. */
  logitPositions?: number[][];
  /** Keep only these positions (absolute) on `pos`/`query_pos` axes of cached hooks. */
  positions?: readonly number[];
  /**
   * Shared-prefix batching (see `PatchSpec.prefixShare`): `rows[L]` lists, for each row entering
   * block L, the row of block L-1 it continues (block -1 is the single prompt row). The batch
   * must be one prompt; the trace's rows are the rows of the last block. No cached hooks.
   */
  prefixRows?: readonly (readonly number[])[];
}

async function loadFiles(idOrDir: string, opts: LoadOptions): Promise<ModelFiles> {
  if (opts.files) return opts.files;
  const { existsSync } = await import("node:fs");
  if (existsSync(idOrDir)) return (await import("../io/node-files.js")).directoryFiles(idOrDir);
  const hub = await import("../io/hub.js");
  if (!hub.isHubId(idOrDir)) {
    throw new TdbError("E_MISSING_FILE", `${JSON.stringify(idOrDir)} is neither an existing directory nor a hub id (owner/name)`, {
      value: idOrDir,
      allowed: ["a local model directory", "a hub id like onnx-community/gpt2-ONNX"],
    });
  }
  return hub.hubFiles(idOrDir, { ...opts.hub, cacheDir: opts.cacheDir, revision: opts.revision });
}

/**
 * Removes what tracing never uses from a transformers.js decoder: the `If` on
 * `use_cache_branch` (keeping the no-cache branch) and past-key-value inputs.
 */
function flattenDecoder(model: ModelProto): ModelProto {
  const g = OnnxGraph.fromModel(model);
  const ifNode = g.nodes.find((n) => n.opType === "If" && g.inputNames().includes(n.input[0]!));
  if (ifNode) {
    inlineIfBranch(g, ifNode, "else");
    removeUnusedInputs(g);
    pruneDeadNodes(g);
  }
  return g.model;
}

/**
 * A language model with hookable internals.
 *
 * @example
 * ```ts
 * import { Model } from "tdb-js";
 * const model = await Model.load("./models/tiny-gpt2");
 * const t = await model.trace("The quick brown fox");
 * console.log(t.topK(3), t.cache.get("blocks.0.mlp.hook_post").dims);
 * ```
 */
export class Model {
  private readonly sessions: SessionPool;
  private weightsCache: ModelWeights | undefined;
  private readonly codec: TokenCodec;

  private constructor(
    /** Model dimensions and the raw config.json. */
    readonly config: ModelConfig,
    /** The transformers.js tokenizer. */
    readonly tokenizer: PreTrainedTokenizer,
    /** Hook discovery result: where each hook lives and which are unavailable. */
    readonly hookMap: HookMap,
    private readonly adapter: ArchitectureAdapter,
    /** The flattened, unpatched graph. */
    private readonly base: ModelProto,
    private readonly opts: LoadOptions,
  ) {
    this.codec = { toSingleToken: (s) => this.toSingleToken(s), decodeToken: (id) => this.decodeToken(id) };
    this.sessions = new SessionPool(base, hookMap, config, opts);
  }

  /**
   * Loads a model from a local directory (`config.json`, `tokenizer.json`,
   * `tokenizer_config.json`, `onnx/model.onnx`) or a Hugging Face hub id.
   */
  static async load(idOrDir: string, opts: LoadOptions = {}): Promise<Model> {
    const files = await loadFiles(idOrDir, opts);
    const configText = await readText(files, "config.json");
    if (configText === null) {
      throw new TdbError("E_MISSING_FILE", `${files.origin} has no config.json`, { value: "config.json", allowed: ["config.json"] });
    }
    const config = parseConfig(JSON.parse(configText) as Record<string, unknown>);
    const adapter = ADAPTERS.find((a) => a.modelTypes.includes(config.modelType));
    if (!adapter) {
      const known = ADAPTERS.flatMap((a) => a.modelTypes);
      throw new TdbError("E_UNSUPPORTED_GRAPH", `no architecture adapter for model_type ${JSON.stringify(config.modelType)}; supported: ${known.join(", ")}`, {
        value: config.modelType,
        allowed: known,
      });
    }
    const dtype = opts.dtype ?? "fp32";
    const candidates = ONNX_FILES[dtype];
    if (!candidates) {
      throw new TdbError("E_BAD_OPTION", `unsupported dtype ${JSON.stringify(dtype)}; supported: ${Object.keys(ONNX_FILES).join(", ")}`, {
        value: dtype,
        allowed: Object.keys(ONNX_FILES),
      });
    }
    const tokenizer = await loadTokenizer(files);
    let bytes: Uint8Array | null = null;
    let onnxPath = "";
    for (const p of candidates) {
      bytes = await files.read(p);
      if (bytes) {
        onnxPath = p;
        break;
      }
    }
    if (!bytes) {
      throw new TdbError("E_MISSING_FILE", `${files.origin} has none of ${candidates.join(", ")}`, { value: files.origin, allowed: candidates });
    }
    const decoded = decodeModel(bytes);
    const dir = onnxPath.includes("/") ? onnxPath.slice(0, onnxPath.lastIndexOf("/") + 1) : "";
    await resolveExternalData(decoded, async (location) => {
      const data = await files.read(dir + location);
      if (!data) throw new TdbError("E_MISSING_FILE", `${files.origin} lacks external data file ${dir + location}`, { value: dir + location });
      return data;
    });
    const base = flattenDecoder(decoded);
    const hookMap = adapter.discover(OnnxGraph.fromModel(base), config);
    const available = [...hookMap.sources.keys()];
    if (!available.some((n) => n.startsWith("blocks."))) {
      const reasons = [...hookMap.unavailable.entries()].slice(0, 3).map(([k, v]) => `${k}: ${v}`);
      throw new TdbError(
        "E_UNSUPPORTED_GRAPH",
        `no hook points found in any block of ${files.origin}/${onnxPath}: not a ${config.modelType} graph the ${adapter.name} adapter understands ` +
          `(it expects nodes under .../h.N/ scopes as the Hugging Face export writes them; hooks still available: ${available.length ? formatAllowed(available) : "none"}; ${reasons.join("; ")})`,
        { value: onnxPath, allowed: available },
      );
    }
    const model = new Model(config, tokenizer, hookMap, adapter, base, opts);
    if (opts.hooks) await model.trace([model.bosTokenId], { hooks: opts.hooks, prependBos: false });
    return model;
  }

  /** Hook names this model can cache, in forward order. */
  get hookNames(): HookName[] {
    return [...this.hookMap.sources.keys()];
  }

  /** Weights in TransformerLens layout (W_Q, W_O, W_in, W_U, ...), read once on first use. */
  get weights(): ModelWeights {
    this.weightsCache ??= this.adapter.weights(OnnxGraph.fromModel(this.base), this.config);
    return this.weightsCache;
  }

  /** The BOS token id (GPT-2: `<|endoftext|>`). */
  get bosTokenId(): number {
    return this.config.bosTokenId ?? this.tokenizer.bos_token_id ?? this.config.dVocab - 1;
  }

  /**
   * Token ids of a prompt. With `prependBos` (default true, as in TransformerLens) the BOS
   * token comes first.
   *
   * @example
   * ```ts
   * model.toTokens("Hello world", { prependBos: false }); // e.g. [15496, 995] with the GPT-2 vocabulary
   * ```
   */
  toTokens(text: string, { prependBos = true }: { prependBos?: boolean } = {}): number[] {
    if (typeof text !== "string" || text.length === 0) {
      throw new TdbError("E_EMPTY_PROMPT", "the prompt is empty; pass a non-empty string", { value: text });
    }
    const ids = this.tokenizer.encode(text, { add_special_tokens: false });
    return prependBos ? [this.bosTokenId, ...ids] : ids;
  }

  /** The string of each token of a prompt or token row. */
  toStrTokens(input: string | readonly number[], opts: { prependBos?: boolean } = {}): string[] {
    const ids = typeof input === "string" ? this.toTokens(input, opts) : input;
    return ids.map((id) => this.decodeToken(id));
  }

  /** The id of a string that is exactly one token; `E_NOT_SINGLE_TOKEN` otherwise. */
  toSingleToken(s: string): number {
    const ids = s.length === 0 ? [] : this.tokenizer.encode(s, { add_special_tokens: false });
    if (ids.length !== 1) {
      throw new TdbError("E_NOT_SINGLE_TOKEN", `${JSON.stringify(s)} is ${ids.length} tokens (${ids.join(", ")}); pass exactly one token or a list`, {
        value: s,
        allowed: "a string that encodes to exactly one token",
      });
    }
    return ids[0]!;
  }

  private decodeToken(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** Tokenizes and right-pads any {@link ModelInput}. */
  toBatch(input: ModelInput, { prependBos = true }: { prependBos?: boolean } = {}): TokenBatch {
    let rows: number[][];
    if (typeof input === "string") rows = [this.toTokens(input, { prependBos })];
    else if (input.length > 0 && input.every((x) => typeof x === "string")) rows = (input as readonly string[]).map((s) => this.toTokens(s, { prependBos }));
    else if (input.length > 0 && input.every((x) => typeof x === "number")) rows = [[...(input as readonly number[])]];
    else if (input.length > 0 && input.every((x) => Array.isArray(x))) rows = (input as readonly (readonly number[])[]).map((r) => [...r]);
    else if (input.length === 0) throw new TdbError("E_EMPTY_PROMPT", "the input is empty", { value: input });
    else throw new TdbError("E_BAD_INPUT", "input must be a string, strings, a token row or token rows", { value: typeof input });
    const padId = this.config.eosTokenId ?? this.bosTokenId;
    return padBatch(rows, { nCtx: this.config.nCtx, dVocab: this.config.dVocab, padId });
  }

  /** Resolves a {@link HookSelector} to a checked, ordered list of hook names. */
  selectHooks(sel: HookSelector): HookName[] {
    const all = hookNamesFor(this.config.nLayers);
    if (sel === "all") return this.hookNames.filter((n) => !hookKindOf(n)?.optIn);
    if (typeof sel === "function") return all.filter((n) => this.hookMap.sources.has(n) && sel(n));
    const wanted = new Set<HookName>();
    for (const s of sel) {
      const { name } = parseHookName(s, this.config.nLayers);
      if (!this.hookMap.sources.has(name)) {
        throw new TdbError(
          "E_HOOK_UNAVAILABLE",
          `${name} is not reachable in this graph (${this.hookMap.unavailable.get(name) ?? "unknown reason"}); available: ${formatAllowed(this.hookNames)}`,
          { value: name, allowed: this.hookNames },
        );
      }
      wanted.add(name);
    }
    return all.filter((n) => wanted.has(n));
  }

  /**
   * The patched ONNX model: the flattened graph with each selected hook exposed as a graph
   * output, and the output name of each hook. Hook tensors become outputs as they are (no copy);
   * the few that end a pattern onnxruntime fuses (the GELU output) go through an `Identity`
   * named after the hook, so the fusion survives. Hooks that are the same tensor
   * (`blocks.L.hook_resid_post` and `blocks.L+1.hook_resid_pre`) share one output.
   * Initializers are shared with the loaded model, not copied.
   *
   * @example
   * ```ts
   * const { model: proto } = model.patchedModel(["blocks.0.mlp.hook_post"]);
   * await writeFile("patched.onnx", encodeModel(proto));
   * ```
   */
  patchedModel(hooks: HookSelector, opts: { edits?: readonly HookName[]; selectLogits?: boolean } = {}): PatchedGraph {
    return buildPatchedGraph(this.base, this.hookMap, this.config, { hooks: this.selectHooks(hooks), edits: opts.edits, selectLogits: opts.selectLogits });
  }

  /**
   * Hook sets of the live patched sessions, least recently used first. A trace reuses a live
   * session whose set covers the hooks it asks for; otherwise it builds one and releases the
   * least recently used beyond `maxSessions` (each session holds its own copy of the weights).
   */
  async liveSessions(): Promise<HookName[][]> {
    return this.sessions.liveHookSets();
  }

  /** The flattened, unpatched model (the `If` of merged decoders inlined, past inputs removed). */
  get baseModel(): ModelProto {
    return this.base;
  }

  /**
   * Feeds for a batch's token inputs of `session`: ids, mask, position ids and empty past
   * key/values where the graph has them. Inputs tdb-js adds (`tdb_*`) are the caller's.
   */
  tokenFeeds(session: Session, batch: TokenBatch): Record<string, HostTensor> {
    const B = batch.rows.length;
    const S = batch.seqLen;
    const feeds: Record<string, HostTensor> = {};
    for (const name of session.inputNames) {
      if (name === "input_ids") feeds[name] = { type: "int64", data: batch.inputIds, dims: [B, S] };
      else if (name === "attention_mask") feeds[name] = { type: "int64", data: batch.attentionMask, dims: [B, S] };
      else if (name === "position_ids") {
        const pos = new BigInt64Array(B * S);
        for (let i = 0; i < pos.length; i++) pos[i] = BigInt(i % S);
        feeds[name] = { type: "int64", data: pos, dims: [B, S] };
      } else if (name.startsWith("past_key_values.")) {
        feeds[name] = { type: "float32", data: new Float32Array(0), dims: [B, this.config.nHeads, 0, this.config.dHead] };
      } else if (name === "use_cache_branch") feeds[name] = { type: "bool", data: new Uint8Array([0]), dims: [1] };
      else if (name.startsWith("tdb_")) continue; // edit points and logit positions: fed by run()
      else {
        throw new TdbError("E_UNSUPPORTED_GRAPH", `graph input ${JSON.stringify(name)} is not one tdb-js knows how to feed`, {
          value: name,
          allowed: ["input_ids", "attention_mask", "position_ids", "past_key_values.*", "use_cache_branch"],
        });
      }
    }
    return feeds;
  }

  /**
   * Runs the model and caches activations.
   *
   * @example
   * ```ts
   * const t = await model.trace(["Hello there", "Hi"], { hooks: ["blocks.0.attn.hook_pattern"] });
   * t.cache.get("pattern", 0).dims; // [2, n_head, 3, 3] (right-padded; BOS prepended)
   * ```
   */
  async trace(input: ModelInput, opts: TraceOptions = {}): Promise<Trace> {
    const batch = this.toBatch(input, { prependBos: opts.prependBos });
    const hooks = this.selectHooks(opts.hooks ?? "all");
    const positions = opts.positions?.map((p) => resolvePosition(p, batch.seqLen));
    return this.run(batch, { hooks, positions });
  }

  /**
   * Runs a token batch through a patched session with the given hooks, edit feeds and logit
   * positions. The building block of {@link Model.trace} and the interventions; most users want
   * those instead.
   */
  async run(batch: TokenBatch, spec: RunSpec): Promise<Trace> {
    const { hooks } = spec;
    const editHooks = [...(spec.edits?.keys() ?? [])];
    const prefix = spec.prefixRows;
    if (prefix) {
      if (batch.rows.length !== 1 || hooks.length > 0 || prefix.length !== this.config.nLayers) {
        throw new TdbError("E_BAD_INPUT", `shared-prefix runs take one prompt, no cached hooks and one row list per block (${this.config.nLayers})`, { value: prefix.length });
      }
    }
    const req = { hooks, edits: editHooks, selectLogits: spec.logitPositions !== undefined, prefixShare: prefix !== undefined };
    return this.sessions.withPatched(req, (ps) => this.runOn(ps, batch, spec));
  }

  private async runOn(ps: PatchedSession, batch: TokenBatch, spec: RunSpec): Promise<Trace> {
    const { hooks, positions } = spec;
    const prefix = spec.prefixRows;
    const feeds = this.tokenFeeds(ps.session, batch);
    const rowsAt = (layer: number): number => (prefix ? (layer < 0 ? 1 : prefix[layer]!.length) : batch.rows.length);
    if (prefix) {
      prefix.forEach((rows, l) => {
        const before = rowsAt(l - 1);
        const bad = rows.find((r) => !Number.isInteger(r) || r < 0 || r >= before);
        if (bad !== undefined) throw new TdbError("E_INDEX_RANGE", `prefix row ${bad} of block ${l} out of range [0, ${before - 1}]`, { value: bad, allowed: [0, before - 1] });
        feeds[rowsInput(l)] = { type: "int64", data: BigInt64Array.from(rows, (r) => BigInt(r)), dims: [rows.length] };
      });
    }
    const outRows = rowsAt(this.config.nLayers - 1);
    for (const inputs of ps.graph.edits.values()) {
      const fed = inputs.hooks.filter((h) => spec.edits?.has(h));
      if (fed.length > 1) throw new TdbError("E_BAD_INPUT", `${fed.join(" and ")} are one tensor: compose their edits into one feed`, { value: fed });
      let f = fed[0] ? spec.edits!.get(fed[0])! : undefined;
      if (!f) {
        // An edit point this run does not use: identity.
        const dims = inputs.shape.map((d) => (d === "batch" ? rowsAt(inputs.layer) : d === "seq" ? batch.seqLen : d) as number);
        const n = dims.reduce((a, b) => a * b, 1);
        f = { mul: new Float32Array(n).fill(1), add: new Float32Array(n), dims };
      }
      feeds[inputs.mul] = { type: "float32", data: f.mul, dims: f.dims };
      feeds[inputs.add] = { type: "float32", data: f.add, dims: f.dims };
      if (inputs.project) {
        const rows = f.dims[0]!;
        feeds[inputs.project.p] = { type: "float32", data: f.projP ?? new Float32Array(rows * inputs.project.width), dims: [rows, inputs.project.width, 1] };
        feeds[inputs.project.r] = { type: "float32", data: f.projR ?? new Float32Array(f.mul.length), dims: f.dims };
      } else if (f.projP) {
        throw new TdbError("E_BAD_OPTION", `${inputs.hooks.join("/")} cannot take a direction edit (only [batch, pos, width] tensors can)`, { value: inputs.hooks });
      }
    }
    if (spec.logitPositions) {
      if (spec.logitPositions.length !== outRows) {
        throw new TdbError("E_BAD_INPUT", `logit positions for ${spec.logitPositions.length} rows; the run has ${outRows}`, { value: spec.logitPositions.length, allowed: outRows });
      }
      const n = spec.logitPositions[0]?.length ?? 0;
      const idx = new BigInt64Array(outRows * n);
      spec.logitPositions.forEach((row, b) => {
        if (row.length !== n) throw new TdbError("E_BAD_INPUT", "every row needs the same number of logit positions", { value: row.length, allowed: n });
        row.forEach((p, i) => {
          if (!Number.isInteger(p) || p < 0 || p >= batch.seqLen) {
            throw new TdbError("E_POSITION_RANGE", `logit position ${p} out of range [0, ${batch.seqLen - 1}]`, { value: p, allowed: [0, batch.seqLen - 1] });
          }
          idx[b * n + i] = BigInt(p);
        });
      });
      feeds[LOGIT_POSITIONS_INPUT] = { type: "int64", data: idx, dims: [outRows, n, 1] };
    }
    const fetches = [...new Set(["logits", ...hooks.map((h) => ps.graph.outputs.get(h)!)])];
    const out = await ps.session.run(feeds, fetches);
    const B = batch.rows.length;
    const entries = new Map<HookName, Activation>();
    for (const h of hooks) {
      let t = asFloat32(out[ps.graph.outputs.get(h)!]!, h);
      const kind = hookKindOf(h)!;
      const src = this.hookMap.sources.get(h);
      if (src?.kind === "tap" && src.broadcastBatch && t.dims[0] === 1 && B > 1) t = broadcastBatch(t, B);
      let labels = [...kind.dims];
      if (labels.length !== t.dims.length) labels = t.dims.map((_, i) => labels[i] ?? `dim${i}`);
      if (positions) t = selectPositions(t, labels, positions);
      entries.set(h, new Activation(h, t.data as Float32Array, t.dims, labels));
    }
    const logitsT = asFloat32(out.logits!, "logits");
    const logits = new Activation("logits", logitsT.data as Float32Array, logitsT.dims, ["batch", "pos", "d_vocab"]);
    const rows = prefix ? Array.from({ length: outRows }, () => batch.rows[0]!) : batch.rows;
    const strRow = batch.rows[0]!.map((id) => this.decodeToken(id));
    return new Trace(
      rows,
      prefix ? rows.map(() => strRow) : batch.rows.map((r) => r.map((id) => this.decodeToken(id))),
      logits,
      new ActivationCache(entries, this.config.nLayers),
      this.codec,
      positions,
      spec.logitPositions,
    );
  }

  /**
   * Runs a prompt (or batch) with edits held on, beside the clean run: ablations (zero, mean,
   * resample), activation patching, steering, on any editable hook. With `variants`, many edit
   * sets of one prompt run as batched rows.
   *
   * @example
   * ```ts
   * import { zeroHead, zeroNeuron } from "tdb-js";
   * const r = await model.intervene("When John and Mary went to the shops, John gave the bag to", [zeroHead(1, 3)]);
   * r.logitDiffChange(" Mary", " John");
   * // all 144 single-head ablations of GPT-2 small in batched runs:
   * const all = await model.intervene(prompt, [], { variants: heads.map(([l, h]) => [zeroHead(l, h)]) });
   * ```
   */
  async intervene(input: ModelInput, edits: readonly Edit[], opts: InterveneOptions = {}): Promise<InterventionResult> {
    return intervene(this, input, edits, opts);
  }

  /**
   * Activation patching sweep: patches each clean activation of a hook (per layer x position,
   * per layer x head, ...) into the corrupted run, one cell per batched variant, and records a
   * metric (default: logit difference target - distractor at the last position).
   *
   * @example
   * ```ts
   * const grid = await model.patchingSweep(cleanPrompt, corruptedPrompt, { hook: "resid_pre", target: " Mary", distractor: " John" });
   * grid.at(3, 5);      // metric with layer 3's resid_pre at position 5 patched from the clean run
   * grid.normalized();  // 1 = clean behaviour restored, 0 = no effect
   * ```
   */
  async patchingSweep(clean: ModelInput, corrupted: ModelInput, opts: SweepOptions): Promise<SweepResult> {
    return patchingSweep(this, clean, corrupted, opts);
  }

  /**
   * Generates a continuation with edits held on at every step (greedy by default).
   *
   * @example
   * ```ts
   * const g = await model.generate("I think that", { edits: [steer("blocks.1.hook_resid_pre", v, 8)], maxNewTokens: 10 });
   * g.completion;
   * ```
   */
  async generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<Generation> {
    return generate(this, prompt, opts);
  }

  /**
   * The Transformer Debugger node table for "why `target` rather than `distractor`?" at the
   * last position: MLP neurons, attention-head nodes and token embeddings with activation, write
   * magnitude, direct effect and estimated total effect (activation x gradient).
   *
   * @example
   * ```ts
   * const t = await model.attribute("When John and Mary went to the shops, John gave the bag to", { target: " Mary", distractor: " John" });
   * console.table(t.nodes.slice(0, 10));
   * ```
   */
  async attribute(input: ModelInput, opts: AttributeOptions): Promise<NodeTable> {
    return attribute(this, input, opts);
  }

  /** The node table with the loss replaced by one node's pre-activation (see {@link traceUpstream}). */
  async traceUpstream(input: ModelInput, node: UpstreamNode, opts: UpstreamOptions = {}): Promise<NodeTable> {
    return traceUpstream(this, input, node, opts);
  }

  /** Direct logit attribution of the logit difference to every residual-stream component. */
  async directLogitAttribution(input: ModelInput, opts: LogitDiffOptions): Promise<DlaResult> {
    return directLogitAttribution(this, input, opts);
  }

  /** The logit lens: the logit difference read from each layer's residual stream. */
  async logitLens(input: ModelInput, opts: LogitDiffOptions): Promise<LogitLensRow[]> {
    return logitLens(this, input, opts);
  }

  /** Logits [batch, pos, d_vocab] from the unpatched graph (the baseline every trace is checked against). */
  async forward(input: ModelInput, opts: { prependBos?: boolean } = {}): Promise<Activation> {
    const batch = this.toBatch(input, opts);
    const out = await this.sessions.withBaseline((s) => s.run(this.tokenFeeds(s, batch), ["logits"]));
    const t = asFloat32(out.logits!, "logits");
    return new Activation("logits", t.data as Float32Array, t.dims, ["batch", "pos", "d_vocab"]);
  }

  /**
   * Runs `fn` with a session for a graph built beside the patched ones (e.g. attribution graphs
   * with a backward pass), built once per `key` and released with the model. Beyond
   * `maxSessions`, the least recently used sessions that no call is using are released.
   */
  async withAuxSession<T>(key: string, build: () => ModelProto, fn: (s: Session) => Promise<T>): Promise<T> {
    return this.sessions.withAux(key, build, fn);
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    await this.sessions.dispose();
  }
}

function asFloat32(t: HostTensor, name: string): HostTensor {
  if (t.type !== "float32") {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `${name} came back as ${t.type}; tdb-js caches float32 activations`, { value: t.type, allowed: ["float32"] });
  }
  return t;
}

function broadcastBatch(t: HostTensor, B: number): HostTensor {
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length * B);
  for (let b = 0; b < B; b++) out.set(src, b * src.length);
  return { type: "float32", data: out, dims: [B, ...t.dims.slice(1)] };
}

/** Keeps `positions` on the first `pos`/`query_pos` axis. */
function selectPositions(t: HostTensor, labels: readonly string[], positions: readonly number[]): HostTensor {
  const axis = labels.findIndex((l) => l === "pos" || l === "query_pos");
  if (axis < 0) return t;
  const dims = t.dims;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const src = t.data as Float32Array;
  const out = new Float32Array(outer * positions.length * inner);
  for (let o = 0; o < outer; o++) {
    positions.forEach((p, i) => {
      const from = (o * dims[axis]! + p) * inner;
      out.set(src.subarray(from, from + inner), (o * positions.length + i) * inner);
    });
  }
  const nd = [...dims];
  nd[axis] = positions.length;
  return { type: "float32", data: out, dims: nd };
}
