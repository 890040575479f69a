/**
 * GPT-2 graph facts features ask for beyond hook locations: which value is the final
 * LayerNorm's scale (attribution holds it constant) and which initializer is a block's W_out as
 * it is (attribution reuses it instead of copying). Found by the export's name scopes, here and
 * nowhere outside `src/hooks/`.
 *
 * @module
 */
import type { OnnxGraph } from "../onnx/graph.js";
import type { ArchDims } from "./adapter.js";

const BLOCK_RE = /^(.*\/h\.(\d+))\//;

/** Block scopes by layer, e.g. 3 -> "/transformer/h.3". */
export function findBlockScopes(g: OnnxGraph): Map<number, string> {
  const scopes = new Map<number, string>();
  for (const n of g.nodes) {
    if (n.name.startsWith("/tdb/")) continue; // nodes tdb-js added (taps, edits, backward) name their sources' scopes
    const m = BLOCK_RE.exec(n.name);
    if (m) scopes.set(Number(m[2]), m[1]!);
  }
  return scopes;
}

/** The final LayerNorm's scope (e.g. "/transformer/ln_f"), if the graph has one. */
export function finalLnScope(g: OnnxGraph): string | undefined {
  return g.nodes.find((n) => !n.name.startsWith("/tdb/") && /\/ln_f\//.test(n.name))?.name.replace(/\/ln_f\/.*$/, "/ln_f");
}

/** The `Sqrt` output of the decomposed final LayerNorm; undefined when it is fused. */
export function gpt2FinalNormScale(g: OnnxGraph): string | undefined {
  const scope = finalLnScope(g);
  const sqrt = scope ? g.nodesInScope(scope).find((n) => n.opType === "Sqrt") : undefined;
  return sqrt?.output[0];
}

/**
 * The `mlp.c_proj` weight initializer of block `layer` when it is W_out as it is ([d_mlp,
 * d_model] float32 read by a Gemm without transB); undefined otherwise.
 */
export function gpt2MlpOutWeight(g: OnnxGraph, layer: number, dims: ArchDims): string | undefined {
  const scope = findBlockScopes(g).get(layer);
  const gemm = scope ? g.nodesInScope(`${scope}/mlp/c_proj`).find((n) => n.opType === "Gemm") : undefined;
  const name = gemm?.input[1];
  const t = name ? g.initializer(name) : undefined;
  const transB = gemm?.attribute.find((a) => a.name === "transB")?.i ?? 0n;
  const d = t?.dims.map(Number);
  const ok = t && transB === 0n && t.dataType === 1 && d?.length === 2 && d[0] === dims.dMlp && d[1] === dims.dModel;
  return ok ? name : undefined;
}
