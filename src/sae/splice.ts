/**
 * Splicing an SAE into a hook, the maths only (no model): from the hook's activation rows to the
 * five tensors SAELens caches at an attached SAE, and the hook value after latent edits. The
 * composition with a model's trace and interventions lives in the model layer.
 *
 * SAELens's names, for an SAE attached at hook `H` (`blocks.2.hook_mlp_out`):
 *
 * - `H.hook_sae_input`: the activation the SAE reads (for `hook_z`, the heads flattened to
 *   n_heads·d_head), rows x d_in,
 * - `H.hook_sae_acts_pre`: encoder pre-activations ({@link Sae.encodePre}), rows x d_sae,
 * - `H.hook_sae_acts_post`: latents ({@link Sae.encode}), rows x d_sae,
 * - `H.hook_sae_recons`: the reconstruction ({@link Sae.decode}, normalisation undone), rows x d_in,
 * - `H.hook_sae_error`: `input - recons`, rows x d_in (float32).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { Sae } from "./sae.js";

/** The hook suffixes SAELens adds under an attached SAE's hook, in the order it computes them. */
export const SAE_HOOK_SUFFIXES = Object.freeze(["hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"] as const);

/** One of {@link SAE_HOOK_SUFFIXES}. */
export type SaeHookSuffix = (typeof SAE_HOOK_SUFFIXES)[number];

/**
 * The full name of an SAE hook: `saeHookName("blocks.2.hook_mlp_out", "hook_sae_acts_post")` is
 * `"blocks.2.hook_mlp_out.hook_sae_acts_post"`, the key `trace.cache.get` takes.
 *
 * @example
 * ```ts
 * const t = await model.trace("Hello", { saes: [sae] });
 * t.cache.get(saeHookName(sae.config.hookName!, "hook_sae_acts_post")).dims; // [1, 2, d_sae]
 * ```
 */
export function saeHookName(hook: string, suffix: SaeHookSuffix): string {
  if (!SAE_HOOK_SUFFIXES.includes(suffix)) {
    throw new TdbError("E_BAD_OPTION", `unknown SAE hook suffix ${JSON.stringify(suffix)}`, { value: suffix, allowed: SAE_HOOK_SUFFIXES });
  }
  return `${hook}.${suffix}`;
}

/** The five SAE hook tensors of some activation rows (flat, row-major); see the module overview. */
export interface SaeSpliceTensors {
  /** The input rows, rows x d_in (the array given, not a copy). */
  input: Float32Array;
  /** Encoder pre-activations, rows x d_sae. */
  actsPre: Float32Array;
  /** Latents, rows x d_sae. */
  actsPost: Float32Array;
  /** Reconstruction, rows x d_in. */
  recons: Float32Array;
  /** `input - recons` (float32), rows x d_in. */
  error: Float32Array;
}

/**
 * The SAE hook tensors of `rows` activation rows `x` (rows x d_in, flat): what SAELens caches
 * when the SAE is attached. `rows` defaults to `x.length / d_in`; a length that is not
 * rows x d_in is `E_BAD_INPUT` (from {@link Sae.encode}).
 *
 * @example
 * ```ts
 * const { actsPost, recons, error } = await spliceSae(sae, x);
 * ```
 */
export async function spliceSae(sae: Sae, x: Float32Array, rows?: number): Promise<SaeSpliceTensors> {
  const [actsPre, actsPost] = await Promise.all([sae.encodePre(x, rows), sae.encode(x, rows)]);
  const n = actsPost.length / sae.dSae;
  const recons = await sae.decode(actsPost, n, { input: x });
  const error = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) error[i] = x[i]! - recons[i]!;
  return { input: x, actsPre, actsPost, recons, error };
}

/** What a latent edit does to the selected latents `z`: `0`, `factor · z`, or `value`. */
export type LatentOp = "zero" | "scale" | "set";

/** The latent edit operations, checked at run time for JavaScript callers. */
export const LATENT_OPS: readonly LatentOp[] = Object.freeze(["zero", "scale", "set"]);

/** One latent change applied to some rows of a matrix of latents; see {@link editLatents}. */
export interface LatentChange {
  /** What happens to the selected latents. */
  op: LatentOp;
  /** Latent indices, each in [0, d_sae). */
  latents: readonly number[];
  /** `scale`: the factor; `set`: the value. Ignored for `zero`. */
  value?: number;
  /** Row indices (of the matrix given) the change applies to. */
  rows: readonly number[];
}

function checkChange(c: LatentChange, dSae: number, nRows: number, i: number): void {
  if (!LATENT_OPS.includes(c.op)) throw new TdbError("E_BAD_OPTION", `changes[${i}]: unknown latent op ${JSON.stringify(c.op)}`, { value: c.op, allowed: LATENT_OPS });
  for (const j of c.latents) {
    if (!Number.isInteger(j) || j < 0 || j >= dSae) throw new TdbError("E_INDEX_RANGE", `changes[${i}]: latent ${j} out of range [0, ${dSae - 1}]`, { value: j, allowed: [0, dSae - 1] });
  }
  for (const r of c.rows) {
    if (!Number.isInteger(r) || r < 0 || r >= nRows) throw new TdbError("E_INDEX_RANGE", `changes[${i}]: row ${r} out of range [0, ${nRows - 1}]`, { value: r, allowed: [0, nRows - 1] });
  }
  if (c.op !== "zero" && !(typeof c.value === "number" && Number.isFinite(c.value))) {
    throw new TdbError("E_BAD_OPTION", `changes[${i}]: a ${c.op} of latents needs a finite value, got ${String(c.value)}`, { value: c.value, allowed: "a finite number" });
  }
}

/**
 * A copy of the latents `z` (rows x d_sae) with the changes applied in order (a later change of
 * the same latent acts on the earlier one's result).
 *
 * @example
 * ```ts
 * editLatents(z, 2048, [{ op: "zero", latents: [17], rows: [0, 1, 2] }]);
 * ```
 */
export function editLatents(z: Float32Array, dSae: number, changes: readonly LatentChange[]): Float32Array {
  const nRows = z.length / dSae;
  changes.forEach((c, i) => checkChange(c, dSae, nRows, i));
  const out = z.slice();
  for (const c of changes) {
    for (const r of c.rows) {
      const o = r * dSae;
      for (const j of c.latents) out[o + j] = c.op === "zero" ? 0 : c.op === "scale" ? out[o + j]! * c.value! : c.value!;
    }
  }
  return out;
}

/**
 * The activation rows after latent edits, with the SAE's error term kept:
 * `x + decode(z') - decode(z)`, where `z = encode(x)` and `z'` is `z` with the changes applied
 * (i.e. `decode(z') + error`). Rows no change touches come back equal to `x`; an identity change
 * (scale by 1) gives `x` exactly.
 *
 * @example
 * ```ts
 * const edited = await editedActivation(sae, x, [{ op: "zero", latents: [17], rows: [3] }]);
 * ```
 */
export async function editedActivation(sae: Sae, x: Float32Array, changes: readonly LatentChange[], rows?: number): Promise<Float32Array> {
  const z = await sae.encode(x, rows);
  const n = z.length / sae.dSae;
  const zEdited = editLatents(z, sae.dSae, changes);
  const [before, after] = await Promise.all([sae.decode(z, n, { input: x }), sae.decode(zEdited, n, { input: x })]);
  const out = x.slice();
  for (let i = 0; i < out.length; i++) {
    const d = after[i]! - before[i]!;
    if (d !== 0) out[i] = out[i]! + d;
  }
  return out;
}
