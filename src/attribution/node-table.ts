/**
 * The Transformer Debugger node table: for every MLP neuron (layer, position, index), attention
 * head node (layer, head, query position, key position) and token embedding, its activation,
 * write magnitude, direct effect and estimated total effect (activation x gradient) on a loss,
 * from one onnxruntime run of the attribution graph (forward + our backward pass).
 *
 * Columns (g = d(loss)/d(residual stream the loss reads), non-zero only where the loss reads it):
 * - MLP neuron: activation a (post-GELU); write |a| ||W_out[i]||; direct a (W_out[i] . g[t]);
 *   total a dL/da.
 * - Attention head node: activation A = pattern[h, q, k]; write A ||v[k,h] W_O[h]||; direct
 *   A (v[k,h] W_O[h] . g[q]); total A dL/dA.
 * - Token embedding: activation and write ||e[t]||; direct e[t] . g[t]; total sum_d e dL/de.
 * - SAE latent (with `saes`): activation f_i (the SAE's own forward rule on the hook's value);
 *   write |f_i| ||W_dec[i] / s|| (mapped through W_out or W_O for SAEs on `mlp.hook_post` or
 *   `attn.hook_z`); direct f_i (W_dec[i] / s . g[t]) (mapped likewise); total f_i dL/df_i =
 *   f_i (dL/dx[t] . W_dec[i] / s), the error term kept. `s` undoes the SAE's input
 *   normalisation (see {@link SaeLike} and the latents module).
 *
 * @module
 */
