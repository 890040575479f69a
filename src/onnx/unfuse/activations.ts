/**
 * Fused activations: `FastGelu` (tanh GELU, spelled out like the TorchScript export's
 * `gelu_new`), `GemmFastGelu` (`MatMul` then the same), `BiasGelu` and `Gelu` (erf GELU), `QuickGelu` (`x * sigmoid(alpha * x)`) and
 * `BiasAdd` (`x + bias + skip`). A bias input becomes an `Add` in front of the activation.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../graph.js";
import { floatAttr, floatType, input, put, UnfuseUnsupported, type UnfuseEmitter } from "./common.js";

/** `x + bias` when the node has a bias input at `i`, else `x`. */
function withBias(e: UnfuseEmitter, node: NodeProto, x: string, i: number): string {
  const bias = input(node, i);
  return bias ? e.op("Add", [x, bias]) : x;
}

/**
 * `FastGelu(X, bias?)`: `0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3)))` as `Mul(x, 0.5)`,
 * `Pow(x, 3)`, `Mul(0.044715)`, `Add(x, .)`, `Mul(0.7978845608)`, `Tanh`, `Add(1)`, `Mul`.
 */
export function unfuseFastGelu(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const T = floatType(g, [input(node, 0), input(node, 1)]);
  const x = withBias(e, node, input(node, 0)!, 1);
  const half = e.op("Mul", [x, e.scalar(0.5, T)]);
  const cube = e.op("Pow", [x, e.scalar(3, T)]);
  const inner = e.op("Add", [x, e.op("Mul", [cube, e.scalar(0.044715, T)])]);
  const t = e.op("Tanh", [e.op("Mul", [inner, e.scalar(0.7978845608028654, T)])]);
  put(e, "Mul", [half, e.op("Add", [t, e.scalar(1, T)])], node.output[0]);
}

/** `GemmFastGelu(X, W, bias?)`: `MatMul(X, W)`, then {@link unfuseFastGelu}'s chain with the bias `Add` first. */
export function unfuseGemmFastGelu(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const w = input(node, 1);
  if (!w) throw new UnfuseUnsupported("GemmFastGelu without weights");
  const mm = e.op("MatMul", [input(node, 0)!, w]);
  const bias = input(node, 2);
  const proxy = { ...node, input: bias ? [mm, bias] : [mm] } as NodeProto;
  unfuseFastGelu(g, proxy, e);
}

/** `Gelu(X)` / `BiasGelu(A, B)`: `0.5 x (1 + erf(x / sqrt 2))` as `Div`, `Erf`, `Add(1)`, `Mul(x, .)`, `Mul(0.5)`. */
export function unfuseErfGelu(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const T = floatType(g, [input(node, 0), input(node, 1)]);
  if (node.opType === "BiasGelu" && !input(node, 1)) throw new UnfuseUnsupported("BiasGelu without a bias input");
  const x = withBias(e, node, input(node, 0)!, 1);
  const erf = e.op("Erf", [e.op("Div", [x, e.scalar(Math.SQRT2, T)])]);
  const prod = e.op("Mul", [x, e.op("Add", [erf, e.scalar(1, T)])]);
  put(e, "Mul", [prod, e.scalar(0.5, T)], node.output[0]);
}

/** `QuickGelu(X)`: `x * sigmoid(alpha x)` (alpha default 1.702). */
export function unfuseQuickGelu(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const T = floatType(g, [input(node, 0)]);
  const x = input(node, 0)!;
  const alpha = floatAttr(node, "alpha", 1.702);
  const s = e.op("Sigmoid", [alpha === 1 ? x : e.op("Mul", [x, e.scalar(alpha, T)])]);
  put(e, "Mul", [x, s], node.output[0]);
}

/** `BiasAdd(X, bias, skip)`: `(x + bias) + skip`. */
export function unfuseBiasAdd(_g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const bias = input(node, 1);
  const skip = input(node, 2);
  if (!bias || !skip) throw new UnfuseUnsupported("BiasAdd needs bias and skip inputs");
  put(e, "Add", [e.op("Add", [input(node, 0)!, bias]), skip], node.output[0]);
}
