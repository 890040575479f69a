/**
 * Harvesting activations for SAE training: one hook's activations of a model over a text corpus,
 * streamed as batches of rows (rows x d_in Float32Arrays) in bounded memory.
 *
 * Tokens: each document is tokenized on its own (no BOS) and the documents are concatenated with
 * a BOS token between them (`d1 BOS d2 BOS d3 ...`). Context windows are `[BOS]` followed by the
 * next `contextLength - 1` tokens of that stream (SAELens's layout with `prepend_bos`): the
 * windows cover the stream without overlap, and a window that starts a document reads `BOS d...`
 * as the model saw documents in training. The last, shorter window is run too (alone: no
 * padding). `promptsPerBatch` windows run through the model in one forward pass; with `skipBos`
 * (the default) position 0 of each window, the prepended BOS whose activations are outliers
 * (attention sink), is left out, as SAE trainers usually do.
 *
 * Memory: one batch of windows, its trace and the tokens of the document being cut; nothing
 * else is kept, so a corpus of any size streams through.
 *
 * The model is any object with the members of {@link HarvestModel} (`Model` and `ModelRuntime`
 * both have them), so this feature does not depend on the model layer.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { CorpusDocument, DocumentSource } from "../corpus/document.js";
import { parseHookName, type HookName } from "../hooks/names.js";

/** The model dimensions harvesting reads (a subset of `ModelConfig`). */
export interface HarvestModelConfig {
  /** Number of blocks. */
  readonly nLayers: number;
  /** Context length (positions). */
  readonly nCtx: number;
  /** Attention heads per block. */
  readonly nHeads: number;
  /** Width of one head. */
  readonly dHead: number;
  /** Residual stream width. */
  readonly dModel: number;
  /** MLP width. */
  readonly dMlp: number;
}

/** One cached activation as a trace returns it: row-major values and dims. */
export interface HarvestActivation {
  /** Row-major values. */
  readonly data: Float32Array;
  /** Dimensions, `[batch, pos, ...]`. */
  readonly dims: readonly number[];
}

/** The part of a trace's activation cache harvesting reads. */
export interface HarvestCache {
  /** The activation of hook `name`. */
  get(name: string): HarvestActivation;
}

/** What harvesting needs of a trace: its activation cache. */
export interface HarvestTrace {
  /** Activations by hook name. */
  readonly cache: HarvestCache;
}

/**
 * The structural interface of a model that activations are harvested from: `Model` and
 * `ModelRuntime` both satisfy it.
 */
export interface HarvestModel {
  /** Model dimensions. */
  readonly config: HarvestModelConfig;
  /** The BOS token id (GPT-2: `<|endoftext|>`). */
  readonly bosTokenId: number;
  /** Token ids of a text. */
  toTokens(text: string, opts?: { prependBos?: boolean }): number[];
  /** Runs token rows and caches the given hooks. */
  trace(input: readonly (readonly number[])[], opts: { hooks: readonly HookName[]; prependBos: boolean; logits: "last" }): Promise<HarvestTrace>;
}

/** A text corpus for harvesting: documents (`{ id, text }`, e.g. `brownCorpus()`) or plain strings. */
export type SaeCorpus = DocumentSource<CorpusDocument> | AsyncIterable<string> | Iterable<string>;

/** Options of {@link harvestActivations}. */
export interface HarvestOptions {
  /** Hook whose activations are harvested (TransformerLens name; `hook_z` is flattened to n_heads * d_head). */
  hook: string;
  /** Tokens per context window, BOS included: 2 to the model's n_ctx. [default: min(128, n_ctx)] */
  contextLength?: number;
  /** Stop after this many rows (activation vectors). [default: the whole corpus] */
  tokens?: number;
  /** Leave out position 0 (the prepended BOS) of every window. [default: true] */
  skipBos?: boolean;
  /** Context windows per forward pass. [default: 16] */
  promptsPerBatch?: number;
  /**
   * Rows to skip at the start without yielding them (resuming a run): whole windows are skipped
   * without running the model. [default: 0]
   */
  skipRows?: number;
}

const WIDTH_OF: Record<string, keyof HarvestModelConfig | 1> = { d_model: "dModel", d_mlp: "dMlp", head: "nHeads", d_head: "dHead", "1": 1 };

/**
 * The width d_in of an SAE on `hook` of a model with `config`: the product of the hook's
 * dimensions after `[batch, pos]` (`hook_z`, `hook_q`, ...: n_heads * d_head). An unknown hook
 * is `E_UNKNOWN_HOOK`, a layer out of range `E_LAYER_RANGE`, a hook without one vector per
 * token (attention patterns and scores) `E_BAD_OPTION`.
 *
 * @example
 * ```ts
 * saeHookWidth("blocks.0.attn.hook_z", model.config); // n_heads * d_head
 * ```
 */
