/**
 * GPT-2 architecture adapter. Hook points are found by pattern under each block's name scope
 * (`<prefix>/h.N/...`) and by the structure around them (which Add reads which branch, which
 * Gather reads the embedding table), not by exact node names, so that exports from other
 * exporter versions map as well. Graphs written without module scopes get them from their
 * structure first (`normalize`, `gpt2-structure.ts`). A tensor that is not reachable (e.g. attention inside a fused
 * `Attention` op) is reported as unavailable with the reason, and the rest still work.
 *
 * @module
 */
import { AttributeProto_AttributeType, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { lazyRecord, once } from "../base/lazy.js";
import { GraphEmitter } from "../onnx/emit.js";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorFromProto, type HostTensor } from "../onnx/tensor.js";
import type { ArchDims, ArchitectureAdapter, HookMap, HookSource, LayerWeights, ModelWeights } from "./adapter.js";
import { addLnScale } from "./ln-scale.js";
import { addPerHeadResult } from "./per-head-result.js";
import { hookNamesFor, type HookName } from "./names.js";
import { finalLnScope, findBlockScopes, gpt2FinalNormScale, gpt2MlpOutWeight } from "./gpt2-locate.js";
import { gpt2CheckDims } from "./gpt2-check.js";
import { normalizeGpt2, structureReason } from "./gpt2-structure.js";
import { gpt2WithPast } from "./gpt2-past.js";

interface Found {
  sources: Map<HookName, HookSource>;
  unavailable: Map<HookName, string>;
}

const inScope = (n: NodeProto, scope: string) => n.name.startsWith(scope + "/");
const directChild = (n: NodeProto, scope: string) => inScope(n, scope) && !n.name.slice(scope.length + 1).includes("/");

function firstOp(g: OnnxGraph, scope: string, op: string): NodeProto | undefined {
  return g.nodesInScope(scope).find((n) => n.opType === op);
}

/** Follows single consumers through ops that do not change values (Cast, Identity, eval-mode Dropout). */
function skipPassThrough(g: OnnxGraph, value: string): string {
  let v = value;
  for (;;) {
    const cs = g.consumers(v);
    const c = cs.length === 1 ? cs[0] : undefined;
    if (!c || (c.opType !== "Cast" && c.opType !== "Identity" && c.opType !== "Dropout")) return v;
    v = c.output[0]!;
  }
}

const FUSED_OPS = ["LayerNormalization", "SkipLayerNormalization", "Attention", "MultiHeadAttention", "GroupQueryAttention", "FastGelu", "Gelu", "BiasGelu"];

/**
 * Why a hook under `scope` was not found: a fused op inside the scope, or fused ops elsewhere in
 * the graph (onnxruntime names fused nodes outside the block scopes, e.g. `Attention_3`).
 */
function fusedReason(g: OnnxGraph, scope: string): string {
  const inside = [...new Set(g.nodesInScope(scope).map((n) => n.opType))].filter((o) => FUSED_OPS.includes(o));
  if (inside.length) return `fused op ${inside.join("/")} under ${scope} hides this tensor`;
  const anywhere = [...new Set(g.nodes.filter((n) => n.domain === "com.microsoft" && FUSED_OPS.includes(n.opType)).map((n) => n.opType))];
  if (anywhere.length) return `no matching node under ${scope}; the graph has fused ${anywhere.join("/")} ops (onnxruntime-optimized export?) that hide it`;
  return `no matching node under ${scope}`;
}

function setTap(f: Found, name: HookName, value: string | undefined, reason: () => string, broadcastBatch = false, fusionTail = false): void {
  if (value) f.sources.set(name, { kind: "tap", value, broadcastBatch, fusionTail });
  else f.unavailable.set(name, reason());
}

/**
 * The LayerNorm scale as a computed hook (see `ln-scale.ts` for why it is not a tap), recomputed
 * from the LayerNorm's input: the input of the decomposed LayerNorm's first ReduceMean (with the
 * config's epsilon), or the input of a fused `LayerNormalization` (with the node's own epsilon).
 * LayerNorm inputs are residual-stream tensors, rank 3 ([batch, pos, d_model]).
 */
