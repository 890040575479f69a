/**
 * A GPT-2 whose weights are set by hand so that it holds a known induction circuit, for head
 * detector and `tdb check` tests:
 *
 * - residual stream of 128 dims in blocks of 32: positions (one-hot, dims 0..31), tokens
 *   (one-hot for token ids 0..31, dims 32..63), "previous token" (dims 64..95), spare;
 * - head 0.0 is a previous-token head: its query at position i reads position i-1's one-hot, its
 *   key at j reads position j's, so it attends (almost) only to j = i - 1 (position 0 to itself);
 *   it copies that token's one-hot into the previous-token dims;
 * - head 1.0 is an induction head: its query reads the current token, its key the previous-token
 *   dims, so it attends to the position right after an earlier copy of the current token; it
 *   copies that position's token into the token dims, so the model predicts it;
 * - every other head has W_O = 0 (it writes nothing), the MLPs are zero, biases are zero and the
 *   LayerNorm gains are 1; token ids >= 32 (BOS included) embed to zero.
 *
 * The float64 reference (`test/reference/gpt2-forward.ts`) runs the same weights.
 */
import { writeFile } from "node:fs/promises";
import { encodeModel } from "../../src/onnx/proto.js";
import { gpt2Config, type Gpt2Config } from "../../src/synthetic/config.js";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";

/** 2 layers x 4 heads, d_model 128 (d_head 32), 32 positions, the truncated 512-token vocabulary. */
export const INDUCTION_CONFIG: Gpt2Config = gpt2Config({ n_layer: 2, n_head: 4, n_embd: 128, n_positions: 32, vocab_size: 512 });

/** Token ids 0..ALPHABET-1 have one-hot embeddings. */
export const ALPHABET = 32;

const POS = 0;
const TOK = 32;
const PREV = 64;
/** Query scale of head 0.0 (previous-token) and head 1.0 (induction): large, so their softmax is nearly one-hot. */
const Q_SCALE = 6;

function setAttn(w: Gpt2Weights, layer: number, head: number, q: (dst: number) => number | undefined, k: (dst: number) => number | undefined, v: (dst: number) => number, qScale: number): void {
  const d = INDUCTION_CONFIG.n_embd;
  const dh = d / INDUCTION_CONFIG.n_head;
  const W = w.get(`transformer.h.${layer}.attn.c_attn.weight`)!.data; // [d, 3d], columns q | k | v
  for (let r = 0; r < d; r++) for (let c = head * dh; c < (head + 1) * dh; c++) for (const part of [0, 1, 2]) W[r * 3 * d + part * d + c] = 0;
  for (let a = 0; a < dh; a++) {
    const col = head * dh + a;
    const qi = q(a);
    const ki = k(a);
    if (qi !== undefined) W[qi * 3 * d + col] = qScale;
    if (ki !== undefined) W[ki * 3 * d + d + col] = 1;
    W[v(a) * 3 * d + 2 * d + col] = 1;
  }
}

/** The hand-set weights (a copy of `base` with the circuit written in). */
export function inductionWeights(base: Gpt2Weights): Gpt2Weights {
  const c = INDUCTION_CONFIG;
  const d = c.n_embd;
  const dh = d / c.n_head;
  const w: Gpt2Weights = new Map([...base].map(([k, t]) => [k, { data: t.data.slice(), dims: [...t.dims] }]));
  const zero = (name: string) => w.get(name)!.data.fill(0);
  const one = (name: string) => w.get(name)!.data.fill(1);
  zero("transformer.wte.weight");
  zero("transformer.wpe.weight");
  const wte = w.get("transformer.wte.weight")!.data;
  const wpe = w.get("transformer.wpe.weight")!.data;
  for (let t = 0; t < ALPHABET; t++) wte[t * d + TOK + t] = 1;
  for (let p = 0; p < c.n_positions; p++) wpe[p * d + POS + p] = 1;
  for (let l = 0; l < c.n_layer; l++) {
    const p = `transformer.h.${l}`;
    for (const n of ["ln_1", "ln_2"]) {
      one(`${p}.${n}.weight`);
      zero(`${p}.${n}.bias`);
    }
    for (const n of ["attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]) zero(`${p}.${n}`);
  }
  one("transformer.ln_f.weight");
  zero("transformer.ln_f.bias");
  // Head 0.0: query = one-hot of position i-1 (reads position dim a+1 into head dim a), key = one-hot of position j.
  setAttn(w, 0, 0, (a) => (a + 1 < dh ? POS + a + 1 : undefined), (a) => POS + a, (a) => TOK + a, Q_SCALE);
  // Head 1.0: query = current token, key = previous token.
  setAttn(w, 1, 0, (a) => TOK + a, (a) => PREV + a, (a) => TOK + a, Q_SCALE);
  // W_O: head 0.0 writes its value (a token one-hot, about 6x after ln_1) into the previous-token
  // dims at about unit size; head 1.0 copies its value into the token dims.
  const o0 = w.get("transformer.h.0.attn.c_proj.weight")!.data; // [d (in: heads), d (out)]
  const o1 = w.get("transformer.h.1.attn.c_proj.weight")!.data;
  for (let a = 0; a < dh; a++) {
    o0[a * d + PREV + a] = 1 / 6;
    o1[a * d + TOK + a] = 1;
  }
  return w;
}

/** Writes the model: a generated test model directory whose ONNX graph is rebuilt from {@link inductionWeights}. */
export async function makeInductionModel(): Promise<TestModel> {
  const tm = await makeTestModel({ config: INDUCTION_CONFIG, seed: 5 });
  const weights = inductionWeights(tm.weights);
  await writeFile(tm.model, encodeModel(buildGpt2Graph(INDUCTION_CONFIG, weights)));
  return { ...tm, weights };
}

/** `[BOS, half..., half...]` with `half` = `n` distinct alphabet tokens, a different order per row. */
export function repeatedDistinctRows(rows: number, n: number, bos: number): number[][] {
  return Array.from({ length: rows }, (_, r) => {
    const half = Array.from({ length: n }, (_, i) => (i * 7 + r * 3) % ALPHABET);
    return [bos, ...half, ...half];
  });
}
