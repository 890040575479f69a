/**
 * `attn.hook_result`: each head's write to the residual stream, which the exported graph never
 * materialises (it merges heads before `c_proj`). We add nodes computing
 * `result[b,s,h,:] = z[b,s,h,:] @ W_O[h]` from the existing `c_proj` weight (reshaped in-graph,
 * not copied).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorToProto } from "../onnx/tensor.js";

/**
 * Adds `Squeeze(Unsqueeze(z, 3) @ Reshape(W_O, [n_head, d_head, d_model]), 3)` after `z`
 * (`[B,S,H,dh]`) and returns the name of the `[B,S,H,d_model]` result.
 * `wO` is the `[H*dh, d_model]` c_proj weight initializer.
 */
export function addPerHeadResult(g: OnnxGraph, z: string, wO: string, layer: number, nHeads: number): string {
  const w = g.initializer(wO);
  if (!w || w.dims.length !== 2) throw new Error(`per-head result: ${wO} is not a 2-D initializer`);
  const p = `/tdb/h.${layer}/result`;
  const constant = (base: string, values: bigint[]) => {
    const name = g.uniqueName(`${p}/${base}`);
    g.addInitializer(tensorToProto(name, new BigInt64Array(values), [values.length]));
    return name;
  };
  const shape = constant("w_shape", [BigInt(nHeads), -1n, w.dims[1]!]);
  const axes = constant("axes", [3n]);
  const node = (opType: string, input: string[], base: string) => {
    const output = g.uniqueName(`${p}/${base}_output_0`);
    g.addNode(create(NodeProtoSchema, { opType, input, output: [output], name: g.uniqueName(`${p}/${base}`) }));
    return output;
  };
  const wHeads = node("Reshape", [wO, shape], "Reshape");
  const zU = node("Unsqueeze", [z, axes], "Unsqueeze");
  const prod = node("MatMul", [zU, wHeads], "MatMul");
  return node("Squeeze", [prod, axes], "Squeeze");
}
