/**
 * SAE metrics against closed forms and hand computations in float64.
 */
import { describe, expect, it } from "vitest";
import {
  ceLossRecovered,
  deadFraction,
  denseFraction,
  densityHistogram,
  densityHistogramSvg,
  explainedVariance,
  explainedVarianceLegacy,
  featureDensity,
  l0,
  maxCosineSimilarities,
  mmcs,
  mse,
  normalizedMse,
} from "../../src/sae/metrics.js";
import { Rng } from "../../src/base/random.js";
import { thrown } from "../helpers/errors.js";

const f32 = (a: number[]): Float32Array => Float32Array.from(a);

/** Random unit rows, n x d, in float64 then float32. */
function unitRows(n: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n * d);
  const v = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    rng.fillNormal(v);
    const norm = Math.hypot(...v);
    for (let j = 0; j < d; j++) out[i * d + j] = v[j]! / norm;
  }
  return out;
}

describe("reconstruction metrics", () => {
  // x: 3 rows x 2; column means (2, 4); centred x: (-1,-2), (0,0), (1,2) -> total SS = 1+4+0+0+1+4 = 10.
  const x = f32([1, 2, 2, 4, 3, 6]);
  // residuals x - xHat: (0,1), (1,0), (0,-1) -> RSS = 3.
  const xHat = f32([1, 1, 1, 4, 3, 7]);

  it("MSE is the mean of squared residuals over every element", () => {
    expect(mse(x, xHat, 2)).toBeCloseTo(3 / 6, 12);
    expect(mse(x, x, 2)).toBe(0);
  });

  it("normalised MSE and explained variance are RSS / TSS around the column mean", () => {
    expect(normalizedMse(x, xHat, 2)).toBeCloseTo(3 / 10, 12);
    expect(explainedVariance(x, xHat, 2)).toBeCloseTo(0.7, 12);
    expect(explainedVariance(x, x, 2)).toBe(1);
    // Predicting the column mean explains nothing.
    expect(explainedVariance(x, f32([2, 4, 2, 4, 2, 4]), 2)).toBeCloseTo(0, 12);
  });

  it("the legacy explained variance averages 1 - RSS_i / TSS_i over rows", () => {
    // Rows 0 and 2 have TSS 5 and RSS 1; row 1 sits on the mean: undefined.
    const e = thrown(() => explainedVarianceLegacy(x, xHat, 2));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe(1);
    // Two rows: centred (-1,-2), (1,2): TSS 5 each; residuals (0,1): 1 and (1,1): 2.
    const x2 = f32([1, 2, 3, 6]);
    const h2 = f32([1, 1, 2, 5]);
    expect(explainedVarianceLegacy(x2, h2, 2)).toBeCloseTo((1 - 1 / 5 + (1 - 2 / 5)) / 2, 12);
    // ... which differs from the pooled form 1 - 3/10.
    expect(explainedVariance(x2, h2, 2)).toBeCloseTo(1 - 3 / 10, 12);
  });

  it("agrees with a float64 computation on random data", () => {
    const rng = new Rng(3);
    const rows = 200;
    const d = 7;
    const a = rng.normalArray(rows * d, 0.5, 2);
    const b = rng.normalArray(rows * d, 0.5, 2);
    for (let i = 0; i < a.length; i++) b[i] = a[i]! + 0.3 * b[i]!;
    let rss = 0;
    let tss = 0;
    for (let j = 0; j < d; j++) {
      let m = 0;
      for (let r = 0; r < rows; r++) m += a[r * d + j]!;
      m /= rows;
      for (let r = 0; r < rows; r++) {
        tss += (a[r * d + j]! - m) ** 2;
        rss += (a[r * d + j]! - b[r * d + j]!) ** 2;
      }
    }
    expect(mse(a, b, d)).toBeCloseTo(rss / (rows * d), 10);
    expect(explainedVariance(a, b, d)).toBeCloseTo(1 - rss / tss, 10);
    expect(normalizedMse(a, b, d) + explainedVariance(a, b, d)).toBeCloseTo(1, 12);
  });

  it("bad input gets typed errors", () => {
    let e = thrown(() => mse(x, f32([1, 2]), 2));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe(2);
    e = thrown(() => mse(x, xHat, 4));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe(6);
    expect(e.allowed).toBe("a multiple of 4");
    e = thrown(() => mse(new Float32Array(0), new Float32Array(0), 2));
    expect(e.code).toBe("E_BAD_INPUT");
    e = thrown(() => mse(x, f32([1, 2, NaN, 4, 3, 6]), 2));
    expect(e.code).toBe("E_NON_FINITE");
    expect(e.value).toEqual({ index: 2, element: NaN });
    e = thrown(() => mse(x, xHat, 0));
    expect(e.code).toBe("E_BAD_OPTION");
    e = thrown(() => mse([1, 2] as unknown as Float32Array, xHat, 2));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe("Array");
    e = thrown(() => explainedVariance(f32([1, 2, 1, 2]), f32([0, 0, 0, 0]), 2));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe(0);
  });
});

