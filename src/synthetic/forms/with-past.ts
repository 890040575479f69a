/**
 * The decoder-with-past form of a generated GPT-2 graph (`decoder_with_past_model.onnx`): the
 * merged decoder's cache branch as a plain graph, with no `If` and no `use_cache_branch`. Its
 * inputs are `input_ids`, `attention_mask` `[batch, past + seq]` and, per layer,
 * `past_key_values.N.key` / `.value` `[batch, n_head, past, d_head]`; the keys and values of the
 * new tokens are concatenated to them. With `layout: "past_N"`, the older form of onnxruntime's
 * GPT-2 test models: one input `past_N` `[2, batch, n_head, past, d_head]` per layer (key, value)
 * and one output `present_N` of the same layout.
 *
 * @module
 */
import { TensorProto_DataType, type ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { cloneStructure } from "../../onnx/clone.js";
import { GraphEmitter } from "../../onnx/emit.js";
import { OnnxGraph } from "../../onnx/graph.js";
import { inlineIfBranch, pruneDeadNodes, removeUnusedInputs, tensorValueInfo } from "../../onnx/surgery.js";

/** How the past keys and values are fed (see the module comment). */
export type PastLayout = "past_key_values" | "past_N";

/**
 * The with-past graph from a `merged` generated model (see the module comment).
 *
 * @example
 * ```ts
 * const merged = buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0), { variant: "merged" });
 * const m = withPastGraph(merged, { layout: "past_N" });
 * ```
 */
export function withPastGraph(merged: ModelProto, opts: { layout?: PastLayout } = {}): ModelProto {
  const g = OnnxGraph.fromModel(cloneStructure(merged));
  const ifNode = g.nodes.find((n) => n.opType === "If" && n.input[0] === "use_cache_branch");
  if (!ifNode) throw new TdbError("E_BAD_INPUT", "withPastGraph takes the merged variant (an If on use_cache_branch)", { value: "no If", allowed: ["merged"] });
  inlineIfBranch(g, ifNode, "then");
  removeUnusedInputs(g);
  pruneDeadNodes(g);
  if ((opts.layout ?? "past_key_values") === "past_key_values") return g.model;

  // past_N: [2, batch, heads, past, d_head] in; key and value are its two slices.
  const pastNames = g.inputNames().filter((n) => /^past_key_values\.\d+\.key$/.test(n));
  const e = new GraphEmitter(g, "/past");
  for (const keyName of pastNames) {
    const l = Number(/\.(\d+)\./.exec(keyName)![1]);
    const info = g.graph.input.find((v) => v.name === keyName)!;
    const t = info.type?.value.case === "tensorType" ? info.type.value.value : undefined;
    const dims = (t?.shape?.dim ?? []).map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : "?"));
    const elem = t?.elemType === TensorProto_DataType.FLOAT16 ? "float16" : "float32";
    const past = `past_${l}`;
    const at = g.graph.input.findIndex((v) => v.name === keyName);
    g.graph.input.splice(at, 0, tensorValueInfo(past, elem, [2, ...dims]));
    e.placement = { before: g.nodes[0]! };
    for (const [i, kv] of ["key", "value"].entries()) {
      const slice = e.op("Gather", [past, e.ints([i], [])], { axis: 0 }, `past_${l}_${kv}`);
      for (const n of g.consumers(`past_key_values.${l}.${kv}`)) n.input = n.input.map((v) => (v === `past_key_values.${l}.${kv}` ? slice : v));
    }
    g.invalidate();
    // present_N = stack(present.N.key, present.N.value)
    const outs = g.graph.output;
    const k = outs.findIndex((o) => o.name === `present.${l}.key`);
    if (k >= 0) {
      e.placement = {};
      const stacked = ["key", "value"].map((kv) => e.op("Unsqueeze", [`present.${l}.${kv}`, e.ints([0])], {}, `present_${l}_${kv}`));
      e.node("Concat", stacked, { axis: 0 }, [`present_${l}`], `present_${l}`);
      const pdims = outs[k]!.type?.value.case === "tensorType" ? (outs[k]!.type.value.value.shape?.dim ?? []).map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : String(d.value.value ?? "?"))) : [];
      g.graph.output = outs.filter((o) => o.name !== `present.${l}.key` && o.name !== `present.${l}.value`);
      g.graph.output.splice(k, 0, tensorValueInfo(`present_${l}`, elem, [2, ...pdims]));
    }
  }
  removeUnusedInputs(g);
  g.invalidate();
  return g.model;
}