export function saeHookWidth(hook: string, config: HarvestModelConfig): number {
  const { name, kind } = parseHookName(hook, config.nLayers);
  const dims = kind.dims;
  if (dims[0] !== "batch" || dims[1] !== "pos") {
    throw new TdbError("E_BAD_OPTION", `${name} has dims [${dims.join(", ")}], not one vector per token; an SAE reads a hook with dims [batch, pos, ...]`, {
      value: name,
      allowed: "a hook with dims [batch, pos, ...] (resid, attn_out, mlp_out, mlp pre/post, hook_z, ...)",
    });
  }
  let w = 1;
  for (const label of dims.slice(2)) {
    const key = WIDTH_OF[label];
    w *= key === undefined ? NaN : key === 1 ? 1 : config[key];
  }
  return w;
}

function intOption(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new TdbError("E_BAD_OPTION", `harvest: ${name} must be an integer in [${min}, ${max}], got ${String(v)}`, { value: v, allowed: `an integer in [${min}, ${max}]` });
  }
  return v;
}

/** Harvest options checked against a model, with defaults filled in. */
export interface ResolvedHarvest {
  /** Full hook name. */
  hook: HookName;
  /** Row width. */
  dIn: number;
  /** Tokens per window, BOS included. */
  contextLength: number;
  /** Row budget (Infinity: the whole corpus). */
  tokens: number;
  /** Whether position 0 is left out. */
  skipBos: boolean;
  /** Windows per forward pass. */
  promptsPerBatch: number;
  /** Rows skipped at the start. */
  skipRows: number;
}

