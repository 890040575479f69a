/**
 * The model runtime: what every feature (interventions, attribution, and next SAEs,
 * explanations, training) builds on. It holds the config, the tokenizer, the hook map, the
 * flattened base graph and the sessions, turns inputs into token batches, and runs token
 * batches through patched sessions ({@link ModelRuntime.run}). Users meet it through the
 * `Model` facade; feature modules take a `ModelRuntime`.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { TdbError, formatAllowed } from "../base/errors.js";
import { resolvePosition } from "../base/positions.js";
import type { ArchitectureAdapter, HookMap, ModelWeights } from "../hooks/adapter.js";
import { hookKindOf, hookNamesFor, parseHookName, type HookName } from "../hooks/names.js";
import { OnnxGraph } from "../onnx/graph.js";
import { halfsToFloats } from "../onnx/half.js";
import type { HostTensor } from "../onnx/tensor.js";
import { Activation } from "../trace/activation.js";
import { ActivationCache } from "../trace/cache.js";
import { Trace, type TokenCodec } from "../trace/trace.js";
import { TraceAssembler } from "../trace/assemble.js";
import { array, boolean, oneOf, options, positiveNumber } from "../base/check.js";
import { padBatch, type TokenBatch } from "./batch.js";
import type { ModelConfig } from "./config.js";
import { loadModelParts } from "./load.js";
import { checkLoadOptions, DEFAULT_MODEL_ID, type HookSelector, type LoadOptions, type ModelInput, type RunSpec, type TraceOptions } from "./options.js";
import type { Session } from "../backend/ort.js";
import { buildPatchedGraph, LOGIT_POSITIONS_INPUT, rowsInput, type PatchedGraph } from "./patched-graph.js";
import { defaultBudget, planChunks, rowBytes } from "./memory.js";
import { SessionPool, type PatchedSession } from "./sessions.js";
import type { Tokenizer } from "./tokenizer.js";
import { checkGraphInputs, graphIo, noLogitsError, pastFeed, tokenFeed, type GraphIo } from "./io.js";

/**
 * A loaded model's machinery: config, tokenizer, hook map, base graph and sessions. Feature
 * modules (`intervene/`, `attribution/`, ...) take one; users hold a `Model` (see `runtimeOf`).
 */
export class ModelRuntime {
  /** The onnxruntime sessions of this model (patched, baseline, auxiliary), under one bound. */
  readonly sessions: SessionPool;
  private weightsCache: ModelWeights | undefined;
  /** Token helpers handed to the traces this runtime (or a feature assembling results) builds. */
  readonly codec: TokenCodec;
  /** What the model was loaded from: its id or directory, or the origin of the `files` it was given. */
  source = "";
  /** Declared inputs and outputs of the base graph (token input types, past shapes, whether it has logits). */
  readonly io: GraphIo;

  private constructor(
    /** Model dimensions and the raw config.json. */
    readonly config: ModelConfig,
    /** The transformers.js tokenizer. */
    readonly tokenizer: Tokenizer,
    /** Hook discovery result: where each hook lives and which are unavailable. */
    readonly hookMap: HookMap,
    /** The architecture adapter that found the hooks; answers architecture questions (weights, final LN). */
    readonly adapter: ArchitectureAdapter,
    /** The flattened, unpatched graph. */
    readonly base: ModelProto,
    private readonly opts: LoadOptions,
  ) {
    this.codec = { toSingleToken: (s) => this.toSingleToken(s), decodeToken: (id) => this.decodeToken(id) };
    this.sessions = new SessionPool(base, hookMap, config, opts);
    this.io = graphIo(base);
  }

  /** Whether the graph has a `logits` output (feature-extraction exports have `last_hidden_state` instead). */
  get hasLogits(): boolean {
    return this.io.hasLogits;
  }

  /**
   * Throws `E_NO_LOGITS` (naming the graph's outputs) when the graph has no `logits` output;
   * `what` is what needed them (e.g. "attribute").
   */
  requireLogits(what: string): void {
    if (!this.io.hasLogits) throw noLogitsError(what, this.io.outputs);
  }

  /**
   * Loads a model from a local directory (`config.json`, `tokenizer.json`,
   * `tokenizer_config.json`, `onnx/model.onnx`) or a Hugging Face hub id.
   */
  static async load(idOrDir?: string, loadOpts?: LoadOptions): Promise<ModelRuntime> {
    const opts = checkLoadOptions(loadOpts);
    const id = idOrDir === undefined && opts.files === undefined ? DEFAULT_MODEL_ID : (idOrDir as string);
    const { config, tokenizer, hookMap, adapter, base } = await loadModelParts(id, opts);
    checkGraphInputs(graphIo(base), config); // inputs tdb-js cannot feed: E_UNSUPPORTED_GRAPH now, not at the first run
    const rt = new ModelRuntime(config, tokenizer, hookMap, adapter, base, opts);
    rt.source = opts.files?.origin ?? id;
    // The weights file must exist before anything reads `weights`, or views of the decoded
    // buffer keep it alive (see SessionPool.ready).
    await rt.sessions.ready();
    if (opts.hooks) await rt.trace([rt.bosTokenId], { hooks: opts.hooks, prependBos: false });
    return rt;
  }

