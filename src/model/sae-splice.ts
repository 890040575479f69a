/**
 * SAEs in the model's forward pass: `trace(prompt, { saes })` (SAELens's hooks in the cache,
 * with or without the error term) and latent edits in `intervene`. This module composes the pure
 * SAE maths (`src/sae/splice.ts`) with the runtime's traces and interventions; `Model` delegates
 * to it.
 *
 * How a splice or a latent edit reaches the forward pass: the SAE needs the hook's value in the
 * edited run, so the hook is first read in a run with every edit upstream of it applied, the new
 * value is computed from it in JavaScript, and a final run patches that value in (an ordinary
 * `patch` edit whose source holds it). Hooks are handled in forward order, each read run
 * carrying the patches of the hooks before it.
 *
 * Cost: one extra forward pass per SAE hook that is spliced (error term dropped) or whose
 * latents are edited, plus the SAE's encode and decode of the edited positions (twice decode for
 * latent edits). Read passes compute only the last position's logits. With variants, read
 * passes run once per distinct list of upstream edits (variants that edit only latents share
 * one read, a single row).
 *
 * @module
 */
import { array, boolean, object, options } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { resolvePosition } from "../base/positions.js";
import { hookNamesFor, parseHookName, type HookName } from "../hooks/names.js";
import type { Edit, PatchEdit } from "../intervene/edits.js";
import { editTargets } from "../intervene/compile.js";
import { intervene, type InterveneOptions } from "../intervene/intervene.js";
import type { InterventionResult } from "../intervene/result.js";
import type { TokenBatch } from "../runtime/batch.js";
import type { ModelInput, TraceOptions } from "../runtime/options.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import { saeHookWidth } from "../sae/harvest.js";
import { isLatentEdit, type LatentEdit } from "../sae/latent-edits.js";
import { Sae } from "../sae/sae.js";
import { editedActivation, saeHookName, spliceSae, LATENT_OPS, type LatentChange } from "../sae/splice.js";
import { Activation } from "../trace/activation.js";
import { ActivationCache } from "../trace/cache.js";
import { Trace } from "../trace/trace.js";

/**
 * SAEs to attach: an array of SAEs whose configs name their hook (`config.hookName`), or hook
 * name -> SAE (a `Map` or a plain object), which also attaches an SAE whose config names none.
 */
export type SaeAttachments = readonly Sae[] | ReadonlyMap<string, Sae> | Readonly<Record<string, Sae>>;

/** Options of {@link Model.trace}: {@link TraceOptions} plus attached SAEs. */
export interface SaeTraceOptions extends TraceOptions {
  /**
   * SAEs to attach. The cache gains, for an SAE at hook `H`, `H.hook_sae_input`,
   * `H.hook_sae_acts_pre`, `H.hook_sae_acts_post`, `H.hook_sae_recons` and `H.hook_sae_error`
   * (dims [batch, pos, d_in] or [batch, pos, d_sae]; `hook_z` is read as n_heads·d_head), and `H`
   * itself is cached. Each SAE's d_in must equal the hook's width (`E_SAE_CONFIG`).
   */
  saes?: SaeAttachments;
  /**
   * Keep the SAE's error term (SAELens's `use_error_term`): the model runs as it is and its
   * outputs are unchanged. `false` splices the reconstruction in: downstream of each SAE the
   * hook's value is the reconstruction (logits change), at the cost of one more forward pass
   * per SAE; the cached `H` is then that value, and the SAE hooks of a later SAE are read from the
   * spliced run. Not with `positions`. [default: true]
   */
  useErrorTerm?: boolean;
}

/** An ordinary edit or a latent edit: what {@link Model.intervene} takes. */
export type AnyEdit = Edit | LatentEdit;

/** Options of {@link Model.intervene}: {@link InterveneOptions} with variants that may hold latent edits. */
export interface SaeInterveneOptions extends Omit<InterveneOptions, "variants"> {
  /**
   * Edit sets run as one batch on a single prompt: row `i` of the edited trace is the prompt
   * with `variants[i]` applied (plus the shared `edits`, applied first). Latent edits allowed.
   */
  variants?: readonly (readonly AnyEdit[])[];
}

/** An SAE attached at a checked hook. */
export interface AttachedSae {
  /** The hook the SAE reads. */
  hook: HookName;
  /** The SAE. */
  sae: Sae;
  /** The hook's width per position (the SAE's d_in). */
  width: number;
}