function setLnScale(f: Found, g: OnnxGraph, name: HookName, scope: string, eps: number, tag: string): void {
  const fused = g.nodesInScope(scope).find((n) => n.opType === "LayerNormalization");
  if (fused?.input[0]) {
    const x = fused.input[0];
    const a = fused.attribute.find((at) => at.name === "epsilon");
    const fusedEps = a ? a.f : 1e-5;
    f.sources.set(name, { kind: "computed", build: (gg) => addLnScale(gg, x, 3, fusedEps, tag) });
    return;
  }
  const rm = firstOp(g, scope, "ReduceMean");
  const hasSqrt = firstOp(g, scope, "Sqrt") !== undefined;
  const x = rm?.input[0];
  if (x && hasSqrt) f.sources.set(name, { kind: "computed", build: (gg) => addLnScale(gg, x, 3, eps, tag) });
  else f.unavailable.set(name, fusedReason(g, scope));
}

const FUSED_GELU = ["FastGelu", "Gelu", "BiasGelu"];

/**
 * MLP pre/post around a fused GELU (onnxruntime names it `GPT2Gelu`, outside the block scope):
 * the GELU that reads the output of `<mlp>/c_fc`. Its output is `hook_post`; its input, plus its
 * bias input when the fusion absorbed the c_fc bias, is `hook_pre`.
 */
function setFusedMlp(f: Found, g: OnnxGraph, mlp: string, pre: HookName, post: HookName): boolean {
  const fcOut = g.nodesInScope(`${mlp}/c_fc`).flatMap((n) => n.output);
  const gelu = fcOut.flatMap((o) => g.consumers(o)).find((c) => FUSED_GELU.includes(c.opType));
  if (!gelu?.input[0] || !gelu.output[0]) return false;
  const [x, bias] = gelu.input;
  f.sources.set(post, { kind: "tap", value: gelu.output[0], broadcastBatch: false });
  if (!bias) {
    f.sources.set(pre, { kind: "tap", value: x!, broadcastBatch: false });
  } else {
    const b = bias;
    f.sources.set(pre, {
      kind: "computed",
      build: (gg) => new GraphEmitter(gg, `/tdb/${mlp}`).op("Add", [x!, b], {}, "pre"),
    });
  }
  return true;
}

/** The value that flows from nodes inside `scope` to a node outside it. */
function scopeOutput(g: OnnxGraph, scope: string): string | undefined {
  for (const n of g.nodesInScope(scope)) {
    for (const o of n.output) if (g.consumers(o).some((c) => !inScope(c, scope))) return o;
  }
  return undefined;
}

/** The non-constant value produced outside `scope` that nodes inside it read. */
function scopeInput(g: OnnxGraph, scope: string): string | undefined {
  for (const n of g.nodesInScope(scope)) {
    for (const i of n.input) {
      if (!i || g.initializer(i)) continue;
      const p = g.producer(i);
      if (p && !inScope(p, scope) && p.opType !== "Constant") return i;
    }
  }
  return undefined;
}

