/**
 * The attribution graph: the patched model plus a loss, its backward pass (our autodiff), and
 * the per-head value writes `v[k, h] W_O[h]`, so that one onnxruntime run returns every
 * activation and gradient the node table needs.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { addGradients } from "../autodiff/backward.js";
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { AttrInput } from "../onnx/builder.js";
import { GraphEmitter } from "../onnx/emit.js";
import { OnnxGraph } from "../onnx/graph.js";
import { exposeValue, tensorValueInfo } from "../onnx/surgery.js";
import { tensorToProto } from "../onnx/tensor.js";
import { buildPatchedGraph, editableValue } from "../runtime/patched-graph.js";

/** Graph input: how many nodes per column the in-graph top-k keeps (int64 [1]). */
export const TOP_K_INPUT = "tdb_top_k";

/**
 * Graph input: per layer, 1 where that layer's neurons write directly into the residual the
 * loss reads and 0 where they come after it (upstream traces): float [n_layer].
 */
export const NEURON_DIRECT_MASK_INPUT = "tdb_neuron_direct_mask";

/** Graph input of the loss weights: [d_vocab] for the logit difference, or the shape of the value for an upstream trace. */
export const LOSS_WEIGHTS_INPUT = "tdb_loss_weights";

/** What the backward pass differentiates. */
export type AttributionLoss =
  /** `logits[last] . w` with `w` fed in {@link LOSS_WEIGHTS_INPUT} (mean target - mean distractor). */
  | { kind: "logitDiff" }
  /** `sum(value * W)` of one hook's tensor, `W` fed (one-hot: one node's pre-activation); gradients do not flow through `stop`. */
  | { kind: "value"; hook: HookName; stop?: readonly HookName[]; reads: HookName };

/** Output names of a built attribution graph. */
export interface AttributionGraph {
  model: ModelProto;
  loss: string;
  embed: string;
  gradEmbed: string;
  /** The residual stream the loss reads (the final one for the logit difference) and its gradient. */
  resid: string;
  gradResid: string;
  pattern: string[];
  gradPattern: string[];
  /**
   * The layers that have an MLP (all, except attention-only blocks); the neuron outputs below
   * are indexed like this list.
   */
  mlpLayers: number[];
  /**
   * Per MLP layer, the MLP neurons picked by in-graph top-k: flat indices (t * d_mlp + i) of the
   * top-k activation, write magnitude, direct effect and total effect and the bottom-k of the
   * two effects (int64 [6k], with repeats), and the four columns at those indices (float [4, 6k]).
   */
  neuronPicks: string[];
  neuronColumns: string[];
  /** Per MLP layer, the sum over neurons of the total effects at each position: [1, pos]. */
  neuronTokenTotals: string[];
  /** Per layer, `||v[k, h] W_O[h]||`: [batch, head, key_pos]. */
  valueWriteNorm: string[];
  /** Per layer, `v[k, h] W_O[h] . g[q]` with g the gradient of the residual the loss reads: [batch, head, key_pos, query_pos]. */
  valueWriteDotGrad: string[];
  /** The extra hooks asked for (`gradHooks` of {@link buildAttributionGraph}), in that order. */
  hooks: HookName[];
  /** Output names of those hooks' values (shaped as the hooks). */
  hookValues: string[];
  /** Output names of the loss's gradients w.r.t. those hooks (shaped as the hooks). */
  hookGrads: string[];
}

/** The value of the final LayerNorm's scale, to hold constant. */
function finalLnScale(g: OnnxGraph, model: ModelRuntime): string {
  const resid = editableValue(model.hookMap, `blocks.${model.config.nLayers - 1}.hook_resid_post`);
  const scale = model.adapter.finalNormScale(g, model.config);
  if (!scale) {
    throw new TdbError(
      "E_UNSUPPORTED_GRAPH",
      `cannot hold the final LayerNorm scale constant: the ${model.adapter.name} adapter finds no decomposed final LayerNorm reading ${resid} (fused graph?); pass detachFinalLnScale: false`,
      { value: resid, allowed: ["detachFinalLnScale: false"] },
    );
  }
  return scale;
}

/**
 * Builds the attribution graph of `model` for `loss`. `gradHooks` (e.g. the hooks SAEs read)
 * adds those hooks' values and the loss's gradients w.r.t. them (the total derivative through
 * everything downstream of the hook) to the outputs; without it the graph is the plain one.
 */
