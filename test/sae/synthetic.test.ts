/**
 * Synthetic ground-truth data: determinism, unit directions, firing frequencies, x = codes @ features.
 */
import { describe, expect, it } from "vitest";
import { syntheticFeatures } from "../../src/sae/synthetic.js";
import { thrown } from "../helpers/errors.js";

describe("syntheticFeatures", () => {
  const opts = { nFeatures: 512, dIn: 64, seed: 7 };

  it("is deterministic per seed, and the stream does not depend on how it is cut into batches", () => {
    const a = syntheticFeatures(opts);
    const b = syntheticFeatures(opts);
    expect(b.features).toEqual(a.features);
    const whole = a.sample(5);
    const first = b.sample(2);
    const rest = b.sample(3);
    expect(Array.from(first.x).concat(Array.from(rest.x))).toEqual(Array.from(whole.x));
    expect(Array.from(first.codes).concat(Array.from(rest.codes))).toEqual(Array.from(whole.codes));
    const c = syntheticFeatures({ ...opts, seed: 8 });
    expect(c.features).not.toEqual(a.features);
    expect(c.sample(5).codes).not.toEqual(whole.codes);
  });

  it("has unit-norm directions in superposition (more features than dimensions, overlapping)", () => {
    const { features, nFeatures, dIn } = syntheticFeatures(opts);
    expect(nFeatures).toBeGreaterThan(dIn);
    expect(features.length).toBe(512 * 64);
    let maxOverlap = 0;
    for (let f = 0; f < nFeatures; f++) {
      let s = 0;
      for (let j = 0; j < dIn; j++) s += features[f * dIn + j]! ** 2;
      expect(Math.abs(Math.sqrt(s) - 1)).toBeLessThan(1e-6);
      if (f > 0) {
        let dot = 0;
        for (let j = 0; j < dIn; j++) dot += features[j]! * features[f * dIn + j]!;
        maxOverlap = Math.max(maxOverlap, Math.abs(dot));
      }
    }
    // 511 random directions in 64 dims: some overlap with feature 0 well above 0 (cos std ~ 1/8).
    expect(maxOverlap).toBeGreaterThan(0.3);
  });

  it("x is codes @ features (float64 check) and codes are sparse and positive", () => {
    const data = syntheticFeatures(opts);
    const rows = 300;
    const { x, codes } = data.sample(rows);
    expect(x.length).toBe(rows * 64);
    expect(codes.length).toBe(rows * 512);
    let nonzero = 0;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < 64; j++) {
        let ref = 0;
        for (let f = 0; f < 512; f++) ref += codes[r * 512 + f]! * data.features[f * 64 + j]!;
        // x is the float64 sum rounded once to float32.
        expect(Math.abs(x[r * 64 + j]! - ref)).toBeLessThanOrEqual(Math.abs(ref) * 2 ** -24 + 1e-12);
      }
      for (let f = 0; f < 512; f++) {
        const c = codes[r * 512 + f]!;
        expect(c >= 0 && c <= 1).toBe(true);
        if (c !== 0) nonzero++;
      }
    }
    // Default expectedL0 = 5: 1500 expected firings, std ~ sqrt(1500) ~ 39.
    expect(Math.abs(nonzero - 5 * rows)).toBeLessThan(5 * 39);
  });

  it("fires each feature with its probability (uniform and decaying frequencies)", () => {
    const rows = 4000;
    const uni = syntheticFeatures({ nFeatures: 20, dIn: 8, seed: 1, expectedL0: 4 });
    expect(Array.from(uni.probabilities)).toEqual(new Array(20).fill(0.2));
    const { codes } = uni.sample(rows);
    for (let f = 0; f < 20; f++) {
      let n = 0;
      for (let r = 0; r < rows; r++) if (codes[r * 20 + f] !== 0) n++;
      // std of the frequency: sqrt(0.2 * 0.8 / 4000) = 0.0063; allow 5 sigma.
      expect(Math.abs(n / rows - 0.2)).toBeLessThan(0.032);
    }
    const dec = syntheticFeatures({ nFeatures: 20, dIn: 8, seed: 1, expectedL0: 2, frequencies: { decay: 0.8 } });
    // p_i = 2 * 0.8^i / Σ 0.8^k, computed independently.
    const z = (1 - 0.8 ** 20) / (1 - 0.8);
    dec.probabilities.forEach((p, i) => expect(p).toBeCloseTo((2 * 0.8 ** i) / z, 12));
    const dc = dec.sample(rows).codes;
    for (const f of [0, 3, 10]) {
      let n = 0;
      for (let r = 0; r < rows; r++) if (dc[r * 20 + f] !== 0) n++;
      const p = dec.probabilities[f]!;
      expect(Math.abs(n / rows - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / rows) + 1e-3);
    }
    const zipf = syntheticFeatures({ nFeatures: 4, dIn: 2, seed: 1, expectedL0: 1, frequencies: { zipf: 1 } });
    const h = 1 + 1 / 2 + 1 / 3 + 1 / 4;
    zipf.probabilities.forEach((p, i) => expect(p).toBeCloseTo(1 / (i + 1) / h, 12));
  });

  it("correlated groups keep each feature's frequency and co-fire as the closed form says", () => {
    const rows = 20000;
    const data = syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 3, expectedL0: 8 * 0.3, correlation: { groupSize: 4, strength: 0.5 } });
    const { codes } = data.sample(rows);
    const freq = (fs: number[]): number => {
      let n = 0;
      for (let r = 0; r < rows; r++) if (fs.every((f) => codes[r * 8 + f] !== 0)) n++;
      return n / rows;
    };
    for (let f = 0; f < 8; f++) expect(Math.abs(freq([f]) - 0.3)).toBeLessThan(0.015);
    // Same group: 0.5 * 0.3 + 0.5 * 0.3^2 = 0.195; different groups: independent, 0.09.
    expect(Math.abs(freq([0, 1]) - 0.195)).toBeLessThan(0.015);
    expect(Math.abs(freq([5, 7]) - 0.195)).toBeLessThan(0.015);
    expect(Math.abs(freq([0, 4]) - 0.09)).toBeLessThan(0.015);
    // Full strength, one group, equal probabilities: all or nothing.
    const all = syntheticFeatures({ nFeatures: 6, dIn: 3, seed: 3, expectedL0: 3, correlation: { groupSize: 6, strength: 1 } }).sample(500).codes;
    let some = 0;
    for (let r = 0; r < 500; r++) {
      let n = 0;
      for (let f = 0; f < 6; f++) if (all[r * 6 + f] !== 0) n++;
      expect(n === 0 || n === 6).toBe(true);
      if (n === 6) some++;
    }
    expect(some).toBeGreaterThan(200);
    expect(some).toBeLessThan(300);
    const e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1, correlation: { groupSize: 2, strength: 1.5 } }));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.value).toBe(1.5);
  });

  it("magnitudes: uniform in (0, 1] with mean 1/2, exponential with mean 1, or exactly 1", () => {
    const mean = (m: "uniform" | "exponential" | "one"): number => {
      const { codes } = syntheticFeatures({ nFeatures: 10, dIn: 4, seed: 2, expectedL0: 5, magnitudes: m }).sample(2000);
      let s = 0;
      let n = 0;
      for (const c of codes) {
        if (c === 0) continue;
        s += c;
        n++;
      }
      return s / n;
    };
    expect(Math.abs(mean("uniform") - 0.5)).toBeLessThan(0.02); // std 0.29 / sqrt(10000)
    expect(Math.abs(mean("exponential") - 1)).toBeLessThan(0.05); // std 1 / sqrt(10000)
    expect(mean("one")).toBe(1);
  });

  it("bad options get typed errors with value and allowed", () => {
    let e = thrown(() => syntheticFeatures({ nFeatures: 0, dIn: 64, seed: 1 }));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.value).toBe(0);
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: NaN, seed: 1 }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1.5 }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1, expectedL0: 9 }));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.allowed).toBe("a number in (0, 8]");
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1, frequencies: { decay: 0 } }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1, magnitudes: "big" as "one" }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = thrown(() => syntheticFeatures({ nFeatures: 8, dIn: 4, seed: 1 }).sample(0));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.value).toBe(0);
  });
});
