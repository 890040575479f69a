/**
 * The feature-extraction form of a generated GPT-2 graph (Hugging Face `GPT2Model`, optimum's
 * `feature-extraction` task): no unembedding; the final LayerNorm's output is the graph output
 * `last_hidden_state` `[batch_size, sequence_length, n_embd]`, beside the `present.*` outputs.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { cloneStructure } from "../../onnx/clone.js";
import { OnnxGraph } from "../../onnx/graph.js";
import { pruneDeadNodes, removeUnusedInitializers, tensorValueInfo } from "../../onnx/surgery.js";

/** Name of the output that replaces `logits`. */
export const LAST_HIDDEN_STATE = "last_hidden_state";

/**
 * `model` (decoder or with-past form) without the unembedding: `logits` is replaced by
 * {@link LAST_HIDDEN_STATE}, the hidden states the unembedding read.
 *
 * @example
 * ```ts
 * const m = withoutLogits(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)));
 * ```
 */
export function withoutLogits(model: ModelProto): ModelProto {
  const g = OnnxGraph.fromModel(cloneStructure(model));
  let head = g.producer("logits");
  if (head?.opType === "Add") head = head.input.map((i) => g.producer(i)).find((p) => p?.opType === "MatMul");
  if (head?.opType !== "MatMul") throw new TdbError("E_BAD_INPUT", "withoutLogits needs logits made by a MatMul (a graph without If)", { value: head?.opType ?? "none", allowed: ["MatMul"] });
  const hidden = head.input[0]!;
  const hp = g.producer(hidden)!;
  hp.output = hp.output.map((o) => (o === hidden ? LAST_HIDDEN_STATE : o));
  for (const n of g.consumers(hidden)) n.input = n.input.map((i) => (i === hidden ? LAST_HIDDEN_STATE : i));
  const at = g.graph.output.findIndex((o) => o.name === "logits");
  const info = g.graph.output[at]!;
  const dims = info.type?.value.case === "tensorType" ? (info.type.value.value.shape?.dim ?? []).map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : String(d.value.value ?? "?"))) : [];
  const elem = info.type?.value.case === "tensorType" && info.type.value.value.elemType === 10 ? "float16" : "float32";
  const width = Number(g.initializer(head.input[1]!)?.dims[0] ?? 0);
  g.graph.output[at] = tensorValueInfo(LAST_HIDDEN_STATE, elem, [...dims.slice(0, -1), width]);
  g.invalidate();
  pruneDeadNodes(g);
  removeUnusedInitializers(g);
  return g.model;
}
