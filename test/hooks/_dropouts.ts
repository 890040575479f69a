/**
 * Eval-mode `Dropout` nodes where GPT-2 has dropout modules (after the embedding sum, after each
 * attention and MLP output projection, after each Softmax), as torch.onnx exports of some
 * versions left them: identities at inference, which the structural pass must look through.
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, type ModelProto, type NodeProto } from "onnx-buf";
import { OnnxGraph } from "../../src/onnx/graph.js";

/** Adds a Dropout after each value `pick` selects (by its producer), in place; returns how many. */
export function addDropouts(m: ModelProto, pick: (producer: NodeProto, g: OnnxGraph) => boolean): number {
  const g = OnnxGraph.fromModel(m);
  let k = 0;
  for (const n of [...g.nodes]) {
    const v = n.output[0];
    if (!v || g.outputNames().includes(v)) continue;
    const consumers = g.consumers(v);
    if (!pick(n, g)) continue;
    const out = `dropout_${k}`;
    const d = create(NodeProtoSchema, { name: `Dropout_${9000 + k}`, opType: "Dropout", input: [v], output: [out] });
    k++;
    for (const c of consumers) c.input = c.input.map((i) => (i === v ? out : i));
    g.addNode(d, { after: n });
    g.invalidate();
  }
  return k;
}

/**
 * GPT-2's dropout sites in a generated graph: the embedding sum (the Add of two Gathers), each
 * Softmax, and the output projections feeding a residual Add (in the generator, the Reshapes
 * read by one Add only).
 */
export function gpt2DropoutSites(n: NodeProto, g: OnnxGraph): boolean {
  if (n.opType === "Softmax") return true;
  const cs = g.consumers(n.output[0]!);
  if (n.opType === "Reshape") return cs.length === 1 && cs[0]!.opType === "Add";
  return n.opType === "Add" && n.input.every((i) => g.producer(i)?.opType === "Gather");
}