/** Checks that `sae` is an {@link Sae} and fits `hook` of this model; returns the checked hook. */
export function attachSae(rt: ModelRuntime, sae: unknown, hook: string | undefined, what: string): AttachedSae {
  if (!(sae instanceof Sae)) {
    throw new TdbError("E_BAD_INPUT", `${what} must be an Sae (from loadSae, Sae.create or trainSae)`, { value: sae === null ? null : typeof sae, allowed: "an Sae" });
  }
  const h = hook ?? sae.config.hookName;
  if (h === undefined) {
    throw new TdbError("E_BAD_OPTION", `${what} has no hook: its config has no hookName; name the hook (saes: { "blocks.0.hook_mlp_out": sae }, or { hook } on a latent edit)`, {
      value: "no hookName",
      allowed: "an SAE whose config.hookName is set, or an explicit hook",
    });
  }
  const { name } = parseHookName(h, rt.config.nLayers);
  rt.selectHooks([name]); // E_HOOK_UNAVAILABLE for hooks this graph cannot reach
  const head = sae.config.hookHeadIndex;
  if (head !== undefined && head !== null) {
    throw new TdbError("E_SAE_CONFIG", `${what} reads one head (hook_head_index ${head}); SAEs on a single head are not supported, only whole hooks`, { value: head, allowed: "hook_head_index null" });
  }
  const width = saeHookWidth(name, rt.config);
  if (sae.dIn !== width) {
    throw new TdbError("E_SAE_CONFIG", `${what} has d_in ${sae.dIn}, but ${name} is ${width} wide`, { value: sae.dIn, allowed: width });
  }
  return { hook: name, sae, width };
}

/** Resolves {@link SaeAttachments} to checked SAEs in forward order (one per hook). */
export function attachSaes(rt: ModelRuntime, saes: SaeAttachments): AttachedSae[] {
  let pairs: [string | undefined, unknown][];
  if (Array.isArray(saes)) pairs = (saes as readonly unknown[]).map((s) => [undefined, s]);
  else if (saes instanceof Map) pairs = [...(saes as ReadonlyMap<string, unknown>)];
  else if (typeof saes === "object" && saes !== null) pairs = Object.entries(saes as Record<string, unknown>);
  else {
    throw new TdbError("E_BAD_OPTION", "saes must be an array of SAEs or a map hook -> SAE", { value: saes === null ? null : typeof saes, allowed: "Sae[] | Map<hook, Sae> | { [hook]: Sae }" });
  }
  const out = pairs.map(([hook, sae], i) => attachSae(rt, sae, hook, hook === undefined ? `saes[${i}]` : `saes[${JSON.stringify(hook)}]`));
  const seen = new Set<string>();
  for (const a of out) {
    if (seen.has(a.hook)) throw new TdbError("E_BAD_OPTION", `two SAEs attached at ${a.hook}; attach one SAE per hook`, { value: a.hook, allowed: "one SAE per hook" });
    seen.add(a.hook);
  }
  const order = hookNamesFor(rt.config.nLayers);
  return out.sort((a, b) => order.indexOf(a.hook) - order.indexOf(b.hook));
}

/** The five SAE hook activations of a hook activation [batch, pos, ...] (see `spliceSae`). */
async function saeActivations(a: AttachedSae, x: Activation): Promise<{ acts: Activation[]; recons: Float32Array }> {
  const t = await spliceSae(a.sae, x.data, x.data.length / a.width);
  const lead = x.dims.slice(0, 2);
  const inDims = [...lead, a.sae.dIn];
  const latDims = [...lead, a.sae.dSae];
  const inLabels = ["batch", "pos", "d_in"];
  const latLabels = ["batch", "pos", "d_sae"];
  const n = (s: Parameters<typeof saeHookName>[1]) => saeHookName(a.hook, s);
  return {
    acts: [
      new Activation(n("hook_sae_input"), t.input, inDims, inLabels),
      new Activation(n("hook_sae_acts_pre"), t.actsPre, latDims, latLabels),
      new Activation(n("hook_sae_acts_post"), t.actsPost, latDims, latLabels),
      new Activation(n("hook_sae_recons"), t.recons, inDims, inLabels),
      new Activation(n("hook_sae_error"), t.error, inDims, inLabels),
    ],
    recons: t.recons,
  };
}

