/**
 * `attn.hook_result`: each head's write to the residual stream, which the exported graph never
 * materialises (it merges heads before `c_proj`). We add nodes computing
 * `result[b,s,h,:] = z[b,s,h,:] @ W_O[h]` from the existing `c_proj` weight (reshaped in-graph,
 * not copied).
 *
 * @module
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { GraphEmitter } from "../onnx/emit.js";
import type { OnnxGraph } from "../onnx/graph.js";

/** How the c_proj weight is read by its node (a `Gemm`'s `transB` and `alpha`). */
export interface WeightLayout {
  /** The initializer is `[d_model, H*dh]` (read with `Gemm(transB=1)`). [default: false] */
  transB?: boolean;
  /** Gemm's `alpha`, multiplied into the weight. [default: 1] */
  alpha?: number;
}

/**
 * Adds `Squeeze(Unsqueeze(z, 3) @ Reshape(W_O, [n_head, d_head, d_model]), 3)` after `z`
 * (`[B,S,H,dh]`) and returns the name of the `[B,S,H,d_model]` result.
 * `wO` is the c_proj weight initializer: `[H*dh, d_model]`, or `[d_model, H*dh]` with
 * `layout.transB` (transposed in-graph first).
 */
export function addPerHeadResult(g: OnnxGraph, z: string, wO: string, layer: number, nHeads: number, layout: WeightLayout = {}): string {
  const w = g.initializer(wO);
  if (!w || w.dims.length !== 2) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `per-head result: the c_proj weight ${wO} is not a 2-D initializer`, { value: w?.dims.map(Number), allowed: "a 2-D initializer" });
  }
  const dOut = layout.transB ? w.dims[0]! : w.dims[1]!;
  const e = new GraphEmitter(g, `/tdb/h.${layer}/result`);
  let wIn = wO;
  if (layout.transB) wIn = e.op("Transpose", [wO], { perm: [1, 0] }, "Transpose");
  if (layout.alpha !== undefined && layout.alpha !== 1) wIn = e.op("Mul", [wIn, e.scalar(layout.alpha, DT.FLOAT)], {}, "Alpha");
  const wHeads = e.op("Reshape", [wIn, e.ints([nHeads, -1, dOut])], {}, "Reshape");
  const prod = e.op("MatMul", [e.unsqueeze(z, [3], "Unsqueeze"), wHeads], {}, "MatMul");
  return e.squeeze(prod, [3], "Squeeze");
}