import { boolean, object, options, positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { nodeTableHtml, summarizeNodeTable, withDisplay } from "../base/inspect.js";
import type { HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import type { ModelInput } from "../runtime/options.js";
import type { HostTensor } from "../onnx/tensor.js";
import type { TokenLike, TopToken } from "../trace/trace.js";
import { buildAttributionGraph, LOSS_WEIGHTS_INPUT, NEURON_DIRECT_MASK_INPUT, TOP_K_INPUT, type AttributionGraph, type AttributionLoss } from "./graph.js";
import { lossWeights, residualGradient, resolveLogitDiff, unembedDirection } from "./loss.js";
import { LOGIT_POSITIONS_INPUT } from "../runtime/patched-graph.js";
import { resolvePosition } from "../base/positions.js";
import { latentColumns, latentPreDirection, readsFor, residualPoint, resolveSae, resolveSaes, type LatentEntry, type ResolvedSae, type SaeLike, type SaeTerms } from "./latents.js";

/** Node kinds of the table (`sae_latent` only with `saes`). */
export type NodeType = "mlp_neuron" | "attention_head" | "token_embedding" | "sae_latent";
const NODE_TYPES: readonly NodeType[] = ["mlp_neuron", "attention_head", "token_embedding", "sae_latent"];

/** How many nodes of each type were scored (`sae_latent`: positions x d_sae summed over the SAEs, present only with `saes`). */
export type NodeCounts = Record<Exclude<NodeType, "sae_latent">, number> & { sae_latent?: number };

/** One row of the node table. */
export interface AttributionNode {
  type: NodeType;
  /** Stable id: `mlp.L.I@T`, `attn.L.H@Q:K`, `embed@T`, `sae.<hook>.<latent>@T`. */
  id: string;
  layer?: number;
  head?: number;
  /** Neuron index, or the latent's index for SAE latents. */
  index?: number;
  /** The hook an SAE latent's SAE reads. */
  hook?: string;
  /** Token position (the query position for attention nodes). */
  position: number;
  /** Key position of attention nodes. */
  keyPosition?: number;
  /** The token at `position`. */
  token: string;
  activation: number;
  writeMagnitude: number;
  directEffect: number;
  totalEffect: number;
  /** The node's explanation, when explanations were given (`Model.attribute`'s `explanations`). */
  explanation?: string;
  /** The explanation's score (correlation of simulated and true activations). */
  explanationScore?: number;
}

/** Columns of the table. */
export type Column = "activation" | "writeMagnitude" | "directEffect" | "totalEffect";

/** Result of {@link Model.attribute} and {@link Model.traceUpstream}. */
export interface NodeTable {
  /** Union of the top-k of every column and the bottom-k of the effect columns, by |totalEffect| descending. */
  nodes: AttributionNode[];
  /** The loss of the run (the logit difference, or the traced node's pre-activation). */
  loss: number;
  /** Token strings of the prompt. */
  tokens: string[];
  /**
   * Sum of the total effects of the nodes at each token (neurons and embeddings at it, attention
   * nodes by key position): Transformer Debugger's token heatmap. SAE latents are not added: they
   * re-express a hook's value that the model's own nodes already account for.
   */
  tokenEffects: { position: number; token: string; totalEffect: number }[];
  /** How many nodes of each type were scored. */
  counts: NodeCounts;
  /**
   * With `saes`, per SAE: the error term's and the decoder bias's total effects at each position.
   * At each position, the latents' total effects + `biasEffect` + `errorEffect` = x . dL/dx (the
   * hook's own activation x gradient).
   */
  saeTerms?: SaeTerms[];
  /** Top and bottom logits at the last position (attribute only). */
  topLogits?: TopToken[];
  bottomLogits?: TopToken[];
}

/** Options of {@link Model.attribute}. */
export interface AttributeOptions {
  target: TokenLike | readonly TokenLike[];
  distractor: TokenLike | readonly TokenLike[];
  /** Rows per column in the table. [default: 20] */
  topK?: number;
  /** Node kinds in the table. [default: all] */
  nodeTypes?: readonly NodeType[];
  /** Hold the final LayerNorm's scale constant in the backward pass, as Transformer Debugger does. [default: true] */
  detachFinalLnScale?: boolean;
  /** Prepend BOS to a string prompt. [default: true] */
  prependBos?: boolean;
  /**
   * Sparse autoencoders whose latents become nodes (`sae_latent`), one per hook; each names its
   * hook in `config.hookName` (residual stream, attention or MLP output, `mlp.hook_post`,
   * `attn.hook_z`). [default: none]
   */
  saes?: readonly SaeLike[];
}

/** A node to trace upstream from. */
export type UpstreamNode =
  | { type: "mlp_neuron"; layer: number; index: number; position: number }
  | { type: "attention_head"; layer: number; head: number; position: number; keyPosition: number }
  /** An SAE latent: the loss is its encoder pre-activation at `position`. */
  | { type: "sae_latent"; sae: SaeLike; latent: number; position: number };

/** Options of {@link Model.traceUpstream}. */
export interface UpstreamOptions {
  /**
   * For attention nodes: differentiate the attention logit through the query, the key, or both;
   * or `value`: the node's value-path direct effect on the logit difference (its write
   * `A v[k,h] W_O[h]` dotted with the residual gradient at the last position, with the attention
   * probability held constant), which needs `target` and `distractor`. [default: "both"]
   */
  through?: "query" | "key" | "both" | "value";
  /** For `through: "value"`: the logit difference's tokens. */
  target?: TokenLike | readonly TokenLike[];
  distractor?: TokenLike | readonly TokenLike[];
  topK?: number;
  nodeTypes?: readonly NodeType[];
  prependBos?: boolean;
  /** SAEs whose latents are upstream nodes of the table (as in {@link AttributeOptions.saes}). */
  saes?: readonly SaeLike[];
}

const graphs = new WeakMap<ModelRuntime, Map<string, AttributionGraph>>();

function graphFor(model: ModelRuntime, key: string, loss: AttributionLoss, detach: boolean, gradHooks: readonly HookName[]): AttributionGraph {
  let m = graphs.get(model);
  if (!m) graphs.set(model, (m = new Map()));
  let g = m.get(key);
  if (!g) m.set(key, (g = buildAttributionGraph(model, loss, detach, gradHooks)));
  return g;
}

/** Keeps the k largest (or smallest) scores seen, as indices; a small binary heap. */
class TopK {
  private readonly idx: number[] = [];
  private readonly val: number[] = [];
  constructor(
    private readonly k: number,
    private readonly largest: boolean,
  ) {}
  push(i: number, v: number): void {
    const s = this.largest ? v : -v;
    if (!(s === s)) return; // NaN
    if (this.idx.length < this.k) {
      this.idx.push(i);
      this.val.push(s);
      this.up(this.idx.length - 1);
    } else if (this.k > 0 && s > this.val[0]!) {
      this.idx[0] = i;
      this.val[0] = s;
      this.down(0);
    }
  }
  indices(): number[] {
    return [...this.idx];
  }
  /** Values must beat this to enter (in the heap's sign: negated for bottom-k). */
  get bar(): number {
    return this.idx.length < this.k ? -Infinity : this.val[0]!;
  }
  private swap(a: number, b: number): void {
    [this.idx[a], this.idx[b]] = [this.idx[b]!, this.idx[a]!];
    [this.val[a], this.val[b]] = [this.val[b]!, this.val[a]!];
  }
  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.val[p]! <= this.val[i]!) return;
      this.swap(i, p);
      i = p;
    }
  }
  private down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.val.length && this.val[l]! < this.val[m]!) m = l;
      if (r < this.val.length && this.val[r]! < this.val[m]!) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

