/**
 * Building patched graphs: the flattened model plus, on request, edit points on hook tensors
 * (`x * mul + add`, fed per run), hook tensors exposed as outputs, and a gather that keeps the
 * logits of chosen positions only (the unembedding is the largest matmul of a small model; with
 * 144 variants of a 32-token prompt, all-position logits would be ~1 GB).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, type ModelProto, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { ArchDims, HookMap } from "../hooks/adapter.js";
import { hookKindOf, type HookName } from "../hooks/names.js";
import { cloneStructure } from "../onnx/clone.js";
import { GraphEmitter, INT64_MAX } from "../onnx/emit.js";
import { OnnxGraph } from "../onnx/graph.js";
import { addTapOutput, exposeValue, insertEditPoint, tensorValueInfo } from "../onnx/surgery.js";

/** Graph input holding, per batch row, the positions whose logits are computed: int64 [batch, n, 1]. */
export const LOGIT_POSITIONS_INPUT = "tdb_logit_positions";

/** What a patched graph is built for. */
export interface PatchSpec {
  /** Hooks exposed as outputs. */
  hooks: readonly HookName[];
  /** Hooks whose tensor gets an edit point (hooks sharing one tensor share one edit point). */
  edits?: readonly HookName[];
  /** Compute logits only at positions fed through {@link LOGIT_POSITIONS_INPUT}. */
  selectLogits?: boolean;
  /**
   * Shared-prefix batching: the prompt runs as one row up to each block, where the rows fed in
   * `tdb_rows_L` (int64 [rows at L]) gather it into the rows that differ from there on
   * ({@link rowsInput}). Variants whose first edit is in block L skip the work of blocks before L.
   */
  prefixShare?: boolean;
}

/** Name of the prefix-sharing row input of block `layer`. */
export function rowsInput(layer: number): string {
  return `tdb_rows_${layer}`;
}

/** The two graph inputs of one edit point and the hooks it edits. */
export interface EditInputs {
  /** Multiplier input name (feed ones to leave the tensor unchanged). */
  mul: string;
  /** Added input name (feed zeros to leave the tensor unchanged). */
  add: string;
  /** Hooks that are this tensor, in forward order. */
  hooks: HookName[];
  /** Declared dims: symbolic `batch` and `seq`, numbers elsewhere. */
  shape: (number | string)[];
  /** Block of the edited tensor (-1 before the first block); with prefix sharing its batch is that block's row count. */
  layer: number;
  /**
   * For [batch, pos, width] tensors, a rank-1 update applied before `x * mul + add`:
   * `x + (x . p) r`, with `p` [batch, width, 1] and `r` [batch, pos, width] fed (zeros: no-op).
   * Projecting out a direction u is `p = u/|u|`, `r = -u/|u|`.
   */
  project?: { p: string; r: string; width: number };
}

/** A built patched graph. */
export interface PatchedGraph {
  model: ModelProto;
  /** Hook name -> graph output name (hooks that are one tensor share an output). */
  outputs: Map<HookName, string>;
  /** Edit points by the tensor (value name) they edit. */
  edits: Map<string, EditInputs>;
}

/** Size of each dim label of the hook table for a model; `batch`/positions stay symbolic. */
export function labelSize(label: string, dims: ArchDims): number | "batch" | "seq" {
  switch (label) {
    case "batch":
      return "batch";
    case "pos":
    case "query_pos":
    case "key_pos":
      return "seq";
    case "head":
      return dims.nHeads;
    case "d_head":
      return dims.dHead;
    case "d_model":
      return dims.dModel;
    case "d_mlp":
      return dims.dMlp;
    case "1":
      return 1;
    default:
      throw new TdbError("E_UNSUPPORTED_GRAPH", `no size for dim label ${label}`, { value: label });
  }
}

