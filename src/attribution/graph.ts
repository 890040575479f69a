/**
 * The attribution graph: the patched model plus a loss, its backward pass (our autodiff), and
 * the per-head value writes `v[k, h] W_O[h]`, so that one onnxruntime run returns every
 * activation and gradient the node table needs.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema, type ModelProto } from "onnx-buf";
import { addGradients } from "../autodiff/backward.js";
import { TdbError } from "../base/errors.js";
import type { HookName } from "../hooks/names.js";
import type { Model } from "../model/model.js";
import { OnnxGraph } from "../onnx/graph.js";
import { exposeValue, tensorValueInfo } from "../onnx/surgery.js";
import { tensorToProto } from "../onnx/tensor.js";
import { buildPatchedGraph, editableValue } from "../runtime/patched-graph.js";
import { findBlockScopes } from "../hooks/gpt2.js";

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
   * Per layer, the MLP neurons picked by in-graph top-k: flat indices (t * d_mlp + i) of the
   * top-k activation, write magnitude, direct effect and total effect and the bottom-k of the
   * two effects (int64 [6k], with repeats), and the four columns at those indices (float [4, 6k]).
   */
  neuronPicks: string[];
  neuronColumns: string[];
  /** Per layer, the sum over neurons of the total effects at each position: [1, pos]. */
  neuronTokenTotals: string[];
  /** Per layer, `||v[k, h] W_O[h]||`: [batch, head, key_pos]. */
  valueWriteNorm: string[];
  /** Per layer, `v[k, h] W_O[h] . g[q]` with g the gradient of the residual the loss reads: [batch, head, key_pos, query_pos]. */
  valueWriteDotGrad: string[];
}

/**
 * The model's own `mlp.c_proj` weight initializer of block `layer` when it is W_out as it is
 * ([d_mlp, d_model] float, a Conv1D Gemm without transB): reused, not copied (12 x 9 MB for GPT-2 small).
 */
function existingWOut(g: OnnxGraph, layer: number, model: Model): string | undefined {
  const scope = findBlockScopes(g).get(layer);
  const gemm = scope ? g.nodesInScope(`${scope}/mlp/c_proj`).find((n) => n.opType === "Gemm") : undefined;
  const name = gemm?.input[1];
  const t = name ? g.initializer(name) : undefined;
  const transB = gemm?.attribute.find((a) => a.name === "transB")?.i ?? 0n;
  const dims = t?.dims.map(Number);
  const ok = t && transB === 0n && t.dataType === 1 && dims?.length === 2 && dims[0] === model.config.dMlp && dims[1] === model.config.dModel;
  return ok ? name : undefined;
}

