/**
 * Simulates an onnxruntime-transformers optimized export for tests: replaces one block's
 * attention (c_attn through the head merge) with a single `com.microsoft` `Attention` node named
 * outside the block scope, as the optimizer does. The model computes the same function; the
 * attention internals (q, k, v, scores, pattern, z) are no longer tensors in the graph.
 */
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema, OperatorSetIdProtoSchema, type ModelProto } from "onnx-buf";
import { cloneStructure } from "../../src/onnx/clone.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { pruneDeadNodes } from "../../src/onnx/surgery.js";

export function fuseAttention(model: ModelProto, layer: number, nHeads: number): ModelProto {
  const g = OnnxGraph.fromModel(cloneStructure(model));
  const attn = `/transformer/h.${layer}/attn`;
  const gemm = g.nodesInScope(`${attn}/c_attn`).find((n) => n.opType === "Gemm")!;
  const x = g.producer(gemm.input[0]!)!.input[0]!; // Reshape [B,S,d] -> [B*S,d]: its input is ln_1's output
  const projGemm = g.nodesInScope(`${attn}/c_proj`).find((n) => n.opType === "Gemm")!;
  const projReshape = g.producer(projGemm.input[0]!)!;
  const mask = g.uniqueName(`/fused/Attention_${layer}/mask_int32`);
  const out = g.uniqueName(`/fused/Attention_${layer}_output_0`);
  g.addNode(
    create(NodeProtoSchema, {
      opType: "Cast",
      name: g.uniqueName(`Attention_${layer}_MaskCast`),
      input: ["attention_mask"],
      output: [mask],
      attribute: [create(AttributeProtoSchema, { name: "to", type: AttributeProto_AttributeType.INT, i: 6n })],
    }),
    { before: projReshape },
  );
  g.addNode(
    create(NodeProtoSchema, {
      opType: "Attention",
      domain: "com.microsoft",
      name: g.uniqueName(`Attention_${layer}`),
      input: [x, gemm.input[1]!, gemm.input[2]!, mask],
      output: [out],
      attribute: [
        create(AttributeProtoSchema, { name: "num_heads", type: AttributeProto_AttributeType.INT, i: BigInt(nHeads) }),
        create(AttributeProtoSchema, { name: "unidirectional", type: AttributeProto_AttributeType.INT, i: 1n }),
      ],
    }),
    { before: projReshape },
  );
  const merged = projReshape.input[0]!;
  for (const c of g.consumers(merged)) c.input = c.input.map((i) => (i === merged ? out : i));
  g.graph.output = g.graph.output.filter((o) => !o.name.startsWith(`present.${layer}.`));
  g.invalidate();
  pruneDeadNodes(g);
  if (!g.model.opsetImport.some((o) => o.domain === "com.microsoft")) {
    g.model.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }));
  }
  return g.model;
}
