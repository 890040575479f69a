/**
 * AdamW, the schedule and clipping against hand-written float64 formulas (written out here from
 * the algorithm's definition, not calling the code under test).
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { adamwUpdate, clipScale, globalNorm, learningRate, resolveOptimizer } from "../../src/train/adamw.js";

/** Reference AdamW (Loshchilov & Hutter, PyTorch's formulation) for `steps` steps, all in float64. */
function referenceAdamW(p0: number[], grads: number[][], o: { lr: number; b1: number; b2: number; eps: number; wd: number }, decay: boolean): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      if (decay) p[i] = p[i]! - o.lr * o.wd * p[i]!;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g[i]!;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - o.b1 ** t);
      const vHat = v[i]! / (1 - o.b2 ** t);
      p[i] = p[i]! - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
  });
  return p;
}

describe("AdamW", () => {
  const rng = new Rng(7);
  const n = 257;
  const p0 = Array.from({ length: n }, () => rng.uniform() * 2 - 1);
  const grads = [0, 1, 2].map(() => Array.from({ length: n }, () => (rng.uniform() - 0.5) * 0.1));
  const o = resolveOptimizer({ lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 }, 100);

  for (const decay of [true, false]) {
    it(`one and three steps equal a float64 AdamW (decay ${decay})`, () => {
      const p = Float32Array.from(p0);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      for (let s = 0; s < 3; s++) {
        adamwUpdate(p, Float32Array.from(grads[s]!), m, v, o, o.lr, s + 1, 1, decay);
        const want = referenceAdamW(
          Array.from(Float32Array.from(p0)),
          grads.slice(0, s + 1).map((g) => Array.from(Float32Array.from(g))),
          { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-6, wd: 0.1 },
          decay,
        );
        for (let i = 0; i < n; i++) expect(Math.abs(p[i]! - want[i]!)).toBeLessThan(2e-6);
      }
      // The first step moves each weight by about lr (Adam's normalized step), plus decay.
      const moved = Math.abs(Float32Array.from(p0)[0]! - referenceAdamW(p0, [grads[0]!], { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-6, wd: 0.1 }, false)[0]!);
      expect(moved).toBeGreaterThan(0.009);
    });
  }

  it("global-norm clipping scales gradients to the clip norm", () => {
    const g = [Float32Array.from([3, 0]), Float32Array.from([0, 4])];
    expect(globalNorm(g)).toBeCloseTo(5, 6);
    expect(clipScale(5, 1)).toBeCloseTo(1 / 5, 6);
    expect(clipScale(0.5, 1)).toBe(1);
    expect(clipScale(5, 0)).toBe(1);
    // A clipped step equals the unclipped step of the scaled gradient.
    const p = Float32Array.from([1, 1]);
    const q = Float32Array.from([1, 1]);
    adamwUpdate(p, Float32Array.from([3, 4]), new Float32Array(2), new Float32Array(2), o, 0.01, 5, 0.2, false);
    adamwUpdate(q, Float32Array.from([0.6, 0.8]), new Float32Array(2), new Float32Array(2), o, 0.01, 5, 1, false);
    expect(Array.from(p)).toEqual(Array.from(q));
  });

  it("warm-up is linear and the cosine decay ends at lr * minLrRatio", () => {
    const s = resolveOptimizer({ lr: 1, warmupSteps: 10, minLrRatio: 0.1 }, 110);
    expect(learningRate(s, 0, 110)).toBeCloseTo(0.1, 12);
    expect(learningRate(s, 4, 110)).toBeCloseTo(0.5, 12);
    expect(learningRate(s, 9, 110)).toBeCloseTo(1, 12);
    expect(learningRate(s, 10, 110)).toBeCloseTo(1, 12);
    // halfway through the decay (step 10 + 99/2): min + (max - min) / 2
    expect(learningRate(s, 10 + 99 / 2, 110)).toBeCloseTo(0.55, 12);
    expect(learningRate(s, 109, 110)).toBeCloseTo(0.1, 12);
  });
});