/** The value of the final LayerNorm's scale (its `Sqrt`), to hold constant. */
function finalLnScale(g: OnnxGraph, model: Model): string {
  const resid = editableValue(model.hookMap, `blocks.${model.config.nLayers - 1}.hook_resid_post`);
  const scope = g.nodes.find((n) => /\/ln_f\//.test(n.name))?.name.replace(/\/ln_f\/.*$/, "/ln_f");
  const sqrt = scope ? g.nodesInScope(scope).find((n) => n.opType === "Sqrt") : undefined;
  if (!sqrt?.output[0]) {
    throw new TdbError(
      "E_UNSUPPORTED_GRAPH",
      `cannot hold the final LayerNorm scale constant: no decomposed LayerNorm (Sqrt) under .../ln_f/ reading ${resid} (fused graph?); pass detachFinalLnScale: false`,
      { value: scope, allowed: ["detachFinalLnScale: false"] },
    );
  }
  return sqrt.output[0];
}

/** Builds the attribution graph of `model` for `loss`. */
export function buildAttributionGraph(model: Model, loss: AttributionLoss, detachFinalLnScale: boolean): AttributionGraph {
  const L = model.config.nLayers;
  const H = model.config.nHeads;
  const reads: HookName = loss.kind === "value" ? loss.reads : `blocks.${L - 1}.hook_resid_post`;
  const hooks: HookName[] = ["hook_embed", reads];
  // MLP activations stay inside the graph (their columns and top-k are computed there).
  for (let l = 0; l < L; l++) hooks.push(`blocks.${l}.attn.hook_pattern`, `blocks.${l}.attn.hook_v`);
  const patched = buildPatchedGraph(model.baseModel, model.hookMap, model.config, { hooks, selectLogits: true });
  const g = OnnxGraph.fromModel(patched.model);
  const out = (h: HookName) => patched.outputs.get(h)!;
  const value = (h: HookName) => editableValue(model.hookMap, h);
  const node = (opType: string, input: string[], base: string, attribute: ReturnType<typeof create<typeof AttributeProtoSchema>>[] = []) => {
    const output = g.uniqueName(`/tdb/attr/${base}_output_0`);
    g.addNode(create(NodeProtoSchema, { opType, input, output: [output], name: g.uniqueName(`/tdb/attr/${base}`), attribute }));
    return output;
  };

  // Loss.
  let lossValue: string;
  if (loss.kind === "logitDiff") {
    g.addInput(tensorValueInfo(LOSS_WEIGHTS_INPUT, "float32", [model.config.dVocab]));
    lossValue = node("ReduceSum", [node("Mul", ["logits", LOSS_WEIGHTS_INPUT], "LossMul")], "Loss", [
      create(AttributeProtoSchema, { name: "keepdims", type: AttributeProto_AttributeType.INT, i: 0n }),
    ]);
  } else {
    g.addInput(tensorValueInfo(LOSS_WEIGHTS_INPUT, "float32"));
    lossValue = node("ReduceSum", [node("Mul", [value(loss.hook), LOSS_WEIGHTS_INPUT], "LossMul")], "Loss", [
      create(AttributeProtoSchema, { name: "keepdims", type: AttributeProto_AttributeType.INT, i: 0n }),
    ]);
  }
  exposeValue(g, lossValue);

  // v[k, h] W_O[h] per layer: Transpose v [B,S,H,dh] -> [B,H,S,dh], MatMul with W_O [H,dh,d].
  const valueWrite: string[] = [];
  for (let l = 0; l < L; l++) {
    const { W_O } = model.weights.blocks[l]!;
    const wName = g.uniqueName(`/tdb/attr/layer${l}/W_O`);
    g.addInitializer(tensorToProto(wName, W_O.data, [H, model.config.dHead, model.config.dModel]));
    const vt = node("Transpose", [value(`blocks.${l}.attn.hook_v`)], `layer${l}/vT`, [
      create(AttributeProtoSchema, { name: "perm", type: AttributeProto_AttributeType.INTS, ints: [0n, 2n, 1n, 3n] }),
    ]);
    valueWrite.push(node("MatMul", [vt, wName], `layer${l}/vW_O`));
  }

  const wrt = [value("hook_embed"), value(reads)];
  for (let l = 0; l < L; l++) wrt.push(value(`blocks.${l}.mlp.hook_post`), value(`blocks.${l}.attn.hook_pattern`));
  const stop: string[] = [];
  if (detachFinalLnScale) stop.push(finalLnScale(g, model));
  if (loss.kind === "value") for (const h of loss.stop ?? []) stop.push(value(h));
  const { grads } = addGradients(g, { loss: lossValue, wrt, stopGradient: stop });
  const grad = (v: string) => grads.get(v)!;
  // Norms and dot products with the residual gradient of the value writes, computed in
  // onnxruntime (the writes themselves are n_layer x n_head x pos x d_model floats).
  const gT = node("Transpose", [grad(value(reads))], "gradResidT", [
    create(AttributeProtoSchema, { name: "perm", type: AttributeProto_AttributeType.INTS, ints: [0n, 2n, 1n] }),
  ]);
  const valueWriteNorm = valueWrite.map((vw, l) => {
    if (g.opsetVersion() >= 18) {
      const axes = g.uniqueName(`/tdb/attr/layer${l}/axes`);
      g.addInitializer(tensorToProto(axes, new BigInt64Array([-1n]), [1]));
      return exposeValue(g, node("ReduceL2", [vw, axes], `layer${l}/vwNorm`, [create(AttributeProtoSchema, { name: "keepdims", type: AttributeProto_AttributeType.INT, i: 0n })]));
    }
    return exposeValue(
      g,
      node("ReduceL2", [vw], `layer${l}/vwNorm`, [
        create(AttributeProtoSchema, { name: "axes", type: AttributeProto_AttributeType.INTS, ints: [-1n] }),
        create(AttributeProtoSchema, { name: "keepdims", type: AttributeProto_AttributeType.INT, i: 0n }),
      ]),
    );
  });
  const valueWriteDotGrad = valueWrite.map((vw, l) => exposeValue(g, node("MatMul", [vw, gT], `layer${l}/vwDotG`)));
  // The neuron columns and their top-k, in onnxruntime: 2.4M neurons for GPT-2 small at 64 tokens.
  // direct = a * (g[t] . W_out[i]) with Gemm(g [S, d], W_out [d_mlp, d], transB); write = |a| ||W_out[i]||.
  const int = (name: string, i: bigint) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i });
  const constI64 = (base: string, values: bigint[]) => {
    const n = g.uniqueName(`/tdb/attr/${base}`);
    g.addInitializer(tensorToProto(n, new BigInt64Array(values), [values.length]));
    return n;
  };
  g.addInput(tensorValueInfo(TOP_K_INPUT, "int64", [1]));
  g.addInput(tensorValueInfo(NEURON_DIRECT_MASK_INPUT, "float32", [L]));
  const rowsByD = constI64("rows_by_d", [-1n, BigInt(model.config.dModel)]);
  const flat = constI64("flat", [-1n]);
  const rowsByMlp = constI64("rows_by_d_mlp", [-1n, BigInt(model.config.dMlp)]);
  const g2 = node("Reshape", [grad(value(reads)), rowsByD], "gradResid2d");
  const neuronPicks: string[] = [];
  const neuronColumns: string[] = [];
  const neuronTokenTotals: string[] = [];
  const norms = model.weights.blocks.map((b) => {
    const d = model.config.dModel;
    return Float32Array.from({ length: model.config.dMlp }, (_, i) => Math.hypot(...b.W_out.data.subarray(i * d, (i + 1) * d)));
  });
  for (let l = 0; l < L; l++) {
    const p = `layer${l}/neurons`;
    const wName = existingWOut(g, l, model) ?? g.uniqueName(`/tdb/attr/layer${l}/W_out`);
    if (!g.initializer(wName)) g.addInitializer(tensorToProto(wName, model.weights.blocks[l]!.W_out.data, [model.config.dMlp, model.config.dModel]));
    const nName = g.uniqueName(`/tdb/attr/layer${l}/W_out_norm`);
    g.addInitializer(tensorToProto(nName, norms[l]!, [model.config.dMlp]));
    const post = value(`blocks.${l}.mlp.hook_post`);
    const gW = node("Gemm", [g2, wName], `${p}/gW_out`, [int("transB", 1n)]);
    const a = node("Reshape", [post, flat], `${p}/a`);
    const total3 = node("Mul", [post, grad(post)], `${p}/total3`);
    neuronTokenTotals.push(exposeValue(g, node("ReduceSum", [total3, constI64(`${p}/last_axis`, [-1n])], `${p}/tokenTotal`, [int("keepdims", 0n)])));
    const columns = [
      a,
      node("Reshape", [node("Mul", [node("Abs", [post], `${p}/abs`), nName], `${p}/write3`), flat], `${p}/write`),
      node(
        "Reshape",
        [node("Mul", [node("Mul", [node("Reshape", [post, rowsByMlp], `${p}/a2d`), gW], `${p}/direct2d`), node("Gather", [NEURON_DIRECT_MASK_INPUT, constI64(`${p}/layer`, [BigInt(l)])], `${p}/directMask`)], `${p}/directMasked`), flat],
        `${p}/direct`,
      ),
      node("Reshape", [total3, flat], `${p}/total`),
    ];
    const picks = [
      ...columns.map((c, i) => ({ c, largest: 1n, i })),
      { c: columns[2]!, largest: 0n, i: 4 },
      { c: columns[3]!, largest: 0n, i: 5 },
    ].map(({ c, largest, i }) => {
      const vals = g.uniqueName(`/tdb/attr/${p}/top${i}_values`);
      const idx = g.uniqueName(`/tdb/attr/${p}/top${i}_indices`);
      g.addNode(create(NodeProtoSchema, { opType: "TopK", name: g.uniqueName(`/tdb/attr/${p}/TopK${i}`), input: [c, TOP_K_INPUT], output: [vals, idx], attribute: [int("largest", largest), int("sorted", 0n)] }));
      return idx;
    });
    const idx = node("Concat", picks, `${p}/picks`, [int("axis", 0n)]);
    neuronPicks.push(exposeValue(g, idx));
    const unsq = constI64(`${p}/axis0`, [0n]);
    const gathered = columns.map((c, i) => node("Unsqueeze", [node("Gather", [c, idx], `${p}/gather${i}`), unsq], `${p}/row${i}`));
    neuronColumns.push(exposeValue(g, node("Concat", gathered, `${p}/columns`, [int("axis", 0n)])));
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
    neuronPicks,
    neuronColumns,
    neuronTokenTotals,
    valueWriteNorm,
    valueWriteDotGrad,
  };
}
