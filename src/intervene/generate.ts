/**
 * Generation with edits held on. The prompt runs once; each later step runs only the newest
 * token, with the keys and values of the earlier tokens taken from a cache (a with-past variant
 * of the patched graph, `runtime/kv-cache.ts`), and picks the next token (greedy, or sampled with
 * a temperature and top-k from a seeded generator, so runs are reproducible).
 *
 * Edits and positions. A token's activations (and so its keys and values) are computed once, in
 * the pass that processes it: the prompt pass for prompt tokens, then the step that adds it. An
 * edit applies to a token in that pass when one of its positions names the token there:
 * `p >= 0` names absolute position `p`; `p < 0` counts back from the end of the sequence as it is
 * in that pass (`L + p`, with `L` the prompt length in the prompt pass and `a + 1` in the step
 * processing position `a`). So `-1` edits the last prompt token and every generated token (each
 * when it is newest), `-2` only the last-but-one prompt token, and `5` the token at position 5
 * whenever it comes. Edits without positions apply to every token. Positions must lie in
 * `[-n_ctx, n_ctx - 1]`; one that names no token is not an error.
 *
 * Edits the cache cannot carry fall back to re-running the whole sequence at every step (with
 * the same position rule: the same tokens are edited): patch and resample edits (their source is
 * read by position, and with `align: "end"` the source position of a token moves as the sequence
 * grows) and edits of `hook_pattern` / `hook_attn_scores` (their key axis covers the cached
 * tokens). So does a graph the adapter cannot make a with-past variant of, and `cache: false`.
 * {@link Generation.cached} says which way a call ran.
 *
 * @module
 */
import { array, boolean, finiteNumber, object, positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { resolvePosition } from "../base/positions.js";
import { Rng } from "../base/random.js";
import { hookKindOf, parseHookName, type HookName } from "../hooks/names.js";
import { KvCache, pastGraphFor, runWithPast, type PastRequest } from "../runtime/kv-cache.js";
import type { EditFeed } from "../runtime/options.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import { compileEdits, editTargets } from "./compile.js";
import type { Edit } from "./edits.js";

/** Options of {@link Model.generate}. */
export interface GenerateOptions {
  /**
   * Edits held on while generating. Each token is edited in the pass that computes it: `p >= 0`
   * is absolute position `p`, `p < 0` counts back from the end of the sequence in that pass, so
   * `positions: [-1]` edits the last prompt token and then each new token; edits without
   * positions cover every token (see the module overview).
   */
  edits?: readonly Edit[];
  /**
   * Run each step after the prompt on the newest token only, with the other tokens' keys and
   * values cached; false re-runs the whole sequence at every step (same result, slower). Edits
   * the cache cannot carry (patch, resample, attention pattern/score edits) re-run the whole
   * sequence whatever this says. [default: true]
   */
  cache?: boolean;
  /** Tokens to add, an integer >= 0 (0: an empty continuation). Generation also stops at the context length: a prompt that fills it gets an empty continuation. [default: 20] */
  maxNewTokens?: number;
  /** A finite number >= 0; 0 for greedy decoding. [default: 0] */
  temperature?: number;
  /** Sample among the k most likely tokens (with temperature > 0); an integer >= 1. [default: all] */
  topK?: number;
  /** Seed of the sampler. [default: 0] */
  seed?: number;
  /** Stop at the end-of-text token. [default: true] */
  stopAtEos?: boolean;
  /** Prepend BOS to a string prompt. [default: true] */
  prependBos?: boolean;
}

/** A generated continuation. */
export interface Generation {
  /** Prompt and new tokens. */
  tokens: number[];
  /** The new tokens only. */
  newTokens: number[];
  /** The decoded new tokens. */
  completion: string;
  /** Whether the steps ran with the key/value cache (false: the whole sequence was re-run at each step). */
  cached: boolean;
}

/** Whether the token at absolute position `a` is named by position `q` in the pass that computes it. */
function names(q: number, a: number, promptLength: number): boolean {
  return q >= 0 ? q === a : Math.max(promptLength, a + 1) + q === a;
}

/**
 * The edits that act on the pass computing tokens `from .. length - 1` (positions relative to
 * `from`), each with its index in `edits`; edits that name none of those tokens are left out.
 */
function passEdits(edits: readonly Edit[], from: number, length: number, promptLength: number): { index: number; edit: Edit }[] {
  const out: { index: number; edit: Edit }[] = [];
  edits.forEach((edit, index) => {
    if (edit.positions === undefined) {
      out.push({ index, edit });
      return;
    }
    const hit: number[] = [];
    for (let a = from; a < length; a++) if (edit.positions.some((q) => names(q, a, promptLength))) hit.push(a - from);
    if (hit.length) out.push({ index, edit: { ...edit, positions: hit } });
  });
  return out;
}

/** Why the cache cannot carry `edits` (undefined: it can). */
function uncachable(model: ModelRuntime, edits: readonly Edit[]): string | undefined {
  for (const e of edits) {
    if (e.kind === "patch" || e.kind === "resample") return `${e.kind} edits read their source by position`;
    const { name } = parseHookName(e.hook, model.config.nLayers);
    if (hookKindOf(name)?.dims.includes("key_pos")) return `${name} edits span the cached keys`;
  }
  return undefined;
}

/** The next token from last-position logits: argmax, or a seeded sample. */
function pick(logits: Float32Array, temperature: number, topK: number | undefined, rng: Rng): number {
  if (temperature === 0) {
    let next = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[next]!) next = i;
    return next;
  }
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  const pool = order.slice(0, topK ?? order.length);
  const m = logits[pool[0]!]!;
  const w = pool.map((i) => Math.exp((logits[i]! - m) / temperature));
  let u = rng.uniform() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < pool.length; j++) {
    u -= w[j]!;
    if (u <= 0) return pool[j]!;
  }
  return pool[pool.length - 1]!;
}