/** Hooks an attention-only block does not have (TransformerLens `attn_only` has no ln2, MLP or resid_mid). */
const MLP_HOOKS = ["hook_resid_mid", "ln2.hook_scale", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out"] as const;

/**
 * An attention-only block (TransformerLens `attn_only`): no node under `<scope>/mlp/` or
 * `<scope>/ln_2/`, and exactly one Add directly under the block scope, reading the attention.
 */
function isAttnOnlyBlock(g: OnnxGraph, scope: string, adds: readonly NodeProto[]): boolean {
  if (g.nodesInScope(`${scope}/mlp`).length > 0 || g.nodesInScope(`${scope}/ln_2`).length > 0) return false;
  return adds.length === 1 && adds[0]!.input.some((i) => { const p = g.producer(i); return p !== undefined && inScope(p, `${scope}/attn`); });
}

function discoverBlock(g: OnnxGraph, dims: ArchDims, layer: number, scope: string, f: Found): void {
  const h = (s: string) => `blocks.${layer}.${s}` as HookName;
  // Residual stream: the Adds directly under the block scope, in graph order.
  const adds = g.nodes.filter((n) => n.opType === "Add" && directChild(n, scope));
  const attnOnly = isAttnOnlyBlock(g, scope, adds);
  setLnScale(f, g, h("ln1.hook_scale"), `${scope}/ln_1`, dims.lnEps, `h.${layer}/ln_1`);
  if (!attnOnly) setLnScale(f, g, h("ln2.hook_scale"), `${scope}/ln_2`, dims.lnEps, `h.${layer}/ln_2`);

  // Attention: Split(q, k, v) -> Reshape [B,S,H,dh] each; Softmax input/output; MatMul(pattern, v) -> Transpose.
  const attn = `${scope}/attn`;
  const split = g.nodesInScope(attn).find((n) => n.opType === "Split" && n.output.length === 3);
  const heads = split?.output.map((o) => g.consumers(o).find((c) => c.opType === "Reshape")?.output[0]);
  const qkvReason = () => fusedReason(g, attn);
  setTap(f, h("attn.hook_q"), heads?.[0], qkvReason);
  setTap(f, h("attn.hook_k"), heads?.[1], qkvReason);
  setTap(f, h("attn.hook_v"), heads?.[2], qkvReason);
  const softmax = firstOp(g, attn, "Softmax");
  setTap(f, h("attn.hook_attn_scores"), softmax?.input[0], qkvReason);
  setTap(f, h("attn.hook_pattern"), softmax?.output[0], qkvReason);
  let z: string | undefined;
  if (softmax) {
    const mm = g.consumers(skipPassThrough(g, softmax.output[0]!)).find((c) => c.opType === "MatMul");
    z = mm ? g.consumers(mm.output[0]!).find((c) => c.opType === "Transpose")?.output[0] : undefined;
  }
  setTap(f, h("attn.hook_z"), z, qkvReason);
  const cProj = g.nodesInScope(`${attn}/c_proj`).find((n) => n.opType === "Gemm" || n.opType === "MatMul");
  const wO = cProj?.input[1];
  if (z && wO && g.initializer(wO)) {
    const zName = z;
    const layout = cProj?.opType === "Gemm" ? { transB: numAttr(cProj, "transB", 0) !== 0, alpha: numAttr(cProj, "alpha", 1) } : {};
    f.sources.set(h("attn.hook_result"), { kind: "computed", build: (gg) => addPerHeadResult(gg, zName, wO, layer, dims.nHeads, layout) });
  } else {
    f.unavailable.set(h("attn.hook_result"), z ? `no c_proj weight initializer under ${attn}/c_proj` : qkvReason());
  }

  const [mid, post] = adds;
  const attnOut = mid?.input.find((i) => { const p = g.producer(i); return p !== undefined && inScope(p, attn); });
  const residPre = mid?.input.find((i) => i !== attnOut);
  if (attnOnly) {
    // resid_post = resid_pre + attn_out; the MLP side does not exist (as in TransformerLens,
    // where an attn_only block has no hook_resid_mid, ln2 or MLP hooks).
    setTap(f, h("hook_resid_pre"), residPre, () => `no residual input to the attention Add under ${scope}`);
    setTap(f, h("hook_attn_out"), attnOut, () => `no attention output under ${scope}`);
    setTap(f, h("hook_resid_post"), mid!.output[0], () => `no residual Add under ${scope}`);
    const why = `attention-only block ${scope}: no ln_2 and no MLP (resid_post = resid_pre + attn_out, so there is no resid_mid)`;
    for (const s of MLP_HOOKS) f.unavailable.set(h(s), why);
    return;
  }
  const mlpOut = post?.input.find((i) => { const p = g.producer(i); return p !== undefined && inScope(p, `${scope}/mlp`); });
  const residReason = () => `residual Adds directly under ${scope} not found (found ${adds.length})`;
  setTap(f, h("hook_resid_pre"), attnOut ? residPre : undefined, residReason);
  setTap(f, h("hook_attn_out"), attnOut, residReason);
  setTap(f, h("hook_resid_mid"), mid?.output[0], residReason);
  setTap(f, h("hook_mlp_out"), mlpOut, residReason);
  setTap(f, h("hook_resid_post"), mlpOut ? post?.output[0] : undefined, residReason);

  const act = `${scope}/mlp/act`;
  if (setFusedMlp(f, g, `${scope}/mlp`, h("mlp.hook_pre"), h("mlp.hook_post"))) return;
  setTap(f, h("mlp.hook_pre"), scopeInput(g, act), () => fusedReason(g, `${scope}/mlp`));
  // The GELU's last Mul: onnxruntime fuses the decomposed GELU into FastGelu only if that
  // output is not itself a graph output.
  setTap(f, h("mlp.hook_post"), scopeOutput(g, act), () => fusedReason(g, `${scope}/mlp`), false, true);
}

/**
 * The initializer a Gather reads its table from: its data input, or the initializer a chain of
 * Casts makes it from (un-fused float16 graphs cast the table to float32 first).
 */
function gatherTable(g: OnnxGraph, n: NodeProto): string | undefined {
  let v = n.input[0] ?? "";
  for (let k = 0; k < 8 && !g.initializer(v); k++) {
    const p = g.producer(v);
    if (!p || (p.opType !== "Cast" && p.opType !== "Identity") || !p.input[0]) return undefined;
    v = p.input[0];
  }
  return g.initializer(v) ? v : undefined;
}

/** Gathers reading an initializer table with `rows` rows. */
function embeddingGather(g: OnnxGraph, rows: number, prefer: RegExp): NodeProto | undefined {
  const cands = g.nodes.filter((n) => {
    if (n.opType !== "Gather") return false;
    const name = gatherTable(g, n);
    const t = name ? g.initializer(name) : undefined;
    return t !== undefined && t.dims.length === 2 && Number(t.dims[0]) === rows;
  });
  return cands.find((n) => prefer.test(n.name)) ?? cands[0];
}

function discover(g: OnnxGraph, dims: ArchDims): HookMap {
  const f: Found = { sources: new Map(), unavailable: new Map() };
  const scopes = findBlockScopes(g);
  const wte = embeddingGather(g, dims.dVocab, /wte/);
  const wpe = embeddingGather(g, dims.nCtx, /wpe/);
  const embReason = () => "no Gather over an embedding initializer (fused EmbedLayerNormalization?)";
  setTap(f, "hook_embed", wte?.output[0], embReason);
  setTap(f, "hook_pos_embed", wpe?.output[0], embReason, true);
  // No block at all: not a graph this adapter understands (load says so), and the config's
  // n_layer was not checked against it (checkDims), so never loop over it.
  const nLayers = scopes.size === 0 ? 0 : dims.nLayers;
  const allNames = once(() => hookNamesFor(nLayers));
  // Say what the structural pass (normalize) found instead, for the load error.
  if (scopes.size === 0) f.unavailable.set("blocks.0.hook_resid_pre", structureReason(g, { dVocab: dims.dVocab, nCtx: dims.nCtx }));
  for (let l = 0; l < nLayers; l++) {
    const scope = scopes.get(l);
    if (scope) {
      discoverBlock(g, dims, l, scope, f);
    } else {
      for (const name of allNames()) {
        if (name.startsWith(`blocks.${l}.`)) f.unavailable.set(name, `no nodes under a block scope .../h.${l}/`);
      }
    }
  }
  const lnfScope = finalLnScope(g);
  if (lnfScope) setLnScale(f, g, "ln_final.hook_scale", lnfScope, dims.lnEps, "ln_f");
  else f.unavailable.set("ln_final.hook_scale", "no nodes under a .../ln_f/ scope");

  // Keep the table's order.
  const ordered = new Map<HookName, HookSource>();
  for (const name of allNames()) {
    const s = f.sources.get(name);
    if (s) ordered.set(name, s);
  }
  return { sources: ordered, unavailable: f.unavailable, nLayers: dims.nLayers };
}

function init(g: OnnxGraph, name: string | undefined, what: string): HostTensor<"float32"> {
  const t = name ? g.initializer(name) : undefined;
  if (!t) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `cannot read weight ${what}: no float initializer found (quantized or fused graph?)`, {
      value: what,
    });
  }
  const h = tensorFromProto(t);
  if (h.type !== "float32") {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `weight ${what} is ${h.type}; analysis weights need float32`, { value: h.type, allowed: ["float32"] });
  }
  return h as HostTensor<"float32">;
}

