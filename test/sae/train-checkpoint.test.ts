/**
 * SAE training checkpoints: a run interrupted after a checkpoint and resumed ends with the same
 * weights, moments-driven updates and losses as an uninterrupted run (array data, both
 * architectures, resampling on); checkpoints of other runs and damaged files are refused; NaN
 * activations and an overflowing loss stop training at the step they enter, leaving the last good
 * checkpoint byte for byte as it was; the TopK decoder-gradient projection against a hand
 * computation.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSaeCheckpoint } from "../../src/sae/checkpoint.js";
import { syntheticFeatures } from "../../src/sae/synthetic.js";
import { projectOutRows, trainSae, type TrainSaeOptions } from "../../src/sae/train.js";
import { rejected } from "../helpers/errors.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-sae-ckpt-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const d = 8;
// 200 rows (epochs of 6.25 batches) of 16 sparse features in 8 dimensions: with this L1 and lr latents die and are resampled.
const x = syntheticFeatures({ nFeatures: 16, dIn: d, seed: 5, expectedL0: 2 }).sample(200).x;

function base(arch: "standard" | "topk"): TrainSaeOptions {
  const common = { activations: x, dIn: d, dSae: 24, steps: 30, batchSize: 32, lr: 0.01, seed: 4, threads: 1, deadWindowSteps: 4 };
  return arch === "standard" ? { ...common, lr: 0.03, l1Coefficient: 2, resample: { every: 6, until: 24 } } : { ...common, architecture: "topk", k: 3 };
}

class Stop extends Error {}

describe("trainSae checkpoints and resume", () => {
  for (const arch of ["standard", "topk"] as const) {
    it(`${arch}: interrupted after the step-12 checkpoint and resumed, it ends with the uninterrupted run's weights and losses`, async () => {
      const whole = await trainSae(base(arch));
      expect(whole.resumedFrom).toBe(0);
      if (arch === "standard") expect(whole.resampled).toBeGreaterThan(0); // resampling is part of the trajectory
      const path = join(dir, `${arch}.ckpt`);
      // Stopped at step 14 (checkpoints at 6 and 12; the error leaves the one of step 12).
      const stop = await trainSae({
        ...base(arch),
        checkpoint: { path, every: 6 },
        onProgress: (p) => {
          if (p.step === 14) throw new Stop("interrupted");
        },
      }).catch((e: unknown) => e);
      expect(stop).toBeInstanceOf(Stop);
      expect((await readSaeCheckpoint(path))!.step).toBe(12);
      const steps: number[] = [];
      const resumed = await trainSae({ ...base(arch), checkpoint: { path, every: 6, resume: true }, onProgress: (p) => steps.push(p.step) });
      expect(resumed.resumedFrom).toBe(12);
      expect(steps).toEqual(Array.from({ length: 18 }, (_, i) => 13 + i));
      expect(resumed.steps).toBe(30);
      for (const k of ["W_enc", "W_dec", "b_enc", "b_dec"] as const) expect(resumed.weights[k].data).toEqual(whole.weights[k].data);
      expect(resumed.losses.mse).toEqual(whole.losses.mse);
      expect(resumed.losses.l0).toEqual(whole.losses.l0);
      expect(resumed.resampled).toBe(whole.resampled);
      expect(resumed.deadFraction).toBe(whole.deadFraction);
      // The final checkpoint is the end of the run.
      expect((await readSaeCheckpoint(path))!.step).toBe(30);
    });
  }

  it("resume without a checkpoint file starts fresh; another run's checkpoint or a damaged file is refused", async () => {
    const path = join(dir, "other.ckpt");
    const fresh = await trainSae({ ...base("standard"), steps: 8, checkpoint: { path, resume: true } });
    expect(fresh.resumedFrom).toBe(0);
    const e1 = await rejected(trainSae({ ...base("standard"), steps: 8, lr: 0.02, checkpoint: { path, resume: true } }));
    expect(e1.code).toBe("E_CHECKPOINT_MISMATCH");
    const other = x.slice();
    other[0] = 1;
    const e2 = await rejected(trainSae({ ...base("standard"), activations: other, steps: 8, checkpoint: { path, resume: true } }));
    expect(e2.code).toBe("E_CHECKPOINT_MISMATCH");
    const bytes = await readFile(path);
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
    await writeFile(path, bytes);
    const e3 = await rejected(trainSae({ ...base("standard"), steps: 8, checkpoint: { path, resume: true } }));
    expect([e3.code, e3.value]).toEqual(["E_CHECKPOINT", path]);
    expect(e3.message).toContain("checksum");
    await writeFile(path, bytes.subarray(0, 100));
    expect((await rejected(readSaeCheckpoint(path))).code).toBe("E_CHECKPOINT");
    const e4 = await rejected(trainSae({ ...base("standard"), checkpoint: { path: "", every: 1 } }));
    expect([e4.code, e4.value]).toEqual(["E_BAD_OPTION", ""]);
  });
});

describe("trainSae stops on NaN or infinity, keeping the last good checkpoint", () => {
  const B = 32;
  /** Chunks of 32 rows; `poison(row)` may change one value of a row. */
  function stream(poison: (row: number, v: Float32Array) => void): AsyncGenerator<Float32Array> {
    return (async function* () {
      for (let c = 0; c < 40; c++) {
        const chunk = x.slice(((c * B) % 192) * d, ((c * B) % 192) * d + B * d);
        for (let r = 0; r < B; r++) poison(c * B + r, chunk.subarray(r * d, r * d + d));
        yield chunk;
      }
    })();
  }
  const opts = (path: string): TrainSaeOptions => ({ dIn: d, dSae: 24, steps: 20, batchSize: B, bufferRows: B, lr: 0.01, seed: 2, threads: 1, activations: [], checkpoint: { path, every: 2 } });

  it("a NaN in row 163 of the stream stops step 5 (the buffer of 32 reads rows 32s..32s+31 while drawing step s); the step-4 checkpoint is kept as written", async () => {
    const good = join(dir, "clean.ckpt");
    const bad = join(dir, "nan.ckpt");
    // The same run without the NaN, stopped at step 5, wrote the step-4 checkpoint the failing run must leave.
    const stopped = await trainSae({ ...opts(good), activations: stream(() => undefined), onProgress: (p) => {
      if (p.step === 5) throw new Stop("at 5");
    } }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(Stop);
    const e = await rejected(trainSae({ ...opts(bad), activations: stream((row, v) => {
      if (row === 163) v[2] = NaN;
    }) }));
    expect(e.code).toBe("E_NON_FINITE");
    expect(e.value).toEqual({ step: 5, row: 163 });
    expect(e.message).toContain("step 5");
    expect(e.message).toContain(bad);
    const kept = await readSaeCheckpoint(bad);
    expect(kept!.step).toBe(4);
    expect(kept!.data).toEqual({ streamRows: 160 });
    expect(await readFile(bad)).toEqual(await readFile(good));
  });

  it("a finite value whose square overflows float32 makes the loss infinite at the step that draws it", async () => {
    const path = join(dir, "inf.ckpt");
    const e = await rejected(trainSae({ ...opts(path), activations: stream((row, v) => {
      if (row === 100) v[0] = 1e30;
    }) }));
    expect(e.code).toBe("E_NON_FINITE");
    const value = e.value as { step: number; loss: number };
    // Row 100 enters the buffer while step 3 draws; it is drawn at step 3 or later (one slot of 32 per draw).
    expect(value.step).toBeGreaterThanOrEqual(3);
    expect(value.loss).toBe(Infinity);
    expect((await readSaeCheckpoint(path))!.step).toBe(2 * Math.floor((value.step - 1) / 2));
  });
});

describe("TopK decoder-gradient projection", () => {
  it("removes each row's component along the unit decoder row (hand computation)", () => {
    const w = new Float32Array([0.6, 0.8, 0, 1, 0, 0]);
    const g = new Float32Array([1, 2, 3, 4, 5, 6]);
    projectOutRows(g, w, 2, 3);
    // Row 0: g.w = 0.6 + 1.6 = 2.2; g - 2.2 w = [1 - 1.32, 2 - 1.76, 3]. Row 1: w = e0: [0, 5, 6].
    expect(Array.from(g).map((v) => Number(v.toFixed(6)))).toEqual([-0.32, 0.24, 3, 0, 5, 6]);
  });
});
