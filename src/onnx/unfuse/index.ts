/**
 * Un-fusing: onnxruntime's transformer optimizer (and onnxruntime-genai's model builder) fuse
 * a transformer into `com.microsoft` contrib ops, which hide the tensors hooks need (residual
 * stream, attention pattern, LayerNorm scale). {@link unfuseContribOps} rewrites each supported
 * fused node in place as the standard ONNX sub-graph a TorchScript export would have, keeping
 * the fused node's output names (consumers are untouched) and naming new nodes
 * `<fused node name>/<op>[_k]`. Shape-free: dynamic batch and sequence lengths keep working.
 *
 * Supported (`com.microsoft`): `Attention`, `MultiHeadAttention`, `EmbedLayerNormalization`, `SkipLayerNormalization`,
 * `SkipSimplifiedLayerNormalization`, `FastGelu`, `GemmFastGelu`, `BiasGelu`, `Gelu`, `QuickGelu`, `BiasAdd`,
 * `FusedMatMul` / `TransposeMatMul`; and in the default domain `LayerNormalization` (opset 17,
 * and onnxruntime's own below 17) and `SimplifiedLayerNormalization` (onnxruntime's RMS norm). Generic graph surgery: nothing here knows GPT-2.
 *
 * @example
 * ```ts
 * const g = OnnxGraph.fromModel(decodeModel(bytes));
 * const report = unfuseContribOps(g);           // or { strict: true } to throw on the first refusal
 * report.unsupported;                            // [{ op, node, reason }] left fused
 * ```
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { NodeProtoSchema, TensorProto_DataType as DT, type GraphProto, type NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../graph.js";
import { subgraphsOf } from "../walk.js";
import { unfuseBiasAdd, unfuseErfGelu, unfuseFastGelu, unfuseGemmFastGelu, unfuseQuickGelu } from "./activations.js";
import { unfuseAttention, unfuseMultiHeadAttention } from "./attention.js";
import { floatType, MS_DOMAIN, UnfuseEmitter, UnfuseUnsupported, unsupportedError } from "./common.js";
import { unfuseEmbedLayerNorm, unfuseLayerNorm, unfuseSkipLayerNorm } from "./layernorm.js";
import { unfuseFusedMatMul } from "./matmul.js";

type Rewrite = (g: OnnxGraph, node: NodeProto, e: UnfuseEmitter) => void;

const MS_RULES: Readonly<Record<string, Rewrite>> = {
  Attention: unfuseAttention,
  MultiHeadAttention: unfuseMultiHeadAttention,
  EmbedLayerNormalization: unfuseEmbedLayerNorm,
  SkipLayerNormalization: unfuseSkipLayerNorm,
  SkipSimplifiedLayerNormalization: unfuseSkipLayerNorm,
  FastGelu: unfuseFastGelu,
  GemmFastGelu: unfuseGemmFastGelu,
  BiasGelu: unfuseErfGelu,
  Gelu: unfuseErfGelu,
  QuickGelu: unfuseQuickGelu,
  BiasAdd: unfuseBiasAdd,
  FusedMatMul: unfuseFusedMatMul,
  TransposeMatMul: unfuseFusedMatMul,
};

/** Fused ops of the default domain that are rewritten too (onnxruntime registers them there at any opset). */
const DEFAULT_RULES: Readonly<Record<string, Rewrite>> = {
  LayerNormalization: unfuseLayerNorm,
  SimplifiedLayerNormalization: unfuseLayerNorm,
};

/** Integer (not float) input and output slots of the ops that have some. */
const INT_INPUTS: Readonly<Record<string, readonly number[]>> = { EmbedLayerNormalization: [0, 1, 7, 8], Attention: [3, 6], MultiHeadAttention: [4, 8, 9] };
const INT_OUTPUTS: Readonly<Record<string, readonly number[]>> = { EmbedLayerNormalization: [1] };

/**
 * Runs a rewrite. A float16 node is rewritten in float32, as onnxruntime's CPU kernels compute
 * it: its float inputs are cast up, the rewrite runs on a copy of the node reading them, and its
 * float outputs are cast back to float16 under their own names (float16 arithmetic op by op
 * would overflow where the kernels do not, e.g. a -65504 mask plus a negative score).
 */
function rewrite(g: OnnxGraph, node: NodeProto, rule: Rewrite, e: UnfuseEmitter): void {
  const intIn = new Set(INT_INPUTS[node.opType] ?? []);
  const floatIns = node.input.filter((v, i) => v && !intIn.has(i));
  if (floatType(g, floatIns) !== DT.FLOAT16) return rule(g, node, e);
  const intOut = new Set(INT_OUTPUTS[node.opType] ?? []);
  const proxy = clone(NodeProtoSchema, node);
  proxy.input = node.input.map((v, i) => (v && !intIn.has(i) ? e.op("Cast", [v], { to: DT.FLOAT }) : v));
  const isUsed = (v: string) => g.consumers(v).length > 0 || g.outputNames().includes(v);
  const back: [string, string][] = [];
  proxy.output = node.output.map((v, i) => {
    if (!v || intOut.has(i) || !isUsed(v)) return intOut.has(i) ? v : "";
    const f32 = g.uniqueName(`${v}/float32`);
    e.used.add(f32);
    back.push([f32, v]);
    return f32;
  });
  rule(g, proxy, e);
  for (const [f32, v] of back) e.node("Cast", [f32], { to: DT.FLOAT16 }, [v]);
}