const f32 = (t: HostTensor | undefined, name: string): Float32Array => {
  if (!t || t.type !== "float32") throw new TdbError("E_UNSUPPORTED_GRAPH", `attribution output ${name} missing or not float32`, { value: name });
  return t.data as Float32Array;
};

/** Runs an attribution graph and builds the node table. `read` is the residual the loss reads (its gradient is `g`). */
async function nodeTable(
  model: ModelRuntime,
  input: ModelInput,
  key: string,
  loss: AttributionLoss,
  detach: boolean,
  weights: (S: number) => HostTensor,
  opts: { topK?: number; nodeTypes?: readonly NodeType[]; prependBos?: boolean },
  /**
   * Only neurons of layers < mlpBefore and heads of layers < headsBefore write directly into the
   * residual the loss reads; SAE latents do when their write point is <= readPoint.
   */
  { mlpBefore, headsBefore, readPoint }: { mlpBefore: number; headsBefore: number; readPoint: number },
  saes: readonly ResolvedSae[] = [],
): Promise<{ table: NodeTable; logits: Float32Array }> {
  const c = model.config;
  const L = c.nLayers;
  const H = c.nHeads;
  const d = c.dModel;
  const dm = c.dMlp;
  const batch = model.toBatch(input, { prependBos: opts.prependBos });
  if (batch.rows.length !== 1) throw new TdbError("E_BAD_INPUT", `attribution takes one prompt; got ${batch.rows.length}`, { value: batch.rows.length, allowed: 1 });
  const types = opts.nodeTypes ?? NODE_TYPES;
  for (const t of types) if (!NODE_TYPES.includes(t)) throw new TdbError("E_BAD_OPTION", `unknown node type ${JSON.stringify(t)}`, { value: t, allowed: NODE_TYPES });
  if (opts.nodeTypes?.includes("sae_latent") && saes.length === 0) {
    throw new TdbError("E_BAD_OPTION", "node type sae_latent needs SAEs: pass saes", { value: "sae_latent", allowed: "saes: [sae, ...] with the node type" });
  }
  const k = positiveInt("topK", opts.topK ?? 20);
  const S = batch.seqLen;
  // SAE hooks add their values and gradients to the graph; without SAEs the graph is the plain one.
  const saeHooks = types.includes("sae_latent") ? saes.map((s) => s.hook) : [];
  const graphKey = saeHooks.length ? `${key}|sae:${saeHooks.join(",")}` : key;
  const graph = graphFor(model, graphKey, loss, detach, saeHooks);
  const lossWeightsFeed = weights(S);
  const fetch = [
    "logits",
    graph.loss,
    graph.embed,
    graph.gradEmbed,
    graph.gradResid,
    ...graph.neuronPicks,
    ...graph.neuronColumns,
    ...graph.neuronTokenTotals,
    ...graph.pattern,
    ...graph.gradPattern,
    ...graph.valueWriteNorm,
    ...graph.valueWriteDotGrad,
    ...graph.hookValues,
    ...graph.hookGrads,
  ];
  const out = await model.withAuxSession(
    graphKey,
    () => graph.model,
    (session) => {
      const feeds = model.tokenFeeds(session, batch);
      feeds[LOGIT_POSITIONS_INPUT] = { type: "int64", data: new BigInt64Array([BigInt(S - 1)]), dims: [1, 1, 1] };
      feeds[LOSS_WEIGHTS_INPUT] = lossWeightsFeed;
      feeds[TOP_K_INPUT] = { type: "int64", data: new BigInt64Array([BigInt(Math.min(k, S * dm))]), dims: [1] };
      feeds[NEURON_DIRECT_MASK_INPUT] = { type: "float32", data: Float32Array.from({ length: L }, (_, l) => (l < mlpBefore ? 1 : 0)), dims: [L] };
      return session.run(feeds, [...new Set(fetch)]);
    },
  );
  const strTokens = model.toStrTokens(batch.rows[0]!);
  const gRes = f32(out[graph.gradResid], "grad resid"); // [1, S, d]
  const gAt = (t: number) => gRes.subarray(t * d, (t + 1) * d);
  const nodes: AttributionNode[] = [];
  const tokenTotals = new Float64Array(S);
  const counts: NodeCounts = { mlp_neuron: 0, attention_head: 0, token_embedding: 0 };
  const cols: Column[] = ["activation", "writeMagnitude", "directEffect", "totalEffect"];

  /**
   * Collects, for one node kind, the union of its per-column top-k (and bottom-k of the effect
   * columns) as rows. Columns are flat arrays over the kind's nodes; NaN marks non-nodes
   * (masked attention entries).
   */
  const collect = (columns: readonly ArrayLike<number>[], row: (i: number) => AttributionNode): AttributionNode[] => {
    const picked = new Set<number>();
    columns.forEach((col, c) => {
      for (const largest of c >= 2 ? [true, false] : [true]) {
        const h = new TopK(k, largest);
        for (let i = 0; i < col.length; i++) h.push(i, col[i]!);
        for (const i of h.indices()) picked.add(i);
      }
    });
    return [...picked].map(row);
  };

  if (types.includes("mlp_neuron")) {
    // Columns and top-k were computed in onnxruntime: only the picked neurons come back.
    // Attention-only blocks have no neurons: they are not in graph.mlpLayers.
    for (const [j0, l] of graph.mlpLayers.entries()) {
      const picks = out[graph.neuronPicks[j0]!]!.data as BigInt64Array;
      const colsAt = f32(out[graph.neuronColumns[j0]!], `neuron columns ${l}`); // [4, n]
      const tokenTotal = f32(out[graph.neuronTokenTotals[j0]!], `neuron token totals ${l}`);
      for (let t = 0; t < S; t++) tokenTotals[t]! += tokenTotal[t]!;
      counts.mlp_neuron += S * dm;
      const n = picks.length;
      const seen = new Set<number>();
      for (let j = 0; j < n; j++) {
        const x = Number(picks[j]!);
        if (seen.has(x)) continue;
        seen.add(x);
        const t = Math.floor(x / dm);
        const i = x - t * dm;
        nodes.push({
          type: "mlp_neuron",
          id: `mlp.${l}.${i}@${t}`,
          layer: l,
          index: i,
          position: t,
          token: strTokens[t]!,
          activation: colsAt[j]!,
          writeMagnitude: colsAt[n + j]!,
          directEffect: colsAt[2 * n + j]!,
          totalEffect: colsAt[3 * n + j]!,
        });
      }
    }
  }
  if (types.includes("attention_head")) {
    for (let l = 0; l < L; l++) {
      const A = f32(out[graph.pattern[l]!], `pattern ${l}`); // [1,H,S,S]
      const gA = f32(out[graph.gradPattern[l]!], `grad pattern ${l}`);
      const vwNorm = f32(out[graph.valueWriteNorm[l]!], `value write norm ${l}`); // [1,H,S]
      const vwDot = f32(out[graph.valueWriteDotGrad[l]!], `value write . grad ${l}`); // [1,H,S(key),S(query)]
      const headsDirect = l < headsBefore;
      // x = (h * S + q) * S + key; only key <= q are nodes (causal). One pass into six heaps.
      const heaps = [new TopK(k, true), new TopK(k, true), new TopK(k, true), new TopK(k, true), new TopK(k, false), new TopK(k, false)];
      const bars = heaps.map((hp) => hp.bar);
      const offer = (c: number, x: number, v: number, s: number) => {
        if (s > bars[c]!) {
          heaps[c]!.push(x, v);
          bars[c] = heaps[c]!.bar;
        }
      };
      const columns = (x: number, h: number, q: number, key: number): [number, number, number, number] => {
        const p = A[x]!;
        return [p, p * vwNorm[h * S + key]!, headsDirect ? p * vwDot[(h * S + key) * S + q]! : 0, p * gA[x]!];
      };
      for (let h = 0; h < H; h++) {
        for (let q = 0; q < S; q++) {
          for (let key = 0; key <= q; key++) {
            const x = (h * S + q) * S + key;
            const [p, write, dir, tot] = columns(x, h, q, key);
            tokenTotals[key]! += tot;
            offer(0, x, p, p);
            offer(1, x, write, write);
            offer(2, x, dir, dir);
            offer(3, x, tot, tot);
            offer(4, x, dir, -dir);
            offer(5, x, tot, -tot);
          }
        }
      }
      counts.attention_head += (H * S * (S + 1)) / 2;
      for (const x of new Set(heaps.flatMap((hp) => hp.indices()))) {
        const key = x % S;
        const q = Math.floor(x / S) % S;
        const h = Math.floor(x / (S * S));
        const [act, write, direct, total] = columns(x, h, q, key);
        nodes.push({
          type: "attention_head",
          id: `attn.${l}.${h}@${q}:${key}`,
          layer: l,
          head: h,
          position: q,
          keyPosition: key,
          token: strTokens[q]!,
          activation: act,
          writeMagnitude: write,
          directEffect: direct,
          totalEffect: total,
        });
      }
    }
  }
  if (types.includes("token_embedding")) {
    const e = f32(out[graph.embed], "embed");
    const ge = f32(out[graph.gradEmbed], "grad embed");
    const norm = new Float64Array(S);
    const directCol = new Float64Array(S);
    const total = new Float64Array(S);
    for (let t = 0; t < S; t++) {
      const g = gAt(t);
      let n2 = 0;
      for (let j = 0; j < d; j++) {
        const v = e[t * d + j]!;
        n2 += v * v;
        directCol[t]! += v * g[j]!;
        total[t]! += v * ge[t * d + j]!;
      }
      norm[t] = Math.sqrt(n2);
      tokenTotals[t]! += total[t]!;
    }
    counts.token_embedding += S;
    nodes.push(
      ...collect([norm, norm, directCol, total], (t) => ({
        type: "token_embedding",
        id: `embed@${t}`,
        position: t,
        token: strTokens[t]!,
        activation: norm[t]!,
        writeMagnitude: norm[t]!,
        directEffect: directCol[t]!,
        totalEffect: total[t]!,
      })),
    );
  }
  let saeTerms: SaeTerms[] | undefined;
  if (saeHooks.length) {
    saeTerms = [];
    counts.sae_latent = 0;
    for (const [j, s] of saes.entries()) {
      const x = f32(out[graph.hookValues[j]!], `${s.hook} value`);
      const gx = f32(out[graph.hookGrads[j]!], `${s.hook} gradient`);
      const { entries, terms } = await latentColumns(model, s, x, gx, gRes, S, s.writePoint <= readPoint);
      saeTerms.push(terms);
      counts.sae_latent += terms.latents;
      const columns = cols.map((c2) => entries.map((en) => en[c2]));
      const row = (en: LatentEntry): AttributionNode => ({
        type: "sae_latent",
        id: `sae.${s.hook}.${en.latent}@${en.position}`,
        layer: s.layer,
        index: en.latent,
        hook: s.hook,
        position: en.position,
        token: strTokens[en.position]!,
        activation: en.activation,
        writeMagnitude: en.writeMagnitude,
        directEffect: en.directEffect,
        totalEffect: en.totalEffect,
      });
      nodes.push(...collect(columns, (i) => row(entries[i]!)));
    }
  }
  // Keep the union of the per-column top/bottom-k over all kinds.
  const keep = new Set<AttributionNode>();
  const pick = (value: (n: AttributionNode) => number, largest: boolean) => {
    [...nodes].sort((a, b) => (largest ? value(b) - value(a) : value(a) - value(b))).slice(0, k).forEach((n) => keep.add(n));
  };
  for (const c2 of cols) pick((n) => n[c2], true);
  pick((n) => n.directEffect, false);
  pick((n) => n.totalEffect, false);
  // A short summary in consoles and notebooks (non-enumerable: JSON and equality ignore it).
  const table: NodeTable = withDisplay<NodeTable>(
    {
      nodes: [...keep].sort((a, b) => Math.abs(b.totalEffect) - Math.abs(a.totalEffect)),
      loss: f32(out[graph.loss], "loss")[0]!,
      tokens: strTokens,
      tokenEffects: strTokens.map((token, position) => ({ position, token, totalEffect: tokenTotals[position]! })),
      counts,
      ...(saeTerms ? { saeTerms } : {}),
    },
    { text: (t) => summarizeNodeTable(t), html: (t) => nodeTableHtml(t) },
  );
  return { table, logits: f32(out.logits, "logits") };
}