/** The value (tensor name) behind a hook, for hooks that can carry an edit point. */
export function editableValue(hookMap: HookMap, hook: HookName): string {
  const src = hookMap.sources.get(hook);
  if (!src) {
    throw new TdbError("E_HOOK_UNAVAILABLE", `${hook} is not reachable in this graph (${hookMap.unavailable.get(hook) ?? "unknown"})`, {
      value: hook,
      allowed: [...hookMap.sources.keys()],
    });
  }
  if (src.kind !== "tap") {
    const editable = [...hookMap.sources].filter(([, s]) => s.kind === "tap").map(([n]) => n);
    throw new TdbError(
      "E_HOOK_UNAVAILABLE",
      `${hook} is computed beside the model (it is not on the forward path), so editing it would change nothing; edit the tensors it is made from instead`,
      { value: hook, allowed: editable },
    );
  }
  return src.value;
}

/**
 * Builds the patched graph for `spec` from the flattened base model. Edit points go in first, so
 * an edited hook's cached value is the edited one (as a TransformerLens hook that edits and a
 * cache hook after it would see).
 */
export function buildPatchedGraph(base: ModelProto, hookMap: HookMap, dims: ArchDims, spec: PatchSpec): PatchedGraph {
  const g = OnnxGraph.fromModel(cloneStructure(base));
  /** Hooks whose tensor moved (prefix sharing: resid_pre of block L is the gathered tensor). */
  const moved = new Map<HookName, string>();
  if (spec.prefixShare) {
    const gatheredByLayer: string[] = [];
    for (let l = 0; l < dims.nLayers; l++) {
      const hook = `blocks.${l}.hook_resid_pre` as HookName;
      const x = editableValue(hookMap, hook);
      const readers = g.consumers(x);
      g.addInput(tensorValueInfo(rowsInput(l), "int64", [`rows_${l}`]));
      const e = new GraphEmitter(g, `/tdb/prefix/h.${l}`);
      const at = g.producer(x);
      e.placement = at ? { after: at } : { before: g.nodes[0]! };
      const gathered = e.node("Gather", [x, rowsInput(l)], { axis: 0 }, [g.uniqueName(`${x}__rows_${l}`)])[0]!;
      for (const n of readers) n.input = n.input.map((i) => (i === x ? gathered : i));
      g.invalidate();
      moved.set(hook, gathered);
      gatheredByLayer.push(gathered);
    }
    rebatchInputShapes(g, gatheredByLayer);
  }
  const valueOf = (hook: HookName): string => moved.get(hook) ?? editableValue(hookMap, hook);
  const edits = new Map<string, EditInputs>();
  const editedOutput = new Map<string, string>();
  for (const hook of spec.edits ?? []) {
    const value = valueOf(hook);
    const e = edits.get(value);
    if (e) {
      e.hooks.push(hook);
      continue;
    }
    const shape = hookKindOf(hook)!.dims.map((l) => labelSize(l, dims));
    const i = edits.size;
    let project: EditInputs["project"];
    let edited = value;
    const width = shape[2];
    if (shape.length === 3 && shape[1] === "seq" && typeof width === "number" && width > 1) {
      project = { p: `tdb_edit_${i}_proj_p`, r: `tdb_edit_${i}_proj_r`, width };
      edited = insertRankOneUpdate(g, value, project.p, project.r, width);
    }
    const point = insertEditPoint(g, edited, { mulInput: `tdb_edit_${i}_mul`, addInput: `tdb_edit_${i}_add`, shape });
    const layer = /^blocks\.(\d+)\./.exec(hook);
    edits.set(value, { mul: point.mulInput, add: point.addInput, hooks: [hook], shape, layer: layer ? Number(layer[1]) : -1, project });
    editedOutput.set(value, point.output);
  }
  const outputs = new Map<HookName, string>();
  for (const h of spec.hooks) {
    const src = hookMap.sources.get(h);
    if (!src) throw new TdbError("E_HOOK_UNAVAILABLE", `${h} is not reachable in this graph`, { value: h, allowed: [...hookMap.sources.keys()] });
    if (src.kind === "computed") {
      outputs.set(h, exposeValue(g, src.build(g)));
      continue;
    }
    const value = moved.get(h) ?? src.value;
    const edited = editedOutput.get(value);
    if (edited) outputs.set(h, exposeValue(g, edited));
    else if (src.fusionTail) outputs.set(h, addTapOutput(g, value, { outputName: h }));
    else outputs.set(h, exposeValue(g, value));
  }
  if (spec.selectLogits) selectLogitPositions(g);
  return { model: g.model, outputs, edits };
}