/** `t` with the SAE activations inserted in its cache right after their hooks. */
function withSaeEntries(rt: ModelRuntime, t: Trace, extra: ReadonlyMap<HookName, readonly Activation[]>): Trace {
  const entries = new Map<HookName, Activation>();
  for (const [name, act] of t.cache) {
    entries.set(name, act);
    for (const a of extra.get(name) ?? []) entries.set(a.name as HookName, a);
  }
  return new Trace(t.tokens, t.strTokens, t.logits, new ActivationCache(entries, rt.config.nLayers), rt.codec, t.positions, t.logitPositions);
}

/** A trace of `rows` token rows holding only `act` for `hook` (no logits): the source of a patch edit. */
export function sourceTrace(rt: ModelRuntime, rows: readonly (readonly number[])[], hook: HookName, act: Activation): Trace {
  const logits = new Activation("logits", new Float32Array(0), [rows.length, 0, rt.config.dVocab], ["batch", "pos", "d_vocab"]);
  return new Trace(
    rows.map((r) => [...r]),
    rows.map((r) => r.map(() => "")),
    logits,
    new ActivationCache(new Map([[hook, act]]), rt.config.nLayers),
    rt.codec,
  );
}

/**
 * A stand-in clean trace (tokens only) for `intervene` runs whose clean half is not wanted:
 * intervene compares its tokens and returns it as `clean` without running one.
 */
export function noClean(rt: ModelRuntime, rows: readonly (readonly number[])[]): Trace {
  return sourceTrace(rt, rows, "hook_embed", new Activation("hook_embed", new Float32Array(0), [rows.length, 0, 0], ["batch", "pos", "d_model"]));
}

interface RunBase {
  prependBos?: boolean;
  maxBatchBytes?: number;
}

/** `hook` in the run of `input` with `edits` (or each of `variants`) applied; last-position logits only. */
async function readHook(rt: ModelRuntime, input: ModelInput, batch: TokenBatch, hook: HookName, base: RunBase, edits: readonly Edit[], variants?: readonly (readonly Edit[])[]): Promise<Activation> {
  const common = { hooks: [hook], logits: "last" as const, prependBos: base.prependBos, maxBatchBytes: base.maxBatchBytes };
  if (variants && variants.length > 1) return (await intervene(rt, input, [], { ...common, variants, clean: noClean(rt, batch.rows) })).edited.cache.get(hook);
  const list = variants ? variants[0]! : edits;
  if (list.length === 0) return (await rt.trace(input, common)).cache.get(hook);
  return (await intervene(rt, input, list, { ...common, clean: noClean(rt, batch.rows) })).edited.cache.get(hook);
}

/** Implementation of {@link Model.trace} with `saes`. */
export async function traceWithSaes(rt: ModelRuntime, input: ModelInput, opts?: SaeTraceOptions): Promise<Trace> {
  const { saes, useErrorTerm, ...traceOpts } = options<SaeTraceOptions>("trace options", opts);
  if (saes === undefined) return rt.trace(input, traceOpts);
  const attached = attachSaes(rt, saes);
  const keepError = useErrorTerm === undefined ? true : boolean("useErrorTerm", useErrorTerm);
  const hooks = rt.selectHooks([...new Set([...rt.selectHooks(traceOpts.hooks ?? "all"), ...attached.map((a) => a.hook)])]);
  const extra = new Map<HookName, Activation[]>();
  if (keepError) {
    const t = await rt.trace(input, { ...traceOpts, hooks });
    for (const a of attached) extra.set(a.hook, (await saeActivations(a, t.cache.get(a.hook))).acts);
    return withSaeEntries(rt, t, extra);
  }
  if (traceOpts.positions !== undefined) {
    throw new TdbError("E_BAD_OPTION", "positions cannot be combined with useErrorTerm: false (the spliced run needs every position)", { value: traceOpts.positions, allowed: "no positions" });
  }
  const bad = attached.find((a) => a.hook.endsWith("attn.hook_result"));
  if (bad) throw new TdbError("E_BAD_OPTION", `${bad.hook} cannot be spliced (hook_result is computed beside the model); attach the SAE to hook_z or hook_attn_out`, { value: bad.hook, allowed: "an editable hook" });
  const batch = rt.toBatch(input, { prependBos: traceOpts.prependBos });
  const base: RunBase = { prependBos: traceOpts.prependBos, maxBatchBytes: traceOpts.maxBatchBytes };
  const patches: PatchEdit[] = [];
  for (const a of attached) {
    const x = await readHook(rt, input, batch, a.hook, base, patches);
    const { acts, recons } = await saeActivations(a, x);
    extra.set(a.hook, acts);
    patches.push({ hook: a.hook, kind: "patch", source: sourceTrace(rt, batch.rows, a.hook, new Activation(a.hook, recons, x.dims, x.labels)) });
  }
  const r = await intervene(rt, input, patches, { hooks, logits: traceOpts.logits, prependBos: traceOpts.prependBos, maxBatchBytes: traceOpts.maxBatchBytes, clean: noClean(rt, batch.rows) });
  return withSaeEntries(rt, r.edited, extra);
}

