/**
 * Building patched graphs: the flattened model plus, on request, edit points on hook tensors
 * (`x * mul + add`, fed per run), hook tensors exposed as outputs, and a gather that keeps the
 * logits of chosen positions only (the unembedding is the largest matmul of a small model; with
 * 144 variants of a 32-token prompt, all-position logits would be ~1 GB).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema, type ModelProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { ArchDims, HookMap } from "../hooks/adapter.js";
import { hookKindOf, type HookName } from "../hooks/names.js";
import { cloneStructure } from "../onnx/clone.js";
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
    for (let l = 0; l < dims.nLayers; l++) {
      const hook = `blocks.${l}.hook_resid_pre` as HookName;
      const x = editableValue(hookMap, hook);
      const readers = g.consumers(x);
      const gathered = g.uniqueName(`${x}__rows_${l}`);
      g.addInput(tensorValueInfo(rowsInput(l), "int64", [`rows_${l}`]));
      g.addNode(
        create(NodeProtoSchema, {
          opType: "Gather",
          name: g.uniqueName(`/tdb/prefix/h.${l}/Gather`),
          input: [x, rowsInput(l)],
          output: [gathered],
          attribute: [create(AttributeProtoSchema, { name: "axis", type: AttributeProto_AttributeType.INT, i: 0n })],
        }),
        { after: g.producer(x) },
      );
      for (const n of readers) n.input = n.input.map((i) => (i === x ? gathered : i));
      g.invalidate();
      moved.set(hook, gathered);
    }
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
 * Inserts `x + MatMul(x, p) * r` after `value` (all its readers read the result), with `p`
 * [batch, width, 1] and `r` [batch, seq, width] new graph inputs; returns the new value's name.
 */
function insertRankOneUpdate(g: OnnxGraph, value: string, p: string, r: string, width: number): string {
  if (g.outputNames().includes(value)) throw new TdbError("E_ONNX_INVALID", `cannot edit ${value}: it is a graph output`, { value });
  const readers = g.consumers(value);
  g.addInput(tensorValueInfo(p, "float32", ["batch", width, 1]));
  g.addInput(tensorValueInfo(r, "float32", ["batch", "seq", width]));
  const name = (base: string) => g.uniqueName(`/tdb/edit/${value}/${base}`);
  const dot = name("Dot_output_0");
  const upd = name("Update_output_0");
  const out = name("Projected_output_0");
  const at = g.producer(value);
  const nodes = [
    create(NodeProtoSchema, { opType: "MatMul", name: name("Dot"), input: [value, p], output: [dot] }),
    create(NodeProtoSchema, { opType: "Mul", name: name("Update"), input: [dot, r], output: [upd] }),
    create(NodeProtoSchema, { opType: "Add", name: name("Projected"), input: [value, upd], output: [out] }),
  ];
  for (const n of readers) n.input = n.input.map((i) => (i === value ? out : i));
  let index = at ? g.indexOfNode(at) + 1 : 0;
  g.invalidate();
  for (const n of nodes) g.addNode(n, { index: index++ });
  return out;
}

/**
 * Makes `logits` [batch, n, vocab] hold only the positions fed in {@link LOGIT_POSITIONS_INPUT}
 * ([batch, n, 1], per row), by gathering the final hidden states before the unembedding.
 */
function selectLogitPositions(g: OnnxGraph): void {
  const lmHead = g.producer("logits");
  const hidden = lmHead?.opType === "MatMul" ? lmHead.input[0] : undefined;
  if (!lmHead || !hidden) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `cannot select logit positions: logits are not produced by a MatMul (found ${lmHead?.opType ?? "nothing"})`, {
      value: lmHead?.opType,
      allowed: ["MatMul"],
    });
  }
  g.addInput(tensorValueInfo(LOGIT_POSITIONS_INPUT, "int64", ["batch", "n_logit_positions", 1]));
  const out = g.uniqueName(`${hidden}__selected`);
  g.addNode(
    create(NodeProtoSchema, {
      opType: "GatherND",
      name: g.uniqueName("/tdb/logit_positions/GatherND"),
      input: [hidden, LOGIT_POSITIONS_INPUT],
      output: [out],
      attribute: [create(AttributeProtoSchema, { name: "batch_dims", type: AttributeProto_AttributeType.INT, i: 1n })],
    }),
    { before: lmHead },
  );
  lmHead.input[0] = out;
  g.invalidate();
}
