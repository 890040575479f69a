/**
 * Adam / AdamW update math as loops over Float32Arrays, shared by the trainers (`src/train/`,
 * `src/sae/`): the global gradient norm, the clipping factor and one in-place AdamW step
 * (decoupled weight decay, as PyTorch's `torch.optim.AdamW`; plain Adam with `weightDecay` 0 or
 * `decay` false). Measured faster than running the update in onnxruntime (bench/train.ts): the
 * update reads and writes each parameter once, where a session would copy weights, moments and
 * results across the boundary every step.
 *
 * @module
 */

/** The hyperparameters {@link adamwUpdate} reads. */
export interface AdamHyperparameters {
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** Decoupled weight decay (per unit learning rate). */
  weightDecay: number;
}

/** The L2 norm of all gradients together (accumulated in float64). */
export function globalNorm(grads: readonly Float32Array[]): number {
  let s = 0;
  for (const g of grads) {
    let part = 0;
    for (let i = 0; i < g.length; i++) {
      const x = g[i]!;
      part += x * x;
    }
    s += part;
  }
  return Math.sqrt(s);
}

/** The factor that scales gradients of norm `norm` down to `clipNorm` (1 when within it or clipping is off). */
export function clipScale(norm: number, clipNorm: number): number {
  if (!(clipNorm > 0) || clipNorm === Infinity || norm <= clipNorm) return 1;
  return clipNorm / (norm + 1e-6);
}

/**
 * One AdamW update of `p` in place, with moments `m`, `v` (updated in place): `t` is the 1-based
 * step number (for bias correction), `gradScale` the clipping factor, `decay` whether weight
 * decay applies to this parameter.
 *
 * `p <- p * (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
 *  p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
 */
export function adamwUpdate(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  o: AdamHyperparameters,
  lr: number,
  t: number,
  gradScale: number,
  decay: boolean,
): void {
  const b1 = o.beta1;
  const b2 = o.beta2;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const stepSize = lr / (1 - Math.pow(b1, t));
  const invSqrtBc2 = 1 / Math.sqrt(1 - Math.pow(b2, t));
  const keep = decay ? 1 - lr * o.weightDecay : 1;
  const eps = o.eps;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i]! * gradScale;
    const mi = b1 * m[i]! + c1 * gi;
    const vi = b2 * v[i]! + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}
