/**
 * Turning {@link Edit}s into the multiplier/addend tensors fed to the graph's edit points:
 * validation (hook names, index ranges, widths, NaN), sources (mean over a reference batch,
 * resampled prompts, patched traces), translation of per-head-result edits to `hook_z`, and
 * composition of several edits on one tensor in the order given.
 *
 * @module
 */
import type { Activation } from "../trace/activation.js";
import { array, float32Values, object, oneOf } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { hookKindOf, hookNamesFor, parseHookName, type HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { EditFeed, ModelInput } from "../runtime/options.js";
import { editableValue, labelSize } from "../runtime/patched-graph.js";
import { Trace } from "../trace/trace.js";
import { resolvePosition } from "../base/positions.js";
import type { Edit, EditAlign, EditKind, MeanEdit } from "./edits.js";

/** Every edit kind (a record, so a new kind must be listed), checked at run time for JavaScript callers. */
const KIND_SET: Record<EditKind, true> = { zero: true, scale: true, set: true, add: true, mean: true, resample: true, patch: true, project: true };
const KINDS = Object.keys(KIND_SET) as EditKind[];
/** Every alignment of a patch/resample source (a record, so a new one must be listed). */
const ALIGN_SET: Record<EditAlign, true> = { start: true, end: true };
const ALIGNS = Object.keys(ALIGN_SET) as EditAlign[];

/** An edit checked against the model and the batch, with its source data fetched. */
interface Resolved {
  /** The hook whose tensor carries the edit point (canonical among hooks sharing a tensor). */
  hook: HookName;
  edit: Edit;
  /** Per axis (batch excluded): allowed indices, or undefined for all. */
  select: (readonly number[] | undefined)[];
  /** Dim labels and sizes of the hook tensor, batch excluded. */
  labels: readonly string[];
  sizes: number[];
  /** `set`/`add`/`scale`: a scalar or one value per index of the last axis. */
  value?: number | Float64Array;
  /** `mean`: one value per element of a row at one position (axes after batch and pos). */
  mean?: Float32Array;
  /** `resample`/`patch`: the source activation and how its positions map. */
  source?: Activation;
  /** Offset added to a target position to get the source position. */
  shift?: number;
  /** `project`: the unit direction û and the component to set. */
  unit?: Float64Array;
}

function checkFinite(xs: ArrayLike<number>, what: string): void {
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) {
      throw new TdbError("E_BAD_INPUT", `${what} has a non-finite value (${xs[i]}) at index ${i}; edits must be finite numbers`, { value: xs[i], allowed: "finite numbers" });
    }
  }
}

function isTrace(x: unknown): x is Trace {
  return x instanceof Trace;
}

/** The canonical hook of each editable tensor: the first hook (forward order) that is that tensor. */
function canonicalHook(model: ModelRuntime, hook: HookName): HookName {
  const value = editableValue(model.hookMap, hook);
  for (const h of hookNamesFor(model.config.nLayers)) {
    const src = model.hookMap.sources.get(h);
    if (src?.kind === "tap" && src.value === value) return h;
  }
  return hook;
}

