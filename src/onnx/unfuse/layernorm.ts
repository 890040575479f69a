/**
 * The layer-normalisation family: `LayerNormalization` (ai.onnx 17, and onnxruntime's own at
 * lower opsets), `SimplifiedLayerNormalization`, `SkipLayerNormalization`,
 * `SkipSimplifiedLayerNormalization` and `EmbedLayerNormalization`, written back as the
 * decomposed LayerNorm of a TorchScript export: `ReduceMean`, `Sub`, `Pow(2)`, `ReduceMean`,
 * `Add(eps)`, `Sqrt`, `Div`, `Mul(gamma)`, `Add(beta)` (the `Sqrt` output is the LayerNorm scale).
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import { TensorProto_DataType as DT } from "onnx-buf";
import type { OnnxGraph } from "../graph.js";
import { tensorToProto } from "../tensor.js";
import { facts, floatAttr, floatType, input, intAttr, put, UnfuseUnsupported, usedOutput, type UnfuseEmitter } from "./common.js";

/** Names of a normalisation's outputs to keep (each optional). */
interface NormOutputs {
  y?: string;
  mean?: string;
  invStd?: string;
}

/**
 * The decomposed LayerNorm of `x` over `axes` (negative axes from the end), or, when
 * `simplified`, the RMS norm `x / sqrt(mean(x^2) + eps) * gamma`. Returns the output.
 */
export function emitLayerNorm(
  e: UnfuseEmitter,
  x: string,
  gamma: string,
  beta: string | undefined,
  eps: number,
  elemType: number,
  axes: readonly number[],
  out: NormOutputs,
  simplified = false,
): string {
  let centred = x;
  if (!simplified) {
    const mean = e.reduceTo("ReduceMean", x, axes, true, out.mean);
    centred = e.op("Sub", [x, mean]);
  }
  const sq = e.op("Pow", [centred, e.scalar(2, elemType)]);
  const variance = e.reduce("ReduceMean", sq, axes, true);
  const sqrt = e.op("Sqrt", [e.op("Add", [variance, e.scalar(eps, elemType)])]);
  if (out.invStd) e.node("Reciprocal", [sqrt], {}, [out.invStd]);
  const div = e.op("Div", [centred, sqrt]);
  if (!beta) return put(e, "Mul", [div, gamma], out.y);
  return put(e, "Add", [e.op("Mul", [div, gamma]), beta], out.y);
}

/** Normalised axes `[axis, ..., -1]` of a LayerNormalization; needs the rank for a non-negative axis. */
function normAxes(g: OnnxGraph, x: string, axis: number): number[] {
  let first = axis;
  if (axis >= 0) {
    const rank = facts(g, x).dims?.length;
    if (rank === undefined) throw new UnfuseUnsupported(`axis ${axis} needs the rank of ${x}, which the graph does not declare`);
    first = axis - rank;
  }
  return Array.from({ length: -first }, (_, i) => first + i);
}

/** `LayerNormalization(X, Scale, B?)` / `SimplifiedLayerNormalization(X, scale)`: outputs Y, Mean?, InvStdDev?. */
export function unfuseLayerNorm(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const simplified = node.opType === "SimplifiedLayerNormalization";
  const x = input(node, 0)!;
  const gamma = input(node, 1);
  if (!gamma) throw new UnfuseUnsupported("no scale input");
  const T = floatType(g, [gamma, x]);
  const stash = intAttr(node, "stash_type", 1);
  const mean = simplified ? undefined : usedOutput(e, node, 1);
  const invStd = usedOutput(e, node, simplified ? 1 : 2);
  if ((mean || invStd) && T !== DT.FLOAT && stash === 1) throw new UnfuseUnsupported("Mean/InvStdDev outputs in float32 (stash_type 1) of a non-float32 LayerNormalization");
  const axes = normAxes(g, x, intAttr(node, "axis", -1));
  emitLayerNorm(e, x, gamma, simplified ? undefined : input(node, 2), floatAttr(node, "epsilon", 1e-5), T, axes, { y: node.output[0], mean, invStd }, simplified);
}