/** An int/float attribute of a node, or `fallback`. */
function numAttr(n: NodeProto | undefined, name: string, fallback: number): number {
  const a = n?.attribute.find((x) => x.name === name);
  if (!a) return fallback;
  return a.type === AttributeProto_AttributeType.FLOAT ? a.f : Number(a.i);
}

/** `dims` must be `want`; otherwise a typed error naming the weight. */
function expectDims(t: HostTensor<"float32">, want: readonly number[], what: string): void {
  if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `${what} is [${t.dims.join(", ")}]; expected [${want.join(", ")}] for this config`, {
      value: [...t.dims],
      allowed: [...want],
    });
  }
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

function scaled(t: HostTensor<"float32">, k: number): HostTensor<"float32"> {
  return k === 1 ? t : { type: "float32", data: (t.data as Float32Array).map((x) => x * k), dims: [...t.dims] };
}

/**
 * Reads a Conv1D (Gemm/MatMul + bias) under a scope as weight [in, out] and bias [out]. The
 * weight's layout comes from the node: `[in, out]` for MatMul and `Gemm(transB=0)`, `[out, in]`
 * (transposed here) for `Gemm(transB=1)`; Gemm's alpha and beta are folded in. Dims that fit
 * neither are `E_UNSUPPORTED_GRAPH`: guessing would hand wrong weights to the analyses.
 */