/** Checks an edit and fetches what it needs; `S` is the edited prompt's padded length. */
async function resolve(model: ModelRuntime, edit: Edit, S: number, B: number, prefixShare: boolean): Promise<Resolved> {
  object("edit", edit, "an Edit object");
  if (!KINDS.includes(edit.kind)) {
    throw new TdbError("E_BAD_OPTION", `unknown edit kind ${JSON.stringify(edit.kind)}; allowed: ${KINDS.join(", ")}`, { value: edit.kind, allowed: KINDS });
  }
  let { name } = parseHookName(edit.hook, model.config.nLayers);
  let at = edit.at ?? {};
  if (name.endsWith("attn.hook_result")) {
    // result[h] = z[h] @ W_O[h] is linear in z: zeroing, scaling, mean/resample/patch of a head's
    // result are the same edits of its z.
    if (edit.kind === "set" || edit.kind === "add" || at.d_model !== undefined) {
      throw new TdbError(
        "E_BAD_OPTION",
        `${name}: only zero/scale/mean/resample/patch edits of whole heads are supported on hook_result (they become edits of hook_z); to add or set a d_model vector, edit hook_attn_out`,
        { value: edit.kind, allowed: ["zero", "scale", "mean", "resample", "patch"] },
      );
    }
    name = name.replace("attn.hook_result", "attn.hook_z") as HookName;
    at = { head: at.head };
  }
  // With shared-prefix batching a block's resid_pre is its own tensor (gathered from the previous
  // block's resid_post), so it is not merged with it.
  let hook: HookName;
  if (prefixShare) {
    editableValue(model.hookMap, name); // throws for hooks that cannot be edited
    hook = name;
  } else {
    hook = canonicalHook(model, name);
  }
  const labels = hookKindOf(name)!.dims.slice(1);
  const sizes = labels.map((l) => {
    const s = labelSize(l, model.config);
    return s === "seq" ? S : s === "batch" ? B : s;
  });
  const select: (readonly number[] | undefined)[] = labels.map(() => undefined);
  const posAxis = labels.findIndex((l) => l === "pos" || l === "query_pos");
  if (edit.positions !== undefined) {
    if (posAxis < 0) throw new TdbError("E_BAD_OPTION", `${name} has no position axis; drop positions`, { value: edit.positions, allowed: "no positions on this hook" });
    array<number>(`${name}: positions`, edit.positions, "an array of positions");
    select[posAxis] = edit.positions.map((p) => resolvePosition(p, S, `${name}: position`));
  }
  for (const [axis, idx] of Object.entries(at)) {
    if (idx === undefined) continue;
    const a = labels.indexOf(axis);
    if (a < 0) {
      const allowed = labels.filter((l) => l !== "pos" && l !== "query_pos");
      throw new TdbError("E_BAD_OPTION", `${name} has no axis ${axis}; its axes are batch, ${labels.join(", ")}`, { value: axis, allowed });
    }
    const n = sizes[a]!;
    select[a] = (typeof idx === "number" ? [idx] : idx).map((i) => {
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new TdbError("E_INDEX_RANGE", `${name}: ${axis} ${i} out of range [0, ${n - 1}]`, { value: i, allowed: [0, n - 1] });
      }
      return i;
    });
  }
  const r: Resolved = { hook, edit, select, labels, sizes };
  const last = sizes[sizes.length - 1]!;
  if (edit.kind === "set" || edit.kind === "add" || edit.kind === "scale") {
    if (edit.value === undefined) throw new TdbError("E_BAD_OPTION", `${edit.kind} edit of ${name} needs a value`, { value: "missing", allowed: "a number or a vector" });
    const k = edit.kind === "add" ? (edit.scale ?? 1) : 1;
    if (typeof k !== "number") throw new TdbError("E_BAD_OPTION", `${name}: scale must be a number`, { value: k, allowed: "a finite number" });
    checkFinite([k], `${name} scale`);
    if (typeof edit.value === "number") {
      checkFinite([edit.value], `${name} value`);
      // Checked after scaling: the product is what the float32 edit tensor holds.
      r.value = edit.value * k;
      float32Values([r.value], `${name} value${k === 1 ? "" : " times scale"}`);
    } else {
      if (edit.kind === "scale") throw new TdbError("E_BAD_OPTION", "a scale edit takes a number", { value: edit.value, allowed: "a finite number" });
      if (edit.value.length !== last) {
        throw new TdbError("E_BAD_INPUT", `${name}: vector of width ${edit.value.length}, but the last axis (${labels[labels.length - 1]}) has ${last}`, {
          value: edit.value.length,
          allowed: last,
        });
      }
      checkFinite(edit.value, `${name} value`);
      r.value = Float64Array.from(edit.value, (x) => x * k);
      float32Values(r.value, `${name} value${k === 1 ? "" : " times scale"}`);
    }
  } else if (edit.kind === "project") {
    if (labels.length !== 2 || (labels[0] !== "pos" && labels[0] !== "query_pos")) {
      throw new TdbError("E_BAD_OPTION", `${name}: direction edits need a [batch, pos, width] tensor; this one is [batch, ${labels.join(", ")}]`, {
        value: name,
        allowed: "residual stream, attn_out, mlp_out, mlp pre/post, embeddings",
      });
    }
    if (edit.at !== undefined) throw new TdbError("E_BAD_OPTION", `${name}: a direction edit acts on whole vectors; drop at`, { value: edit.at, allowed: "no at on a direction edit" });
    const u = edit.direction;
    if (!u || u.length !== last) {
      throw new TdbError("E_BAD_INPUT", `${name}: direction of width ${u?.length ?? 0}, but the last axis (${labels[labels.length - 1]}) has ${last}`, { value: u?.length ?? 0, allowed: last });
    }
    float32Values(u, `${name} direction`);
    const norm = Math.sqrt(Array.from(u).reduce((s2, x) => s2 + x * x, 0));
    if (!(norm > 0)) throw new TdbError("E_BAD_INPUT", `${name}: the direction is the zero vector`, { value: 0, allowed: "a non-zero vector" });
    r.unit = Float64Array.from(u, (x) => x / norm);
    const c = edit.value ?? 0;
    if (typeof c !== "number") throw new TdbError("E_BAD_OPTION", `${name}: a direction edit's value is the component to set, a number`, { value: c, allowed: "a finite number" });
    float32Values([c], `${name} value`);
    r.value = c;
  } else if (edit.kind === "mean") {
    r.mean = await resolveMean(model, name, edit, labels, sizes);
  } else if (edit.kind === "resample" || edit.kind === "patch") {
    let t: Trace;
    if (edit.kind === "patch") {
      if (!isTrace(edit.source)) throw new TdbError("E_BAD_OPTION", `patch edit of ${name} needs a source Trace (from model.trace)`, { value: typeof edit.source, allowed: "a Trace" });
      t = edit.source;
    } else {
      if (edit.source === undefined || isTrace(edit.source)) {
        throw new TdbError("E_BAD_OPTION", `resample edit of ${name} needs a source prompt or tokens (use kind "patch" for a Trace)`, { value: typeof edit.source, allowed: "a prompt, prompts or token rows" });
      }
      t = await model.trace(edit.source, { hooks: [name] });
    }
    const src = t.cache.get(name);
    if (src.dims[0] !== 1 && src.dims[0] !== B) {
      throw new TdbError("E_BAD_INPUT", `${name}: the source has ${src.dims[0]} rows; it needs 1 or ${B} (one per edited row)`, { value: src.dims[0], allowed: [1, B] });
    }
    if (t.positions) throw new TdbError("E_BAD_INPUT", `${name}: the source trace kept only some positions; trace it with all positions`, { value: t.positions, allowed: "a trace with every position" });
    const Ss = src.dims[posAxis + 1] ?? S;
    if (labels.includes("key_pos") && Ss !== S) {
      throw new TdbError("E_BAD_INPUT", `${name}: attention patterns can only be patched between prompts of the same length (${Ss} vs ${S})`, { value: Ss, allowed: S });
    }
    if (edit.align !== undefined) oneOf("align", edit.align, ALIGNS);
    if (Ss !== S && !edit.align) {
      throw new TdbError("E_BAD_INPUT", `${name}: the source has ${Ss} positions and the edited prompt ${S}; pass align: "start" or "end", or use prompts of the same length`, {
        value: Ss,
        allowed: S,
      });
    }
    r.source = src;
    r.shift = edit.align === "end" ? Ss - S : 0;
    const targets = select[posAxis] ?? Array.from({ length: S }, (_, i) => i);
    const bad = targets.find((p) => p + r.shift! < 0 || p + r.shift! >= Ss);
    if (bad !== undefined) {
      throw new TdbError("E_POSITION_RANGE", `${name}: position ${bad} has no source position when aligned at the ${edit.align}; select positions that exist in both`, {
        value: bad,
        allowed: [Math.max(0, -r.shift), Math.min(S, Ss - r.shift) - 1],
      });
    }
  }
  return r;
}