  /** Hook names this model can cache, in forward order. */
  get hookNames(): HookName[] {
    return [...this.hookMap.sources.keys()];
  }

  /** Weights in TransformerLens layout (W_Q, W_O, W_in, W_U, ...), read once on first use. */
  get weights(): ModelWeights {
    if (!this.weightsCache) {
      const w = this.adapter.weights(OnnxGraph.fromModel(this.base), this.config);
      // Without a logits output there is no unembedding: say so instead of reading another MatMul.
      this.weightsCache = this.io.hasLogits
        ? w
        : new Proxy(w, {
            get: (t, k, r) => {
              if (k === "W_U" || k === "b_U") this.requireLogits(`the unembedding weights (${k})`);
              return Reflect.get(t, k, r) as unknown;
            },
          });
    }
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
  toTokens(text: string, opts?: { prependBos?: boolean }): number[] {
    const bos = options("options", opts).prependBos;
    const prependBos = bos === undefined ? true : boolean("prependBos", bos);
    if (typeof text !== "string") {
      throw new TdbError("E_BAD_INPUT", `a prompt must be a string, got ${text === null ? "null" : typeof text}`, { value: text === null ? null : typeof text, allowed: "a non-empty string" });
    }
    if (text.length === 0) throw new TdbError("E_EMPTY_PROMPT", "the prompt is empty; pass a non-empty string", { value: text, allowed: "a non-empty string" });
    const ids = this.tokenizer.encode(text, { add_special_tokens: false });
    return prependBos ? [this.bosTokenId, ...ids] : ids;
  }

  /** The string of each token of a prompt or token row. */
  toStrTokens(input: string | readonly number[], opts: { prependBos?: boolean } = {}): string[] {
    if (typeof input === "string") return this.toTokens(input, opts).map((id) => this.decodeToken(id));
    // Token ids are checked as a batch row is (integers in the vocabulary).
    const row = this.toBatch(array<number>("input", input, "a string or a token row", "E_BAD_INPUT") as readonly number[]).rows[0]!;
    return row.map((id) => this.decodeToken(id));
  }

  /** The id of a string that is exactly one token; `E_NOT_SINGLE_TOKEN` otherwise. */
  toSingleToken(s: string): number {
    if (typeof s !== "string") throw new TdbError("E_BAD_INPUT", `a token must be a string, got ${s === null ? "null" : typeof s}`, { value: s === null ? null : typeof s, allowed: "a string that encodes to exactly one token" });
    const ids = s.length === 0 ? [] : this.tokenizer.encode(s, { add_special_tokens: false });
    if (ids.length !== 1) {
      throw new TdbError("E_NOT_SINGLE_TOKEN", `${JSON.stringify(s)} is ${ids.length} tokens (${ids.join(", ")}); pass exactly one token or a list`, {
        value: s,
        allowed: "a string that encodes to exactly one token",
      });
    }
    return ids[0]!;
  }

  /** The string of one token id (special tokens kept, no clean-up). */
  decodeToken(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** Tokenizes and right-pads any {@link ModelInput}. */
  toBatch(input: ModelInput, opts?: { prependBos?: boolean }): TokenBatch {
    const bos = options("options", opts).prependBos;
    const prependBos = bos === undefined ? true : boolean("prependBos", bos);
    const allowed = "a string, strings, a token row (integers) or token rows";
    const bad = (what: string, value: unknown): never => {
      throw new TdbError("E_BAD_INPUT", `input must be ${allowed}; ${what}`, { value, allowed });
    };
    if (typeof input !== "string" && !Array.isArray(input)) bad(`got ${input === null ? "null" : typeof input}`, input === null ? null : typeof input);
    let rows: number[][];
    if (typeof input === "string") rows = [this.toTokens(input, { prependBos })];
    else if (input.length === 0) throw new TdbError("E_EMPTY_PROMPT", "the input is empty", { value: [], allowed: "at least one prompt" });
    else if (input.every((x) => typeof x === "string")) rows = (input as readonly string[]).map((s) => this.toTokens(s, { prependBos }));
    else if (input.every((x) => typeof x === "number")) rows = [[...(input as readonly number[])]];
    else if (input.every((x) => Array.isArray(x))) {
      rows = (input as readonly (readonly unknown[])[]).map((r, i) => {
        const j = r.findIndex((x) => typeof x !== "number");
        if (j >= 0) bad(`row ${i} has ${typeof r[j]} at ${j}`, r[j]);
        return [...(r as readonly number[])];
      });
    } else {
      const kinds = [...new Set((input as readonly unknown[]).map((x) => (x === null ? "null" : Array.isArray(x) ? "array" : typeof x)))];
      rows = bad(`got a list of ${kinds.join(" and ")}`, kinds);
    }
    const padId = this.config.eosTokenId ?? this.bosTokenId;
    return padBatch(rows, { nCtx: this.config.nCtx, dVocab: this.config.dVocab, padId });
  }

  /** Resolves a {@link HookSelector} to a checked, ordered list of hook names. */
  selectHooks(sel: HookSelector): HookName[] {
    const all = hookNamesFor(this.config.nLayers);
    if (sel === "all") return this.hookNames.filter((n) => !hookKindOf(n)?.optIn);
    if (typeof sel === "function") return all.filter((n) => this.hookMap.sources.has(n) && sel(n));
    if (!Array.isArray(sel)) {
      const allowed = '"all", an array of hook names, or a function (name) => boolean';
      throw new TdbError("E_BAD_OPTION", `hooks must be ${allowed}, got ${typeof sel === "string" ? JSON.stringify(sel) : typeof sel}`, { value: sel, allowed });
    }
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
   * const { model: proto } = runtimeOf(model).patchedModel(["blocks.0.mlp.hook_post"]);
   * await writeFile("patched.onnx", encodeModel(proto));
   * ```
   */
  patchedModel(hooks: HookSelector, opts: { edits?: readonly HookName[]; selectLogits?: boolean } = {}): PatchedGraph {
    return buildPatchedGraph(this.base, this.hookMap, this.config, { hooks: this.selectHooks(hooks), edits: opts.edits, selectLogits: opts.selectLogits });
  }

  /**
   * Hook sets of the live patched sessions, least recently used first. A trace reuses a live
   * session whose set covers the hooks it asks for; otherwise it builds one and releases the
   * least recently used idle sessions until the new one fits in `maxSessions` (see
   * {@link LoadOptions.maxSessions}: sessions of every kind count together).
   */
  async liveSessions(): Promise<HookName[][]> {
    return this.sessions.liveHookSets();
  }

  /**
   * Feeds for a batch's token inputs of `session`: ids, mask, position ids (int64 or int32, as
   * the graph declares them) and an empty past where the graph has past inputs
   * (`past_key_values.N.key/value` `[B, H, 0, d_head]`, `past_N` `[2, B, H, 0, d_head]`; with
   * `pastRows`, layer N's batch is `pastRows(N)`, as in shared-prefix runs). Inputs tdb-js adds
   * (`tdb_*`) are the caller's.
   */
  tokenFeeds(session: Session, batch: TokenBatch, pastRows?: (layer: number) => number): Record<string, HostTensor> {
    const B = batch.rows.length;
    const S = batch.seqLen;
    const feeds: Record<string, HostTensor> = {};
    for (const name of session.inputNames) {
      // Token inputs in the type the graph declares (int64, or int32 as onnxruntime-genai writes them).
      if (name === "input_ids") feeds[name] = tokenFeed(this.io, name, batch.inputIds, [B, S]);
      else if (name === "attention_mask") feeds[name] = tokenFeed(this.io, name, batch.attentionMask, [B, S]);
      else if (name === "position_ids") {
        const pos = new BigInt64Array(B * S);
        for (let i = 0; i < pos.length; i++) pos[i] = BigInt(i % S);
        feeds[name] = tokenFeed(this.io, name, pos, [B, S]);
      } else if (/^past_key_values\.|^past_\d+$/.test(name)) {
        // A full-sequence run: an empty past, in the declared layout and type.
        feeds[name] = pastFeed(this.io, name, B, this.config, pastRows);
      } else if (name === "use_cache_branch") feeds[name] = { type: "bool", data: new Uint8Array([0]), dims: [1] };
      else if (name.startsWith("tdb_")) continue; // edit points and logit positions: fed by run()
      else {
        throw new TdbError("E_UNSUPPORTED_GRAPH", `graph input ${JSON.stringify(name)} is not one tdb-js knows how to feed`, {
          value: name,
          allowed: ["input_ids", "attention_mask", "position_ids", "past_key_values.*", "past_N", "use_cache_branch"],
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
  async trace(input: ModelInput, traceOpts?: TraceOptions): Promise<Trace> {
    const opts = options("trace options", traceOpts);
    const batch = this.toBatch(input, { prependBos: opts.prependBos });
    const hooks = this.selectHooks(opts.hooks ?? "all");
    if (opts.positions !== undefined && !Array.isArray(opts.positions)) {
      throw new TdbError("E_BAD_OPTION", "positions must be an array of positions", { value: opts.positions, allowed: "an array of integers (negative counts from the end)" });
    }
    const positions = opts.positions?.map((p) => resolvePosition(p, batch.seqLen));
    const logits = opts.logits === undefined ? "all" : oneOf("logits", opts.logits, ["all", "last"] as const);
    const budget = opts.maxBatchBytes === undefined ? defaultBudget() : positiveNumber("maxBatchBytes", opts.maxBatchBytes);
    const B = batch.rows.length;
    const S = batch.seqLen;
    const spec = (rows: readonly (readonly number[])[]): RunSpec => ({ hooks, positions, logitPositions: logits === "last" ? rows.map((r) => [r.length - 1]) : undefined });
    // Row chunks that keep the result plus one running chunk within the budget; each chunk is
    // copied into the result and dropped.
    const plan = planChunks(B, rowBytes(this.config, S, logits === "last" ? 1 : S, hooks, [], positions?.length ?? S), budget, `trace of ${B} rows x ${S} positions`);
    if (plan.chunkRows >= B) return this.run(batch, spec(batch.rows));
    const out = new TraceAssembler(B, this.codec);
    for (let start = 0; start < B; start += plan.chunkRows) {
      const end = Math.min(B, start + plan.chunkRows);
      const part: TokenBatch = {
        rows: batch.rows.slice(start, end),
        seqLen: S,
        inputIds: batch.inputIds.subarray(start * S, end * S),
        attentionMask: batch.attentionMask.subarray(start * S, end * S),
      };
      out.copyAll(await this.run(part, spec(part.rows)), start);
    }
    return out.finish();
  }

  /**
   * Runs a token batch through a patched session with the given hooks, edit feeds and logit
   * positions. The building block of `Model.trace` and the interventions; most users want
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
    const req = { hooks, edits: editHooks, selectLogits: spec.logitPositions !== undefined && this.io.hasLogits, prefixShare: prefix !== undefined };
    return this.sessions.withPatched(req, (ps) => this.runOn(ps, batch, spec));
  }

  private async runOn(ps: PatchedSession, batch: TokenBatch, spec: RunSpec): Promise<Trace> {
    const { hooks, positions } = spec;
    const prefix = spec.prefixRows;
    const rowsAt = (layer: number): number => (prefix ? (layer < 0 ? 1 : prefix[layer]!.length) : batch.rows.length);
    // With shared prefixes, block L's keys and values have block L's rows: so must its (empty) past.
    const feeds = this.tokenFeeds(ps.session, batch, prefix ? rowsAt : undefined);
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
      if (ps.graph.model.graph?.input.some((v) => v.name === LOGIT_POSITIONS_INPUT)) feeds[LOGIT_POSITIONS_INPUT] = { type: "int64", data: idx, dims: [outRows, n, 1] };
    }
    // Without logits and hooks, fetch something: onnxruntime refuses an empty fetch list.
    const logitsOut = this.io.hasLogits ? ["logits"] : hooks.length === 0 ? this.io.outputs.slice(0, 1) : [];
    const fetches = [...new Set([...logitsOut, ...hooks.map((h) => ps.graph.outputs.get(h)!)])];
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
    // No logits output: logits [batch, pos, 0]; the trace's logit accessors say E_NO_LOGITS.
    const logitsT = this.io.hasLogits ? asFloat32(out.logits!, "logits") : { type: "float32", data: new Float32Array(0), dims: [outRows, spec.logitPositions?.[0]?.length ?? batch.seqLen, 0] };
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

  /** Logits [batch, pos, d_vocab] from the unpatched graph (the baseline every trace is checked against). */
  async forward(input: ModelInput, opts: { prependBos?: boolean } = {}): Promise<Activation> {
    const batch = this.toBatch(input, opts);
    this.requireLogits("forward");
    const out = await this.sessions.withBaseline((s) => s.run(this.tokenFeeds(s, batch), ["logits"]));
    const t = asFloat32(out.logits!, "logits");
    return new Activation("logits", t.data as Float32Array, t.dims, ["batch", "pos", "d_vocab"]);
  }

  /**
   * Runs `fn` with a session for a graph built beside the patched ones (e.g. attribution graphs
   * with a backward pass), built once per `key` and released with the model. It counts against
   * `maxSessions` with the patched sessions (an attribution graph counts 2: onnxruntime prepacks
   * its weight matrices twice, forward and backward); the least recently used sessions that no
   * call is using are released first.
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
  // float16 graphs: activations come back as float16 and are returned as float32.
  if (t.type === "float16") return { type: "float32", data: halfsToFloats(t.data as Uint16Array), dims: t.dims };
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
