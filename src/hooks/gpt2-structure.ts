/**
 * GPT-2 blocks found from the graph's structure instead of its node names. Older `torch.onnx`
 * (before 1.13) writes no module scopes (`Gather_7`, `Add_12`, values `onnx::Add_123` or `123`),
 * and un-fusing writes nodes named after the fused op (`Attention_0/MatMul_3`); the scope-based
 * discovery (`gpt2.ts`) finds nothing under `.../h.N/` there. This pass walks the residual
 * stream instead and gives every node the name the standard export would give it, so the
 * scope-based discovery and weights work unchanged. Only node names change, never value names.
 *
 * The walk:
 * 1. Embeddings: two `Gather`s over 2-D initializers whose outputs meet in an `Add` (the token
 *    table, whose indices come from `input_ids` or which has `d_vocab` rows, and the position
 *    table); that Add's output is block 0's `resid_pre`.
 * 2. The residual chain: from the current residual value, the `Add` that reads it together with
 *    a value computed from it is the next residual Add; the chain ends at a value no such Add
 *    reads (the final LayerNorm's input). `Cast`, `Identity` and eval-mode `Dropout` nodes pass
 *    the residual stream on (un-fused float16 graphs cast it to float32 and back; some exports
 *    keep Dropout nodes), and so does an `Add` of a zero constant (transformers 2.x/3.x add
 *    `token_type_embeds = 0` to the embedding sum): the value they make counts as the same
 *    residual value.
 * 3. The stream nodes (everything computed from the embedding sum without passing through
 *    `Shape`) fall into segments by the last residual value they depend on. A segment with a
 *    `Softmax` is an attention half (`ln_1` -> `attn` with `c_attn`, `c_proj`), one without is an
 *    MLP half (`ln_2` -> `mlp` with `c_fc`, `act`, `c_proj`); an attention half starts a block and
 *    an MLP half that follows it completes it (attention-only blocks have one). The segment after
 *    the last Add holds `ln_f`, the final `Reshape` and the logits (`/lm_head`).
 * 4. Inside a half: the LayerNorm is the closure of elementwise ops from the `ReduceMean` that
 *    reads the residual (or one `LayerNormalization` node); the input projection is the
 *    `Gemm`/`MatMul` over a constant weight reading its output (with the flattening `Reshape`
 *    before a Gemm and the bias `Add`/`Reshape` after); the output projection is found backwards
 *    from the residual Add's other input; the rest is the attention (`attn`) or the activation
 *    (`mlp/act`).
 * 5. Nodes off the stream: those computed from graph inputs (position ids, the padding bias) are
 *    the prologue (`/transformer`); constants and shape computations go with their consumers (the
 *    common scope of all of them).
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { upgradeToOpset13 } from "../onnx/opset-upgrade.js";
import { tensorFromProto } from "../onnx/tensor.js";
import { unfuseContribOps } from "../onnx/unfuse/index.js";
import type { ArchDims, NormalizeReport } from "./adapter.js";
import { findBlockScopes } from "./gpt2-locate.js";

/** What the structural pass made of a graph it understood. */
export interface Gpt2Structure {
  /** Module prefix of the transformer scopes: taken from existing block scopes, else `/transformer`. */
  readonly prefix: string;
  /** The scope each node of the main graph gets (`/transformer/h.0/attn/c_attn`, ...). */
  readonly scopes: ReadonlyMap<NodeProto, string>;
  /** The blocks found, in order: `attnOnly` when the block has no MLP half. */
  readonly blocks: readonly { attnOnly: boolean }[];
  /** One line saying what was found, for reports. */
  readonly summary: string;
}

/** The result of {@link analyzeGpt2Structure}: the structure, or why it was not understood. */
export type Gpt2StructureResult =
  | { ok: true; structure: Gpt2Structure }
  | {
      ok: false;
      /** What stopped the pass. */
      reason: string;
      /** What the pass had found up to there (embeddings, residual Adds, blocks). */
      found: string;
    };

/** Dimensions the pass uses as hints only (to pick the embedding tables). */
export type StructureHints = Partial<Pick<ArchDims, "dVocab" | "nCtx">>;