async function resolveMean(model: ModelRuntime, name: HookName, edit: MeanEdit, labels: readonly string[], sizes: number[]): Promise<Float32Array> {
  const posAxis = labels.indexOf("pos");
  const width = sizes.slice(posAxis + 1).reduce((a, b) => a * b, 1);
  const m = edit.mean;
  if (m === undefined) throw new TdbError("E_BAD_OPTION", `mean edit of ${name} needs a mean vector or reference prompts`, { value: "missing", allowed: "a mean vector or reference prompts" });
  if (posAxis !== 0) throw new TdbError("E_BAD_OPTION", `mean ablation needs a hook with a pos axis; ${name} has ${labels.join(", ")}`, { value: name, allowed: "a hook with a pos axis" });
  if (m instanceof Float32Array || m instanceof Float64Array) {
    if (m.length !== width) throw new TdbError("E_BAD_INPUT", `${name}: mean of width ${m.length}; it needs ${width} values`, { value: m.length, allowed: width });
    float32Values(m, `${name} mean`);
    const arr = Float32Array.from(m);
    return arr;
  }
  const t = await model.trace(m as ModelInput, { hooks: [name] });
  const a = t.cache.get(name);
  const out = new Float64Array(width);
  let n = 0;
  t.lengths.forEach((len, b) => {
    for (let p = 0; p < len; p++) {
      const row = a.row(b, p);
      for (let i = 0; i < width; i++) out[i]! += row[i]!;
      n++;
    }
  });
  return Float32Array.from(out, (x) => x / n);
}