function conv1d(g: OnnxGraph, scope: string, nIn: number, nOut: number): { w: HostTensor<"float32">; b: HostTensor<"float32"> } {
  const mm = g.nodesInScope(scope).find((n) => n.opType === "Gemm" || n.opType === "MatMul");
  const w = init(g, mm?.input[1], `${scope} weight`);
  let bias = mm?.opType === "Gemm" ? mm.input[2] : undefined;
  if (!bias) bias = g.nodesInScope(scope).find((n) => n.opType === "Add" && n.input.some((i) => g.initializer(i)))?.input.find((i) => g.initializer(i));
  const b = init(g, bias, `${scope} bias`);
  const gemm = mm?.opType === "Gemm" ? mm : undefined;
  const transB = numAttr(gemm, "transB", 0) !== 0;
  const [r, c] = w.dims;
  const fits = w.dims.length === 2 && (transB ? r === nOut && c === nIn : r === nIn && c === nOut);
  if (!fits) {
    throw new TdbError(
      "E_UNSUPPORTED_GRAPH",
      `${scope} weight ${mm?.input[1]} is [${w.dims.join(", ")}] read with transB=${transB ? 1 : 0}; ` +
        `expected [${nIn}, ${nOut}] with transB=0 or [${nOut}, ${nIn}] with transB=1 (d_in ${nIn}, d_out ${nOut} from the config)`,
      { value: [...w.dims], allowed: [[nIn, nOut, "transB=0"], [nOut, nIn, "transB=1"]] },
    );
  }
  if (b.data.length !== nOut) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `${scope} bias ${bias} has ${b.data.length} elements; expected ${nOut}`, { value: [...b.dims], allowed: [nOut] });
  }
  const wIn: HostTensor<"float32"> = transB ? { type: "float32", data: transpose2d(w.data as Float32Array, nOut, nIn), dims: [nIn, nOut] } : w;
  return { w: scaled(wIn, numAttr(gemm, "alpha", 1)), b: scaled({ type: "float32", data: b.data, dims: [nOut] }, numAttr(gemm, "beta", 1)) };
}