describe("sparsity metrics", () => {
  // 4 rows x 5 latents: latent 0 fires on all rows, 1 on one row, 2 never, 3 on two rows, 4 on one (negative).
  const acts = f32([
    1, 0, 0, 2, 0, //
    3, 0, 0, 0, 0, //
    1, 5, 0, 1, 0, //
    2, 0, 0, 0, -1,
  ]);

  it("L0 counts nonzero latents per row", () => {
    expect(l0(acts, 5)).toBe((2 + 1 + 3 + 2) / 4);
    expect(l0(new Float32Array(10), 5)).toBe(0);
  });

  it("densities, dead and dense fractions", () => {
    expect(Array.from(featureDensity(acts, 5))).toEqual([1, 0.25, 0, 0.5, 0.25]);
    expect(deadFraction(acts, 5)).toBe(1 / 5);
    // > 10%: latents 0, 1, 3, 4; > 25% strictly: 0 and 3; > 50%: only 0.
    expect(denseFraction(acts, 5)).toBe(4 / 5);
    expect(denseFraction(acts, 5, 0.25)).toBe(2 / 5);
    expect(denseFraction(acts, 5, 0.5)).toBe(1 / 5);
    expect(thrown(() => denseFraction(acts, 5, 1)).code).toBe("E_BAD_OPTION");
    expect(thrown(() => l0(acts, 3)).code).toBe("E_BAD_INPUT");
  });

  it("the log10 density histogram bins by hand", () => {
    // densities 1 (log 0), 0.25 (-0.602), 0 (dead), 0.5 (-0.301), 0.25.
    const h = densityHistogram(acts, 5, { bins: 4, min: -1, max: 0 });
    expect(h.edges).toEqual([-1, -0.75, -0.5, -0.25, 0]);
    // -0.602 -> bin 1 ([-0.75, -0.5)), -0.301 -> bin 2 ([-0.5, -0.25)), 0 -> last bin.
    expect(h.counts).toEqual([0, 2, 1, 1]);
    expect(h.dead).toBe(1);
    expect(h.below).toBe(0);
    expect(h.latents).toBe(5);
    // A narrower range sends the 0.25s below it.
    const h2 = densityHistogram(acts, 5, { bins: 2, min: -0.5, max: 0 });
    expect(h2.counts).toEqual([1, 1]);
    expect(h2.below).toBe(2);
  });

  it("the histogram takes densities directly and bins exact decades by the lower edge", () => {
    const density = Float64Array.from([1e-3, 1e-3, 1e-2, 0.1, 1, 0, 1e-9]);
    const h = densityHistogram(density, undefined, { bins: 8, min: -8, max: 0 });
    // log10: -3, -3, -2, -1, 0 -> bins 5, 5, 6, 7, 7; 1e-9 below; one dead.
    expect(h.counts).toEqual([0, 0, 0, 0, 0, 2, 1, 2]);
    expect(h.below).toBe(1);
    expect(h.dead).toBe(1);
    expect(thrown(() => densityHistogram(Float64Array.from([1.5]))).code).toBe("E_BAD_INPUT");
    expect(thrown(() => densityHistogram(density, undefined, { min: 0, max: 0 })).code).toBe("E_BAD_OPTION");
    expect(thrown(() => densityHistogram(density, undefined, { bins: 0 })).code).toBe("E_BAD_OPTION");
  });

  it("the SVG is deterministic, self-contained and draws one bar per nonempty bin", () => {
    const h = densityHistogram(acts, 5, { bins: 4, min: -1, max: 0 });
    const svg = densityHistogramSvg(h, { title: "a <b>" });
    expect(densityHistogramSvg(h, { title: "a <b>" })).toBe(svg);
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).not.toMatch(/href|<script/);
    expect(svg).toContain("a &lt;b&gt;");
    const bars = [...svg.matchAll(/<rect [^>]*fill="#4477aa"><title>(\d+)<\/title>/g)].map((m) => Number(m[1]));
    expect(bars).toEqual([2, 1, 1]);
    // The tallest bar (count 2) spans the plot height (240 - 24 - 40 = 176), the others half of it.
    const heights = [...svg.matchAll(/fill="#4477aa"/g)].length;
    expect(heights).toBe(3);
    expect(svg).toMatch(/height="176" fill="#4477aa"/);
    expect(svg).toMatch(/height="88" fill="#4477aa"/);
    expect(svg).toContain("dead 1");
    expect(thrown(() => densityHistogramSvg(h, { width: 5 })).code).toBe("E_BAD_OPTION");
  });
});