/** Ops of the (decomposed) LayerNorm closure. */
const LN_OPS = new Set(["ReduceMean", "Sub", "Pow", "Mul", "Div", "Add", "Sqrt", "Reciprocal", "Cast"]);
/** Ops that pass the residual stream on as it is, up to the dtype (Dropout: inference mode, as exported for eval). */
const CAST_OPS = new Set(["Cast", "Identity", "Dropout"]);
/** Ops that pass token ids on unchanged (up to shape and type). */
const PASS_OPS = new Set(["Reshape", "Cast", "Unsqueeze", "Squeeze", "Identity", "Flatten"]);
/** Ops between a LayerNorm output and the projection reading it (Conv1D's flattening Reshape; dtype Casts). */
const LEAD_OPS = new Set(["Reshape", "Flatten", "Cast", "Identity"]);
/** Ops whose output is not residual-stream data even when they read it. */
const SHAPE_OPS = new Set(["Shape", "Size"]);
/** Fused onnxruntime ops that hide the residual Adds, the LayerNorms or the attention. */
const FUSED_OPS = new Set([
  "EmbedLayerNormalization",
  "SkipLayerNormalization",
  "SkipSimplifiedLayerNormalization",
  "Attention",
  "MultiHeadAttention",
  "GroupQueryAttention",
  "FastGelu",
  "BiasGelu",
  "Gelu",
]);

const label = (n: NodeProto | undefined) => (n ? n.name || n.opType : "?");

class Failure extends Error {}

/** The analysis of one graph; see the module comment. */
class Analysis {
  private readonly found: string[] = [];
  /** Values computed from the embedding sum (not through Shape). */
  private readonly stream = new Set<string>();
  /** Nodes reading a stream value (other than Shape/Size). */
  private readonly streamNodes = new Set<NodeProto>();
  private readonly scopes = new Map<NodeProto, string>();
  private readonly inputs: Set<string>;

  constructor(
    private readonly g: OnnxGraph,
    private readonly hints: StructureHints,
    private readonly prefix: string,
  ) {
    this.inputs = new Set(g.inputNames());
  }

  private topoCache: NodeProto[] | undefined;
  private positions: Map<NodeProto, number> | undefined;

  /** The nodes in dependency order (computed once). */
  private topo(): NodeProto[] {
    this.topoCache ??= this.g.topologicalOrder();
    return this.topoCache;
  }

  /** `nodes` in graph order. */
  private inOrder(nodes: Iterable<NodeProto>): NodeProto[] {
    const pos = (this.positions ??= new Map(this.g.nodes.map((n, i) => [n, i])));
    return [...nodes].sort((a, b) => pos.get(a)! - pos.get(b)!);
  }

  private fail(reason: string): never {
    throw new Failure(reason);
  }

  foundSoFar(): string {
    return this.found.length ? this.found.join("; ") : "nothing recognisable";
  }

  private isStream(v: string | undefined): boolean {
    return v !== undefined && v !== "" && this.stream.has(v);
  }

  private streamConsumers(v: string, region?: ReadonlySet<NodeProto>): NodeProto[] {
    return this.g.consumers(v).filter((c) => this.streamNodes.has(c) && (!region || region.has(c)));
  }

  /** Whether `v` depends on a graph input (through any nodes). */
  private fromInput(v: string): boolean {
    const stack: string[] = [v];
    const seen = new Set<string>();
    while (stack.length) {
      const x = stack.pop()!;
      if (this.inputs.has(x)) return true;
      if (seen.has(x)) continue;
      seen.add(x);
      const p = this.g.producer(x);
      if (p) for (const i of p.input) if (i) stack.push(i);
    }
    return false;
  }

  /** Whether `v` is the graph input `name` itself, reshaped or cast (token ids, not positions computed from its shape). */
  private isInputData(v: string, name: string): boolean {
    let x = v;
    for (let guard = 0; guard < 16; guard++) {
      if (x === name) return true;
      const p = this.g.producer(x);
      if (!p || !PASS_OPS.has(p.opType) || !p.input[0]) return false;
      x = p.input[0];
    }
    return false;
  }