/** A latent edit checked against the model and the prompt length. */
interface ResolvedLatent {
  edit: LatentEdit;
  hook: HookName;
  /** The canonical hook of the edited tensor (hooks that are one tensor share it). */
  tensor: HookName;
  /** Forward index of `tensor`. */
  order: number;
  /** Absolute positions, or undefined for every real position of the row. */
  positions?: number[];
}

async function canonical(rt: ModelRuntime, hook: string, S: number): Promise<HookName> {
  let { name } = parseHookName(hook, rt.config.nLayers);
  if (name.endsWith("attn.hook_result")) name = name.replace("attn.hook_result", "attn.hook_z") as HookName;
  return (await editTargets(rt, [{ hook: name, kind: "zero" }], S))[0]!;
}

async function resolveLatent(rt: ModelRuntime, e: LatentEdit, where: string, S: number, batchRows: number | undefined): Promise<ResolvedLatent> {
  const a = attachSae(rt, e.sae, e.hook, `${where}.sae`);
  if (a.hook.endsWith("attn.hook_result")) {
    throw new TdbError("E_BAD_OPTION", `${where}: latents of an SAE on ${a.hook} cannot be edited (hook_result is computed beside the model); use hook_z or hook_attn_out`, { value: a.hook, allowed: "an editable hook" });
  }
  if (!LATENT_OPS.includes(e.op)) throw new TdbError("E_BAD_OPTION", `${where}: unknown latent op ${JSON.stringify(e.op)}`, { value: e.op, allowed: LATENT_OPS });
  const latents = array<number>(`${where}.latents`, e.latents, "an array of latent indices", "E_BAD_INPUT");
  if (latents.length === 0) throw new TdbError("E_BAD_INPUT", `${where}: no latents given`, { value: [], allowed: "at least one latent index" });
  for (const j of latents) {
    if (!Number.isInteger(j) || j < 0 || j >= a.sae.dSae) throw new TdbError("E_INDEX_RANGE", `${where}: latent ${j} out of range [0, ${a.sae.dSae - 1}]`, { value: j, allowed: [0, a.sae.dSae - 1] });
  }
  if (e.op !== "zero" && !(typeof e.value === "number" && Number.isFinite(e.value))) {
    throw new TdbError("E_BAD_OPTION", `${where}: ${e.op} needs a finite value, got ${String(e.value)}`, { value: e.value, allowed: "a finite number" });
  }
  if (batchRows === undefined && e.rows !== undefined) {
    throw new TdbError("E_BAD_OPTION", `${where} (latent edit of ${a.hook}) sets rows inside a variant; each variant is one row`, { value: e.rows, allowed: "no rows field inside variants" });
  }
  if (batchRows !== undefined && e.rows !== undefined) {
    const bad = array<number>(`${where}.rows`, e.rows, "an array of row indices").find((r) => !Number.isInteger(r) || r < 0 || r >= batchRows);
    if (bad !== undefined) throw new TdbError("E_INDEX_RANGE", `${where}: row ${bad} out of range [0, ${batchRows - 1}]`, { value: bad, allowed: [0, batchRows - 1] });
  }
  const positions = e.positions === undefined ? undefined : array<number>(`${where}.positions`, e.positions, "an array of positions").map((p) => resolvePosition(p, S, `${where}: position`));
  const tensor = await canonical(rt, a.hook, S);
  return { edit: e, hook: a.hook, tensor, order: hookNamesFor(rt.config.nLayers).indexOf(tensor), positions };
}

