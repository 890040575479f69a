/**
 * A small graph with the GPT-2 export's decomposed LayerNorm and spelled-out tanh GELU between
 * MatMuls (opset 13), for checking which fusions onnxruntime applies.
 */
import type { ModelProto } from "onnx-buf";
import { attr, f32, fvi, graph, model, node, randn } from "./_build.js";

/** x [B,S,8] -> MatMul -> LayerNorm (decomposed) -> MatMul+bias -> GELU (tanh, spelled out) -> MatMul -> y [B,S,8]. */
export function lnGeluModel(): ModelProto {
  const D = 8;
  const H = 16;
  const n = (op: string, i: string[], o: string, extra: Parameters<typeof node>[3] = {}) => node(op, i, [o], { name: `/blk/${o}`, ...extra });
  const nodes = [
    n("MatMul", ["x", "W0"], "h0"),
    n("ReduceMean", ["h0"], "ln_mean", { attribute: [attr.ints("axes", [-1])] }),
    n("Sub", ["h0", "ln_mean"], "ln_sub"),
    n("Pow", ["ln_sub", "two"], "ln_pow"),
    n("ReduceMean", ["ln_pow"], "ln_var", { attribute: [attr.ints("axes", [-1])] }),
    n("Add", ["ln_var", "eps"], "ln_add"),
    n("Sqrt", ["ln_add"], "ln_sqrt"),
    n("Div", ["ln_sub", "ln_sqrt"], "ln_div"),
    n("Mul", ["ln_div", "gamma"], "ln_mul"),
    n("Add", ["ln_mul", "beta"], "ln_out"),
    n("MatMul", ["ln_out", "W1"], "fc_mm"),
    n("Add", ["b1", "fc_mm"], "fc"),
    n("Mul", ["fc", "half"], "g_half"),
    n("Pow", ["fc", "three"], "g_cube"),
    n("Mul", ["g_cube", "c044"], "g_mul1"),
    n("Add", ["fc", "g_mul1"], "g_add"),
    n("Mul", ["g_add", "c079"], "g_mul2"),
    n("Tanh", ["g_mul2"], "g_tanh"),
    n("Add", ["g_tanh", "one"], "g_add1"),
    n("Mul", ["g_half", "g_add1"], "gelu_out"),
    n("MatMul", ["gelu_out", "W2"], "y"),
  ];
  const inits = [
    f32("W0", randn(D * D, 11), [D, D]),
    f32("two", [2], []),
    f32("eps", [1e-5], []),
    f32("gamma", randn(D, 12).map((v) => 1 + v / 4)),
    f32("beta", randn(D, 13)),
    f32("W1", randn(D * H, 14), [D, H]),
    f32("b1", randn(H, 15)),
    f32("half", [0.5], []),
    f32("three", [3], []),
    f32("c044", [0.044715], []),
    f32("c079", [0.7978845608], []),
    f32("one", [1], []),
    f32("W2", randn(H * D, 16), [H, D]),
  ];
  return model(graph(nodes, [fvi("x", ["batch", "seq", D])], [fvi("y", ["batch", "seq", D])], inits, "ln_gelu"));
}