  /** The initializer a Gather reads its table from, directly or through Cast/Identity (float16 graphs). */
  private table(n: NodeProto) {
    let v = n.input[0] ?? "";
    for (let guard = 0; guard < 8; guard++) {
      const t = this.g.initializer(v);
      if (t) return t;
      const p = this.g.producer(v);
      if (!p || !CAST_OPS.has(p.opType) || !p.input[0]) return undefined;
      v = p.input[0];
    }
    return undefined;
  }

  /** Whether `v` is a small constant of zeros (an initializer or a `Constant` node's tensor). */
  private isZero(v: string | undefined): boolean {
    if (!v) return false;
    const p = this.g.producer(v);
    const t = this.g.initializer(v) ?? (p?.opType === "Constant" ? p.attribute.find((a) => a.name === "value")?.t : undefined);
    if (!t || t.dims.reduce((a, d) => a * Number(d), 1) > 16) return false;
    const h = tensorFromProto(t);
    return h.type !== "bool" && Array.from(h.data as ArrayLike<number | bigint>).every((x) => Number(x) === 0);
  }

  /**
   * `v` and the values Cast/Identity chains make of it (the same residual stream in another
   * dtype), and `Add(v, 0)` (legacy exports add `token_type_embeds = 0` to the embedding sum).
   */
  private aliases(v: string): Set<string> {
    const out = new Set([v]);
    const queue = [v];
    while (queue.length) {
      const x = queue.pop()!;
      for (const c of this.g.consumers(x)) {
        const plusZero = c.opType === "Add" && c.input.length === 2 && c.input.some((i) => i !== x && this.isZero(i));
        if ((!CAST_OPS.has(c.opType) && !plusZero) || !c.output[0] || out.has(c.output[0])) continue;
        out.add(c.output[0]);
        queue.push(c.output[0]);
      }
    }
    return out;
  }

  /** The Cast/Identity nodes in `seg` that make {@link aliases} of `r`. */
  private aliasCasts(r: string, seg: ReadonlySet<NodeProto>): NodeProto[] {
    const al = this.aliases(r);
    return [...al].flatMap((v) => {
      const p = v === r ? undefined : this.g.producer(v);
      return p && seg.has(p) ? [p] : [];
    });
  }

  /** Step 1: the token and position Gathers and the Add of their outputs. */
  private embeddings(): { tok: NodeProto; pos: NodeProto; add: NodeProto } {
    const g = this.g;
    const tables = g.nodes.filter((n) => n.opType === "Gather" && this.table(n)?.dims.length === 2);
    if (tables.length === 0) {
      const fused = [...new Set(g.nodes.filter((n) => FUSED_OPS.has(n.opType)).map((n) => n.opType))];
      this.fail(`no Gather over a 2-D initializer (embedding table)${fused.length ? `; fused ops ${fused.join("/")} in the graph` : ""}`);
    }
    const rows = (n: NodeProto) => Number(this.table(n)!.dims[0]);
    const dimsOf = (n: NodeProto) => `[${this.table(n)!.dims.map(Number).join(", ")}]`;
    const pairs: { tok: NodeProto; pos: NodeProto; add: NodeProto }[] = [];
    for (const a of tables) {
      for (const add of g.consumers(a.output[0]!)) {
        if (add.opType !== "Add") continue;
        const other = add.input.find((i) => i !== a.output[0]);
        const b = other ? g.producer(other) : undefined;
        if (b && b !== a && tables.includes(b)) pairs.push({ tok: a, pos: b, add });
      }
    }
    if (pairs.length === 0) {
      this.fail(`Gathers over embedding tables (${tables.map((t) => `${label(t)} ${dimsOf(t)}`).join(", ")}) but no Add of a token and a position embedding`);
    }
    const score = (p: { tok: NodeProto; pos: NodeProto }) => {
      let s = 0;
      if (this.hints.dVocab !== undefined && rows(p.tok) === this.hints.dVocab) s += 4;
      if (this.hints.nCtx !== undefined && rows(p.pos) === this.hints.nCtx) s += 2;
      if (this.isInputData(p.tok.input[1]!, "input_ids")) s += 1;
      if (!this.isInputData(p.pos.input[1]!, "input_ids")) s += 1;
      return s;
    };
    pairs.sort((x, y) => score(y) - score(x));
    const best = pairs[0]!;
    this.found.push(`token embedding ${label(best.tok)} ${dimsOf(best.tok)}, position embedding ${label(best.pos)} ${dimsOf(best.pos)}, summed by ${label(best.add)}`);
    return best;
  }

