/**
 * Edits: what an intervention does to one hook tensor, and helpers that spell the common ones
 * (Transformer Debugger's head and neuron ablations, TransformerLens's patching and steering).
 *
 * An edit selects elements of a hook tensor (batch rows, positions, and indices along the other
 * named axes) and replaces each selected element `x` by `x * m + a`, where `(m, a)` depend on
 * the kind: zero `(0, 0)`, scale `(s, 0)`, set `(0, v)`, add `(1, s v)`, mean `(0, mean)`,
 * resample and patch `(0, source)`. Edits are fed to edit points in the graph at run time, so
 * many edit sets run as one batch without rebuilding anything.
 *
 * @module
 */
import type { HookName } from "../hooks/names.js";
import type { ModelInput } from "../runtime/options.js";
import type { Trace } from "../trace/trace.js";

/** Axes an edit can restrict besides batch rows and positions. */
export type EditAxis = "head" | "d_head" | "d_model" | "d_mlp" | "key_pos";

/** Which elements of the hook tensor an edit touches; shared by every {@link Edit} kind. */
export interface EditTarget {
  /** Full hook name, e.g. `blocks.3.attn.hook_z`. */
  hook: HookName;
  /**
   * Indices along named axes, e.g. `{ head: 3 }` on `hook_z`, `{ d_mlp: [17, 40] }` on
   * `mlp.hook_post`, `{ head: 1, key_pos: 0 }` on `hook_pattern`. Unlisted axes: all indices.
   */
  at?: Partial<Record<EditAxis, number | readonly number[]>>;
  /** Positions on the `pos` (or `query_pos`) axis; negative counts from the end. [default: all] */
  positions?: readonly number[];
  /** Batch rows. [default: all] Not allowed inside `variants` (each variant is one row). */
  rows?: readonly number[];
}

/**
 * A number for every selected element, or one value per index of the tensor's last axis
 * (d_model, d_head, d_mlp or key_pos).
 */
export type EditValue = number | ArrayLike<number>;

/** Zero ablation: `x -> 0`. */
export interface ZeroEdit extends EditTarget {
  kind: "zero";
}

/** `x -> factor * x`. */
export interface ScaleEdit extends EditTarget {
  kind: "scale";
  /** The factor. */
  value: number;
}

/** `x -> value`. */
export interface SetEdit extends EditTarget {
  kind: "set";
  /** The new value. */
  value: EditValue;
}

/** Steering: `x -> x + scale * value`. */
export interface AddEdit extends EditTarget {
  kind: "add";
  /** The vector (or number) to add. */
  value: EditValue;
  /** Multiplier of `value` (steering coefficient). [default: 1] */
  scale?: number;
}

/**
 * The component of each selected vector along `direction` (u) set to `value` (default 0: the
 * direction is ablated): `x - (x . û) û + value û`. Only on [batch, pos, width] tensors
 * (residual stream, attention and MLP outputs, MLP activations, embeddings); applied before the
 * tensor's other edits.
 */
export interface ProjectEdit extends EditTarget {
  kind: "project";
  /** The direction, one value per index of the last axis. */
  direction: ArrayLike<number>;
  /** The component to leave along the direction. [default: 0] */
  value?: number;
}

/**
 * Mean ablation: the selected elements become a mean, given (one value per element of a
 * position, e.g. d_model values, or n_head * d_head for `hook_z`) or averaged over the rows and
 * real positions of reference prompts or token rows.
 */
export interface MeanEdit extends EditTarget {
  kind: "mean";
  mean: Float32Array | Float64Array | ModelInput;
}

/**
 * How positions of a source of another length line up with the edited prompt: `start`
 * (position p takes source position p) or `end` (aligned on the last token). Without it,
 * lengths must match.
 */
export type EditAlign = "start" | "end";

/** Resample ablation: the selected elements take their value on another prompt. */
export interface ResampleEdit extends EditTarget {
  kind: "resample";
  /** The prompt (or tokens) to run and take the activation from. */
  source: ModelInput;
  align?: EditAlign;
}

