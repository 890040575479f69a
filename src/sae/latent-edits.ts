/**
 * Latent edits: interventions on an SAE's latents at its hook, for `model.intervene` beside the
 * ordinary edits (`zeroNeuron`, `zeroHead`, ...). The hook's value becomes
 * `decode(edited latents) + error`, i.e. `x + decode(z') - decode(z)`: the SAE's reconstruction
 * error is kept, so an edit that changes nothing leaves the model's outputs as they were.
 *
 * Cost: the SAE reads its hook's value in the edited run (edits upstream of it change its
 * latents), so each hook with latent edits costs one more forward pass (last-position logits
 * only) before the edited run, plus the SAE's encode and two decodes of the edited positions.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import type { Sae } from "./sae.js";
import type { LatentOp } from "./splice.js";

/**
 * An edit of SAE latents at the SAE's hook: the selected latents of each selected position are
 * zeroed, scaled or set, and the hook's value becomes `x + decode(z') - decode(z)`. Build one with
 * {@link zeroLatent}, {@link scaleLatent} or {@link setLatent}.
 */
export interface LatentEdit {
  /** Marks a latent edit among ordinary edits. */
  readonly kind: "latent";
  /** What happens to the selected latents: `0`, `value · z`, or `value`. */
  readonly op: LatentOp;
  /** The SAE whose latents are edited. */
  readonly sae: Sae;
  /** Latent indices, in [0, d_sae). */
  readonly latents: readonly number[];
  /** `scale`: the factor; `set`: the new value. */
  readonly value?: number;
  /** The hook the SAE reads. [default: `sae.config.hookName`] */
  readonly hook?: HookName;
  /** Positions to edit (negative from the end of the padded prompt). [default: every real position] */
  readonly positions?: readonly number[];
  /** Batch rows to edit. [default: all] Not allowed inside `variants` (each variant is one row). */
  readonly rows?: readonly number[];
}

/** Where a latent edit applies; shared by the latent edit helpers. */
export interface LatentWhere {
  /** Positions to edit (negative from the end). [default: every real position] */
  positions?: readonly number[];
  /** Batch rows to edit. [default: all] */
  rows?: readonly number[];
  /** The hook the SAE reads, when its config has no `hookName` (or to attach it elsewhere). */
  hook?: HookName;
}

const list = (x: number | readonly number[]): readonly number[] => (typeof x === "number" ? [x] : x);

function make(op: LatentOp, sae: Sae, latent: number | readonly number[], value: number | undefined, where: LatentWhere): LatentEdit {
  if (typeof latent !== "number" && !Array.isArray(latent)) {
    throw new TdbError("E_BAD_INPUT", "latent must be an index or an array of indices", { value: latent === null ? null : typeof latent, allowed: "an integer or an array of integers" });
  }
  return { kind: "latent", op, sae, latents: list(latent), ...(value === undefined ? {} : { value }), ...where };
}

/**
 * Zero-ablates SAE latent(s) at the SAE's hook (output `decode(z with the latents at 0) + error`).
 *
 * @example
 * ```ts
 * const sae = await loadSae("./saes/blocks.2.hook_mlp_out");
 * await model.intervene(prompt, [zeroLatent(sae, 1234, { positions: [-1] })]);
 * ```
 */
export function zeroLatent(sae: Sae, latent: number | readonly number[], where: LatentWhere = {}): LatentEdit {
  return make("zero", sae, latent, undefined, where);
}

/**
 * Scales SAE latent(s) by `factor` at the SAE's hook (`factor` 1 changes nothing).
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [scaleLatent(sae, 1234, 5)]); // amplify a feature
 * ```
 */
export function scaleLatent(sae: Sae, latent: number | readonly number[], factor: number, where: LatentWhere = {}): LatentEdit {
  return make("scale", sae, latent, factor, where);
}

/**
 * Sets SAE latent(s) to `value` at the SAE's hook (clamping a feature on or off).
 *
 * @example
 * ```ts
 * await model.intervene(prompt, [setLatent(sae, 1234, 10, { positions: [3] })]);
 * ```
 */
export function setLatent(sae: Sae, latent: number | readonly number[], value: number, where: LatentWhere = {}): LatentEdit {
  return make("set", sae, latent, value, where);
}

/** Whether an edit object is a {@link LatentEdit} (`kind: "latent"`). */
export function isLatentEdit(e: unknown): e is LatentEdit {
  return typeof e === "object" && e !== null && (e as { kind?: unknown }).kind === "latent";
}
