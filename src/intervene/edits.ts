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
import type { ModelInput } from "../model/model.js";
import type { Trace } from "../trace/trace.js";

/** What an edit does to the selected elements. */
export type EditKind = "zero" | "scale" | "set" | "add" | "mean" | "resample" | "patch" | "project";

/** Axes an edit can restrict besides batch rows and positions. */
export type EditAxis = "head" | "d_head" | "d_model" | "d_mlp" | "key_pos";

/** One edit of one hook tensor. */
export interface Edit {
  /** Full hook name, e.g. `blocks.3.attn.hook_z`. */
  hook: string;
  kind: EditKind;
  /**
   * Indices along named axes, e.g. `{ head: 3 }` on `hook_z`, `{ d_mlp: [17, 40] }` on
   * `mlp.hook_post`, `{ head: 1, key_pos: 0 }` on `hook_pattern`. Unlisted axes: all indices.
   */
  at?: Partial<Record<EditAxis, number | readonly number[]>>;
  /** Positions on the `pos` (or `query_pos`) axis; negative counts from the end. [default: all] */
  positions?: readonly number[];
  /** Batch rows. [default: all] Not allowed inside `variants` (each variant is one row). */
  rows?: readonly number[];
  /**
   * `set`: the new value; `add`: the vector to add; `scale`: the factor. A number applies to
   * every selected element; an array gives one value per index of the tensor's last axis
   * (d_model, d_head, d_mlp or key_pos).
   */
  value?: number | ArrayLike<number>;
  /** `add`: multiplier of `value` (steering coefficient). [default: 1] */
  scale?: number;
  /**
   * `project`: the direction u (one value per index of the last axis). The component of each
   * selected vector along u is set to `value` (default 0: the direction is ablated):
   * `x - (x . û) û + value û`. Only on [batch, pos, width] tensors (residual stream, attention
   * and MLP outputs, MLP activations, embeddings); applied before the tensor's other edits.
   */
  direction?: ArrayLike<number>;
  /**
   * `mean`: the mean to write (a Float32Array or Float64Array with one value per element of a
   * position, e.g. d_model values, or n_head * d_head for `hook_z`), or reference prompts or
   * token rows whose activations are averaged over rows and real positions.
   */
  mean?: Float32Array | Float64Array | ModelInput;
  /**
   * `resample`: a prompt (or tokens) to take the activation from; `patch`: a {@link Trace} that
   * cached this hook (activation patching).
   */
  source?: ModelInput | Trace;
  /**
   * How positions of a source of another length line up with the edited prompt: `start`
   * (position p takes source position p) or `end` (aligned on the last token). Without it,
   * lengths must match.
   */
  align?: "start" | "end";
}

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
export function zeroHead(layer: number, head: number | readonly number[], where: EditWhere = {}): Edit {
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
export function zeroNeuron(layer: number, neuron: number | readonly number[], where: EditWhere = {}): Edit {
  return { hook: `blocks.${layer}.mlp.hook_post`, kind: "zero", at: { d_mlp: list(neuron) }, ...where };
}

/**
 * Transformer Debugger's head ablation: the head's attention probabilities from the given query
 * positions are zeroed after the softmax, with no renormalisation (so the head writes nothing
 * from there).
 */
export function zeroAttention(layer: number, head: number | readonly number[], queryPositions?: readonly number[], where: Omit<EditWhere, "positions"> = {}): Edit {
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
export function steer(hook: string, vector: ArrayLike<number>, scale = 1, where: EditWhere = {}): Edit {
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
export function ablateDirection(hook: string, direction: ArrayLike<number>, where: EditWhere & { value?: number } = {}): Edit {
  const { value, ...rest } = where;
  return { hook, kind: "project", direction, value: value ?? 0, ...rest };
}

/** Activation patching: writes the activation a `source` trace cached for `hook` into this run. */
export function patchFrom(hook: string, source: Trace, where: EditWhere & { at?: Edit["at"]; align?: "start" | "end" } = {}): Edit {
  return { hook, kind: "patch", source, ...where };
}

/** Mean ablation: replaces the selected elements by their mean over a reference batch (or a given mean). */
export function meanAblate(hook: string, mean: Float32Array | Float64Array | ModelInput, where: EditWhere & { at?: Edit["at"] } = {}): Edit {
  return { hook, kind: "mean", mean, ...where };
}

/** Resample ablation: replaces the selected elements by their value on another prompt. */
export function resampleFrom(hook: string, source: ModelInput, where: EditWhere & { at?: Edit["at"]; align?: "start" | "end" } = {}): Edit {
  return { hook, kind: "resample", source, ...where };
}
