/**
 * Anthropic-style resampling of dead latents: the update of one latent against a hand
 * computation, the draw probabilities (proportional to the squared per-row loss), and the fresh
 * sample of rows trainSae draws for it (more than one batch; visible in the data position).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { readSaeCheckpoint } from "../../src/sae/checkpoint.js";
import { syntheticFeatures } from "../../src/sae/synthetic.js";
import { resampleLatents, trainSae } from "../../src/sae/train.js";

describe("resampleLatents", () => {
  it("sets the dead latent's decoder row, encoder column, bias and Adam moments as a hand computation says", () => {
    // d = 2, S = 3; latent 1 is dead; only pool row 1 has a nonzero error, so it is drawn.
    const w = {
      W_enc: new Float32Array([3, 9, 0, 4, 9, 1]), // [d, S]: columns (3, 4), (9, 9), (0, 1): live norms 5 and 1
      b_enc: new Float32Array([0.5, -2, 0.25]),
      W_dec: new Float32Array([1, 0, 0.6, 0.8, 0, 1]),
      b_dec: new Float32Array([1, 1]),
    };
    const m = [new Float32Array(6).fill(1), new Float32Array(3).fill(1), new Float32Array(6).fill(1), new Float32Array(2).fill(1)];
    const v = m.map((a) => a.slice());
    const pool = new Float32Array([7, 7, 4, 5, -1, 2]);
    const n = resampleLatents([1], pool, new Float32Array([0, 2, 0]), 3, w, m, v, new Rng(1));
    expect(n).toBe(1);
    // Row 1 minus b_dec = (3, 4), unit: (0.6, 0.8); encoder column: (0.6, 0.8) * 0.2 * (5 + 1) / 2 = (0.36, 0.48).
    expect(Array.from(w.W_dec)).toEqual([1, 0, Math.fround(0.6), Math.fround(0.8), 0, 1]);
    expect(Array.from(w.W_enc).map((x) => Number(x.toFixed(6)))).toEqual([3, 0.36, 0, 4, 0.48, 1]);
    expect(Array.from(w.b_enc)).toEqual([0.5, 0, 0.25]);
    // Moments of latent 1 only: W_enc column 1 (flat 1 and 4), b_enc[1], W_dec row 1 (flat 2 and 3).
    for (const mv of [m, v]) {
      expect(Array.from(mv[0]!)).toEqual([1, 0, 1, 1, 0, 1]);
      expect(Array.from(mv[1]!)).toEqual([1, 0, 1]);
      expect(Array.from(mv[2]!)).toEqual([1, 1, 0, 0, 1, 1]);
      expect(Array.from(mv[3]!)).toEqual([1, 1]);
    }
  });

  it("draws rows with probability proportional to the squared per-row loss", () => {
    // Rows (1, 0) with error 1 and (0, 1) with error 2: weights 1 and 4, so 80% of draws are row 1.
    const S = 2000;
    const w = { W_enc: new Float32Array(2 * S), b_enc: new Float32Array(S), W_dec: new Float32Array(S * 2), b_dec: new Float32Array(2) };
    const m = [new Float32Array(2 * S), new Float32Array(S), new Float32Array(2 * S), new Float32Array(2)];
    const dead = Array.from({ length: S }, (_, i) => i);
    resampleLatents(dead, new Float32Array([1, 0, 0, 1]), new Float32Array([1, 2]), 2, w, m, m, new Rng(3));
    let second = 0;
    for (let i = 0; i < S; i++) if (w.W_dec[i * 2 + 1] === 1) second++;
    // Binomial(2000, 0.8): mean 1600, sd 17.9; +-5 sd.
    expect(second).toBeGreaterThan(1510);
    expect(second).toBeLessThan(1690);
  });
});

describe("trainSae resampling draws a fresh sample larger than a batch", () => {
  it("consumes sampleRows extra rows at each resampling step with dead latents (data position), none with sampleRows 0", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tdb-sae-resample-"));
    try {
      const x = syntheticFeatures({ nFeatures: 16, dIn: 8, seed: 5, expectedL0: 2 }).sample(200).x;
      const opts = { activations: x, dIn: 8, dSae: 24, steps: 30, batchSize: 32, lr: 0.03, l1Coefficient: 2, seed: 4, threads: 1, deadWindowSteps: 4 };
      /** The array source's position after `rows` rows of 200-row epochs (the epoch turns when the next row is drawn). */
      const position = (rows: number) => ({ epoch: Math.ceil(rows / 200) - 1, cursor: rows - 200 * (Math.ceil(rows / 200) - 1) });
      const events: number[] = [];
      const big = await trainSae({ ...opts, resample: { every: 6, sampleRows: 100 }, checkpoint: { path: join(dir, "a") }, onProgress: (p) => p.resampled > 0 && events.push(p.step) });
      expect(big.resampled).toBeGreaterThan(0);
      expect(events.length).toBeGreaterThan(0);
      // 30 batches of 32, plus 100 rows rounded up to 4 batches at each resampling that found dead latents.
      expect((await readSaeCheckpoint(join(dir, "a")))!.data).toEqual(position(30 * 32 + events.length * 128));
      const small = await trainSae({ ...opts, resample: { every: 6, sampleRows: 0 }, checkpoint: { path: join(dir, "b") } });
      expect(small.resampled).toBeGreaterThan(0);
      expect((await readSaeCheckpoint(join(dir, "b")))!.data).toEqual(position(30 * 32));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