/**
 * The Transformer Debugger node table for "why target rather than distractor?" at the last
 * position: loss = mean target logit - mean distractor logit.
 *
 * @example
 * ```ts
 * const t = await attribute(model, "When John and Mary went to the shops, John gave the bag to", { target: " Mary", distractor: " John" });
 * t.nodes.slice(0, 10).map((n) => [n.id, n.totalEffect]);
 * ```
 */
export async function attribute(model: ModelRuntime, input: ModelInput, attributeOpts: AttributeOptions): Promise<NodeTable> {
  const opts = object<AttributeOptions>("attribute options", attributeOpts, "an options object with target and distractor", "E_BAD_OPTION");
  const tokens = resolveLogitDiff(model, opts.target, opts.distractor);
  const detach = boolean("detachFinalLnScale", opts.detachFinalLnScale ?? true);
  const w = lossWeights(model.config.dVocab, tokens);
  const L = model.config.nLayers;
  const saes = resolveSaes(model, opts.saes);
  const { table, logits } = await nodeTable(
    model,
    input,
    `attr:logitDiff:${detach}`,
    { kind: "logitDiff" },
    detach,
    () => ({ type: "float32", data: w, dims: [w.length] }),
    opts,
    { mlpBefore: L, headsBefore: L, readPoint: 2 * L },
    saes,
  );
  const top = new TopK(10, true);
  const bottom = new TopK(10, false);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    top.push(i, logits[i]!);
    bottom.push(i, logits[i]!);
    if (logits[i]! > max) max = logits[i]!;
  }
  const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
  const entry = (t: number): TopToken => ({ token: t, str: model.toStrTokens([t])[0]!, logit: logits[t]!, logProb: logits[t]! - lse, prob: Math.exp(logits[t]! - lse) });
  table.topLogits = top.indices().sort((a, b) => logits[b]! - logits[a]!).map(entry);
  table.bottomLogits = bottom.indices().sort((a, b) => logits[a]! - logits[b]!).map(entry);
  return table;
}

