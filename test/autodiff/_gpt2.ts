/**
 * A tiny generated GPT-2 (the real export's structure, opset 13) with a loss appended:
 * loss = sum(logits * loss_weights), loss_weights a fed [batch, seq, vocab] float32 input.
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, type ModelProto } from "onnx-buf";
import { gpt2Config } from "../../src/synthetic/config.js";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import { randomGpt2Weights } from "../../src/synthetic/weights.js";
import { makeAttribute, valueInfo } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { randn } from "./_helpers.js";

export const TINY = gpt2Config({ n_layer: 2, n_head: 2, n_embd: 16, n_positions: 16, vocab_size: 50 });

export function gpt2WithLoss(opset = 13): ModelProto {
  const weights = randomGpt2Weights(TINY, 3, { std: 0.1, lnNoise: 0.2, biasStd: 0.05 });
  const model = buildGpt2Graph(TINY, weights, { opset });
  const g = OnnxGraph.fromModel(model);
  g.addInput(valueInfo("loss_weights", "float32", ["batch_size", "sequence_length", TINY.vocab_size]));
  g.addNode(create(NodeProtoSchema, { name: "/loss/Mul", opType: "Mul", input: ["logits", "loss_weights"], output: ["/loss/Mul_output_0"] }));
  g.addNode(
    create(NodeProtoSchema, {
      name: "/loss/ReduceSum",
      opType: "ReduceSum",
      input: ["/loss/Mul_output_0"],
      output: ["loss"],
      attribute: [makeAttribute("keepdims", 0)],
    }),
  );
  g.addOutput(valueInfo("loss", "float32", []));
  return model;
}

export function gpt2Feeds(ids: number[]): Record<string, HostTensor> {
  const s = ids.length;
  return {
    input_ids: { type: "int64", data: BigInt64Array.from(ids.map(BigInt)), dims: [1, s] },
    attention_mask: { type: "int64", data: new BigInt64Array(s).fill(1n), dims: [1, s] },
    loss_weights: { type: "float32", data: randn(s * TINY.vocab_size, 5, "float32"), dims: [1, s, TINY.vocab_size] },
  };
}