/**
 * The patch edit that puts one row's latent edits at one hook into the forward pass: `x` is the
 * row's hook value [S, width] in the run with everything upstream applied, `group` the row's
 * latent edits on that tensor (in order), `len` its real length.
 */
async function rowPatch(rt: ModelRuntime, row: readonly number[], x: Float32Array, dims: readonly number[], labels: readonly string[], group: readonly ResolvedLatent[], len: number, rows?: number[]): Promise<PatchEdit> {
  const sae = group[0]!.edit.sae;
  const hook = group[0]!.hook;
  const width = sae.dIn;
  const posOf = (g: ResolvedLatent) => g.positions ?? Array.from({ length: len }, (_, i) => i);
  const P = [...new Set(group.flatMap(posOf))].sort((a, b) => a - b);
  const index = new Map(P.map((p, i) => [p, i]));
  const xP = new Float32Array(P.length * width);
  P.forEach((p, i) => xP.set(x.subarray(p * width, (p + 1) * width), i * width));
  const changes: LatentChange[] = group.map((g) => ({ op: g.edit.op, latents: g.edit.latents, value: g.edit.value, rows: posOf(g).map((p) => index.get(p)!) }));
  const edited = await editedActivation(sae, xP, changes, P.length);
  const value = x.slice();
  P.forEach((p, i) => value.set(edited.subarray(i * width, (i + 1) * width), p * width));
  const source = sourceTrace(rt, [row], hook, new Activation(hook, value, [1, ...dims.slice(1)], labels));
  return { hook, kind: "patch", source, positions: P, ...(rows ? { rows } : {}) };
}