/**
 * The node table with the loss replaced by one node's pre-activation: an MLP neuron's
 * pre-GELU value, a head's attention logit at [query, key] (through the query, the key, or
 * both), or an SAE latent's encoder pre-activation (`((x - mean) * s - b_dec) . W_enc[:, i] +
 * b_enc[i]`, for gated SAEs the magnitude path; linear in the SAE's hook value `x`, with a
 * per-row normalisation's scale held at its value). Nodes in and after the traced node's layer have no effect on it. Direct
 * effects are through the residual stream the traced node reads (an SAE on `hook_attn_out` or
 * `attn.hook_z` of layer L reads `resid_pre` of L; on `hook_mlp_out` or `mlp.hook_post`,
 * `resid_mid` of L; on a residual hook, that hook).
 *
 * @example
 * ```ts
 * const up = await model.traceUpstream(prompt, { type: "sae_latent", sae, latent: 123, position: -1 }, { saes: [earlierSae] });
 * ```
 */
export async function traceUpstream(model: ModelRuntime, input: ModelInput, node: UpstreamNode, upstreamOpts?: UpstreamOptions): Promise<NodeTable> {
  const opts = options("traceUpstream options", upstreamOpts);
  const c = model.config;
  if (typeof node !== "object" || node === null) {
    throw new TdbError("E_BAD_INPUT", "traceUpstream needs a node: { type: \"mlp_neuron\" | \"attention_head\" | \"sae_latent\", ... }", {
      value: node === null ? null : typeof node,
      allowed: ["mlp_neuron", "attention_head", "sae_latent"],
    });
  }
  if (!["mlp_neuron", "attention_head", "sae_latent"].includes((node as { type?: string }).type ?? "")) {
    const t = (node as { type?: string }).type;
    throw new TdbError("E_BAD_OPTION", `cannot trace upstream of a ${JSON.stringify(t)} node`, { value: t ?? "missing", allowed: ["mlp_neuron", "attention_head", "sae_latent"] });
  }
  const saes = resolveSaes(model, opts.saes);
  if (node.type === "sae_latent") return traceLatent(model, input, node, opts, saes);
  const layerOk = Number.isInteger(node.layer) && node.layer >= 0 && node.layer < c.nLayers;
  if (!layerOk) throw new TdbError("E_LAYER_RANGE", `layer ${node.layer} out of range; the model has layers 0..${c.nLayers - 1}`, { value: node.layer, allowed: [0, c.nLayers - 1] });
  const batch = model.toBatch(input, { prependBos: opts.prependBos });
  const S = batch.seqLen;
  const pos = (p: number, what: string) => resolvePosition(p, S, what);
  let loss: AttributionLoss;
  let key: string;
  let weights: () => HostTensor;
  let direct: { mlpBefore: number; headsBefore: number; readPoint: number };
  if (node.type === "mlp_neuron") {
    // An attention-only block has no neurons: say so, rather than name the missing resid_mid.
    const why = Number.isInteger(node.layer) ? model.hookMap.unavailable.get(`blocks.${node.layer}.mlp.hook_pre` as HookName) : undefined;
    if (why !== undefined) {
      throw new TdbError("E_HOOK_UNAVAILABLE", `layer ${node.layer} has no MLP neurons to trace upstream of: ${why}`, { value: node, allowed: ["attention_head"] });
    }
    if (!Number.isInteger(node.index) || node.index < 0 || node.index >= c.dMlp) {
      throw new TdbError("E_INDEX_RANGE", `neuron ${node.index} out of range [0, ${c.dMlp - 1}]`, { value: node.index, allowed: [0, c.dMlp - 1] });
    }
    const t = pos(node.position, "position");
    const hook = `blocks.${node.layer}.mlp.hook_pre` as HookName;
    loss = { kind: "value", hook, reads: `blocks.${node.layer}.hook_resid_mid` };
    direct = { mlpBefore: node.layer, headsBefore: node.layer + 1, readPoint: 2 * node.layer + 1 };
    key = `attr:up:${hook}`;
    weights = () => {
      const w = new Float32Array(S * c.dMlp);
      w[t * c.dMlp + node.index] = 1;
      return { type: "float32", data: w, dims: [1, S, c.dMlp] };
    };
  } else if (node.type === "attention_head") {
    if (!Number.isInteger(node.head) || node.head < 0 || node.head >= c.nHeads) {
      throw new TdbError("E_INDEX_RANGE", `head ${node.head} out of range [0, ${c.nHeads - 1}]`, { value: node.head, allowed: [0, c.nHeads - 1] });
    }
    const q = pos(node.position, "query position");
    const kk = pos(node.keyPosition, "key position");
    if (kk > q) throw new TdbError("E_POSITION_RANGE", `key position ${kk} is after query position ${q}: masked, no attention logit`, { value: kk, allowed: [0, q] });
    const through = opts.through ?? "both";
    if (!["query", "key", "both", "value"].includes(through)) {
      throw new TdbError("E_BAD_OPTION", `through must be query, key, both or value; got ${through}`, { value: through, allowed: ["query", "key", "both", "value"] });
    }
    if (through === "value") {
      if (opts.target === undefined || opts.distractor === undefined) {
        throw new TdbError("E_BAD_OPTION", "through: \"value\" traces the node's direct effect on a logit difference: pass target and distractor", { value: "missing", allowed: "target and distractor tokens" });
      }
      if (q !== S - 1) {
        throw new TdbError("E_POSITION_RANGE", `a value-path direct effect exists only at the last query position (${S - 1}), where the logit difference is read`, { value: q, allowed: [S - 1, S - 1] });
      }
      const tokens = resolveLogitDiff(model, opts.target, opts.distractor);
      const t = await model.trace(batch.rows, { hooks: [`blocks.${node.layer}.attn.hook_pattern`, "ln_final.hook_scale"] });
      const A = t.cache.get("pattern", node.layer).at(0, node.head, q, kk);
      const g = residualGradient(model, unembedDirection(model, lossWeights(c.dVocab, tokens)), t.cache.get("ln_final.hook_scale").at(0, q, 0));
      const { W_O } = model.weights.blocks[node.layer]!;
      // loss = A v[k,h] . (W_O[h] g): linear in v, with A a constant.
      const wg = new Float32Array(c.dHead);
      for (let e = 0; e < c.dHead; e++) {
        let s2 = 0;
        for (let i = 0; i < c.dModel; i++) s2 += W_O.data[(node.head * c.dHead + e) * c.dModel + i]! * g[i]!;
        wg[e] = A * s2;
      }
      const hook = `blocks.${node.layer}.attn.hook_v` as HookName;
      loss = { kind: "value", hook, reads: `blocks.${node.layer}.hook_resid_pre` };
      direct = { mlpBefore: node.layer, headsBefore: node.layer, readPoint: 2 * node.layer };
      key = `attr:up:${hook}`;
      weights = () => {
        const w = new Float32Array(S * c.nHeads * c.dHead);
        w.set(wg, (kk * c.nHeads + node.head) * c.dHead);
        return { type: "float32", data: w, dims: [1, S, c.nHeads, c.dHead] };
      };
      const { table } = await nodeTable(model, input, key, loss, false, weights, opts, direct, saes);
      return table;
    }
    const hook = `blocks.${node.layer}.attn.hook_attn_scores` as HookName;
    const stop: HookName[] = through === "query" ? [`blocks.${node.layer}.attn.hook_k`] : through === "key" ? [`blocks.${node.layer}.attn.hook_q`] : [];
    loss = { kind: "value", hook, stop, reads: `blocks.${node.layer}.hook_resid_pre` };
    direct = { mlpBefore: node.layer, headsBefore: node.layer, readPoint: 2 * node.layer };
    key = `attr:up:${hook}:${through}`;
    weights = () => {
      const w = new Float32Array(c.nHeads * S * S);
      w[(node.head * S + q) * S + kk] = 1;
      return { type: "float32", data: w, dims: [1, c.nHeads, S, S] };
    };
  } else {
    throw new TdbError("E_BAD_OPTION", `cannot trace upstream of ${(node as { type: string }).type}`, { value: (node as { type: string }).type, allowed: ["mlp_neuron", "attention_head"] });
  }
  const { table } = await nodeTable(model, input, key, loss, false, weights, opts, direct, saes);
  return table;
}