  /** Marks every value computed from `root` (not through Shape/Size) as stream. */
  private markStream(root: string): void {
    const queue = [root];
    this.stream.add(root);
    while (queue.length) {
      const v = queue.pop()!;
      for (const c of this.g.consumers(v)) {
        if (SHAPE_OPS.has(c.opType) || this.streamNodes.has(c)) continue;
        this.streamNodes.add(c);
        for (const o of c.output) {
          if (o && !this.stream.has(o)) {
            this.stream.add(o);
            queue.push(o);
          }
        }
      }
    }
  }

  /** Step 2: the residual Adds, in order. */
  private residualChain(r0: string): NodeProto[] {
    const adds: NodeProto[] = [];
    let r = r0;
    for (let guard = 0; guard <= this.g.nodes.length; guard++) {
      const al = this.aliases(r);
      const cands = [...new Set([...al].flatMap((a) => this.streamConsumers(a)))].filter(
        (c) => c.opType === "Add" && c.input.length === 2 && c.input.some((i) => al.has(i)) && c.input.some((i) => !al.has(i) && this.isStream(i)),
      );
      if (cands.length === 0) return adds;
      if (cands.length > 1) this.fail(`${cands.length} Adds (${cands.map(label).join(", ")}) read the residual stream after ${adds.length} residual Adds; expected one`);
      adds.push(cands[0]!);
      r = cands[0]!.output[0]!;
    }
    return this.fail("the residual chain does not end");
  }

  /** Step 3: stream nodes by the index of the last residual value they read (0 = embedding sum). */
  private segments(r0: string, adds: readonly NodeProto[]): Set<NodeProto>[] {
    const level = new Map<string, number>([[r0, 0]]);
    const addIndex = new Map(adds.map((a, j) => [a, j]));
    const segs = Array.from({ length: adds.length + 1 }, () => new Set<NodeProto>());
    for (const n of this.topo()) {
      if (!this.streamNodes.has(n)) continue;
      let lv = 0;
      for (const i of n.input) if (i && this.stream.has(i)) lv = Math.max(lv, level.get(i) ?? 0);
      const j = addIndex.get(n);
      if (j !== undefined) {
        for (const o of n.output) if (o) level.set(o, j + 1);
        continue;
      }
      segs[lv]!.add(n);
      for (const o of n.output) if (o) level.set(o, lv);
    }
    return segs;
  }

  /** The LayerNorm reading `r` inside `seg`: its nodes and output value. */
  private layerNorm(r: string, seg: ReadonlySet<NodeProto>, where: string): { nodes: NodeProto[]; out: string } {
    const al = this.aliases(r);
    const cons = [...new Set([...al].flatMap((a) => this.streamConsumers(a, seg)))];
    const fused = cons.find((c) => c.opType === "LayerNormalization");
    if (fused) return { nodes: [fused], out: fused.output[0]! };
    const rm = cons.find((c) => c.opType === "ReduceMean");
    if (!rm) this.fail(`${where}: no LayerNorm reads the residual stream (readers: ${cons.map(label).join(", ") || "none"})`);
    const inLn = new Set<NodeProto>([rm]);
    const known = new Set<string>([...al, rm.output[0]!]);
    for (let changed = true; changed; ) {
      changed = false;
      for (const v of [...known]) {
        for (const c of this.streamConsumers(v, seg)) {
          if (inLn.has(c) || !LN_OPS.has(c.opType) || al.has(c.output[0] ?? "")) continue;
          if (!c.input.every((i) => !i || known.has(i) || !this.isStream(i))) continue;
          inLn.add(c);
          for (const o of c.output) if (o) known.add(o);
          changed = true;
        }
      }
    }
    const outs = [...inLn].flatMap((n) => n.output.filter((o) => o && (this.g.consumers(o).some((c) => !inLn.has(c) && !SHAPE_OPS.has(c.opType)) || this.g.outputNames().includes(o))));
    const reduces = [...inLn].filter((n) => n.opType === "ReduceMean").length;
    if (reduces < 2 || outs.length !== 1) {
      this.fail(`${where}: ${label(rm)} starts no LayerNorm (${reduces} ReduceMean, ${outs.length} outputs leaving the pattern)`);
    }
    return { nodes: this.inOrder(inLn), out: outs[0]! };
  }