/**
 * Calls `fn(offset, idx)` for the selected elements (offsets within one batch row), with `idx`
 * the index tuple. The last axis runs in a plain loop: edits of whole vectors touch millions of
 * elements in big variant batches.
 */
function forEachSelected(sizes: number[], select: (readonly number[] | undefined)[], fn: (offset: number, idx: number[]) => void): void {
  const lists = sizes.map((n, a) => select[a] ?? Array.from({ length: n }, (_, i) => i));
  const strides = sizes.map((_, a) => sizes.slice(a + 1).reduce((x, y) => x * y, 1));
  const last = sizes.length - 1;
  const lastList = lists[last]!;
  const idx = new Array<number>(sizes.length).fill(0);
  const rec = (a: number, off: number): void => {
    if (a === last) {
      for (let j = 0; j < lastList.length; j++) {
        const i = lastList[j]!;
        idx[a] = i;
        fn(off + i, idx);
      }
      return;
    }
    for (const i of lists[a]!) {
      idx[a] = i;
      rec(a + 1, off + i * strides[a]!);
    }
  };
  rec(0, 0);
}

/**
 * Compiles per-row edit lists into edit feeds: `rowEdits[r]` are the edits applied to batch row
 * `r`, in order. `S` is the batch's padded length. `prefixShare` keeps each block's resid_pre
 * apart from the previous block's resid_post (see `PatchSpec.prefixShare`). When the rows are a
 * chunk of a bigger batch, `rowOffset` is the chunk's first row and `totalRows` the batch's rows
 * (row-aligned patch sources are read at `rowOffset + r`).
 */
