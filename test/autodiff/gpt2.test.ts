/**
 * End to end on a tiny generated GPT-2 (the TorchScript export's structure, opset 13): gradients
 * of sum(logits * W) w.r.t. weights, the embedding tables (probed at the rows the prompt reads)
 * and intermediate activations, checked against finite differences; and a stop-gradient at the
 * final LayerNorm's Sqrt.
 */
import type { ModelProto } from "onnx-buf";
import { describe, expect, it } from "vitest";
import { addGradients } from "../../src/autodiff/backward.js";
import { gradcheck, type GradcheckReport } from "../../src/autodiff/gradcheck.js";
import { promoteFeed, promoteToDouble } from "../../src/autodiff/promote.js";
import { valueInfo } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { exposeValue } from "../../src/onnx/surgery.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { createSession } from "../../src/backend/ort.js";
import { gpt2Feeds, gpt2WithLoss, TINY } from "./_gpt2.js";

const WRT = [
  "transformer.h.0.mlp.c_fc.weight",
  "/transformer/h.0/mlp/act/Mul_3_output_0", // MLP post-GELU
  "/transformer/h.0/attn/Softmax_output_0", // attention pattern
  "/transformer/h.1/attn/Softmax_output_0",
  "transformer.wte.weight", // embedding (token 3 repeats)
  "transformer.wpe.weight",
  "transformer.h.1.ln_1.weight",
  "transformer.h.1.attn.c_attn.bias",
];
const IDS = [3, 7, 3, 11, 3, 42];
const D = TINY.n_embd;

/**
 * Elements of the embedding tables the prompt reads (elsewhere their gradient is exactly zero,
 * and a probe there compares 0 with 0): each used token row of wte and each position row of
 * wpe, at a few columns.
 */
const EMBEDDING_PROBES: Record<string, number[]> = {
  "transformer.wte.weight": [...new Set(IDS)].flatMap((tok) => [0, 5, 10, 15].map((col) => tok * D + col)),
  "transformer.wpe.weight": IDS.flatMap((_, pos) => [1, 8, 14].map((col) => pos * D + col)),
};

/** Every probe of the embedding tables landed on a used row and saw a non-zero gradient, analytic and numeric. */
function expectEmbeddingProbesNonZero(r: GradcheckReport): void {
  for (const [w, indices] of Object.entries(EMBEDDING_PROBES)) {
    const probes = r.probes[w] ?? [];
    expect(probes.map((p) => p.index)).toEqual(indices);
    for (const p of probes) {
      expect(Math.abs(p.analytic), `${w}[${p.index}] analytic`).toBeGreaterThan(1e-6);
      expect(Math.abs(p.numeric), `${w}[${p.index}] numeric`).toBeGreaterThan(1e-6);
    }
  }
}

async function run(model: ModelProto, feeds: Record<string, HostTensor>, fetches: string[]): Promise<Record<string, HostTensor>> {
  const s = await createSession(encodeModel(model));
  try {
    return await s.run(feeds, fetches);
  } finally {
    await s.release();
  }
}

function lnfSqrt(model: ModelProto): string {
  const g = OnnxGraph.fromModel(model);
  const sqrt = g.nodesInScope("/transformer/ln_f").find((n) => n.opType === "Sqrt");
  expect(sqrt).toBeDefined();
  return sqrt!.output[0]!;
}