  private isWeight(v: string | undefined): boolean {
    return v !== undefined && v !== "" && !this.isStream(v) && !this.fromInput(v);
  }

  /** The projection reading `x` (Reshape -> Gemm/MatMul over a weight -> bias Add / Reshape). */
  private projectionFrom(x: string, seg: ReadonlySet<NodeProto>, where: string): { nodes: NodeProto[]; out: string } {
    const nodes: NodeProto[] = [];
    let cur = x;
    let cs = this.streamConsumers(cur, seg);
    for (let guard = 0; guard < 4 && cs.length === 1 && LEAD_OPS.has(cs[0]!.opType); guard++) {
      nodes.push(cs[0]!);
      cur = cs[0]!.output[0]!;
      cs = this.streamConsumers(cur, seg);
    }
    const mm = cs.find((c) => (c.opType === "Gemm" || c.opType === "MatMul") && c.input[0] === cur && this.isWeight(c.input[1]));
    if (!mm || cs.length !== 1) this.fail(`${where}: no single Gemm/MatMul over a weight reads the LayerNorm output (readers: ${cs.map(label).join(", ") || "none"})`);
    nodes.push(mm);
    cur = mm.output[0]!;
    for (;;) {
      const next = this.streamConsumers(cur, seg);
      const n = next.length === 1 ? next[0]! : undefined;
      if (!n) break;
      const bias = n.opType === "Add" && n.input.length === 2 && n.input.some((i) => i !== cur && this.isWeight(i));
      if (n.opType !== "Reshape" && !CAST_OPS.has(n.opType) && !bias) break;
      nodes.push(n);
      cur = n.output[0]!;
    }
    return { nodes, out: cur };
  }

  /** The projection producing `y` (found backwards from the residual Add's other input). */
  private projectionTo(y: string, seg: ReadonlySet<NodeProto>, where: string): NodeProto[] {
    const nodes: NodeProto[] = [];
    let cur = y;
    for (;;) {
      const p = this.g.producer(cur);
      if (!p || !seg.has(p)) this.fail(`${where}: the residual Add's branch is not computed in this block`);
      if (p.opType === "Reshape" || CAST_OPS.has(p.opType)) {
        nodes.push(p);
        cur = p.input[0]!;
        continue;
      }
      if (p.opType === "Add" && p.input.length === 2 && p.input.some((i) => this.isWeight(i))) {
        nodes.push(p);
        cur = p.input.find((i) => !this.isWeight(i))!;
        continue;
      }
      if ((p.opType === "Gemm" || p.opType === "MatMul") && this.isWeight(p.input[1])) {
        nodes.push(p);
        if (p.opType === "Gemm") {
          const flat = this.g.producer(p.input[0]!);
          if (flat && seg.has(flat) && (flat.opType === "Reshape" || flat.opType === "Flatten")) nodes.push(flat);
        }
        return nodes;
      }
      return this.fail(`${where}: the residual Add's branch comes from ${label(p)} (${p.opType}), not from a Gemm/MatMul over a weight`);
    }
  }

  private put(nodes: Iterable<NodeProto>, scope: string): void {
    for (const n of nodes) if (!this.scopes.has(n)) this.scopes.set(n, scope);
  }