/** traceUpstream from an SAE latent: the loss is its encoder pre-activation, `x[t] . direction + constant`. */
async function traceLatent(
  model: ModelRuntime,
  input: ModelInput,
  node: { type: "sae_latent"; sae: SaeLike; latent: number; position: number },
  opts: UpstreamOptions,
  saes: readonly ResolvedSae[],
): Promise<NodeTable> {
  const s = resolveSae(model, node.sae, "node.sae");
  if (!Number.isInteger(node.latent) || node.latent < 0 || node.latent >= s.dSae) {
    throw new TdbError("E_INDEX_RANGE", `latent ${node.latent} out of range [0, ${s.dSae - 1}]`, { value: node.latent, allowed: [0, s.dSae - 1] });
  }
  const batch = model.toBatch(input, { prependBos: opts.prependBos });
  const S = batch.seqLen;
  const t = resolvePosition(node.position, S, "position");
  const norm = s.sae.config.normalizeActivations ?? "none";
  let xRow: Float32Array | undefined;
  if (norm === "constant_norm_rescale" || norm === "layer_norm") {
    // The row's normalisation scale is held at its value: read the row first.
    const tr = await model.trace(batch.rows, { hooks: [s.hook] });
    xRow = tr.cache.get(s.hook).data.slice(t * s.dIn, (t + 1) * s.dIn);
  }
  const { direction, constant } = latentPreDirection(s.sae, node.latent, xRow);
  const reads = readsFor(s);
  const R = residualPoint(reads, model.config.nLayers);
  const dims = s.suffix === "attn.hook_z" ? [1, S, model.config.nHeads, model.config.dHead] : [1, S, s.dIn];
  const weights = (): HostTensor => {
    const w = new Float32Array(S * s.dIn);
    w.set(direction, t * s.dIn);
    return { type: "float32", data: w, dims };
  };
  const loss: AttributionLoss = { kind: "value", hook: s.hook, reads };
  const direct = { mlpBefore: Math.floor(R / 2), headsBefore: Math.floor((R + 1) / 2), readPoint: R };
  const { table } = await nodeTable(model, input, `attr:up:sae:${s.hook}`, loss, false, weights, opts, direct, saes);
  table.loss += constant;
  return table;
}
