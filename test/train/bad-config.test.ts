/**
 * Bad training configs and data fail before any training, with typed errors naming the value.
 */
import { describe, expect, it } from "vitest";
import type { TrainConfig } from "../../src/train/config.js";
import { train } from "../../src/train/train.js";
import { rejected } from "../helpers/errors.js";

const V = 32;
const tokens = Int32Array.from({ length: 2000 }, (_, i) => (i * 7) % V);
const ok: TrainConfig = {
  model: { kind: "gpt2", config: { n_layer: 1, n_head: 2, n_embd: 8, n_positions: 8, vocab_size: V } },
  data: { train: tokens },
  steps: 2,
  batchSize: 2,
  progress: "none",
};

describe("train() rejects bad configs", () => {
  const cases: [string, Partial<TrainConfig>, string][] = [
    ["steps 0", { steps: 0 }, "E_BAD_OPTION"],
    ["batchSize 1.5", { batchSize: 1.5 }, "E_BAD_OPTION"],
    ["seqLen beyond n_ctx", { seqLen: 9 }, "E_BAD_OPTION"],
    ["negative learning rate", { optimizer: { lr: -1 } }, "E_BAD_OPTION"],
    ["beta1 of 1", { optimizer: { beta1: 1 } }, "E_BAD_OPTION"],
    ["resume without a checkpoint path", { resume: true }, "E_BAD_OPTION"],
    ["a token outside the vocabulary", { data: { train: Int32Array.from([...tokens.subarray(0, 100), V]) } }, "E_BAD_INPUT"],
    ["less data than one batch", { data: { train: tokens.subarray(0, 10) } }, "E_BAD_INPUT"],
    ["held-out data shorter than a window", { data: { train: tokens, valid: tokens.subarray(0, 5) } }, "E_BAD_INPUT"],
    ["a training mask of the wrong length", { data: { train: tokens, trainMask: new Uint8Array(3) } }, "E_BAD_INPUT"],
    ["token ids as a plain array", { data: { train: [1, 2, 3] as unknown as Int32Array } }, "E_BAD_INPUT"],
    ["the built-in GPT-2 tokenizer for a 32-token model", { outDir: "/tmp/never-written" }, "E_BAD_OPTION"],
    ["a tokenizer directory that does not exist", { outDir: "/tmp/never-written", tokenizer: { dir: "/nonexistent/tok" } }, "E_MISSING_FILE"],
  ];
  it.each(cases)("%s", async (_, patch, code) => {
    const err = await rejected(train({ ...ok, ...patch }));
    expect(err.code).toBe(code);
  });
});