/**
 * Shared-prefix graphs feed one prompt row, but from block L on the tensors flowing have as many
 * rows as `tdb_rows_L` holds. A shape the graph computes from a graph input (`Shape(input_ids)`,
 * e.g. older exports' final `Reshape` to `input_shape + (hidden,)`) still says batch 1 there.
 * This rewrites every such shape read downstream of a row gather: the node that uses it gets a
 * copy of the shape computation in which `Shape(input)` has its first element replaced by the
 * row count of the block it is in (`Shape(tdb_rows_L)`), i.e. the batch of the tensor actually
 * flowing. Shape computations are the values made only of `Shape` outputs, constants and
 * initializers; data read from graph inputs (the padding mask, batch 1) broadcasts and is left
 * alone, as are shapes read from the tensors flowing (already right).
 *
 * `gathered[L]` is block L's gathered residual stream, whose batch is the length of `rowsInput(L)`.
 */
function rebatchInputShapes(g: OnnxGraph, gathered: readonly string[]): void {
  const inputs = new Set(g.inputNames().filter((n) => !n.startsWith("tdb_") && !g.initializer(n)));
  const rank = (name: string): number | undefined => {
    const dims = g.graph.input.find((v) => v.name === name)?.type?.value;
    return dims?.case === "tensorType" && dims.value.shape ? dims.value.shape.dim.length : undefined;
  };
  /** Shape nodes whose output starts with the batch dim of a graph input. */
  const readsInputBatch = (n: NodeProto): boolean => {
    if (n.opType !== "Shape" || !inputs.has(n.input[0] ?? "")) return false;
    const startAttr = n.attribute.find((a) => a.name === "start");
    let start = startAttr ? Number(startAttr.i) : 0;
    if (start < 0) {
      const r = rank(n.input[0]!);
      if (r === undefined) return false;
      start += r;
    }
    return start <= 0;
  };
  // Per value: shape-only (built from shapes and constants), depending on a graph input's batch, block level.
  const shapeOnly = new Set<string>(g.initializerNames());
  const fromInput = new Set<string>();
  const level = new Map<string, number>();
  gathered.forEach((v, l) => level.set(v, l));
  const order = g.topologicalOrder();
  for (const n of order) {
    const ins = n.input.filter((i) => i !== "");
    const hasSub = n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0);
    let lvl = -1;
    for (const i of ins) lvl = Math.max(lvl, level.get(i) ?? -1);
    for (const o of n.output) {
      if (!o) continue;
      if (n.opType === "Shape" || n.opType === "Size") {
        shapeOnly.add(o);
        if (readsInputBatch(n)) fromInput.add(o);
        continue; // metadata: no block level
      }
      if (!level.has(o) && lvl >= 0) level.set(o, lvl);
      if (!hasSub && ins.every((i) => shapeOnly.has(i))) {
        shapeOnly.add(o);
        if (ins.some((i) => fromInput.has(i))) fromInput.add(o);
      }
    }
  }
  if (fromInput.size === 0) return;
  const copies = new Map<string, string>(); // `${value}@${layer}` -> rewritten value
  const rewrite = (value: string, layer: number, before: NodeProto): string => {
    if (!fromInput.has(value)) return value;
    const key = `${value}@${layer}`;
    const done = copies.get(key);
    if (done) return done;
    const p = g.producer(value)!;
    const base = `/tdb/prefix/h.${layer}/rebatch`;
    const e = new GraphEmitter(g, `${base}/${value}`);
    e.placement = { before };
    if (p.opType === "Shape") {
      // Shape(x)[0] becomes the row count of this block: Concat(Shape(rows), Shape(x)[1:]).
      const rest = e.op("Slice", [value, e.ints([1]), e.ints([INT64_MAX]), e.ints([0])], {}, "Rest");
      const out = e.op("Concat", [e.op("Shape", [rowsInput(layer)], {}, "Rows"), rest], { axis: 0 }, "Shape");
      copies.set(key, out);
      return out;
    }
    const input = p.input.map((i) => (i ? rewrite(i, layer, before) : i));
    const output = p.output.map((o) => (o ? g.uniqueName(`${base}/${o}`) : o));
    // A copy of the producer reading the rewritten shapes (same op, same attributes).
    g.addNode(create(NodeProtoSchema, { ...p, name: g.uniqueName(`${base}/${p.name || p.opType}`), input, output }), { before });
    p.output.forEach((o, k) => o && copies.set(`${o}@${layer}`, output[k]!));
    return copies.get(key)!;
  };
  for (const n of order) {
    if (shapeOnly.has(n.output[0] ?? "")) continue;
    const lvl = Math.max(-1, ...n.input.map((i) => level.get(i) ?? -1));
    if (lvl < 0 || !n.input.some((i) => fromInput.has(i))) continue;
    n.input = n.input.map((i) => (i ? rewrite(i, lvl, n) : i));
  }
  g.invalidate();
}