/** The `com.microsoft` ops {@link unfuseContribOps} rewrites. */
export const UNFUSABLE_OPS: readonly string[] = Object.freeze(Object.keys(MS_RULES));

/** Options of {@link unfuseContribOps}. */
export interface UnfuseOptions {
  /**
   * Throw `E_UNSUPPORTED_GRAPH` naming the first node left fused (its op, node name and why),
   * after rewriting every supported node. [default: false: refusals are reported]
   */
  strict?: boolean;
}

/** One fused node that was rewritten. */
export interface UnfusedNode {
  /** Op type, e.g. `Attention`. */
  op: string;
  /** Its domain (`com.microsoft`, or `""` for ai.onnx). */
  domain: string;
  /** The fused node's name. */
  node: string;
  /** How many standard nodes replace it (constants included). */
  emitted: number;
}

/** One fused node left as it was, with the reason. */
export interface UnsupportedNode {
  /** Op type. */
  op: string;
  /** Its domain. */
  domain: string;
  /** The node's name (`""` when unnamed). */
  node: string;
  /** Why it was not rewritten, e.g. "4-D mask_index (Megatron causal mask)". */
  reason: string;
}

/** What {@link unfuseContribOps} did. */
export interface UnfuseReport {
  /** Rewritten nodes, in graph order (subgraphs after the node holding them). */
  unfused: UnfusedNode[];
  /** Nodes of the `com.microsoft` domain (or fused default-domain ops) left in the graph. */
  unsupported: UnsupportedNode[];
}

const isMs = (n: NodeProto) => n.domain === MS_DOMAIN;

function ruleFor(n: NodeProto): Rewrite | undefined {
  if (isMs(n)) return MS_RULES[n.opType];
  if (!n.domain || n.domain === "ai.onnx") return DEFAULT_RULES[n.opType];
  return undefined;
}

function unfuseGraph(g: OnnxGraph, report: UnfuseReport, firstError: { node?: NodeProto; reason?: string }): void {
  // Replacements are appended (appending keeps the graph's name index incremental; inserting
  // in the middle would rebuild it for every node), the fused nodes removed and the graph
  // sorted once at the end.
  const rewritten: NodeProto[] = [];
  for (const node of [...g.nodes]) {
    for (const sub of g.subgraphs(node)) unfuseGraph(sub, report, firstError);
    const rule = ruleFor(node);
    if (!rule) {
      if (isMs(node)) refuse(node, `no un-fusing rule for ${MS_DOMAIN}.${node.opType}`);
      continue;
    }
    const count = g.nodes.length;
    const e = new UnfuseEmitter(g, node.name || g.uniqueName(`/unfuse/${node.opType}`));
    try {
      rewrite(g, node, rule, e);
    } catch (err) {
      if (!(err instanceof UnfuseUnsupported)) throw err;
      g.removeNodes(g.nodes.slice(count));
      refuse(node, err.reason);
      continue;
    }
    rewritten.push(node);
    report.unfused.push({ op: node.opType, domain: node.domain, node: node.name, emitted: g.nodes.length - count });
  }
  if (rewritten.length === 0) return;
  g.removeNodes(rewritten);
  const produced = new Set(g.nodes.flatMap((n) => n.output));
  const dropped = new Set(rewritten.flatMap((n) => n.output).filter((o) => o && !produced.has(o)));
  if (dropped.size > 0) g.graph.valueInfo = g.graph.valueInfo.filter((v) => !dropped.has(v.name));
  g.sortTopologically();

  function refuse(node: NodeProto, reason: string): void {
    report.unsupported.push({ op: node.opType, domain: node.domain, node: node.name, reason });
    if (!firstError.node) Object.assign(firstError, { node, reason });
  }
}

function usesDomain(graph: GraphProto, domain: string): boolean {
  return graph.node.some((n) => n.domain === domain || subgraphsOf(n).some((s) => usesDomain(s, domain)));
}

/**
 * Rewrites every supported onnxruntime contrib op of `g` (and of its subgraphs) in place as
 * standard ONNX, and drops the `com.microsoft` opset import when nothing uses it any more.
 * Refusals (an op without a rule, a variant that cannot be spelled in standard ONNX, e.g. a
 * 4-D mask) are listed in the report, or with `strict` thrown as `E_UNSUPPORTED_GRAPH`.
 *
 * @example
 * ```ts
 * const { unfused, unsupported } = unfuseContribOps(g);
 * console.log(unfused.map((u) => `${u.op} ${u.node}`), unsupported);
 * ```
 */
export function unfuseContribOps(g: OnnxGraph, options: UnfuseOptions = {}): UnfuseReport {
  const report: UnfuseReport = { unfused: [], unsupported: [] };
  const firstError: { node?: NodeProto; reason?: string } = {};
  unfuseGraph(g, report, firstError);
  if (g.graph === g.model.graph && !usesDomain(g.graph, MS_DOMAIN)) {
    g.model.opsetImport = g.model.opsetImport.filter((o) => o.domain !== MS_DOMAIN);
  }
  if (options.strict && firstError.node) throw unsupportedError(firstError.node, firstError.reason!, [...UNFUSABLE_OPS, ...Object.keys(DEFAULT_RULES)]);
  return report;
}
