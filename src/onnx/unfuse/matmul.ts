/**
 * `FusedMatMul(A, B)` (alpha, transA, transB): `Transpose` of the last two axes where asked,
 * `MatMul`, and `Mul(alpha)` when alpha is not 1. `TransposeMatMul` is the same op under its
 * older name.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../graph.js";
import { facts, floatAttr, floatType, input, intAttr, put, UnfuseUnsupported, type UnfuseEmitter } from "./common.js";

/** `Transpose` swapping the last two axes of `x` (its rank must be known). */
function swapLast(g: OnnxGraph, e: UnfuseEmitter, x: string, which: string): string {
  const rank = facts(g, x).dims?.length;
  if (rank === undefined) throw new UnfuseUnsupported(`trans${which} needs the rank of ${x}, which the graph does not declare`);
  if (rank < 2) throw new UnfuseUnsupported(`trans${which} on ${x} of rank ${rank}`);
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return e.op("Transpose", [x], { perm });
}

/** Rewrites one `FusedMatMul` / `TransposeMatMul`. */
export function unfuseFusedMatMul(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  if (intAttr(node, "transBatchA", 0) || intAttr(node, "transBatchB", 0)) throw new UnfuseUnsupported("transBatchA / transBatchB");
  const a = input(node, 0)!;
  const b = input(node, 1)!;
  const T = floatType(g, [a, b]);
  const alpha = floatAttr(node, "alpha", 1);
  const ta = intAttr(node, "transA", 0) ? swapLast(g, e, a, "A") : a;
  const tb = intAttr(node, "transB", 0) ? swapLast(g, e, b, "B") : b;
  if (alpha === 1) put(e, "MatMul", [ta, tb], node.output[0]);
  else put(e, "Mul", [e.op("MatMul", [ta, tb]), e.scalar(alpha, T)], node.output[0]);
}