/**
 * Inserts `x + MatMul(x, p) * r` after `value` (all its readers read the result), with `p`
 * [batch, width, 1] and `r` [batch, seq, width] new graph inputs; returns the new value's name.
 */
function insertRankOneUpdate(g: OnnxGraph, value: string, p: string, r: string, width: number): string {
  if (g.outputNames().includes(value)) throw new TdbError("E_ONNX_INVALID", `cannot edit ${value}: it is a graph output`, { value });
  const readers = g.consumers(value);
  g.addInput(tensorValueInfo(p, "float32", ["batch", width, 1]));
  g.addInput(tensorValueInfo(r, "float32", ["batch", "seq", width]));
  const e = new GraphEmitter(g, `/tdb/edit/${value}`);
  const at = g.producer(value);
  e.placement = at ? { after: at } : { before: g.nodes[0]! };
  const out = e.op("Add", [value, e.op("Mul", [e.op("MatMul", [value, p], {}, "Dot"), r], {}, "Update")], {}, "Projected");
  for (const n of readers) n.input = n.input.map((i) => (i === value ? out : i));
  g.invalidate();
  return out;
}

/**
 * Makes `logits` [batch, n, vocab] hold only the positions fed in {@link LOGIT_POSITIONS_INPUT}
 * ([batch, n, 1], per row), by gathering the final hidden states before the unembedding
 * (`MatMul`, or `MatMul` + bias `Add`).
 */
function selectLogitPositions(g: OnnxGraph): void {
  if (!g.outputNames().includes("logits")) {
    const outputs = g.outputNames().filter((o) => !o.startsWith("blocks.") && !o.startsWith("tdb_"));
    throw new TdbError("E_NO_LOGITS", `cannot select logit positions: this graph has no "logits" output (a feature-extraction export?); its outputs: ${outputs.join(", ") || "none"}`, {
      value: "logits",
      allowed: outputs,
    });
  }
  let lmHead = g.producer("logits");
  // A float16 file written with keep_io_types casts its logits to float32; widened at load, that Cast is an identity.
  while ((lmHead?.opType === "Cast" || lmHead?.opType === "Identity") && lmHead.input[0]) lmHead = g.producer(lmHead.input[0]);
  if (lmHead?.opType === "Add") {
    // An unembedding with a bias: logits = MatMul(hidden, W_U) + b_U; b_U broadcasts over the selected rows.
    const mm = lmHead.input.map((i) => g.producer(i)).find((p) => p?.opType === "MatMul");
    const bias = lmHead.input.find((i) => g.initializer(i));
    if (mm && bias && g.consumers(mm.output[0]!).length === 1) lmHead = mm;
  }
  const hidden = lmHead?.opType === "MatMul" ? lmHead.input[0] : undefined;
  if (!lmHead || !hidden) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `cannot select logit positions: logits are not produced by a MatMul (found ${lmHead?.opType ?? "nothing"})`, {
      value: lmHead?.opType,
      allowed: ["MatMul"],
    });
  }
  g.addInput(tensorValueInfo(LOGIT_POSITIONS_INPUT, "int64", ["batch", "n_logit_positions", 1]));
  const e = new GraphEmitter(g, "/tdb/logit_positions");
  e.placement = { before: lmHead };
  lmHead.input[0] = e.node("GatherND", [hidden, LOGIT_POSITIONS_INPUT], { batch_dims: 1 }, [g.uniqueName(`${hidden}__selected`)])[0]!;
  g.invalidate();
}