  /** Runs the whole pass; throws {@link Failure} with the reason when the structure is not understood. */
  run(): Gpt2Structure {
    const g = this.g;
    const P = this.prefix;
    const fused = [...new Set(g.nodes.filter((n) => FUSED_OPS.has(n.opType) && n.domain === "com.microsoft").map((n) => n.opType))];
    if (fused.length) this.fail(`fused onnxruntime ops ${fused.join("/")} hide the residual Adds, LayerNorms or attention`);
    const emb = this.embeddings();
    const r0 = emb.add.output[0]!;
    this.markStream(r0);
    const adds = this.residualChain(r0);
    this.found.push(`${adds.length} residual Adds`);
    const segs = this.segments(r0, adds);
    this.put([emb.tok], `${P}/wte`);
    this.put([emb.pos], `${P}/wpe`);
    this.put([emb.add], P);

    // Halves: attention (has Softmax) or MLP.
    const blocks: { attnOnly: boolean }[] = [];
    let r = r0;
    let lastWasAttn = false;
    for (let j = 0; j < adds.length; j++) {
      const seg = segs[j]!;
      const add = adds[j]!;
      const isAttn = [...seg].some((n) => n.opType === "Softmax");
      if (isAttn) {
        blocks.push({ attnOnly: true });
      } else if (lastWasAttn) {
        blocks[blocks.length - 1]!.attnOnly = false;
      } else {
        this.fail(`the segment ending at residual Add ${label(add)} (number ${j + 1}) has no Softmax and does not follow an attention segment`);
      }
      lastWasAttn = isAttn;
      const b = blocks.length - 1;
      const blk = `${P}/h.${b}`;
      const where = `block ${b} ${isAttn ? "attention" : "MLP"}`;
      // dtype Casts of the residual stream (un-fused float16 graphs) belong to the block, not to a part of it.
      this.put(this.aliasCasts(r, seg), j === 0 ? P : blk);
      const ln = this.layerNorm(r, seg, where);
      const residual = this.aliases(r);
      const branch = add.input.find((i) => !residual.has(i))!;
      const inProj = this.projectionFrom(ln.out, seg, where);
      const outProj = this.projectionTo(branch, seg, where);
      if (outProj.some((n) => inProj.nodes.includes(n))) this.fail(`${where}: one projection both reads the LayerNorm and feeds the residual Add`);
      const [lnName, inName, outName, rest] = isAttn ? ["ln_1", "attn/c_attn", "attn/c_proj", "attn"] : ["ln_2", "mlp/c_fc", "mlp/c_proj", "mlp/act"];
      this.put(ln.nodes, `${blk}/${lnName}`);
      this.put(inProj.nodes, `${blk}/${inName}`);
      this.put(outProj, `${blk}/${outName}`);
      this.put(seg, `${blk}/${rest}`);
      this.put([add], blk);
      r = add.output[0]!;
    }
    if (blocks.length === 0) this.fail("no block (no residual Add after the embeddings)");
    this.found.push(`${blocks.length} blocks (${blocks.filter((b) => b.attnOnly).length} attention-only)`);

    // Epilogue: ln_f, then the logits projection and what follows it.
    const last = segs[adds.length]!;
    this.put(this.aliasCasts(r, last), P);
    const lnf = this.layerNorm(r, last, "final LayerNorm");
    this.put(lnf.nodes, `${P}/ln_f`);
    const head = this.inOrder([...last].filter((n) => (n.opType === "MatMul" || n.opType === "Gemm") && this.isWeight(n.input[1])))[0];
    if (head) {
      const after = new Set<string>(head.output);
      const lm = [head];
      for (const n of this.topo()) {
        if (n !== head && last.has(n) && n.input.some((i) => after.has(i))) {
          lm.push(n);
          for (const o of n.output) after.add(o);
        }
      }
      this.put(lm, "/lm_head");
    }
    this.put(last, P);

    // Nodes off the stream: prologue (computed from graph inputs), else with their consumers.
    const topo = this.topo();
    const fromInput = new Set<string>(this.inputs);
    for (const n of topo) {
      if (this.scopes.has(n)) continue;
      if (n.input.some((i) => fromInput.has(i))) {
        this.scopes.set(n, P);
        for (const o of n.output) if (o) fromInput.add(o);
      }
    }
    for (let k = topo.length - 1; k >= 0; k--) {
      const n = topo[k]!;
      if (this.scopes.has(n)) continue;
      const consumerScopes = [...new Set(n.output.flatMap((o) => (o ? g.consumers(o) : [])))].map((c) => this.scopes.get(c)).filter((s): s is string => s !== undefined);
      this.scopes.set(n, (consumerScopes.length ? commonScope(consumerScopes) : "") || P);
    }
    const summary = this.foundSoFar();
    return { prefix: P, scopes: this.scopes, blocks, summary };
  }
}

