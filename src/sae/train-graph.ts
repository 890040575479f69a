/**
 * The SAE training step as one ONNX graph: forward, losses and a hand-written backward pass
 * (five matrix products per step for the standard SAE, as `Gemm`s with transposed operands; no
 * autodiff bookkeeping or broadcast reductions). Weights are graph inputs, so the trainer feeds
 * its own Float32Arrays every step and updates them in place.
 *
 * Inputs: `x` [B, d], `W_enc` [d, S], `b_enc` [S], `W_dec` [S, d], `b_dec` [d], and
 * - standard: `l1` [1], the L1 coefficient divided by B;
 * - topk with AuxK: `dead_penalty` [S] (0 for a dead latent, -1e9 for a live one).
 *
 * Outputs: gradients `g_W_enc`, `g_b_enc` [1, S], `g_W_dec`, `g_b_dec` [1, d]; `sq_err` [1] (sum
 * of squared errors over the batch), `l1_sum` [1] (standard: sum over the batch of
 * sum_i f_i ||W_dec_i||), `active` [1] (count of nonzero latents over the batch), `fired` [S]
 * (sum of each latent's activations over the batch), `row_err` [B] (each row's squared error),
 * `aux_sq` [1] (topk with AuxK: sum of squared AuxK residual errors).
 *
 * Loss: `sum_rows ||x - x_hat||^2 / B + l1 * sum_rows sum_i f_i ||W_dec_i||` (standard; Anthropic's
 * April 2024 form, the L1 of each latent weighted by its decoder row norm, so the decoder's scale
 * cannot shrink the penalty) or `sum_rows ||x - x_hat||^2 / B + auxCoef * sum_rows ||e - e_hat||^2 / B`
 * (topk, with `e = x - x_hat` held constant and `e_hat` the decoder applied to the `kAux` largest
 * pre-activations of the dead latents: Gao et al. 2024's AuxK).
 *
 * @module
 */
import { GraphBuilder } from "../onnx/builder.js";
import type { ModelProto } from "onnx-buf";

/** What the training graph computes. */
export interface SaeGraphSpec {
  /** "standard" (ReLU + decoder-norm-weighted L1) or "topk". */
  architecture: "standard" | "topk";
  /** Rows per step (static). */
  batch: number;
  /** Input width. */
  dIn: number;
  /** Latents. */
  dSae: number;
  /** TopK: latents kept per row. */
  k?: number;
  /** TopK: AuxK latents (0: no AuxK term). */
  kAux?: number;
  /** TopK: AuxK coefficient. */
  auxCoef?: number;
}

/** The ai.onnx opset of the SAE training graph. */
export const SAE_TRAIN_OPSET = 17;