/**
 * `SkipLayerNormalization(input, skip, gamma, beta?, bias?)` (and the simplified form): the sum
 * `input + skip + bias` (output 3, the residual stream) then LayerNorm. The bias joins the
 * operand a MatMul/Gemm produced (the projection it belongs to), else `input`.
 */
export function unfuseSkipLayerNorm(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const simplified = node.opType === "SkipSimplifiedLayerNormalization";
  const x = input(node, 0)!;
  const skip = input(node, 1);
  const gamma = input(node, 2);
  if (!skip || !gamma) throw new UnfuseUnsupported("missing skip or gamma input");
  const beta = simplified ? undefined : input(node, 3);
  const bias = input(node, simplified ? 3 : 4);
  const T = floatType(g, [gamma, x]);
  const sumName = usedOutput(e, node, 3);
  const isProjection = (v: string) => ["MatMul", "Gemm"].includes(g.producer(v)?.opType ?? "");
  let sum: string;
  if (!bias) sum = put(e, "Add", [x, skip], sumName);
  else if (isProjection(skip) && !isProjection(x)) sum = put(e, "Add", [x, e.op("Add", [skip, bias])], sumName);
  else sum = put(e, "Add", [e.op("Add", [x, bias]), skip], sumName);
  const mean = simplified ? undefined : usedOutput(e, node, 1);
  const invStd = usedOutput(e, node, 2);
  if (simplified && usedOutput(e, node, 1)) throw new UnfuseUnsupported("output 1 (mean) of SkipSimplifiedLayerNormalization");
  emitLayerNorm(e, sum, gamma, beta, floatAttr(node, "epsilon", 1e-12), T, [-1], { y: node.output[0], mean, invStd }, simplified);
}

/**
 * `EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
 * segment_embedding?, gamma, beta, mask?, position_ids?)`: word + position (+ segment)
 * embeddings by `Gather` and `Add` (output 2, `embedding_sum`), LayerNorm (output 0), and
 * `mask_index` (output 1) as the count of ones in each row of the mask (zeros without a mask).
 */
export function unfuseEmbedLayerNorm(g: OnnxGraph, node: NodeProto, e: UnfuseEmitter): void {
  const ids = input(node, 0)!;
  const segIds = input(node, 1);
  const word = input(node, 2);
  const pos = input(node, 3);
  const segEmb = input(node, 4);
  const gamma = input(node, 5);
  const beta = input(node, 6);
  const mask = input(node, 7);
  const posIds = input(node, 8);
  if (!word || !pos || !gamma || !beta) throw new UnfuseUnsupported("missing word_embedding, position_embedding, gamma or beta");
  if (segIds && !segEmb) throw new UnfuseUnsupported("segment_ids without segment_embedding");
  const T = floatType(g, [word, gamma]);
  const words = e.op("Gather", [word, ids], { axis: 0 });
  let positions: string;
  if (posIds) positions = e.op("Gather", [pos, posIds], { axis: 0 });
  else {
    const range = e.op("Range", [e.ints([0], []), e.dim(ids, 1), e.ints([1], [])]);
    positions = e.op("Gather", [pos, range], { axis: 0 });
  }
  const sumName = usedOutput(e, node, 2);
  let sum: string;
  if (segIds && segEmb) {
    sum = put(e, "Add", [e.op("Add", [words, positions]), e.op("Gather", [segEmb, segIds], { axis: 0 })], sumName);
  } else sum = put(e, "Add", [words, positions], sumName);
  emitLayerNorm(e, sum, gamma, beta, floatAttr(node, "epsilon", 1e-12), T, [-1], { y: node.output[0] });
  const maskIndex = usedOutput(e, node, 1);
  if (maskIndex) {
    if (mask) {
      const ones = e.op("Cast", [e.op("Equal", [mask, e.int32s([1], [])])], { to: DT.INT32 });
      e.reduceTo("ReduceSum", ones, [1], false, maskIndex);
    } else {
      const batch = e.unsqueeze(e.dim(ids, 0), [0]);
      e.node("ConstantOfShape", [batch], { value: tensorToProto("", new Int32Array([0]), [1], "int32") }, [maskIndex]);
    }
  }
}