describe("GPT-2 end to end", () => {
  for (const opset of [13, 17]) {
    it(`float32 graph, opset ${opset}: gradients of weights, embeddings and activations match finite differences (rel < 1e-3)`, async () => {
      const r = await gradcheck(gpt2WithLoss(opset), { loss: "loss", wrt: WRT }, gpt2Feeds(IDS), { samples: 10, seed: opset, indices: EMBEDDING_PROBES });
      console.log(`GPT-2 float32 opset ${opset}: max rel error ${r.maxRelError.toExponential(2)}`, r.perWrt);
      expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-3);
      expect(r.ok).toBe(true);
      // The numeric reference ran on the float64 copy (every op of the export has a double kernel).
      expect([r.promoted, r.referenceType], r.promotionError).toEqual([true, "float64"]);
      expect(Object.keys(r.perWrt).sort()).toEqual([...WRT].sort());
      expectEmbeddingProbesNonZero(r);
    });
  }

  it("the same model promoted to float64: rel < 1e-6", async () => {
    const feeds = Object.fromEntries(Object.entries(gpt2Feeds(IDS)).map(([k, v]) => [k, promoteFeed(v)]));
    const r = await gradcheck(promoteToDouble(gpt2WithLoss(13)), { loss: "loss", wrt: WRT }, feeds, { samples: 10, indices: EMBEDDING_PROBES });
    console.log(`GPT-2 float64: max rel error ${r.maxRelError.toExponential(2)}`);
    expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
    expect(r.referenceType).toBe("float64");
    expectEmbeddingProbesNonZero(r);
  });

  it("gradient shapes match the values and the zero-gradient rows of unused tokens are zero", async () => {
    const model = gpt2WithLoss(13);
    const { grads } = addGradients(OnnxGraph.fromModel(model), { loss: "loss", wrt: ["transformer.wte.weight", "/transformer/h.0/attn/Softmax_output_0"] });
    const out = await run(model, gpt2Feeds(IDS), [...grads.values()]);
    const wte = out[grads.get("transformer.wte.weight")!]!;
    expect(wte.dims).toEqual([50, 16]);
    for (let tok = 0; tok < 50; tok++) {
      const row = Array.from(wte.data.slice(tok * 16, tok * 16 + 16) as Float32Array);
      expect(row.some((v) => v !== 0)).toBe(IDS.includes(tok));
    }
    const pattern = out[grads.get("/transformer/h.0/attn/Softmax_output_0")!]!;
    expect(pattern.dims).toEqual([1, 2, IDS.length, IDS.length]);
  });

  it("a stop-gradient at ln_f's Sqrt equals the gradient with that value fed as a constant", async () => {
    const feeds = gpt2Feeds(IDS);
    const wrt = ["transformer.h.1.mlp.c_proj.weight", "/transformer/h.1/mlp/act/Mul_3_output_0"];
    const stopAt = lnfSqrt(gpt2WithLoss(13));
    const stopped = gpt2WithLoss(13);
    const { grads } = addGradients(OnnxGraph.fromModel(stopped), { loss: "loss", wrt, stopGradient: [stopAt] });
    const got = await run(stopped, feeds, [...grads.values()]);

    const probe = gpt2WithLoss(13);
    exposeValue(OnnxGraph.fromModel(probe), stopAt);
    const scale = (await run(probe, feeds, [stopAt]))[stopAt]!;
    const cut = gpt2WithLoss(13);
    const cg = OnnxGraph.fromModel(cut);
    cg.removeNodes([cg.producer(stopAt)!]);
    cg.addInput(valueInfo(stopAt, "float32"));
    const refGrads = addGradients(cg, { loss: "loss", wrt }).grads;
    const want = await run(cut, { ...feeds, [stopAt]: scale }, [...refGrads.values()]);

    const free = gpt2WithLoss(13);
    const freeGrads = addGradients(OnnxGraph.fromModel(free), { loss: "loss", wrt }).grads;
    const unstopped = await run(free, feeds, [...freeGrads.values()]);
    for (const w of wrt) {
      const a = got[grads.get(w)!]!.data as Float32Array;
      const b = want[refGrads.get(w)!]!.data as Float32Array;
      const c = unstopped[freeGrads.get(w)!]!.data as Float32Array;
      const scaleOf = Math.max(...b.map(Math.abs));
      let diffRef = 0;
      let diffFree = 0;
      for (let i = 0; i < a.length; i++) {
        diffRef = Math.max(diffRef, Math.abs(a[i]! - b[i]!));
        diffFree = Math.max(diffFree, Math.abs(a[i]! - c[i]!));
      }
      expect(diffRef / scaleOf).toBeLessThan(1e-5);
      expect(diffFree / scaleOf).toBeGreaterThan(1e-3);
    }
  });
});