/** LayerNorm affine parameters: the initializer read by the scope's Mul and by its last Add. */
function lnParams(g: OnnxGraph, scope: string): { w: HostTensor<"float32">; b: HostTensor<"float32"> } {
  const nodes = g.nodesInScope(scope);
  const mul = nodes.find((n) => n.opType === "Mul" && n.input.some((i) => g.initializer(i)));
  const adds = nodes.filter((n) => n.opType === "Add" && n.input.some((i) => g.initializer(i) && g.initializer(i)!.dims.length === 1 && Number(g.initializer(i)!.dims[0]) > 1));
  const ln = nodes.find((n) => n.opType === "LayerNormalization");
  return {
    w: init(g, ln?.input[1] ?? mul?.input.find((i) => g.initializer(i)), `${scope} weight`),
    b: init(g, ln?.input[2] ?? adds[adds.length - 1]?.input.find((i) => g.initializer(i)), `${scope} bias`),
  };
}

/** Splits [d_model, n*d_head] columns into [n_head, d_model, d_head]. */
function splitHeadsIn(w: Float32Array, dModel: number, cols: number, offset: number, nHeads: number, dHead: number): HostTensor<"float32"> {
  const out = new Float32Array(nHeads * dModel * dHead);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < dModel; i++) {
      for (let j = 0; j < dHead; j++) out[(h * dModel + i) * dHead + j] = w[i * cols + offset + h * dHead + j]!;
    }
  }
  return { type: "float32", data: out, dims: [nHeads, dModel, dHead] };
}

/**
 * The unembedding: the MatMul producing the logits (the graph output `logits`, else the first
 * output), possibly followed by an Add of a `[d_vocab]` initializer, the bias `b_U` (zeros when
 * there is none, as in GPT-2).
 */
function unembedding(g: OnnxGraph, dims: ArchDims): { W_U: HostTensor<"float32">; b_U: HostTensor<"float32"> } {
  const outs = g.outputNames();
  const logits = outs.includes("logits") ? "logits" : outs[0];
  let node = logits ? g.producer(logits) : undefined;
  // A float16 file written with keep_io_types casts its logits to float32 (an identity once widened at load).
  while ((node?.opType === "Cast" || node?.opType === "Identity") && node.input[0]) node = g.producer(node.input[0]);
  let b_U: HostTensor<"float32"> = { type: "float32", data: new Float32Array(dims.dVocab), dims: [dims.dVocab] };
  if (node?.opType === "Add") {
    const biasName = node.input.find((i) => g.initializer(i));
    const other = node.input.find((i) => i !== biasName);
    const mm = other ? g.producer(other) : undefined;
    if (biasName && mm?.opType === "MatMul") {
      const b = init(g, biasName, "unembedding bias (Add after the logits MatMul)");
      if (b.data.length !== dims.dVocab) {
        throw new TdbError("E_UNSUPPORTED_GRAPH", `unembedding bias ${biasName} has ${b.data.length} elements; expected d_vocab = ${dims.dVocab}`, {
          value: [...b.dims],
          allowed: [dims.dVocab],
        });
      }
      b_U = { type: "float32", data: b.data, dims: [dims.dVocab] };
      node = mm;
    }
  }
  if (node?.opType !== "MatMul") node = g.nodes.find((n) => n.opType === "MatMul" && outs.includes(n.output[0]!));
  const W_U = init(g, node?.input[1], "unembedding (MatMul producing logits)");
  expectDims(W_U, [dims.dModel, dims.dVocab], "unembedding (MatMul producing logits)");
  return { W_U, b_U };
}

/**
 * The weights in TransformerLens layout. Every field is read from the graph on first use (and
 * checked then): attribution reads W_O, W_out, W_U and ln_f, not the 0.5 GB of all of them.
 */
