/**
 * The trainer reaches the known optimum: tokens from a first-order Markov chain whose every row
 * has successor probabilities (1/2, 1/4, 1/8, 1/8), so the best possible next-token
 * cross-entropy is the chain's conditional entropy, 1.75 bits = 1.75 ln 2 nats (closed form).
 * The held-out loss must come within 5% of it (and not below it by more than sampling noise).
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { train } from "../../src/train/train.js";

const V = 16;
const SUCC = [1, 3, 7, 12];
const PROB = [0.5, 0.25, 0.125, 0.125];
const ENTROPY = -PROB.reduce((a, p) => a + p * Math.log(p), 0); // = 1.75 ln 2

function chain(n: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(n);
  out[0] = rng.int(V);
  for (let i = 1; i < n; i++) {
    const u = rng.uniform();
    let k = 0;
    for (let acc = PROB[0]!; u >= acc && k < 3; acc += PROB[++k]!);
    out[i] = (out[i - 1]! + SUCC[k]!) % V;
  }
  return out;
}

describe("trainer on a Markov chain of known entropy", () => {
  it("reaches within 5% of the optimum cross-entropy on held-out data", async () => {
    expect(ENTROPY).toBeCloseTo(1.75 * Math.LN2, 12);
    const steps = 150;
    const r = await train({
      model: { kind: "gpt2", config: { n_layer: 1, n_head: 2, n_embd: 32, n_inner: 64, n_positions: 16, vocab_size: V } },
      data: { train: chain(40_000, 1), valid: chain(8_000, 2) },
      steps,
      batchSize: 16,
      optimizer: { lr: 1e-2, warmupSteps: 15, weightDecay: 0.01 },
      seed: 3,
      progress: "none",
    });
    expect(r.step).toBe(steps);
    // Loss at the start is about ln V (uniform), far from the optimum.
    expect(r.losses[0]!).toBeGreaterThan(0.9 * Math.log(V));
    expect(r.validLoss!).toBeLessThan(1.05 * ENTROPY);
    expect(r.validLoss!).toBeGreaterThan(0.97 * ENTROPY);
  }, 60_000);
});
