/**
 * Models other than the default GPT-2 through the same trainer: an attention-only GPT-2
 * (`attn_only`, no MLP parameters), and an arbitrary ONNX graph (a bigram table: logits =
 * onehot(token) . W, which can represent a first-order Markov chain exactly, so training must
 * approach the chain's entropy, a closed form).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { Model } from "../../src/model/model.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { train } from "../../src/train/train.js";

const root = mkdtempSync(join(tmpdir(), "tdb-train-graph-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Each token is followed by itself + 1 (prob 3/4) or + 5 (prob 1/4), mod V. */
function chain(n: number, v: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(n);
  for (let i = 1; i < n; i++) out[i] = (out[i - 1]! + (rng.uniform() < 0.75 ? 1 : 5)) % v;
  return out;
}
const ENTROPY = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));

describe("other graphs", () => {
  it("an arbitrary ONNX graph (a bigram table) trains to the chain's entropy", async () => {
    const V = 24;
    const b = new GraphBuilder({ opset: 13 });
    b.input("input_ids", "int64", ["batch", "seq"]);
    b.initializer("bigram", new Float32Array(V * V), [V, V]);
    b.initializer("bias", new Float32Array(V), [V]);
    b.output("logits", "float32", ["batch", "seq", V], b.op("Add", [b.op("Gather", ["bigram", "input_ids"]), "bias"]));
    const r = await train({
      model: { kind: "graph", graph: b.build(), vocabSize: V, nCtx: 16 },
      data: { train: chain(20_000, V, 1), valid: chain(4_000, V, 2) },
      steps: 150,
      batchSize: 8,
      optimizer: { lr: 0.1, warmupSteps: 5, weightDecay: 0 },
      progress: "none",
    });
    expect([...r.weights.keys()].sort()).toEqual(["bias", "bigram"]);
    expect(r.losses[0]!).toBeCloseTo(Math.log(V), 5); // zero weights: uniform
    expect(r.validLoss!).toBeLessThan(1.05 * ENTROPY);
  }, 60_000);

  it("an attention-only GPT-2 trains, has no MLP parameters, and its directory loads", async () => {
    const V = 300;
    const dir = join(root, "attn-only");
    const r = await train({
      model: { kind: "gpt2", config: { n_layer: 2, n_head: 2, n_embd: 16, n_positions: 16, vocab_size: V, attn_only: true } },
      data: { train: chain(20_000, V, 3), valid: chain(2_000, V, 4) },
      steps: 40,
      batchSize: 8,
      optimizer: { lr: 1e-2, warmupSteps: 4 },
      outDir: dir,
      progress: "none",
    });
    expect([...r.weights.keys()].some((k) => k.includes("mlp") || k.includes("ln_2"))).toBe(false);
    expect(r.validLoss!).toBeLessThan(r.losses[0]! - 1);
    const model = await Model.load(dir);
    const t = await model.trace([[1, 2, 3, 4]], { hooks: [] });
    expect(t.logits.dims).toEqual([1, 4, V]);
    await model.dispose();
  }, 60_000);
});