export async function compileEdits(
  model: ModelRuntime,
  rowEdits: readonly (readonly Edit[])[],
  S: number,
  opts: { prefixShare?: boolean; rowOffset?: number; totalRows?: number } = {},
): Promise<Map<HookName, EditFeed>> {
  const B = rowEdits.length;
  const offset = opts.rowOffset ?? 0;
  const cache = new Map<Edit, Resolved>();
  for (const edits of rowEdits) for (const e of edits) if (!cache.has(e)) cache.set(e, await resolve(model, e, S, opts.totalRows ?? B, opts.prefixShare ?? false));
  const feeds = new Map<HookName, EditFeed>();
  rowEdits.forEach((edits, b) => {
    for (const e of edits) {
      const r = cache.get(e)!;
      let f = feeds.get(r.hook);
      const rowSize = r.sizes.reduce((x, y) => x * y, 1);
      if (!f) {
        f = { mul: new Float32Array(B * rowSize).fill(1), add: new Float32Array(B * rowSize), dims: [B, ...r.sizes] };
        feeds.set(r.hook, f);
      }
      if (r.edit.kind === "scale" && r.value === 1) continue; // identity: the feed exists, nothing to do
      const base = b * rowSize;
      if (r.edit.kind === "project") {
        compileProjection(f, r, b, rowSize);
        continue;
      }
      const lastAxis = r.sizes.length - 1;
      const posAxis = r.labels.findIndex((l) => l === "pos" || l === "query_pos");
      const featureWidth = r.sizes.slice(1).reduce((x, y) => x * y, 1);
      const src = r.source;
      const srcRow = src && src.dims[0] === 1 ? 0 : offset + b;
      const { mul, add } = f;
      forEachSelected(r.sizes, r.select, (off, idx) => {
        let m: number;
        let a: number;
        switch (r.edit.kind) {
          case "zero":
            m = 0;
            a = 0;
            break;
          case "scale":
            m = r.value as number;
            a = 0;
            break;
          case "set":
            m = 0;
            a = typeof r.value === "number" ? r.value : r.value![idx[lastAxis]!]!;
            break;
          case "add":
            m = 1;
            a = typeof r.value === "number" ? r.value : r.value![idx[lastAxis]!]!;
            break;
          case "mean":
            m = 0;
            a = r.mean![off % featureWidth]!;
            break;
          default: {
            m = 0;
            const sIdx = [srcRow, ...idx];
            sIdx[posAxis + 1] = idx[posAxis]! + r.shift!;
            a = src!.at(...sIdx);
          }
        }
        const k = base + off;
        mul[k] = mul[k]! * m;
        add[k] = add[k]! * m + a;
      });
    }
  });
  return feeds;
}

/**
 * The block an edit first changes (-1 for the embeddings), as shared-prefix batching counts it:
 * `blocks.L.*` is block L, with `hook_result` edits counted at their `hook_z`.
 */
export function editLayer(model: ModelRuntime, edit: Edit): number {
  return parseHookName(edit.hook, model.config.nLayers).layer ?? -1;
}

/**
 * A direction edit of row `b`: the rank-1 update `x - (x . û) û` before mul/add (p = û on the
 * row, r = -û at the selected positions), then `+ value û` through the addend.
 */
function compileProjection(f: EditFeed, r: Resolved, b: number, rowSize: number): void {
  const u = r.unit!;
  const width = u.length;
  const S = rowSize / width;
  f.projP ??= new Float32Array(f.dims[0]! * width);
  f.projR ??= new Float32Array(f.mul.length);
  const p = f.projP.subarray(b * width, (b + 1) * width);
  if (p.some((x, i) => x !== 0 && Math.abs(x - u[i]!) > 1e-7)) {
    throw new TdbError("E_BAD_OPTION", `one row can have one direction edit per tensor; ${r.hook} already has another direction on row ${b}`, { value: r.hook, allowed: "one direction edit per tensor and row" });
  }
  p.set(u);
  const c = r.value as number;
  for (const t of r.select[0] ?? Array.from({ length: S }, (_, i) => i)) {
    const o = b * rowSize + t * width;
    for (let i = 0; i < width; i++) {
      // The graph projects before it multiplies and adds, so a direction edit must come first.
      if (f.mul[o + i] !== 1 || f.add[o + i] !== 0) {
        throw new TdbError("E_BAD_OPTION", `${r.hook}: put direction edits before the tensor's other edits (position ${t}, row ${b})`, { value: r.edit.kind, allowed: "direction edits first" });
      }
      f.projR[o + i] = -u[i]!;
      f.add[o + i] = c * u[i]!;
    }
  }
}

/**
 * The hooks (canonical: one per tensor) that `edits` act on, checking each edit as
 * {@link compileEdits} would, without building feeds.
 */
export async function editTargets(model: ModelRuntime, edits: readonly Edit[], S: number, opts: { prefixShare?: boolean; rows?: number } = {}): Promise<HookName[]> {
  const hooks = new Set<HookName>();
  for (const e of new Set(edits)) hooks.add((await resolve(model, e, S, opts.rows ?? 1, opts.prefixShare ?? false)).hook);
  return [...hooks];
}
