/**
 * `model.intervene`: runs a prompt with edits held on (and the clean prompt beside it), or many
 * edit sets ("variants") of one prompt as batched runs chunked to a memory budget.
 *
 * @module
 */
import { array, boolean, object, oneOf, positiveNumber } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { parseHookName, type HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import { defaultBudget, planChunks, rowBytes } from "../runtime/memory.js";
import type { EditFeed, HookSelector, ModelInput } from "../runtime/options.js";
import { Trace } from "../trace/trace.js";
import { TraceAssembler } from "../trace/assemble.js";
import type { TokenBatch } from "../runtime/batch.js";
import { compileEdits, editLayer, editTargets } from "./compile.js";
import type { Edit } from "./edits.js";
import { InterventionResult } from "./result.js";

/** Options of {@link Model.intervene}. */
export interface InterveneOptions {
  /**
   * Edit sets run as one batch on a single prompt: row `i` of the edited trace is the prompt
   * with `variants[i]` applied (plus the shared `edits`, applied first).
   */
  variants?: readonly (readonly Edit[])[];
  /** Hooks to cache in both runs. [default: none] */
  hooks?: HookSelector;
  /** Positions whose logits are computed: all, or the last real token of each row. [default: "all"; "last" with variants] */
  logits?: "all" | "last";
  /** Prepend BOS to string prompts. [default: true] */
  prependBos?: boolean;
  /**
   * The clean run, if you already have it (e.g. one clean trace for many `intervene` calls on
   * the same prompt): it must be a trace of the same prompt with the same hooks and logits option.
   */
  clean?: Trace;
  /**
   * Shared-prefix batching for variants: a variant whose first edit is in block L shares the
   * clean prompt's computation of the blocks before L (one row), instead of recomputing it. Same
   * results, less work. Used when no hooks are cached and no variant edits the embeddings.
   * [default: true]
   */
  prefixShare?: boolean;
  /**
   * Memory budget of the call, in bytes (a finite number > 0): the edited and clean results plus
   * the chunk of rows running at a time stay within it. Batches and variants run in row chunks
   * (same result as one run); a request whose results alone do not fit fails with
   * `E_MEMORY_BUDGET` before anything runs. [default: half the memory the process can still take
   * (Node), 1 GiB where that is unknown]
   */
  maxBatchBytes?: number;
}

function lastPositions(batch: TokenBatch): number[][] {
  return batch.rows.map((r) => [r.length - 1]);
}

/** Implementation of {@link Model.intervene}. */
export async function intervene(model: ModelRuntime, input: ModelInput, edits: readonly Edit[], opts: InterveneOptions = {}): Promise<InterventionResult> {
  // Option checks first: a bad option must not cost a run, nor change the answer silently.
  array<Edit>("edits", edits, "an array of Edit objects", "E_BAD_INPUT").forEach((e, i) => object(`edits[${i}]`, e, "an Edit object"));
  const variants = opts.variants === undefined ? undefined : array<readonly Edit[]>("variants", opts.variants, "an array of edit arrays");
  variants?.forEach((v, i) => array<Edit>(`variants[${i}]`, v, "an array of Edit objects", "E_BAD_INPUT").forEach((e, j) => object(`variants[${i}][${j}]`, e, "an Edit object")));
  const logits = opts.logits === undefined ? (variants ? "last" : "all") : oneOf("logits", opts.logits, ["all", "last"] as const);
  const budget = opts.maxBatchBytes === undefined ? defaultBudget() : positiveNumber("maxBatchBytes", opts.maxBatchBytes);
  const prefixShare = boolean("prefixShare", opts.prefixShare ?? true);
  if (opts.clean !== undefined && !(opts.clean instanceof Trace)) {
    throw new TdbError("E_BAD_OPTION", "clean must be a Trace (from model.trace)", { value: opts.clean === null ? null : typeof opts.clean, allowed: "a Trace" });
  }
  const batch = model.toBatch(input, { prependBos: opts.prependBos });
  const hooks = model.selectHooks(opts.hooks ?? []);
  const S = batch.seqLen;
  const logitRows = logits === "last" ? 1 : S;
  const run = async (b: TokenBatch, rowEdits: readonly (readonly Edit[])[] | undefined, rowOffset = 0): Promise<Trace> => {
    const feeds = rowEdits ? await compileEdits(model, rowEdits, b.seqLen, { rowOffset, totalRows: rowOffset > 0 || b.rows.length < batch.rows.length ? batch.rows.length : undefined }) : undefined;
    return model.run(b, { hooks, edits: feeds, logitPositions: logits === "last" ? lastPositions(b) : undefined });
  };
  const cleanRun = async (): Promise<Trace> => opts.clean ?? run(batch, undefined);
  if (opts.clean && opts.clean.tokens.map((r) => r.join()).join("|") !== batch.rows.map((r) => r.join()).join("|")) {
    throw new TdbError("E_BAD_INPUT", "the clean trace passed in is of other tokens than the prompt", { value: opts.clean.tokens, allowed: batch.rows });
  }
  if (!variants) {
    const rowEdits = batch.rows.map((_, r) => edits.filter((e) => e.rows === undefined || e.rows.includes(r)));
    for (const e of edits) {
      const bad = e.rows?.find((r) => !Number.isInteger(r) || r < 0 || r >= batch.rows.length);
      if (bad !== undefined) {
        throw new TdbError("E_INDEX_RANGE", `edit of ${e.hook}: row ${bad} out of range [0, ${batch.rows.length - 1}]`, { value: bad, allowed: [0, batch.rows.length - 1] });
      }
    }
    // Both results are kept (the clean one unless given): plan for two rows per prompt row.
    const B = batch.rows.length;
    const runs = opts.clean ? 1 : 2;
    // Edit feeds sized by the edited hooks' names (an upper bound: a hook_result edit becomes a
    // smaller hook_z feed), without resolving the edits: resolving would trace resample sources
    // once more before compileEdits traces them.
    const editedHooks = [...new Set(edits.map((e) => parseHookName(e.hook, model.config.nLayers).name))];
    const one = rowBytes(model.config, S, logitRows, hooks, editedHooks);
    const plan = planChunks(B * runs, one, budget, `intervene on ${B} rows x ${S} positions`);
    const chunk = Math.max(1, Math.floor(plan.chunkRows / runs));
    const inChunks = async (rowEdits: readonly (readonly Edit[])[] | undefined): Promise<Trace> => {
      if (chunk >= B) return run(batch, rowEdits);
      const out = new TraceAssembler(B, model.codec);
      for (let start = 0; start < B; start += chunk) {
        const end = Math.min(B, start + chunk);
        const part: TokenBatch = {
          rows: batch.rows.slice(start, end),
          seqLen: S,
          inputIds: batch.inputIds.subarray(start * S, end * S),
          attentionMask: batch.attentionMask.subarray(start * S, end * S),
        };
        out.copyAll(await run(part, rowEdits?.slice(start, end), start), start);
      }
      return out.finish();
    };
    // The clean run goes after the edited one, so that it reuses the edit session (fed identity)
    // instead of building a session of its own.
    const edited = await inChunks(rowEdits);
    return new InterventionResult(edited, opts.clean ?? (await inChunks(undefined)), false);
  }
  if (batch.rows.length !== 1) {
    throw new TdbError("E_BAD_INPUT", `variants run on one prompt; got ${batch.rows.length}`, { value: batch.rows.length, allowed: 1 });
  }
  if (variants.length === 0) throw new TdbError("E_BAD_INPUT", "variants is empty", { value: 0, allowed: "at least one variant" });
  for (const v of variants) {
    const withRows = v.find((e) => e.rows !== undefined);
    if (withRows) throw new TdbError("E_BAD_OPTION", `edit of ${withRows.hook} sets rows inside a variant; each variant is one row`, { value: withRows.rows, allowed: "no rows field inside variants" });
  }
  // Size chunks from the hooks any variant edits (the session has edit points on all of them).
  const targets = await editTargets(model, [...edits, ...variants.flat()], batch.seqLen);
  const plan = planChunks(variants.length + 1, rowBytes(model.config, S, logitRows, hooks, targets), budget, `intervene with ${variants.length} variants of ${S} positions`);
  const chunk = Math.max(1, plan.chunkRows - 1); // each chunk may carry the clean row too
  const first = variants.map((v) => Math.min(...[...edits, ...v].map((e) => editLayer(model, e))));
  if (prefixShare && hooks.length === 0 && first.every((f) => f >= 0)) {
    const r = await prefixShared(model, batch, edits, variants, first, opts.clean, chunk, logits);
    return new InterventionResult(r.edited, r.clean ?? (await cleanRun()), true);
  }
  // Each chunk's feeds are compiled just before its run and its rows copied into the result
  // right after, so that memory holds the result and one chunk.
  const out = new TraceAssembler(variants.length, model.codec);
  const row = batch.rows[0]!;
  for (let start = 0; start < variants.length; start += chunk) {
    const vs = variants.slice(start, start + chunk);
    const b = model.toBatch(vs.map(() => row));
    // Every row gets an edit point on every hook any variant edits, so that one session serves
    // all chunks: rows that leave a hook alone are fed identity (scale by 1).
    const identity: Edit[] = targets.map((h) => ({ hook: h, kind: "scale", value: 1 }));
    out.copyAll(await run(b, vs.map((v) => [...identity, ...edits, ...v])), start);
  }
  return new InterventionResult(out.finish(), await cleanRun(), true);
}

/**
 * Variants with shared-prefix batching: rows sorted by the block of their first edit; block L
 * runs only the clean row and the rows edited at or before L (see `RunSpec.prefixRows`).
 * `first[i]` is variant i's first edited block (Infinity: no edits, i.e. the clean run).
 */
async function prefixShared(
  model: ModelRuntime,
  batch: TokenBatch,
  edits: readonly Edit[],
  variants: readonly (readonly Edit[])[],
  first: number[],
  given: Trace | undefined,
  chunk: number,
  logits: "all" | "last",
): Promise<{ edited: Trace; clean: Trace | undefined }> {
  const L = model.config.nLayers;
  const S = batch.seqLen;
  const order = variants.map((_, i) => i).filter((i) => Number.isFinite(first[i])).sort((a, b) => first[a]! - first[b]! || a - b);
  // Row 0 of every chunk is the clean prompt: the first chunk's serves as the clean run. Each
  // chunk's rows are copied into the result (row i = variant i) as soon as it has run.
  const out = new TraceAssembler(variants.length, model.codec);
  let own: Trace | undefined; // the clean row this call computed
  for (let start = 0; start < order.length; start += chunk) {
    const rows = order.slice(start, start + chunk); // variant indices, sorted by first block
    const prefixRows: number[][] = [];
    const feeds = new Map<HookName, EditFeed>();
    let before = 1;
    for (let l = 0; l < L; l++) {
      const n = 1 + rows.filter((i) => first[i]! <= l).length;
      prefixRows.push([...Array.from({ length: before }, (_, r) => r), ...new Array<number>(n - before).fill(0)]);
      before = n;
      const rowEdits = [[], ...rows.slice(0, n - 1).map((i) => [...edits, ...variants[i]!].filter((e) => editLayer(model, e) === l))];
      if (rowEdits.some((r) => r.length > 0)) for (const [h, f] of await compileEdits(model, rowEdits, S, { prefixShare: true })) feeds.set(h, f);
    }
    const logitPositions = logits === "last" ? Array.from({ length: before }, () => [batch.rows[0]!.length - 1]) : undefined;
    const part = await model.run(batch, { hooks: [], edits: feeds, logitPositions, prefixRows });
    rows.forEach((i, j) => out.copyRow(part, 1 + j, i));
    own ??= part.selectRows([0]);
  }
  // Variants that edit nothing are the clean run.
  const clean = own ?? given ?? (await model.run(batch, { hooks: [], logitPositions: logits === "last" ? lastPositions(batch) : undefined }));
  first.forEach((f, i) => {
    if (!Number.isFinite(f)) out.copyRow(clean, 0, i);
  });
  return { edited: out.finish(), clean: given ?? clean };
}