/** Activation patching: the selected elements take the value a {@link Trace} cached for the hook. */
export interface PatchEdit extends EditTarget {
  kind: "patch";
  /** A trace that cached this hook. */
  source: Trace;
  align?: EditAlign;
}

/**
 * One edit of one hook tensor, by `kind`. Each selected element `x` becomes `x * m + a`, where
 * `(m, a)` depend on the kind; see the module overview.
 */
export type Edit = ZeroEdit | ScaleEdit | SetEdit | AddEdit | ProjectEdit | MeanEdit | ResampleEdit | PatchEdit;

/** What an edit does to the selected elements. */
export type EditKind = Edit["kind"];

/** Options shared by the edit helpers. */
export interface EditWhere {
  /** Positions to edit (negative from the end). [default: all] */
  positions?: readonly number[];
  /** Batch rows to edit. [default: all] */
  rows?: readonly number[];
}

const list = (x: number | readonly number[]): readonly number[] => (typeof x === "number" ? [x] : x);

/**
 * Zero-ablates attention head(s): their output `z` (so their whole write to the residual
 * stream, bias excluded) at the chosen positions.
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [zeroHead(1, 3)]);
 * ```
 */
export function zeroHead(layer: number, head: number | readonly number[], where: EditWhere = {}): ZeroEdit {
  return { hook: `blocks.${layer}.attn.hook_z`, kind: "zero", at: { head: list(head) }, ...where };
}

/**
 * Zero-ablates MLP neuron(s) (`mlp.hook_post`) at the chosen positions.
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [zeroNeuron(0, 17, { positions: [5] })]);
 * ```
 */
export function zeroNeuron(layer: number, neuron: number | readonly number[], where: EditWhere = {}): ZeroEdit {
  return { hook: `blocks.${layer}.mlp.hook_post`, kind: "zero", at: { d_mlp: list(neuron) }, ...where };
}

/**
 * Transformer Debugger's head ablation: the head's attention probabilities from the given query
 * positions are zeroed after the softmax, with no renormalisation (so the head writes nothing
 * from there).
 */
export function zeroAttention(layer: number, head: number | readonly number[], queryPositions?: readonly number[], where: Omit<EditWhere, "positions"> = {}): ZeroEdit {
  return { hook: `blocks.${layer}.attn.hook_pattern`, kind: "zero", at: { head: list(head) }, positions: queryPositions, ...where };
}

/**
 * Steering: adds `scale * vector` to a hook (usually the residual stream) at the chosen positions.
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [steer("blocks.2.hook_resid_pre", direction, 4)]);
 * ```
 */
export function steer(hook: HookName, vector: ArrayLike<number>, scale = 1, where: EditWhere = {}): AddEdit {
  return { hook, kind: "add", value: vector, scale, ...where };
}

/**
 * Directional ablation: removes the component of a hook's vectors along `direction` (or sets
 * it to `value`) at the chosen positions.
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [ablateDirection("blocks.3.hook_resid_pre", refusalDirection)]);
 * ```
 */
export function ablateDirection(hook: HookName, direction: ArrayLike<number>, where: EditWhere & { value?: number } = {}): ProjectEdit {
  const { value, ...rest } = where;
  return { hook, kind: "project", direction, value: value ?? 0, ...rest };
}

/** Activation patching: writes the activation a `source` trace cached for `hook` into this run. */
export function patchFrom(hook: HookName, source: Trace, where: EditWhere & { at?: EditTarget["at"]; align?: EditAlign } = {}): PatchEdit {
  return { hook, kind: "patch", source, ...where };
}

/** Mean ablation: replaces the selected elements by their mean over a reference batch (or a given mean). */
export function meanAblate(hook: HookName, mean: Float32Array | Float64Array | ModelInput, where: EditWhere & { at?: EditTarget["at"] } = {}): MeanEdit {
  return { hook, kind: "mean", mean, ...where };
}

/** Resample ablation: replaces the selected elements by their value on another prompt. */
export function resampleFrom(hook: HookName, source: ModelInput, where: EditWhere & { at?: EditTarget["at"]; align?: EditAlign } = {}): ResampleEdit {
  return { hook, kind: "resample", source, ...where };
}
