/**
 * From a training run to a usable SAE: {@link trainedSaeToSae} turns what `trainSae` returns into
 * an {@link Sae} whose config names the hook and the model (as SAELens's cfg.json does), and
 * {@link evaluateSaeOnRows} computes the usual reconstruction and sparsity metrics on held-out rows.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { deadFraction, denseFraction, explainedVariance, l0, mse, normalizedMse } from "./metrics.js";
import { Sae, type SaeConfig } from "./sae.js";
import type { TrainedSae } from "./train.js";

/** What {@link trainedSaeToSae} writes into the SAE's config besides the architecture and widths. */
export interface TrainedSaeMeta {
  /** Model the SAE was trained on (SAELens `model_name`). */
  modelName?: string;
  /** Hook (SAELens `hook_name`). [default: the run's hook] */
  hookName?: string;
  /** Tokens per context window of the harvest (SAELens `context_size`). */
  contextLength?: number;
  /** The corpus (SAELens `dataset_path`). */
  dataset?: string;
  /** Other cfg.json fields. */
  extra?: Record<string, unknown>;
}

/**
 * An {@link Sae} from a `trainSae` result, with `hook_name`, `hook_layer` (read from the hook
 * name), `model_name`, and for `hook_z` SAELens's `reshape_activations: "hook_z"`.
 *
 * @example
 * ```ts
 * const run = await trainSae({ model, hook: "blocks.2.hook_mlp_out", corpus, dSae: 2048, steps: 500 });
 * const sae = trainedSaeToSae(run, { modelName: "tdb:brown-small" });
 * await sae.save("./saes/blocks.2.hook_mlp_out");
 * ```
 */
export function trainedSaeToSae(trained: TrainedSae, meta: TrainedSaeMeta = {}): Sae {
  const hook = meta.hookName ?? trained.hook;
  const layer = hook === undefined ? undefined : /^blocks\.(\d+)\./.exec(hook)?.[1];
  const extra: Record<string, unknown> = { ...(meta.extra ?? {}) };
  if (meta.contextLength !== undefined) extra.context_size = meta.contextLength;
  if (meta.dataset !== undefined) extra.dataset_path = meta.dataset;
  if (hook !== undefined) extra.prepend_bos = true;
  if (hook?.endsWith("hook_z")) extra.reshape_activations = "hook_z";
  const config: SaeConfig = {
    architecture: trained.architecture,
    dIn: trained.dIn,
    dSae: trained.dSae,
    ...(trained.k !== undefined ? { k: trained.k } : {}),
    applyBDecToInput: true,
    normalizeActivations: "none",
    ...(hook !== undefined ? { hookName: hook } : {}),
    ...(layer !== undefined ? { hookLayer: Number(layer) } : {}),
    hookHeadIndex: null,
    ...(meta.modelName !== undefined ? { modelName: meta.modelName } : {}),
    extra,
  };
  const w = trained.weights;
  return Sae.create(config, { W_enc: w.W_enc.data, W_dec: w.W_dec.data, b_enc: w.b_enc.data, b_dec: w.b_dec.data });
}

/** Metrics of an SAE on a set of rows (see `metrics.ts` for the definitions). */
export interface SaeRowMetrics {
  /** Mean number of active latents per row. */
  l0: number;
  /** Mean squared error per element. */
  mse: number;
  /** MSE over the variance of the rows around their mean. */
  normalizedMse: number;
  /** 1 - normalised MSE (SAELens's pooled form). */
  explainedVariance: number;
  /** Fraction of latents that never fire on these rows. */
  deadFraction: number;
  /** Fraction of latents that fire on more than 10% of the rows. */
  denseFraction: number;
}

/**
 * Reconstruction and sparsity metrics of `sae` on `rows` rows of `x` (rows x d_in).
 *
 * @example
 * ```ts
 * const m = await evaluateSaeOnRows(sae, heldOut); // { l0, mse, normalizedMse, explainedVariance, deadFraction, denseFraction }
 * ```
 */
export async function evaluateSaeOnRows(sae: Sae, x: Float32Array, rows?: number): Promise<SaeRowMetrics> {
  const n = rows ?? x.length / sae.dIn;
  if (!Number.isSafeInteger(n) || n < 2 || n * sae.dIn !== x.length) {
    throw new TdbError("E_BAD_INPUT", `evaluateSaeOnRows: ${x.length} values are not at least 2 rows of ${sae.dIn}`, { value: x.length, allowed: `a multiple of ${sae.dIn}, at least 2 rows` });
  }
  const { latents, reconstruction } = await sae.forward(x, n);
  return {
    l0: l0(latents, sae.dSae),
    mse: mse(x, reconstruction, sae.dIn),
    normalizedMse: normalizedMse(x, reconstruction, sae.dIn),
    explainedVariance: explainedVariance(x, reconstruction, sae.dIn),
    deadFraction: deadFraction(latents, sae.dSae),
    denseFraction: denseFraction(latents, sae.dSae),
  };
}

/**
 * Collects a stream of row batches (rows x `d`) into one array.
 *
 * @example
 * ```ts
 * const held = await collectRows(harvestActivations(model, docs, { hook, tokens: 4096 }), 256);
 * ```
 */
export async function collectRows(stream: AsyncIterable<Float32Array> | Iterable<Float32Array>, d: number): Promise<{ data: Float32Array; rows: number }> {
  const parts: Float32Array[] = [];
  let n = 0;
  for await (const b of stream) {
    if (!(b instanceof Float32Array) || b.length % d !== 0) {
      throw new TdbError("E_BAD_INPUT", `collectRows: a batch is not a Float32Array of rows of ${d}`, { value: b instanceof Float32Array ? b.length : typeof b, allowed: `a multiple of ${d}` });
    }
    parts.push(b);
    n += b.length;
  }
  const data = new Float32Array(n);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { data, rows: n / d };
}
