/**
 * GPT-2 graph facts checked against config.json at load: number of blocks, embedding tables,
 * attention head split, MLP width. A config that disagrees with its graph otherwise loads and
 * gives wrong answers (`n_head: 3` on a 4-head graph) or runs a per-layer loop over a made-up
 * layer count (`n_layer: 1e9`), so this runs before hook discovery and reads only the graph.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorFromProto } from "../onnx/tensor.js";
import type { ArchDims, DimMismatch } from "./adapter.js";
import { findBlockScopes } from "./gpt2-locate.js";

/** The integers of a constant value (an initializer or a `Constant` node's tensor). */
function intConstant(g: OnnxGraph, name: string): number[] | undefined {
  let t = g.initializer(name);
  if (!t) {
    const p = g.producer(name);
    if (p?.opType === "Constant") t = p.attribute.find((a) => a.name === "value")?.t;
  }
  if (!t) return undefined;
  const h = tensorFromProto(t);
  if (h.type !== "int64" && h.type !== "int32") return undefined;
  return Array.from(h.data as ArrayLike<number | bigint>, Number);
}

/** Dims of the 2-D initializer a `Gather` named like `pattern` reads (an embedding table). */
function tableDims(g: OnnxGraph, pattern: RegExp): number[] | undefined {
  for (const n of g.nodes) {
    if (n.opType !== "Gather" || !pattern.test(n.name)) continue;
    const t = g.initializer(n.input[0] ?? "");
    if (t && t.dims.length === 2) return t.dims.map(Number);
  }
  return undefined;
}

/** `[d_in, d_out]` of the Conv1D (Gemm/MatMul over an initializer) under `scope`. */
function conv1dDims(g: OnnxGraph, scope: string): [number, number] | undefined {
  const mm = g.nodesInScope(scope).find((n) => n.opType === "Gemm" || n.opType === "MatMul");
  const t = mm?.input[1] ? g.initializer(mm.input[1]) : undefined;
  if (!t || t.dims.length !== 2) return undefined;
  const [r, c] = t.dims.map(Number) as [number, number];
  const transB = mm!.opType === "Gemm" && Number(mm!.attribute.find((a) => a.name === "transB")?.i ?? 0) !== 0;
  return transB ? [c, r] : [r, c];
}

/**
 * `[n_head, d_head]` as the attention splits heads: the last two entries of the shape a
 * `Reshape` of one `Split` output (q) is given, when they are constants.
 */
function headSplit(g: OnnxGraph, attnScope: string): [number, number] | undefined {
  const split = g.nodesInScope(attnScope).find((n) => n.opType === "Split" && n.output.length === 3);
  const reshape: NodeProto | undefined = split ? g.consumers(split.output[0]!).find((c) => c.opType === "Reshape") : undefined;
  const shape = reshape?.input[1];
  if (!shape) return undefined;
  let dims = intConstant(g, shape);
  if (!dims) {
    const concat = g.producer(shape);
    if (concat?.opType !== "Concat") return undefined;
    const tail = concat.input.slice(-2).map((i) => intConstant(g, i));
    if (tail.some((t) => t?.length !== 1)) return undefined;
    dims = tail.map((t) => t![0]!);
  }
  if (dims.length < 2) return undefined;
  const [h, dh] = dims.slice(-2) as [number, number];
  return h > 0 && dh > 0 ? [h, dh] : undefined;
}

/**
 * What in `g` disagrees with `dims`, one entry per dimension (the first fact that shows it).
 * Facts the graph does not show (a fused attention op, an unnamed embedding) are not checked,
 * nor is a graph with no block scope (discovery rejects it).
 * Loops over the graph's nodes only, never over `dims.nLayers`, so absurd sizes fail fast.
 */
export function gpt2CheckDims(g: OnnxGraph, dims: ArchDims): DimMismatch[] {
  const out: DimMismatch[] = [];
  const seen = new Set<keyof ArchDims>();
  const check = (dim: keyof ArchDims, config: number, graph: number | undefined, fact: string) => {
    if (graph === undefined || graph === config || seen.has(dim)) return;
    seen.add(dim);
    out.push({ dim, config, graph, fact });
  };
  const scopes = findBlockScopes(g);
  // No block scope at all: not a GPT-2 export; hook discovery reports that (E_UNSUPPORTED_GRAPH).
  if (scopes.size === 0) return out;
  check("nLayers", dims.nLayers, scopes.size, `blocks (.../h.N/ scopes) in the graph`);
  const wte = tableDims(g, /wte/);
  check("dVocab", dims.dVocab, wte?.[0], "rows of the token embedding (wte)");
  check("dModel", dims.dModel, wte?.[1], "columns of the token embedding (wte)");
  const wpe = tableDims(g, /wpe/);
  check("nCtx", dims.nCtx, wpe?.[0], "rows of the position embedding (wpe)");
  check("dModel", dims.dModel, wpe?.[1], "columns of the position embedding (wpe)");
  // Every block (the graph's, not the config's count): a block that differs from the config
  // would otherwise give wrong shapes there only.
  for (const [, scope] of [...scopes.entries()].sort((a, b) => a[0] - b[0])) {
    const qkv = conv1dDims(g, `${scope}/attn/c_attn`);
    check("dModel", dims.dModel, qkv?.[0], `input width of ${scope}/attn/c_attn`);
    const split = headSplit(g, `${scope}/attn`);
    check("nHeads", dims.nHeads, split?.[0], `heads the attention of ${scope} splits q/k/v into (d_head ${split?.[1]})`);
    const fc = conv1dDims(g, `${scope}/mlp/c_fc`);
    check("dMlp", dims.dMlp, fc?.[1], `output width of ${scope}/mlp/c_fc`);
  }
  return out;
}