describe("mean max cosine similarity", () => {
  const d = 16;
  const n = 24; // more features than dimensions
  const truth = unitRows(n, d, 11);

  it("a permuted copy (positive scales, extra learned rows) scores 1", () => {
    const learned = new Float32Array((n + 8) * d);
    const perm = Array.from({ length: n }, (_, i) => (i * 7 + 3) % n);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) learned[perm[i]! * d + j] = truth[i * d + j]! * (1 + i);
    learned.set(unitRows(8, d, 99), n * d);
    expect(mmcs(learned, truth, d)).toBeCloseTo(1, 6);
    for (const v of maxCosineSimilarities(learned, truth, d)) expect(v).toBeCloseTo(1, 6);
    // Over learned rows, the 8 random extra rows score below 1.
    expect(mmcs(learned, truth, d, { over: "learned" })).toBeLessThan(0.99);
  });

  it("orthogonal directions score 0 and opposite ones -1", () => {
    // truth = e0, e1; learned = e2, e3 (d = 4).
    const t = f32([1, 0, 0, 0, 0, 1, 0, 0]);
    expect(mmcs(f32([0, 0, 1, 0, 0, 0, 0, 1]), t, 4)).toBe(0);
    // Signed: -e0 against e0 alone is -1; against e0 and e1, -e0 and -e1 are orthogonal to the other feature (0).
    expect(mmcs(f32([-1, 0, 0, 0]), f32([1, 0, 0, 0]), 4)).toBe(-1);
    expect(mmcs(f32([-1, 0, 0, 0, 0, -2, 0, 0]), t, 4)).toBe(0);
  });

  it("a rotation by a known angle scores cos(angle)", () => {
    // Truth e_{2k}; learned: e_{2k} rotated by θ_k towards e_{2k+1} (so each learned row is
    // nearest to its own feature when θ_k < 45°).
    const dd = 8;
    const angles = [0.1, 0.3, 0.5, 0.7];
    const t = new Float32Array(4 * dd);
    const l = new Float32Array(4 * dd);
    angles.forEach((a, k) => {
      t[k * dd + 2 * k] = 1;
      l[k * dd + 2 * k] = Math.cos(a);
      l[k * dd + 2 * k + 1] = Math.sin(a);
    });
    const best = maxCosineSimilarities(l, t, dd);
    angles.forEach((a, k) => expect(best[k]).toBeCloseTo(Math.cos(a), 6));
    expect(mmcs(l, t, dd)).toBeCloseTo(angles.reduce((s, a) => s + Math.cos(a), 0) / 4, 6);
  });

  it("matches a float64 brute force on random directions", () => {
    const learned = unitRows(40, d, 5);
    for (let i = 0; i < 40 * d; i++) learned[i] = learned[i]! * 3; // norms do not matter
    let sum = 0;
    for (let i = 0; i < n; i++) {
      let best = -Infinity;
      for (let k = 0; k < 40; k++) {
        let dot = 0;
        let nk = 0;
        let ni = 0;
        for (let j = 0; j < d; j++) {
          dot += truth[i * d + j]! * learned[k * d + j]!;
          nk += learned[k * d + j]! ** 2;
          ni += truth[i * d + j]! ** 2;
        }
        best = Math.max(best, dot / Math.sqrt(nk * ni));
      }
      sum += best;
    }
    expect(mmcs(learned, truth, d)).toBeCloseTo(sum / n, 10);
  });

  it("zero learned rows score 0; a zero true feature and bad shapes are errors", () => {
    const t = f32([1, 0, 0, 1]);
    expect(mmcs(f32([0, 0, 0, 0]), t, 2)).toBe(0);
    let e = thrown(() => mmcs(f32([1, 0]), f32([0, 0]), 2));
    expect(e.code).toBe("E_BAD_INPUT");
    e = thrown(() => mmcs(f32([1, 0, 0]), t, 2));
    expect(e.code).toBe("E_BAD_INPUT");
    e = thrown(() => mmcs(f32([1, NaN]), t, 2));
    expect(e.code).toBe("E_NON_FINITE");
    e = thrown(() => mmcs(t, t, 2, { over: "both" as "true" }));
    expect(e.code).toBe("E_BAD_OPTION");
  });
});

describe("cross-entropy loss recovered", () => {
  it("is (zero - spliced) / (zero - clean)", () => {
    expect(ceLossRecovered({ clean: 3, spliced: 3.2, zeroAblated: 5 })).toBeCloseTo(1.8 / 2, 12);
    expect(ceLossRecovered({ clean: 3, spliced: 3, zeroAblated: 5 })).toBe(1);
    expect(ceLossRecovered({ clean: 3, spliced: 5, zeroAblated: 5 })).toBe(0);
    expect(ceLossRecovered({ clean: 3, spliced: 6, zeroAblated: 5 })).toBe(-0.5);
  });

  it("equal zero-ablated and clean losses, and non-finite losses, are typed errors", () => {
    let e = thrown(() => ceLossRecovered({ clean: 3, spliced: 3.5, zeroAblated: 3 }));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toEqual({ clean: 3, zeroAblated: 3 });
    e = thrown(() => ceLossRecovered({ clean: NaN, spliced: 3.5, zeroAblated: 3 }));
    expect(e.code).toBe("E_NON_FINITE");
    e = thrown(() => ceLossRecovered({ clean: 1, spliced: Infinity, zeroAblated: 3 }));
    expect(e.code).toBe("E_NON_FINITE");
    e = thrown(() => ceLossRecovered(null as unknown as { clean: number; spliced: number; zeroAblated: number }));
    expect(e.code).toBe("E_BAD_INPUT");
  });
});