function weights(g: OnnxGraph, dims: ArchDims): ModelWeights {
  const scopes = findBlockScopes(g);
  const { nHeads: H, dModel: D, dHead: dh } = dims;
  const blocks: LayerWeights[] = [];
  for (let l = 0; l < dims.nLayers; l++) {
    const s = scopes.get(l);
    if (!s) throw new TdbError("E_UNSUPPORTED_GRAPH", `block ${l} not found in the graph`, { value: l, allowed: [...scopes.keys()] });
    const qkv = once(() => conv1d(g, `${s}/attn/c_attn`, D, 3 * D));
    const o = once(() => conv1d(g, `${s}/attn/c_proj`, H * dh, D));
    /** An attention-only block has no MLP and no ln_2 weights: say so rather than "no initializer". */
    const mlpPart = <T>(name: string, read: () => T) => () => {
      if (g.nodesInScope(`${s}/${name}`).length === 0) {
        throw new TdbError("E_UNSUPPORTED_GRAPH", `block ${l} has no ${name} weights: nothing under ${s}/${name}/ (an attention-only block)`, {
          value: `${s}/${name}`,
          allowed: "blocks with an MLP",
        });
      }
      return read();
    };
    const fc = once(mlpPart("mlp", () => conv1d(g, `${s}/mlp/c_fc`, D, dims.dMlp)));
    const proj = once(mlpPart("mlp", () => conv1d(g, `${s}/mlp/c_proj`, dims.dMlp, D)));
    const ln = (name: "ln_1" | "ln_2") =>
      once(() => {
        if (name === "ln_2") mlpPart("ln_2", () => undefined)();
        const p = lnParams(g, `${s}/${name}`);
        expectDims(p.w, [D], `${s}/${name} weight`);
        expectDims(p.b, [D], `${s}/${name} bias`);
        return p;
      });
    const ln1 = ln("ln_1");
    const ln2 = ln("ln_2");
    const wIn = (k: number) => () => splitHeadsIn(qkv().w.data as Float32Array, D, 3 * D, k * D, H, dh);
    const bias = (k: number) => (): HostTensor<"float32"> => ({ type: "float32", data: (qkv().b.data as Float32Array).slice(k * D, (k + 1) * D), dims: [H, dh] });
    blocks.push(
      lazyRecord<LayerWeights>({
        W_Q: wIn(0),
        W_K: wIn(1),
        W_V: wIn(2),
        b_Q: bias(0),
        b_K: bias(1),
        b_V: bias(2),
        // c_proj rows are ordered (head, d_head): a reshape, no copy.
        W_O: () => ({ type: "float32", data: o().w.data, dims: [H, dh, D] }),
        b_O: () => o().b,
        W_in: () => fc().w,
        b_in: () => fc().b,
        W_out: () => proj().w,
        b_out: () => proj().b,
        ln1_w: () => ln1().w,
        ln1_b: () => ln1().b,
        ln2_w: () => ln2().w,
        ln2_b: () => ln2().b,
      }),
    );
  }
  const lnf = once(() => {
    const p = lnParams(g, finalLnScope(g) ?? "/transformer/ln_f");
    expectDims(p.w, [D], "ln_f weight");
    expectDims(p.b, [D], "ln_f bias");
    return p;
  });
  const unembed = once(() => unembedding(g, dims));
  const embedding = (rows: number, pattern: RegExp, what: string) => () => {
    const gather = embeddingGather(g, rows, pattern);
    const t = init(g, gather && gatherTable(g, gather), what);
    expectDims(t, [rows, D], what);
    return t;
  };
  return lazyRecord<ModelWeights>({
    W_E: embedding(dims.dVocab, /wte/, "token embedding"),
    W_pos: embedding(dims.nCtx, /wpe/, "position embedding"),
    W_U: () => unembed().W_U,
    b_U: () => unembed().b_U,
    lnf_w: () => lnf().w,
    lnf_b: () => lnf().b,
    blocks: () => blocks,
  });
}

/**
 * The GPT-2 adapter (Hugging Face `GPT2LMHeadModel` exported to ONNX by TorchScript/optimum).
 */
export const gpt2Adapter: ArchitectureAdapter = {
  name: "GPT-2",
  modelTypes: ["gpt2"],
  checkDims: gpt2CheckDims,
  discover,
  weights,
  finalNormScale: gpt2FinalNormScale,
  mlpOutWeight: gpt2MlpOutWeight,
  normalize: normalizeGpt2,
  withPast: gpt2WithPast,
};