/** The longest common `/`-separated prefix of scopes. */
function commonScope(scopes: readonly string[]): string {
  let parts = scopes[0]!.split("/");
  for (const s of scopes.slice(1)) {
    const q = s.split("/");
    let k = 0;
    while (k < parts.length && k < q.length && parts[k] === q[k]) k++;
    parts = parts.slice(0, k);
  }
  return parts.join("/");
}

/** The module prefix of existing block scopes (`/transformer` for `/transformer/h.3`), else `/transformer`. */
function scopePrefix(g: OnnxGraph): string {
  const any = [...findBlockScopes(g).values()][0];
  const p = any?.replace(/\/h\.\d+$/, "");
  return p && p.startsWith("/") ? p : "/transformer";
}

/**
 * Finds GPT-2's embeddings, residual chain, blocks and their parts from the structure of `g`
 * (see the module comment) without changing it. `hints` (the config's `d_vocab`, `n_ctx`) only
 * help pick the embedding tables. Never throws for a graph it does not understand: the result
 * says why and what it had found.
 *
 * @example
 * ```ts
 * const r = analyzeGpt2Structure(g);
 * if (r.ok) console.log(r.structure.blocks.length); else console.log(r.reason, r.found);
 * ```
 */
export function analyzeGpt2Structure(g: OnnxGraph, hints: StructureHints = {}): Gpt2StructureResult {
  const a = new Analysis(g, hints, scopePrefix(g));
  try {
    return { ok: true, structure: a.run() };
  } catch (e) {
    if (e instanceof Failure) return { ok: false, reason: e.message, found: a.foundSoFar() };
    throw e;
  }
}

/**
 * Node names from scopes as the exporter writes them: `${scope}/${opType}`, then `_1`, `_2`, ...
 * per scope and op type, in graph order.
 */
function namesFor(g: OnnxGraph, scopes: ReadonlyMap<NodeProto, string>): Map<NodeProto, string> {
  const count = new Map<string, number>();
  const names = new Map<NodeProto, string>();
  for (const n of g.nodes) {
    const s = scopes.get(n);
    if (s === undefined) continue;
    const key = `${s}/${n.opType}`;
    const k = count.get(key) ?? 0;
    count.set(key, k + 1);
    names.set(n, k === 0 ? key : `${key}_${k}`);
  }
  return names;
}