/** Builds the training-step graph of {@link SaeGraphSpec}. */
export function buildSaeTrainGraph(spec: SaeGraphSpec): ModelProto {
  const { batch: B, dIn: d, dSae: S } = spec;
  const g = new GraphBuilder({ opset: SAE_TRAIN_OPSET, name: "sae_train" });
  const x = g.input("x", "float32", [B, d]);
  const wEnc = g.input("W_enc", "float32", [d, S]);
  const bEnc = g.input("b_enc", "float32", [S]);
  const wDec = g.input("W_dec", "float32", [S, d]);
  const bDec = g.input("b_dec", "float32", [d]);
  const ax0 = g.constant("/c", new BigInt64Array([0n]), [1]);
  const ax1 = g.constant("/c", new BigInt64Array([1n]), [1]);
  const twoOverB = g.constant("/c", new Float32Array([2 / B]), []);
  const sumAll = (v: string): string => g.op("ReduceSum", [v], { attrs: { keepdims: 1 }, scope: "/sum" });
  const flat1 = (v: string): string => g.op("Reshape", [v, g.constant("/c", new BigInt64Array([1n]), [1])]);

  // Forward.
  const xc = g.op("Sub", [x, bDec]);
  const pre = g.op("Gemm", [xc, wEnc, bEnc]);
  let f: string;
  let topIdx = "";
  let topVals = "";
  let zerosBS = "";
  if (spec.architecture === "standard") {
    f = g.op("Relu", [pre]);
  } else {
    const k = g.constant("/c", new BigInt64Array([BigInt(spec.k!)]), [1]);
    const [vals, idx] = g.node("TopK", [pre, k], { attrs: { axis: 1, largest: 1, sorted: 0 }, outputs: 2 }) as [string, string];
    topVals = g.op("Relu", [vals]);
    topIdx = idx;
    // ConstantOfShape without a value attribute is float32 zeros.
    zerosBS = g.op("ConstantOfShape", [g.constant("/c", new BigInt64Array([BigInt(B), BigInt(S)]), [2])]);
    f = g.op("ScatterElements", [zerosBS, topIdx, topVals], { attrs: { axis: 1 } });
  }
  const xHat = g.op("Gemm", [f, wDec, bDec]);
  const e = g.op("Sub", [xHat, x]);
  const e2 = g.op("Mul", [e, e]);
  g.output("row_err", "float32", [B], g.op("ReduceSum", [e2, ax1], { attrs: { keepdims: 0 } }));
  g.output("sq_err", "float32", [1], flat1(sumAll(e2)));
  const fSign = g.op("Sign", [f]);
  g.output("active", "float32", [1], flat1(sumAll(fSign)));
  const fired = g.op("ReduceSum", [f, ax0], { attrs: { keepdims: 0 } });
  g.output("fired", "float32", [S], fired);

  // Backward of the reconstruction term: dL/dx_hat = 2 e / B.
  const gE = g.op("Mul", [e, twoOverB]);
  let gWDec = g.op("Gemm", [f, gE], { attrs: { transA: 1 } });
  let gPre: string;
  if (spec.architecture === "standard") {
    const l1 = g.input("l1", "float32", [1]);
    const norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [wDec, wDec]), ax1], { attrs: { keepdims: 0 } })]);
    // L1 term: l1 * sum_b sum_i f_bi n_i, with l1 already divided by B.
    g.output("l1_sum", "float32", [1], flat1(sumAll(g.op("Mul", [fired, norm]))));
    const l1n = g.op("Mul", [norm, l1]);
    // dL/df = gE W_dec^T + l1 n (broadcast over rows); through the ReLU: where f > 0.
    const gF = g.op("Gemm", [gE, wDec, l1n], { attrs: { transB: 1 } });
    gPre = g.op("Mul", [gF, fSign]);
    // dL/dW_dec_i += l1 * fired_i * W_dec_i / n_i.
    const safeN = g.op("Max", [norm, g.constant("/c", new Float32Array([1e-12]), [])]);
    const coef = g.op("Div", [g.op("Mul", [fired, l1]), safeN]);
    const coefCol = g.op("Unsqueeze", [coef, ax1]);
    gWDec = g.op("Add", [gWDec, g.op("Mul", [wDec, coefCol])]);
  } else {
    const gF = g.op("Gemm", [gE, wDec], { attrs: { transB: 1 } });
    const gVals = g.op("Mul", [g.op("GatherElements", [gF, topIdx], { attrs: { axis: 1 } }), g.op("Sign", [topVals])]);
    gPre = g.op("ScatterElements", [zerosBS, topIdx, gVals], { attrs: { axis: 1 } });
    if ((spec.kAux ?? 0) > 0) {
      // AuxK: the kAux largest pre-activations among dead latents reconstruct the residual x - x_hat
      // (held constant: e enters as data). dead_penalty pushes live latents out of the TopK.
      const penalty = g.input("dead_penalty", "float32", [S]);
      const kAux = g.constant("/c", new BigInt64Array([BigInt(spec.kAux!)]), [1]);
      const [aVals0, aIdx] = g.node("TopK", [g.op("Add", [pre, penalty]), kAux], { attrs: { axis: 1, largest: 1, sorted: 0 }, outputs: 2 }) as [
        string,
        string,
      ];
      const aVals = g.op("Relu", [aVals0]);
      const fA = g.op("ScatterElements", [zerosBS, aIdx, aVals], { attrs: { axis: 1 } });
      const eHat = g.op("MatMul", [fA, wDec]);
      const dA = g.op("Add", [eHat, e]); // e_hat - (x - x_hat)
      g.output("aux_sq", "float32", [1], flat1(sumAll(g.op("Mul", [dA, dA]))));
      const gDA = g.op("Mul", [dA, g.constant("/c", new Float32Array([(2 * (spec.auxCoef ?? 0)) / B]), [])]);
      gWDec = g.op("Add", [gWDec, g.op("Gemm", [fA, gDA], { attrs: { transA: 1 } })]);
      const gFA = g.op("Gemm", [gDA, wDec], { attrs: { transB: 1 } });
      const gAVals = g.op("Mul", [g.op("GatherElements", [gFA, aIdx], { attrs: { axis: 1 } }), g.op("Sign", [aVals])]);
      gPre = g.op("Add", [gPre, g.op("ScatterElements", [zerosBS, aIdx, gAVals], { attrs: { axis: 1 } })]);
    }
  }
  g.output("g_W_dec", "float32", [S, d], gWDec);
  g.output("g_W_enc", "float32", [d, S], g.op("Gemm", [xc, gPre], { attrs: { transA: 1 } }));
  const gBEnc = g.op("ReduceSum", [gPre, ax0], { attrs: { keepdims: 1 } });
  g.output("g_b_enc", "float32", [1, S], gBEnc);
  // b_dec enters twice: added to x_hat, subtracted from x before the encoder.
  const gBDecOut = g.op("ReduceSum", [gE, ax0], { attrs: { keepdims: 1 } });
  g.output("g_b_dec", "float32", [1, d], g.op("Sub", [gBDecOut, g.op("Gemm", [gBEnc, wEnc], { attrs: { transB: 1 } })]));
  return g.build();
}