/** Checks {@link HarvestOptions} against `model` (`E_BAD_OPTION`, `E_UNKNOWN_HOOK`, `E_LAYER_RANGE`) and fills in defaults. */
export function resolveHarvest(model: HarvestModel, o: HarvestOptions): ResolvedHarvest {
  if (model === null || typeof model !== "object" || typeof model.trace !== "function" || typeof model.toTokens !== "function" || typeof model.config !== "object") {
    throw new TdbError("E_BAD_OPTION", "harvest: model must be a loaded Model (or ModelRuntime)", { value: model === null ? null : typeof model, allowed: "a Model" });
  }
  if (o === null || typeof o !== "object") throw new TdbError("E_BAD_OPTION", "harvest: options must be an object with a hook", { value: o, allowed: "{ hook, ... }" });
  const dIn = saeHookWidth(o.hook, model.config);
  const skipBos = o.skipBos ?? true;
  if (typeof skipBos !== "boolean") throw new TdbError("E_BAD_OPTION", `harvest: skipBos must be a boolean, got ${String(skipBos)}`, { value: skipBos, allowed: [true, false] });
  const nCtx = model.config.nCtx;
  const contextLength = intOption("contextLength", o.contextLength ?? Math.min(128, nCtx), 2, nCtx);
  return {
    hook: parseHookName(o.hook, model.config.nLayers).name,
    dIn,
    contextLength,
    tokens: o.tokens === undefined ? Infinity : intOption("tokens", o.tokens, 1, Number.MAX_SAFE_INTEGER),
    skipBos,
    promptsPerBatch: intOption("promptsPerBatch", o.promptsPerBatch ?? 16, 1, 1 << 16),
    skipRows: intOption("skipRows", o.skipRows ?? 0, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The texts of a corpus, in order (documents' texts, or the strings themselves). */
async function* texts(corpus: SaeCorpus): AsyncGenerator<string> {
  if (typeof corpus === "string" || corpus === null || typeof corpus !== "object" || !(Symbol.asyncIterator in corpus || Symbol.iterator in corpus)) {
    throw new TdbError("E_BAD_INPUT", "harvest: corpus must be an (async) iterable of documents { id, text } or of strings", {
      value: typeof corpus === "string" ? "a string" : corpus === null ? null : typeof corpus,
      allowed: "an iterable of { id, text } documents or strings (wrap one text as [text])",
    });
  }
  let i = 0;
  for await (const d of corpus as AsyncIterable<unknown>) {
    const text = typeof d === "string" ? d : d !== null && typeof d === "object" && typeof (d as CorpusDocument).text === "string" ? (d as CorpusDocument).text : undefined;
    if (text === undefined) {
      throw new TdbError("E_BAD_INPUT", `harvest: corpus item ${i} is neither a string nor a document { id, text }`, { value: d === null ? null : typeof d, allowed: "strings or { id, text } documents" });
    }
    i++;
    yield text;
  }
}

/**
 * Context windows of `contextLength` tokens from a corpus: `[BOS, next contextLength - 1
 * tokens]` of the stream `d1 BOS d2 BOS ...` (see the module comment); the last one may be
 * shorter (at least two tokens).
 */
export async function* contextWindows(model: HarvestModel, corpus: SaeCorpus, contextLength: number): AsyncGenerator<number[]> {
  const bos = model.bosTokenId;
  let window: number[] = [bos];
  let first = true;
  for await (const text of texts(corpus)) {
    if (text.trim() === "") continue;
    const ids = model.toTokens(text, { prependBos: false });
    if (ids.length === 0) continue;
    if (!first) {
      window.push(bos);
      if (window.length === contextLength) {
        yield window;
        window = [bos];
      }
    }
    first = false;
    let i = 0;
    while (i < ids.length) {
      const take = Math.min(ids.length - i, contextLength - window.length);
      for (let j = 0; j < take; j++) window.push(ids[i + j]!);
      i += take;
      if (window.length === contextLength) {
        yield window;
        window = [bos];
      }
    }
  }
  if (window.length >= 2) yield window;
}

/**
 * Streams the activations of one hook of `model` over `corpus` as batches of rows (rows x d_in,
 * one row per token position; `hook_z` flattened to n_heads * d_head), for `trainSae` or
 * anything else. See the module comment for how the corpus is cut into windows.
 *
 * Errors: `E_UNKNOWN_HOOK` / `E_LAYER_RANGE` for a bad hook name, `E_BAD_OPTION` for a hook
 * without one vector per token or a bad option, `E_HOOK_UNAVAILABLE` from the model when the
 * graph does not expose the hook, `E_BAD_INPUT` for a corpus that is not one.
 *
 * @example
 * ```ts
 * const model = await Model.load();
 * for await (const batch of harvestActivations(model, brownCorpus(), { hook: "blocks.2.hook_mlp_out", tokens: 100_000 })) {
 *   // batch: Float32Array of rows x 256
 * }
 * ```
 */
export async function* harvestActivations(model: HarvestModel, corpus: SaeCorpus, options: HarvestOptions): AsyncGenerator<Float32Array> {
  const r = resolveHarvest(model, options);
  yield* harvestResolved(model, corpus, r);
}

/** {@link harvestActivations} with options already resolved. */
export async function* harvestResolved(model: HarvestModel, corpus: SaeCorpus, r: ResolvedHarvest): AsyncGenerator<Float32Array> {
  const first = r.skipBos ? 1 : 0;
  let left = r.tokens;
  let skip = r.skipRows;
  let pending: number[][] = [];

  async function* run(windows: number[][]): AsyncGenerator<Float32Array> {
    const t = await model.trace(windows, { hooks: [r.hook], prependBos: false, logits: "last" });
    const a = t.cache.get(r.hook);
    const B = windows.length;
    const S = windows[0]!.length;
    const per = S - first;
    if (a.dims[0] !== B || a.dims[1] !== S || a.data.length !== B * S * r.dIn) {
      throw new TdbError("E_RUNTIME", `harvest: ${r.hook} came back with dims [${a.dims.join(", ")}], expected [${B}, ${S}, ...] with ${r.dIn} values per position`, {
        value: a.dims,
        allowed: [B, S, r.dIn],
      });
    }
    let rows = Math.min(B * per - skip, left);
    const out = new Float32Array(rows * r.dIn);
    let o = 0;
    for (let b = 0; b < B && o < rows; b++) {
      for (let p = first; p < S && o < rows; p++) {
        if (skip > 0) {
          skip--;
          continue;
        }
        const src = (b * S + p) * r.dIn;
        out.set(a.data.subarray(src, src + r.dIn), o * r.dIn);
        o++;
      }
    }
    rows = o;
    left -= rows;
    if (rows > 0) yield rows * r.dIn === out.length ? out : out.subarray(0, rows * r.dIn);
  }

  for await (const w of contextWindows(model, corpus, r.contextLength)) {
    if (left <= 0) return;
    const rowsHere = w.length - first;
    if (skip >= rowsHere) {
      skip -= rowsHere; // resuming: this window's rows were used already
      continue;
    }
    if (w.length < r.contextLength) {
      if (pending.length > 0) yield* run(pending);
      pending = [];
      if (left > 0) yield* run([w]);
      return;
    }
    pending.push(w);
    if (pending.length === r.promptsPerBatch) {
      yield* run(pending);
      pending = [];
    }
  }
  if (pending.length > 0 && left > 0) yield* run(pending);
}
