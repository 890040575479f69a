/**
 * `model.weights` in TransformerLens layout, checked against the fixture's raw Hugging Face
 * parameters (Conv1D [in, out] layout) and against the traced activations.
 */
import { describe, expect, it } from "vitest";
import type { Model } from "../../src/model/model.js";
import { useTestModel, maxAbsDiff, FOUR_LAYER, type TestModel } from "../helpers/models.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: FOUR_LAYER }, (t, m) => {
  tm = t;
  model = m;
});

const raw = (name: string) => tm.weights.get(name)!.data;

describe("model.weights", () => {
  it("per-head attention weights are slices of c_attn / c_proj", () => {
    const d = FOUR_LAYER.n_embd;
    const H = FOUR_LAYER.n_head;
    const dh = d / H;
    for (let l = 0; l < FOUR_LAYER.n_layer; l++) {
      const w = model.weights.blocks[l]!;
      const cAttn = raw(`transformer.h.${l}.attn.c_attn.weight`);
      const cAttnB = raw(`transformer.h.${l}.attn.c_attn.bias`);
      const cProj = raw(`transformer.h.${l}.attn.c_proj.weight`);
      expect(w.W_Q.dims).toEqual([H, d, dh]);
      expect(w.W_O.dims).toEqual([H, dh, d]);
      for (const [which, t, b] of [[0, w.W_Q, w.b_Q], [1, w.W_K, w.b_K], [2, w.W_V, w.b_V]] as const) {
        for (let h = 0; h < H; h++) {
          for (let j = 0; j < dh; j++) {
            expect(b.data[h * dh + j]).toBe(cAttnB[which * d + h * dh + j]);
            for (let i = 0; i < d; i += 7) expect(t.data[(h * d + i) * dh + j]).toBe(cAttn[i * 3 * d + which * d + h * dh + j]);
          }
        }
      }
      for (let h = 0; h < H; h++) for (let j = 0; j < dh; j++) for (let k = 0; k < d; k += 5) expect(w.W_O.data[(h * dh + j) * d + k]).toBe(cProj[(h * dh + j) * d + k]);
      expect(Array.from(w.W_in.data)).toEqual(Array.from(raw(`transformer.h.${l}.mlp.c_fc.weight`)));
      expect(Array.from(w.W_out.data)).toEqual(Array.from(raw(`transformer.h.${l}.mlp.c_proj.weight`)));
      expect(Array.from(w.b_O.data)).toEqual(Array.from(raw(`transformer.h.${l}.attn.c_proj.bias`)));
    }
  });

  it("embeddings, unembedding (= W_E transposed for GPT-2) and final LayerNorm", () => {
    const { W_E, W_pos, W_U, lnf_w } = model.weights;
    const V = FOUR_LAYER.vocab_size;
    const d = FOUR_LAYER.n_embd;
    expect(Array.from(W_E.data)).toEqual(Array.from(raw("transformer.wte.weight")));
    expect(Array.from(W_pos.data)).toEqual(Array.from(raw("transformer.wpe.weight")));
    expect(W_U.dims).toEqual([d, V]);
    for (let v = 0; v < V; v += 13) for (let i = 0; i < d; i++) expect(W_U.data[i * V + v]).toBe(W_E.data[v * d + i]);
    expect(Array.from(lnf_w.data)).toEqual(Array.from(raw("transformer.ln_f.weight")));
  });

  it("attn_out = sum over heads of z[h] @ W_O[h] + b_O on a traced prompt", async () => {
    const t = await model.trace([[1, 5, 9, 200, 3]], { hooks: ["blocks.2.attn.hook_z", "blocks.2.hook_attn_out"] });
    const z = t.cache.get("z", 2);
    const out = t.cache.get("attn_out", 2);
    const { W_O, b_O } = model.weights.blocks[2]!;
    const [, S, H, dh] = z.dims as [number, number, number, number];
    const d = FOUR_LAYER.n_embd;
    const mine = new Float64Array(S * d);
    for (let s = 0; s < S; s++) {
      for (let k = 0; k < d; k++) {
        let acc = b_O.data[k]!;
        for (let h = 0; h < H; h++) for (let j = 0; j < dh; j++) acc += z.at(0, s, h, j) * W_O.data[(h * dh + j) * d + k]!;
        mine[s * d + k] = acc;
      }
    }
    expect(maxAbsDiff(out.data, mine)).toBeLessThan(1e-4);
    expect(out.nd().shape).toEqual([1, S, d]);
    expect(out.nd().get(0, 2, 3)).toBe(out.at(0, 2, 3));
  });
});