/** The `h.N` block index in a node name, or undefined. */
function blockOf(name: string): number | undefined {
  const m = /\/h\.(\d+)\//.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Result of {@link assignGpt2Scopes}. */
export interface AssignResult {
  /** The analysis. */
  readonly result: Gpt2StructureResult;
  /** Nodes renamed (0 when the graph was left as it was). */
  readonly renamed: number;
  /** Why the graph was (not) renamed, one line. */
  readonly note: string;
}

/**
 * Gives every main-graph node of `g` the name the standard export would give it (e.g.
 * `/transformer/h.1/mlp/c_fc/Gemm`), found by {@link analyzeGpt2Structure}, when that is needed:
 * the graph has no block scopes, or some nodes between the residual Adds are outside the scope of
 * their block (e.g. nodes written by un-fusing). A graph already scoped as the export scopes it,
 * or one the pass does not understand, is left as it is. Value names never change.
 *
 * @example
 * ```ts
 * const { renamed, note } = assignGpt2Scopes(OnnxGraph.fromModel(model));
 * ```
 */
export function assignGpt2Scopes(g: OnnxGraph, hints: StructureHints = {}, force = false): AssignResult {
  const scoped = findBlockScopes(g).size > 0;
  const result = analyzeGpt2Structure(g, hints);
  if (!result.ok) {
    const note = `structure not understood: ${result.reason} (found: ${result.found})${scoped ? "; scope names kept" : ""}`;
    return { result, renamed: 0, note };
  }
  const s = result.structure;
  const names = namesFor(g, s.scopes);
  let needed = force || !scoped;
  if (!needed) {
    for (const [n, scope] of s.scopes) {
      const want = blockOf(`${scope}/`);
      if (want !== undefined && blockOf(n.name) !== want) {
        needed = true;
        break;
      }
    }
  }
  if (!needed) return { result, renamed: 0, note: `scope names already match the structure (${s.summary})` };
  let renamed = 0;
  for (const [n, name] of names) {
    if (n.name !== name) {
      n.name = name;
      renamed++;
    }
  }
  g.invalidate();
  return { result, renamed, note: `named ${renamed} nodes from the graph's structure: ${s.summary}` };
}

/**
 * The GPT-2 adapter's normalisation step: an opset 11/12 graph is upgraded to opset 13
 * (`upgradeToOpset13`), initializers listed as graph inputs are constants only, onnxruntime's fused `com.microsoft` ops are un-fused
 * into standard ONNX (`unfuseContribOps`), then {@link assignGpt2Scopes} names nodes from the
 * structure, with the config's dims as hints. Never throws for a graph it does not understand;
 * the report says why (and which fused nodes were left as they are).
 */
export function normalizeGpt2(g: OnnxGraph, dims: ArchDims): NormalizeReport {
  // onnxruntime-fused graphs first become standard ONNX (the hooks live inside the fused ops),
  // then nodes that sit outside block scopes (unscoped exports, un-fused nodes) get them.
  const steps: string[] = [];
  const problems: string[] = [];
  // Older torch.onnx (1.5/1.6) wrote opset 11; gradients and tdb-js's own nodes need 13. GPT-2's
  // only Softmax is over the last axis of the rank-4 attention scores.
  const upgrade = upgradeToOpset13(g, 4);
  if (upgrade.upgraded) steps.push(`upgraded ai.onnx opset ${upgrade.from} to 13 (${upgrade.rewritten} nodes rewritten)`);
  else if (upgrade.from < 13) problems.push(`opset ${upgrade.from} kept (${upgrade.reason}): gradients need opset 13`);
  // Initializers also listed as graph inputs (older torch.onnx's keep_initializers_as_inputs)
  // cannot be fed from onnxruntime-node anyway: they are constants, not inputs.
  const inits = new Set(g.initializerNames());
  const asInputs = g.graph.input.filter((v) => inits.has(v.name)).length;
  if (asInputs > 0) {
    g.graph.input = g.graph.input.filter((v) => !inits.has(v.name));
    g.invalidate();
    steps.push(`${asInputs} initializers listed as graph inputs are constants only`);
  }
  const unfused = unfuseContribOps(g);
  if (unfused.unfused.length > 0) {
    const ops = new Map<string, number>();
    for (const u of unfused.unfused) ops.set(u.op, (ops.get(u.op) ?? 0) + 1);
    steps.push(`un-fused ${unfused.unfused.length} onnxruntime-fused nodes into standard ONNX: ${[...ops].map(([op, n]) => `${op} x${n}`).join(", ")}`);
  }
  for (const u of unfused.unsupported) problems.push(`fused ${u.op} node ${u.node} left as it is: ${u.reason}`);
  const { renamed, note, result } = assignGpt2Scopes(g, { dVocab: dims.dVocab, nCtx: dims.nCtx });
  if (result.ok) steps.push(note);
  else problems.push(note);
  return { changed: asInputs > 0 || upgrade.upgraded || unfused.unfused.length > 0 || renamed > 0, steps, problems };
}

/**
 * Why discovery found no block scopes, from the structural pass: what it found and why it
 * stopped, or that it would name the blocks (normalisation was not run).
 */
export function structureReason(g: OnnxGraph, hints: StructureHints = {}): string {
  const r = analyzeGpt2Structure(g, hints);
  if (r.ok) return `no block scopes (.../h.N/) in the graph; the structural pass finds ${r.structure.summary}: run the adapter's normalize step first`;
  return `no block scopes (.../h.N/) in the graph, and the structural pass could not find GPT-2 blocks: ${r.reason} (found: ${r.found})`;
}