export function buildAttributionGraph(model: ModelRuntime, loss: AttributionLoss, detachFinalLnScale: boolean, gradHooks: readonly HookName[] = []): AttributionGraph {
  model.requireLogits(loss.kind === "logitDiff" ? "attribute" : "traceUpstream"); // E_NO_LOGITS for feature-extraction graphs
  const L = model.config.nLayers;
  const H = model.config.nHeads;
  const reads: HookName = loss.kind === "value" ? loss.reads : `blocks.${L - 1}.hook_resid_post`;
  const hooks: HookName[] = ["hook_embed", reads];
  for (const h of gradHooks) if (!hooks.includes(h)) hooks.push(h);
  // MLP activations stay inside the graph (their columns and top-k are computed there).
  for (let l = 0; l < L; l++) hooks.push(`blocks.${l}.attn.hook_pattern`, `blocks.${l}.attn.hook_v`);
  const patched = buildPatchedGraph(model.base, model.hookMap, model.config, { hooks, selectLogits: true });
  const g = OnnxGraph.fromModel(patched.model);
  const out = (h: HookName) => patched.outputs.get(h)!;
  const value = (h: HookName) => editableValue(model.hookMap, h);
  const e = new GraphEmitter(g, "/tdb/attr");
  const node = (opType: string, input: string[], base: string, attrs: Record<string, AttrInput> = {}) => e.op(opType, input, attrs, base);

  // Loss.
  g.addInput(loss.kind === "logitDiff" ? tensorValueInfo(LOSS_WEIGHTS_INPUT, "float32", [model.config.dVocab]) : tensorValueInfo(LOSS_WEIGHTS_INPUT, "float32"));
  const scored = loss.kind === "logitDiff" ? "logits" : value(loss.hook);
  const lossValue = node("ReduceSum", [node("Mul", [scored, LOSS_WEIGHTS_INPUT], "LossMul")], "Loss", { keepdims: 0 });
  exposeValue(g, lossValue);

  // v[k, h] W_O[h] per layer: Transpose v [B,S,H,dh] -> [B,H,S,dh], MatMul with W_O [H,dh,d].
  const valueWrite: string[] = [];
  for (let l = 0; l < L; l++) {
    const { W_O } = model.weights.blocks[l]!;
    const wName = g.uniqueName(`/tdb/attr/layer${l}/W_O`);
    g.addInitializer(tensorToProto(wName, W_O.data, [H, model.config.dHead, model.config.dModel]));
    const vt = node("Transpose", [value(`blocks.${l}.attn.hook_v`)], `layer${l}/vT`, { perm: [0, 2, 1, 3] });
    valueWrite.push(node("MatMul", [vt, wName], `layer${l}/vW_O`));
  }

  // Attention-only blocks have no neurons (their MLP hooks are unavailable).
  const mlpLayers = Array.from({ length: L }, (_, l) => l).filter((l) => model.hookMap.sources.has(`blocks.${l}.mlp.hook_post`));
  const wrt = [value("hook_embed"), value(reads)];
  for (const l of mlpLayers) wrt.push(value(`blocks.${l}.mlp.hook_post`));
  for (let l = 0; l < L; l++) wrt.push(value(`blocks.${l}.attn.hook_pattern`));
  for (const h of gradHooks) if (!wrt.includes(value(h))) wrt.push(value(h));
  const stop: string[] = [];
  if (detachFinalLnScale) stop.push(finalLnScale(g, model));
  if (loss.kind === "value") for (const h of loss.stop ?? []) stop.push(value(h));
  const { grads } = addGradients(g, { loss: lossValue, wrt, stopGradient: stop });
  const grad = (v: string) => grads.get(v)!;
  // Norms and dot products with the residual gradient of the value writes, computed in
  // onnxruntime (the writes themselves are n_layer x n_head x pos x d_model floats).
  const gT = node("Transpose", [grad(value(reads))], "gradResidT", { perm: [0, 2, 1] });
  const valueWriteNorm = valueWrite.map((vw, l) => exposeValue(g, e.reduce("ReduceL2", vw, [-1], false, {}, `layer${l}/vwNorm`)));
  const valueWriteDotGrad = valueWrite.map((vw, l) => exposeValue(g, node("MatMul", [vw, gT], `layer${l}/vwDotG`)));
  // The neuron columns and their top-k, in onnxruntime: 2.4M neurons for GPT-2 small at 64 tokens.
  // direct = a * (g[t] . W_out[i]) with Gemm(g [S, d], W_out [d_mlp, d], transB); write = |a| ||W_out[i]||.
  g.addInput(tensorValueInfo(TOP_K_INPUT, "int64", [1]));
  g.addInput(tensorValueInfo(NEURON_DIRECT_MASK_INPUT, "float32", [L]));
  const rowsByD = e.ints([-1, model.config.dModel]);
  const flat = e.ints([-1]);
  const rowsByMlp = e.ints([-1, model.config.dMlp]);
  const g2 = node("Reshape", [grad(value(reads)), rowsByD], "gradResid2d");
  const neuronPicks: string[] = [];
  const neuronColumns: string[] = [];
  const neuronTokenTotals: string[] = [];
  for (const l of mlpLayers) {
    const p = `layer${l}/neurons`;
    const dModel = model.config.dModel;
    const W_out = model.weights.blocks[l]!.W_out.data;
    const norm = Float32Array.from({ length: model.config.dMlp }, (_, i) => Math.hypot(...W_out.subarray(i * dModel, (i + 1) * dModel)));
    const wName = model.adapter.mlpOutWeight(g, l, model.config) ?? g.uniqueName(`/tdb/attr/layer${l}/W_out`);
    if (!g.initializer(wName)) g.addInitializer(tensorToProto(wName, model.weights.blocks[l]!.W_out.data, [model.config.dMlp, model.config.dModel]));
    const nName = g.uniqueName(`/tdb/attr/layer${l}/W_out_norm`);
    g.addInitializer(tensorToProto(nName, norm, [model.config.dMlp]));
    const post = value(`blocks.${l}.mlp.hook_post`);
    const gW = node("Gemm", [g2, wName], `${p}/gW_out`, { transB: 1 });
    const a = node("Reshape", [post, flat], `${p}/a`);
    const total3 = node("Mul", [post, grad(post)], `${p}/total3`);
    neuronTokenTotals.push(exposeValue(g, e.reduce("ReduceSum", total3, [-1], false, {}, `${p}/tokenTotal`)));
    const directMask = node("Gather", [NEURON_DIRECT_MASK_INPUT, e.ints([l])], `${p}/directMask`);
    const columns = [
      a,
      node("Reshape", [node("Mul", [node("Abs", [post], `${p}/abs`), nName], `${p}/write3`), flat], `${p}/write`),
      node("Reshape", [node("Mul", [node("Mul", [node("Reshape", [post, rowsByMlp], `${p}/a2d`), gW], `${p}/direct2d`), directMask], `${p}/directMasked`), flat], `${p}/direct`),
      node("Reshape", [total3, flat], `${p}/total`),
    ];
    const picks = [
      ...columns.map((c, i) => ({ c, largest: 1, i })),
      { c: columns[2]!, largest: 0, i: 4 },
      { c: columns[3]!, largest: 0, i: 5 },
    ].map(({ c, largest, i }) => e.node("TopK", [c, TOP_K_INPUT], { largest, sorted: 0 }, 2, `${p}/TopK${i}`)[1]!);
    const idx = node("Concat", picks, `${p}/picks`, { axis: 0 });
    neuronPicks.push(exposeValue(g, idx));
    const gathered = columns.map((c, i) => e.unsqueeze(node("Gather", [c, idx], `${p}/gather${i}`), [0], `${p}/row${i}`));
    neuronColumns.push(exposeValue(g, node("Concat", gathered, `${p}/columns`, { axis: 0 })));
  }
  return {
    model: g.model,
    loss: lossValue,
    embed: out("hook_embed"),
    gradEmbed: grad(value("hook_embed")),
    resid: out(reads),
    gradResid: grad(value(reads)),
    pattern: Array.from({ length: L }, (_, l) => out(`blocks.${l}.attn.hook_pattern`)),
    gradPattern: Array.from({ length: L }, (_, l) => grad(value(`blocks.${l}.attn.hook_pattern`))),
    mlpLayers,
    neuronPicks,
    neuronColumns,
    neuronTokenTotals,
    valueWriteNorm,
    valueWriteDotGrad,
    hooks: [...gradHooks],
    hookValues: gradHooks.map(out),
    hookGrads: gradHooks.map((h) => grad(value(h))),
  };
}
