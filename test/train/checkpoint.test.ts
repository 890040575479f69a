/**
 * Checkpoints: resuming gives bit-identical weights to an uninterrupted run; a truncated,
 * garbage or damaged checkpoint is E_CHECKPOINT; one of another config is E_CHECKPOINT_MISMATCH;
 * a NaN loss stops training with E_NON_FINITE and leaves the last good checkpoint in place.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { gpt2Config } from "../../src/synthetic/config.js";
import { randomGpt2Weights } from "../../src/synthetic/weights.js";
import { readCheckpoint } from "../../src/train/checkpoint.js";
import type { TrainConfig } from "../../src/train/config.js";
import { train } from "../../src/train/train.js";
import { rejected } from "../helpers/errors.js";

const root = mkdtempSync(join(tmpdir(), "tdb-train-ckpt-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const V = 64;
const rng = new Rng(11);
const tokens = Int32Array.from({ length: 6000 }, (_, i) => (i % 3 === 0 ? rng.int(V) : (i * 5) % V));
const valid = Int32Array.from({ length: 600 }, () => rng.int(V));
const modelConfig = { n_layer: 1, n_head: 2, n_embd: 16, n_inner: 32, n_positions: 16, vocab_size: V };

const base = (checkpoint: string, extra: Partial<TrainConfig> = {}): TrainConfig => ({
  model: { kind: "gpt2", config: modelConfig },
  data: { train: tokens, valid },
  steps: 8,
  batchSize: 4,
  optimizer: { lr: 3e-3, warmupSteps: 2 },
  seed: 1,
  evalInterval: 3,
  checkpoint,
  progress: "none",
  ...extra,
});

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe("checkpoints and resuming", () => {
  it("N steps straight equal N/2 steps, a checkpoint and a resumed N/2, bit for bit", async () => {
    const straight = await train(base(join(root, "straight.ckpt")));
    const half = await train(base(join(root, "split.ckpt"), { stopAfter: 4 }));
    expect(half.step).toBe(4);
    expect((await readCheckpoint(join(root, "split.ckpt"))).step).toBe(4);
    const rest = await train(base(join(root, "split.ckpt"), { resume: true }));
    expect(rest.resumed).toBe(true);
    expect(rest.step).toBe(8);
    expect(rest.losses).toEqual(straight.losses.slice(4));
    expect(half.losses).toEqual(straight.losses.slice(0, 4));
    for (const [name, w] of straight.weights) expect(sameBits(w.data, rest.weights.get(name)!.data), name).toBe(true);
    expect(rest.validLoss).toBe(straight.validLoss);
    // The trainer moved the weights (a no-op trainer would pass the comparison too).
    const init = randomGpt2Weights(gpt2Config(modelConfig), 1);
    expect(sameBits(init.get("transformer.h.0.mlp.c_fc.weight")!.data, straight.weights.get("transformer.h.0.mlp.c_fc.weight")!.data)).toBe(false);
    // Adam state too: both checkpoints hold the same bytes.
    expect(Buffer.compare(readFileSync(join(root, "straight.ckpt")), readFileSync(join(root, "split.ckpt")))).toBe(0);
  }, 60_000);

  it("a truncated, garbage or damaged checkpoint is E_CHECKPOINT", async () => {
    const good = join(root, "good.ckpt");
    await train(base(good, { steps: 2, evalInterval: 0 }));
    const bytes = readFileSync(good);
    const cases: [string, Uint8Array][] = [
      ["truncated", bytes.subarray(0, Math.floor(bytes.length / 2))],
      ["garbage", Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 255)],
      ["empty", new Uint8Array(0)],
      ["damaged", (() => { const b = Uint8Array.from(bytes); b[b.length - 5]! ^= 0x40; return b; })()],
    ];
    for (const [what, data] of cases) {
      const p = join(root, `${what}.ckpt`);
      writeFileSync(p, data);
      const err = await rejected(train(base(p, { steps: 2, evalInterval: 0, resume: true })));
      expect(err.code, what).toBe("E_CHECKPOINT");
      expect(readFileSync(p).length, `${what} is left as it was`).toBe(data.length);
    }
  }, 60_000);

  it("a checkpoint of another config is E_CHECKPOINT_MISMATCH", async () => {
    const p = join(root, "other.ckpt");
    await train(base(p, { steps: 2, evalInterval: 0 }));
    const err = await rejected(train(base(p, { steps: 2, evalInterval: 0, resume: true, optimizer: { lr: 1e-3, warmupSteps: 2 } })));
    expect(err.code).toBe("E_CHECKPOINT_MISMATCH");
    const err2 = await rejected(train(base(p, { steps: 2, evalInterval: 0, resume: true, data: { train: tokens.subarray(1) } })));
    expect(err2.code).toBe("E_CHECKPOINT_MISMATCH");
  }, 60_000);

  it("a NaN loss stops training with E_NON_FINITE and keeps the last good checkpoint", async () => {
    const p = join(root, "nan.ckpt");
    const weights = randomGpt2Weights(gpt2Config(modelConfig), 1);
    const err = await rejected(
      train(
        base(p, {
          model: { kind: "gpt2", config: modelConfig, weights },
          checkpointInterval: 2,
          evalInterval: 0,
          // After the step-4 checkpoint, poison a weight (the arrays are trained in place).
          onProgress: (e) => {
            if (e.kind === "checkpoint" && e.step === 4) weights.get("transformer.ln_f.weight")!.data[0] = NaN;
          },
        }),
      ),
    );
    expect(err.code).toBe("E_NON_FINITE");
    expect((err.value as { step: number }).step).toBe(5);
    const ck = await readCheckpoint(p);
    expect(ck.step).toBe(4);
    for (const q of ck.params) expect(q.data.every(Number.isFinite), q.name).toBe(true);
    expect(statSync(p).size).toBeGreaterThan(0);

    // A learning rate far too large diverges too.
    const huge = await rejected(train(base(join(root, "huge.ckpt"), { evalInterval: 0, optimizer: { lr: 1e20, warmupSteps: 0, clipNorm: 0 } })));
    expect(huge.code).toBe("E_NON_FINITE");
  }, 60_000);
});
