/**
 * AdamW (decoupled weight decay, as PyTorch's `torch.optim.AdamW`), the learning-rate schedule
 * (linear warm-up, then cosine decay to a floor) and global-norm gradient clipping, as loops over
 * Float32Arrays (the update math itself lives in `src/autodiff/adam.ts`, shared with the SAE
 * trainer). Measured faster than running the update in onnxruntime (bench/train.ts): the
 * update reads and writes each parameter once, where a session would copy weights, moments and
 * results across the boundary every step.
 *
 * Weight decay applies to parameters of rank >= 2 (matrices, embeddings, the unembedding) and not
 * to biases or LayerNorm gains/biases: decaying a LayerNorm gain towards 0 (instead of its
 * natural value 1) or a bias only hurts (GPT-2 / nanoGPT practice).
 *
 * @module
 */
import type { OptimizerConfig } from "./config.js";

/** {@link OptimizerConfig} with every default filled. */
export type ResolvedOptimizer = Required<OptimizerConfig>;

/** Fills optimizer defaults for a run of `steps` steps. */
export function resolveOptimizer(o: OptimizerConfig | undefined, steps: number): ResolvedOptimizer {
  return {
    lr: o?.lr ?? 1e-3,
    minLrRatio: o?.minLrRatio ?? 0.1,
    warmupSteps: o?.warmupSteps ?? Math.min(100, Math.floor(steps / 10)),
    beta1: o?.beta1 ?? 0.9,
    beta2: o?.beta2 ?? 0.95,
    eps: o?.eps ?? 1e-8,
    weightDecay: o?.weightDecay ?? 0.1,
    clipNorm: o?.clipNorm ?? 1,
  };
}

/**
 * Learning rate of step `step` (0-based) of `steps`: `lr * (step + 1) / warmup` during warm-up,
 * then cosine from `lr` down to `lr * minLrRatio` at the last step.
 */
export function learningRate(o: ResolvedOptimizer, step: number, steps: number): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  const span = Math.max(1, steps - 1 - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  const min = o.lr * o.minLrRatio;
  return min + 0.5 * (o.lr - min) * (1 + Math.cos(Math.PI * progress));
}

export { adamwUpdate, clipScale, globalNorm, type AdamHyperparameters } from "../autodiff/adam.js";