/** Implementation of {@link Model.generate}. */
export async function generate(model: ModelRuntime, prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<Generation> {
  const max = positiveInt("maxNewTokens", opts.maxNewTokens ?? 20, 0);
  const temperature = finiteNumber("temperature", opts.temperature ?? 0, 0);
  const topK = opts.topK === undefined ? undefined : positiveInt("topK", opts.topK);
  const seed = finiteNumber("seed", opts.seed ?? 0);
  const stopAtEos = boolean("stopAtEos", opts.stopAtEos ?? true);
  const useCache = boolean("cache", opts.cache ?? true);
  const editList = array<Edit>("edits", opts.edits ?? [], "an array of Edit objects", "E_BAD_INPUT");
  editList.forEach((e, i) => object(`edits[${i}]`, e, "an Edit object"));
  if (typeof prompt !== "string" && !Array.isArray(prompt)) {
    throw new TdbError("E_BAD_INPUT", "generate takes a string or one token row", { value: prompt === null ? null : typeof prompt, allowed: "a string or an array of token ids" });
  }
  const tokens = typeof prompt === "string" ? model.toTokens(prompt, { prependBos: opts.prependBos }) : [...prompt];
  // Checks the tokens and the length (E_PROMPT_TOO_LONG beyond the context), even when no step runs.
  model.toBatch([tokens]);
  const start = tokens.length;
  const nCtx = model.config.nCtx;
  // Every edit is checked now (hooks, indices, values), whichever pass it first acts on; patch
  // and resample edits, whose source positions depend on the pass, are checked when compiled.
  for (const e of editList) {
    if (e.positions === undefined) continue;
    array<number>(`${e.hook}: positions`, e.positions, "an array of positions");
    for (const q of e.positions) resolvePosition(q, nCtx, `${e.hook}: position`);
  }
  const checked = editList.filter((e) => e.kind !== "patch" && e.kind !== "resample").map((e) => ({ ...e, positions: undefined }) as Edit);
  const hooks = checked.length ? await editTargets(model, checked, start) : [];
  const rng = new Rng(seed);
  const eos = model.config.eosTokenId;
  const req: PastRequest = { hooks: [], edits: hooks };
  let cached = useCache && max > 0 && uncachable(model, editList) === undefined;
  if (cached) {
    try {
      pastGraphFor(model, req);
    } catch (err) {
      if (!(err instanceof TdbError && err.code === "E_UNSUPPORTED_GRAPH")) throw err;
      cached = false; // no with-past variant of this graph: re-run the whole sequence
    }
  }
  const cache = new KvCache(model.config.nLayers, model.config.nHeads, model.config.dHead);
  /** Compiled feeds by pass shape (length and which edits act): every one-token step after the prompt shares one. */
  const compiled = new Map<string, Map<HookName, EditFeed> | undefined>();
  for (let step = 0; step < max; step++) {
    if (tokens.length >= nCtx) break;
    const from = cached ? cache.length : 0;
    const S = tokens.length - from;
    const acting = passEdits(editList, from, tokens.length, start);
    let logits: Float32Array;
    if (cached) {
      const key = `${S}|${acting.map((a) => `${a.index}@${a.edit.positions?.join(",") ?? "*"}`).join(";")}`;
      if (!compiled.has(key)) compiled.set(key, acting.length ? await compileEdits(model, [acting.map((a) => a.edit)], S) : undefined);
      logits = (await runWithPast(model, cache, tokens.slice(from), req, compiled.get(key))).logits;
    } else {
      const batch = model.toBatch([tokens]);
      const edits = acting.length ? await compileEdits(model, [acting.map((a) => a.edit)], batch.seqLen) : undefined;
      const t = await model.run(batch, { hooks: [], edits, logitPositions: [[tokens.length - 1]] });
      logits = t.logitsAt();
    }
    const next = pick(logits, temperature, topK, rng);
    tokens.push(next);
    if (stopAtEos && next === eos) break;
  }
  const newTokens = tokens.slice(start);
  // A prompt that fills the context (or maxNewTokens 0) gets an empty continuation.
  const completion = newTokens.length === 0 ? "" : model.tokenizer.decode(newTokens, { skip_special_tokens: false });
  return { tokens, newTokens, completion, cached };
}
