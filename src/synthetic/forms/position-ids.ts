/**
 * The `position_ids` form of a generated GPT-2 graph, as newer optimum exports write it: the
 * position embedding reads an int64 `[batch_size, sequence_length]` input `position_ids`
 * instead of positions computed in the graph.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { cloneStructure } from "../../onnx/clone.js";
import { OnnxGraph } from "../../onnx/graph.js";
import { pruneDeadNodes, tensorValueInfo } from "../../onnx/surgery.js";

/**
 * `model` (decoder or with-past form) with a `position_ids` input feeding the `wpe` Gather; the
 * nodes that computed the positions are removed.
 *
 * @example
 * ```ts
 * const m = positionIdsInput(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)));
 * ```
 */
export function positionIdsInput(model: ModelProto): ModelProto {
  const g = OnnxGraph.fromModel(cloneStructure(model));
  const gather = g.nodes.find((n) => n.opType === "Gather" && n.input[0] === "transformer.wpe.weight");
  if (!gather) throw new TdbError("E_BAD_INPUT", "no Gather reads transformer.wpe.weight (a graph with If?)", { value: "transformer.wpe.weight", allowed: ["decoder", "with-past"] });
  const mask = g.graph.input.findIndex((v) => v.name === "attention_mask");
  g.graph.input.splice(mask + 1, 0, tensorValueInfo("position_ids", "int64", ["batch_size", "sequence_length"]));
  gather.input[1] = "position_ids";
  g.invalidate();
  pruneDeadNodes(g);
  return g.model;
}
