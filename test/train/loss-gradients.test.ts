/**
 * The training graph's loss and gradients, checked independently: the loss against a float64
 * cross-entropy computed in JavaScript from the generator's own forward logits (masked targets
 * left out), the gradients of every kind of parameter against finite differences (gradcheck,
 * float64 reference), and the training session's gradients against the same probes.
 */
import { describe, expect, it } from "vitest";
import { gradcheck } from "../../src/autodiff/gradcheck.js";
import { createSession } from "../../src/backend/ort.js";
import { Rng } from "../../src/base/random.js";
import { encodeModel } from "../../src/onnx/proto.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { unembedInitializerName } from "../../src/synthetic/gpt2-graph.js";
import { gpt2Config } from "../../src/synthetic/config.js";
import { buildLossGraph, GRAD_SQUARED_NORM, LOSS, LOSS_WEIGHTS, resolveModel, TARGETS } from "../../src/train/graph.js";

const cfg = gpt2Config({ n_layer: 1, n_head: 2, n_embd: 8, n_inner: 16, n_positions: 8, vocab_size: 16 });
const B = 2;
const T = 6;

function batch() {
  const rng = new Rng(3);
  const ids = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const targets = Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const mask: number[] = Array.from({ length: B * T }, (_, i) => (i % 5 === 2 ? 0 : 1)); // some targets left out
  const count = mask.reduce((a, b) => a + b, 0);
  return { ids, targets, mask, count };
}

function feedsFor(m: ReturnType<typeof resolveModel>, b: ReturnType<typeof batch>): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const p of m.params) feeds[p.name] = { type: "float32", data: p.data, dims: p.dims };
  const dims = [B, T];
  feeds.input_ids = { type: "int64", data: BigInt64Array.from(b.ids.map(BigInt)), dims };
  feeds.attention_mask = { type: "int64", data: new BigInt64Array(B * T).fill(1n), dims };
  feeds[TARGETS] = { type: "int64", data: BigInt64Array.from(b.targets.map(BigInt)), dims };
  feeds[LOSS_WEIGHTS] = { type: "float32", data: Float32Array.from(b.mask.map((x) => x / b.count)), dims };
  return feeds;
}

describe("training loss graph", () => {
  const m = resolveModel({ kind: "gpt2", config: cfg, init: { std: 0.3 } }, 5);
  const b = batch();

  it("the loss is the mean cross-entropy over the non-masked targets (float64 reference from the forward logits)", async () => {
    const fwd = await createSession(encodeModel(m.forward));
    const logits = (await fwd.run({ input_ids: { type: "int64", data: BigInt64Array.from(b.ids.map(BigInt)), dims: [B, T] }, attention_mask: { type: "int64", data: new BigInt64Array(B * T).fill(1n), dims: [B, T] } }, ["logits"])).logits!;
    await fwd.release();
    const V = cfg.vocab_size;
    let sum = 0;
    for (let i = 0; i < B * T; i++) {
      if (!b.mask[i]) continue;
      const row = Array.from(logits.data as Float32Array).slice(i * V, (i + 1) * V);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
      sum += lse - row[b.targets[i]!]!;
    }
    const expected = sum / b.count;
    const s = await createSession(encodeModel(buildLossGraph(m, false, { batch: B, seq: T }).model));
    const got = (await s.run(feedsFor(m, b), [LOSS]))[LOSS]!.data[0] as number;
    await s.release();
    expect(Math.abs(got - expected)).toBeLessThan(1e-5 * Math.max(1, expected));
    expect(expected).toBeGreaterThan(0.5); // not a degenerate case
  });

  it("gradients of every kind of parameter match finite differences", async () => {
    const evalGraph = buildLossGraph(m, false, { batch: B, seq: T });
    const wte = "transformer.wte.weight";
    const wrt = [
      wte,
      "transformer.wpe.weight",
      "transformer.h.0.ln_1.weight",
      "transformer.h.0.attn.c_attn.weight",
      "transformer.h.0.attn.c_proj.bias",
      "transformer.h.0.mlp.c_fc.weight",
      "transformer.ln_f.bias",
      unembedInitializerName(cfg),
    ];
    const d = cfg.n_embd;
    // Rows of wte the batch reads (elsewhere its gradient is 0).
    const used = [...new Set(b.ids)].slice(0, 3).flatMap((t) => [t * d, t * d + 3, t * d + 7]);
    const report = await gradcheck(evalGraph.model, { loss: LOSS, wrt }, feedsFor(m, b), { samples: 6, indices: { [wte]: used } });
    expect(report.promoted).toBe(true);
    expect(report.ok, JSON.stringify(report.worst)).toBe(true);
    expect(report.maxRelError).toBeLessThan(1e-3);
    for (const w of wrt) expect(report.probes[w]!.some((p) => Math.abs(p.numeric) > 1e-6), w).toBe(true);

    // The training session's gradients are the ones checked above.
    const lg = buildLossGraph(m, true, { batch: B, seq: T });
    const s = await createSession(encodeModel(lg.model));
    const out = await s.run(feedsFor(m, b));
    await s.release();
    // The in-graph squared gradient norm equals a float64 sum over every gradient.
    let sq = 0;
    for (const name of lg.grads.values()) for (const x of out[name]!.data as Float32Array) sq += x * x;
    const inGraph = (out[GRAD_SQUARED_NORM]!.data as Float32Array)[0]!;
    expect(Math.abs(inGraph - sq) / sq).toBeLessThan(1e-5);
    expect(lg.grads.size).toBe(m.params.length);
    for (const w of wrt) {
      const g = out[lg.grads.get(w)!]!.data as Float32Array;
      for (const p of report.probes[w]!) expect(Math.abs(g[p.index]! - p.numeric)).toBeLessThan(1e-3 * Math.max(1e-3, Math.abs(p.numeric)) + 1e-6);
    }
  });
});
