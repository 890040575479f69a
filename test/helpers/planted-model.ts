/**
 * A generated GPT-2 with planted token-detector neurons, and a brute-force record harvest.
 *
 * Planting (layer 0, TINY_GPT2-sized): planted neuron i owns a residual dimension k_i = i. The
 * embedding of its token t_i carries a large value A on k_i; every other token, every position
 * embedding and layer 0's attention output are zero on k_i (column k_i of `attn.c_proj` and its
 * bias are zeroed). So after attention the residual's k_i component is A exactly when the current
 * token is t_i, else 0. ln_2 passes k_i with gain 1 and bias 0, and the neuron reads only k_i:
 * its `c_fc` column is zero except W on row k_i, bias -B. LayerNorm divides by the residual's
 * std, which stays of order sqrt(A^2 / d_model + noise), so the pre-activation is W * (A - mean) / std - B
 * (about +6) on t_i and about -B (-1) elsewhere: gelu gives a clear detector that does not rely
 * on the exact LayerNorm scale.
 *
 * The harvest traces every sequence of a corpus of token rows and keeps, per neuron, the top-k
 * sequences by peak activation and k seeded-random sequences, in the `NodeRecords` shape.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Rng } from "../../src/base/random.js";
import { QUANTILE_LEVELS, type ActivationRecord, type NodeRecords, type NeuronNode } from "../../src/explainer/types.js";
import type { HookName } from "../../src/hooks/names.js";
import { Model } from "../../src/model/model.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";
import { makeTestModel, type TestModel } from "./models.js";

/** One planted neuron: `blocks.<layer>.mlp.hook_post[..., index]` fires on token `tokenId`. */
export interface PlantedNeuron {
  node: NeuronNode;
  tokenId: number;
  /** The token as the tokenizer decodes it. */
  token: string;
  /** The residual dimension it reads. */
  dim: number;
}

/** A loaded model with planted neurons. */
export interface PlantedModel {
  tm: TestModel;
  model: Model;
  planted: PlantedNeuron[];
  cleanup(): Promise<void>;
}

/** Value of the planted embedding component. */
export const PLANT_A = 3;
/** Bias of a planted neuron (negative: silent unless its token is present). */
export const PLANT_B = 1;

/**
 * Writes a TINY_GPT2 with `count` planted token detectors in layer 0: neuron `5 + 11 i` fires on
 * token `256 + 7 i` (a GPT-2 merge, printable), reading residual dimension i.
 */
export async function makePlantedModel(count = 10, seed = 3): Promise<PlantedModel> {
  const tm = await makeTestModel({ config: TINY_GPT2, seed });
  const c = tm.arch;
  const d = c.n_embd;
  const w: Gpt2Weights = new Map([...tm.weights].map(([k, v]) => [k, { data: v.data.slice(), dims: [...v.dims] }]));
  const get = (name: string) => w.get(name)!.data;
  const planted: Omit<PlantedNeuron, "token">[] = Array.from({ length: count }, (_, i) => ({
    node: { kind: "mlp_neuron", layer: 0, index: 5 + 11 * i },
    tokenId: 256 + 7 * i,
    dim: i,
  }));
  const wte = get("transformer.wte.weight");
  const wpe = get("transformer.wpe.weight");
  const proj = get("transformer.h.0.attn.c_proj.weight");
  const projB = get("transformer.h.0.attn.c_proj.bias");
  const lnW = get("transformer.h.0.ln_2.weight");
  const lnB = get("transformer.h.0.ln_2.bias");
  const fc = get("transformer.h.0.mlp.c_fc.weight");
  const fcB = get("transformer.h.0.mlp.c_fc.bias");
  const inner = c.n_inner;
  for (const p of planted) {
    const k = p.dim;
    for (let v = 0; v < c.vocab_size; v++) wte[v * d + k] = v === p.tokenId ? PLANT_A : 0;
    for (let pos = 0; pos < c.n_positions; pos++) wpe[pos * d + k] = 0;
    for (let r = 0; r < d; r++) proj[r * d + k] = 0;
    projB[k] = 0;
    lnW[k] = 1;
    lnB[k] = 0;
    for (let r = 0; r < d; r++) fc[r * inner + p.node.index] = r === k ? 1 : 0;
    fcB[p.node.index] = -PLANT_B;
  }
  await writeFile(join(tm.dir, "onnx", "model.onnx"), encodeModel(buildGpt2Graph(c, w)));
  const model = await Model.load(tm.dir);
  return {
    tm: { ...tm, weights: w },
    model,
    planted: planted.map((p) => ({ ...p, token: model.tokenizer.decode([p.tokenId]) })),
    cleanup: async () => {
      await model.dispose();
      await tm.cleanup();
    },
  };
}