/** Implementation of {@link Model.intervene}: ordinary edits go straight through; latent edits as described in the module overview. */
export async function interveneWithLatents(rt: ModelRuntime, input: ModelInput, edits: readonly AnyEdit[], opts: SaeInterveneOptions = {}): Promise<InterventionResult> {
  const o = options<SaeInterveneOptions>("intervene options", opts);
  const list = array<AnyEdit>("edits", edits, "an array of Edit objects", "E_BAD_INPUT");
  list.forEach((e, i) => object(`edits[${i}]`, e, "an Edit object"));
  const variants = o.variants === undefined ? undefined : array<readonly AnyEdit[]>("variants", o.variants, "an array of edit arrays");
  variants?.forEach((v, i) => array<AnyEdit>(`variants[${i}]`, v, "an array of Edit objects", "E_BAD_INPUT").forEach((e, j) => object(`variants[${i}][${j}]`, e, "an Edit object")));
  const hasLatent = list.some(isLatentEdit) || (variants?.some((v) => v.some(isLatentEdit)) ?? false);
  if (!hasLatent) return intervene(rt, input, list as readonly Edit[], o as InterveneOptions);
  const batch = rt.toBatch(input, { prependBos: o.prependBos });
  const S = batch.seqLen;
  if (variants && batch.rows.length !== 1) throw new TdbError("E_BAD_INPUT", `variants run on one prompt; got ${batch.rows.length}`, { value: batch.rows.length, allowed: 1 });
  if (variants && variants.length === 0) throw new TdbError("E_BAD_INPUT", "variants is empty", { value: 0, allowed: "at least one variant" });
  const resolved = new Map<LatentEdit, ResolvedLatent>();
  const where = new Map<AnyEdit, string>();
  list.forEach((e, i) => where.set(e, `edits[${i}]`));
  variants?.forEach((v, i) => v.forEach((e, j) => where.has(e) || where.set(e, `variants[${i}][${j}]`)));
  for (const [e, w] of where) {
    if (!isLatentEdit(e) || resolved.has(e)) continue;
    // Shared edits take the batch's rows; a latent edit in a variant must not name rows.
    const inVariant = w.startsWith("variants");
    resolved.set(e, await resolveLatent(rt, e, w, S, variants ? (inVariant ? undefined : 1) : batch.rows.length));
  }
  const tensors = [...new Map([...resolved.values()].map((r) => [r.tensor, r])).values()].sort((a, b) => a.order - b.order);
  for (const t of tensors) {
    const saes = new Set([...resolved.values()].filter((r) => r.tensor === t.tensor).map((r) => r.edit.sae));
    if (saes.size > 1) throw new TdbError("E_BAD_OPTION", `latent edits of ${saes.size} different SAEs at ${t.hook} in one call; use one SAE per hook`, { value: t.hook, allowed: "one SAE per hook" });
  }
  const tensorCache = new Map<string, HookName>();
  const tensorOf = async (e: Edit): Promise<HookName> => {
    let c = tensorCache.get(e.hook);
    if (c === undefined) tensorCache.set(e.hook, (c = await canonical(rt, e.hook, S)));
    return c;
  };
  const base: RunBase = { prependBos: o.prependBos, maxBatchBytes: o.maxBatchBytes };
  /** The edits a read of tensor T sees: no latent edits, none of T's own edits listed after its first latent edit. */
  const readList = async (cur: readonly AnyEdit[], T: HookName): Promise<Edit[]> => {
    const first = cur.findIndex((e) => isLatentEdit(e) && resolved.get(e)!.tensor === T);
    const out: Edit[] = [];
    for (let i = 0; i < cur.length; i++) {
      const e = cur[i]!;
      if (isLatentEdit(e)) continue;
      if (first >= 0 && i > first && (await tensorOf(e)) === T) continue;
      out.push(e);
    }
    return out;
  };
  const onT = (e: AnyEdit, T: HookName): boolean => isLatentEdit(e) && resolved.get(e)!.tensor === T;
  /** `cur` with its latent edits on T replaced by `patches`, at the first one's place. */
  const substitute = (cur: readonly AnyEdit[], T: HookName, patches: readonly PatchEdit[]): AnyEdit[] => {
    const first = cur.findIndex((e) => onT(e, T));
    return [...cur.slice(0, first), ...patches, ...cur.slice(first + 1).filter((e) => !onT(e, T))];
  };
  if (!variants) {
    let cur: AnyEdit[] = [...list];
    for (const { tensor: T, hook } of tensors) {
      const x = await readHook(rt, input, batch, hook, base, await readList(cur, T));
      const group = cur.filter((e) => onT(e, T)).map((e) => resolved.get(e as LatentEdit)!);
      const rowSize = x.data.length / x.dims[0]!;
      const patches: PatchEdit[] = [];
      for (let r = 0; r < batch.rows.length; r++) {
        const mine = group.filter((g) => g.edit.rows === undefined || g.edit.rows.includes(r));
        if (mine.length === 0) continue;
        const row = batch.rows[r]!;
        patches.push(await rowPatch(rt, row, x.data.subarray(r * rowSize, (r + 1) * rowSize), x.dims, x.labels, mine, row.length, [r]));
      }
      cur = substitute(cur, T, patches);
    }
    return intervene(rt, input, cur as Edit[], { ...o, variants: undefined } as InterveneOptions);
  }
  // Shared edits move into every variant; their rows, which variants ignore, are dropped.
  const shared = list.map((e) => (!isLatentEdit(e) && e.rows !== undefined ? { ...e, rows: undefined } : e));
  const curs: AnyEdit[][] = variants.map((v) => [...shared, ...v]);
  const row = batch.rows[0]!;
  const ids = new Map<AnyEdit, number>();
  const keyOf = (l: readonly Edit[]) => l.map((e) => ids.get(e) ?? (ids.set(e, ids.size), ids.size - 1)).join(",");
  for (const { tensor: T, hook } of tensors) {
    const todo = curs.map((c, i) => (c.some((e) => onT(e, T)) ? i : -1)).filter((i) => i >= 0);
    const reads = new Map<string, { edits: Edit[]; variants: number[] }>();
    for (const i of todo) {
      const l = await readList(curs[i]!, T);
      const k = keyOf(l);
      const entry = reads.get(k);
      if (entry) entry.variants.push(i);
      else reads.set(k, { edits: l, variants: [i] });
    }
    const distinct = [...reads.values()];
    const x = await readHook(rt, input, batch, hook, base, [], distinct.map((d) => d.edits));
    const rowSize = x.data.length / x.dims[0]!;
    for (let d = 0; d < distinct.length; d++) {
      const xr = x.data.subarray(d * rowSize, (d + 1) * rowSize);
      for (const i of distinct[d]!.variants) {
        const group = curs[i]!.filter((e) => onT(e, T)).map((e) => resolved.get(e as LatentEdit)!);
        curs[i] = substitute(curs[i]!, T, [await rowPatch(rt, row, xr, x.dims, x.labels, group, row.length)]);
      }
    }
  }
  return intervene(rt, input, [], { ...o, variants: curs as Edit[][] } as InterveneOptions);
}