/** `count` seeded random token rows of `length` ids in [0, vocab). */
export function randomTokenRows(count: number, length: number, vocab: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Array.from({ length }, () => rng.int(vocab)));
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * The rows a brute-force record set keeps: the `topK` rows with the largest peak (ties by row
 * order) and `randomK` rows drawn without replacement by a seeded partial Fisher-Yates shuffle.
 */
export function pickRows(peaks: readonly number[], topK: number, randomK: number, seed: number): { top: number[]; random: number[] } {
  const order = peaks.map((_, r) => r).sort((a, b) => peaks[b]! - peaks[a]! || a - b);
  const rng = new Rng(seed);
  const pool = peaks.map((_, r) => r);
  const random: number[] = [];
  for (let i = 0; i < Math.min(randomK, pool.length); i++) {
    const j = i + rng.int(pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    random.push(pool[i]!);
  }
  return { top: order.slice(0, topK), random };
}

/**
 * Brute-force records: traces every row of `rows` (excerpts are whole rows) and keeps, for each
 * MLP neuron of `nodes`, the `topK` rows with the largest peak activation (descending, ties by
 * row order) and `randomK` rows drawn without replacement with a seeded RNG.
 */
export async function bruteForceRecords(
  model: Model,
  nodes: readonly NeuronNode[],
  rows: readonly number[][],
  opts: { topK?: number; randomK?: number; seed?: number; batch?: number } = {},
): Promise<NodeRecords[]> {
  const topK = opts.topK ?? 20;
  const randomK = opts.randomK ?? 20;
  const batch = opts.batch ?? 64;
  const layers = [...new Set(nodes.map((n) => n.layer))];
  // acts[node][row][pos]
  const acts: number[][][] = nodes.map(() => []);
  for (let start = 0; start < rows.length; start += batch) {
    const part = rows.slice(start, start + batch);
    const t = await model.trace(part, { hooks: layers.map((l) => `blocks.${l}.mlp.hook_post` as HookName), prependBos: false });
    nodes.forEach((n, ni) => {
      const a = t.cache.get(`blocks.${n.layer}.mlp.hook_post`);
      part.forEach((row, b) => acts[ni]!.push(row.map((_, p) => a.at(b, p, n.index))));
    });
  }
  const strs = new Map<number, string>();
  const str = (id: number) => {
    let s = strs.get(id);
    if (s === undefined) strs.set(id, (s = model.tokenizer.decode([id])));
    return s;
  };
  const record = (ni: number, r: number): ActivationRecord => ({
    tokens: rows[r]!.map(str),
    ids: [...rows[r]!],
    activations: acts[ni]![r]!,
    source: { doc: `row${r}`, offset: 0 },
  });
  return nodes.map((node, ni) => {
    const picked = pickRows(acts[ni]!.map((row) => Math.max(...row)), topK, randomK, opts.seed ?? 11);
    const flat = acts[ni]!.flat();
    const sorted = [...flat].sort((a, b) => a - b);
    return {
      node,
      top: picked.top.map((r) => record(ni, r)),
      random: picked.random.map((r) => record(ni, r)),
      stats: {
        count: flat.length,
        max: sorted[sorted.length - 1] ?? 0,
        mean: flat.reduce((a, b) => a + b, 0) / Math.max(1, flat.length),
        density: flat.filter((a) => a > 0).length / Math.max(1, flat.length),
        quantiles: QUANTILE_LEVELS.map((q) => quantile(sorted, q)),
      },
    };
  });
}
