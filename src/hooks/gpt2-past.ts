/**
 * A with-past variant of a GPT-2 graph, built by tdb-js from the flattened no-past graph, so
 * that generation can run one token per step whatever the export (a plain decoder, the no-past
 * branch of a merged decoder, an export without `present.*` outputs).
 *
 * For every block, the per-head keys and values (the `hook_k` / `hook_v` tensors,
 * `[batch, seq, head, d_head]`) are concatenated after cache inputs `tdb_past.L.key` /
 * `tdb_past.L.value` (`[batch, past, head, d_head]`, the same layout, so no transpose is
 * needed), every reader of the new keys/values reads the concatenation instead, and the
 * concatenations become outputs `tdb_present.L.key` / `.value` (`[batch, past + seq, ...]`).
 * The position ids read by the position-embedding Gather are offset by the past length. The
 * causal mask is not taken from the export (exports build it in many ways): on the path from
 * the scores MatMul to the Softmax, a `Where` on a boolean mask gets a mask tdb-js builds from
 * the past length P and the step length S (query i sees keys j <= P + i), so does a `Mul` by a
 * float mask sliced from the causal buffer (legacy `w * b - 1e4 * (1 - b)`), and an `Add` of a
 * mask bias gets one built from `attention_mask` (which now covers the P + S keys; exports
 * without one get an `Add` of it before the Softmax). The
 * export's own `present.*` outputs are dropped, and with them what only they needed.
 *
 * Edit points and hook outputs are added afterwards on this graph as on the no-past one; an
 * edit of `hook_k` / `hook_v` then edits the new tokens' keys/values before they join the
 * cache, and `hook_pattern` / `hook_attn_scores` are `[batch, head, seq, past + seq]`.
 *
 * @module
 */
import { TensorProto_DataType as DT, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { GraphEmitter } from "../onnx/emit.js";
import type { OnnxGraph } from "../onnx/graph.js";
import { pruneDeadNodes, removeUnusedInputs, tensorValueInfo } from "../onnx/surgery.js";
import type { ArchDims, HookMap, PastGraph } from "./adapter.js";
import type { HookName } from "./names.js";

/** float32's most negative finite number, the mask value of the export. */
const MASK_VALUE = -3.4028234663852886e38;

/** Ops that may sit between the scores MatMul and the Softmax (scaling, casts, masking). */
const SCORE_PATH_OPS = new Set(["Add", "Sub", "Mul", "Div", "Where", "Cast", "Identity"]);

function unsupported(why: string, value?: unknown): TdbError {
  return new TdbError("E_UNSUPPORTED_GRAPH", `cannot build the with-past graph for cached generation: ${why}`, { value });
}

function tapValue(hookMap: HookMap, hook: HookName): string {
  const src = hookMap.sources.get(hook);
  if (src?.kind !== "tap") throw unsupported(`${hook} is not a tensor of the graph (${hookMap.unavailable.get(hook) ?? "computed beside it"})`, hook);
  return src.value;
}

/** Values computed from `start` (not through shape reads: `Shape`/`Size` outputs are metadata). */
function descendants(g: OnnxGraph, start: string): Set<string> {
  const out = new Set([start]);
  const stack = [start];
  while (stack.length) {
    const v = stack.pop()!;
    for (const n of g.consumers(v)) {
      if (n.opType === "Shape" || n.opType === "Size") continue;
      for (const o of n.output) {
        if (o && !out.has(o)) {
          out.add(o);
          stack.push(o);
        }
      }
    }
  }
  return out;
}

/** The graph input named `name`'s element type, or undefined. */
function inputElemType(g: OnnxGraph, name: string): number | undefined {
  const t = g.graph.input.find((v) => v.name === name)?.type?.value;
  return t?.case === "tensorType" ? t.value.elemType : undefined;
}

/**
 * Makes `g` (a copy of the flattened no-past GPT-2 graph) a with-past graph; see the module
 * overview. `E_UNSUPPORTED_GRAPH` when a needed tensor is not reachable (fused attention, no
 * position-embedding Gather) or the masking before a Softmax is not recognised.
 */
export function gpt2WithPast(g: OnnxGraph, hookMap: HookMap, dims: ArchDims): PastGraph {
  if (!g.outputNames().includes("logits")) throw unsupported("the graph has no logits output", g.outputNames());
  // The cache and the masks are float32; a float16 graph keeps the full re-run.
  const logitsType = g.graph.output.find((o) => o.name === "logits")?.type?.value;
  if ((logitsType?.case === "tensorType" && logitsType.value.elemType !== DT.FLOAT) || g.graph.initializer.some((t) => t.dataType === DT.FLOAT16)) {
    throw unsupported("the graph computes in float16", "float16");
  }
  const H = dims.nHeads;
  const dh = dims.dHead;
  const e = new GraphEmitter(g, "/tdb/past");
  const layers: PastGraph["layers"] = [];
  const ks: string[] = [];
  const vs: string[] = [];
  for (let l = 0; l < dims.nLayers; l++) {
    ks.push(tapValue(hookMap, `blocks.${l}.attn.hook_k` as HookName));
    vs.push(tapValue(hookMap, `blocks.${l}.attn.hook_v` as HookName));
    tapValue(hookMap, `blocks.${l}.attn.hook_pattern` as HookName);
  }
  const posEmbed = tapValue(hookMap, "hook_pos_embed");
  const gather = g.producer(posEmbed);
  if (gather?.opType !== "Gather" || !gather.input[1]) throw unsupported("the position embedding is not a Gather", gather?.opType);

  // P (past length) and S (new tokens) as int64 scalars, read from the first layer's tensors.
  const past0 = "tdb_past.0.key";
  const P = e.op("Gather", [e.op("Shape", [past0], {}, "PastShape"), e.ints([1], [])], { axis: 0 }, "P");
  const S = e.op("Gather", [e.op("Shape", [ks[0]!], {}, "NewShape"), e.ints([1], [])], { axis: 0 }, "S");
  const T = e.op("Add", [P, S], {}, "T");

  // Positions: the step's tokens are P .. P+S-1.
  const idx = e.op("Cast", [gather.input[1]], { to: DT.INT64 }, "PositionIds");
  gather.input[1] = e.op("Add", [idx, P], {}, "OffsetPositionIds");

  // Causal mask [1, 1, S, T]: query i (absolute P + i) sees keys j <= P + i.
  const one = e.ints([1], []);
  const rows = e.op("Range", [P, T, one], {}, "QueryPositions");
  const cols = e.op("Range", [e.ints([0], []), T, one], {}, "KeyPositions");
  const later = e.op("Greater", [e.unsqueeze(cols, [0]), e.unsqueeze(rows, [1])], {}, "Later");
  const causal = e.unsqueeze(e.op("Not", [later], {}, "Causal"), [0, 1]);
  const notCausal = e.unsqueeze(later, [0, 1]);

  // attention_mask over past + new tokens -> additive bias [B, 1, 1, T]; combined with the causal mask [B, 1, S, T].
  let maskInput = g.inputNames().find((n) => n === "attention_mask");
  if (!maskInput) {
    maskInput = "attention_mask";
    g.addInput(tensorValueInfo(maskInput, "int64", ["batch_size", "tdb_past_plus_seq"]));
  } else {
    const t = g.graph.input.find((v) => v.name === maskInput)!.type?.value;
    const dim = t?.case === "tensorType" ? t.value.shape?.dim[1] : undefined;
    if (dim) dim.value = { case: "dimParam", value: "tdb_past_plus_seq" };
  }
  const m = e.op("Cast", [maskInput], { to: DT.FLOAT }, "Mask");
  const f = (x: number) => e.scalar(x, DT.FLOAT);
  const padBias = e.unsqueeze(e.op("Mul", [e.op("Sub", [f(1), m], {}, "Masked"), f(MASK_VALUE)], {}, "PadBias"), [1, 2]);
  const fullBias = e.op("Where", [causal, padBias, f(MASK_VALUE)], {}, "Bias");
  const causalFloat = e.op("Cast", [causal], { to: DT.FLOAT }, "CausalFloat");

  for (let l = 0; l < dims.nLayers; l++) {
    const entry = { pastKey: `tdb_past.${l}.key`, pastValue: `tdb_past.${l}.value`, presentKey: `tdb_present.${l}.key`, presentValue: `tdb_present.${l}.value` };
    for (const [value, pastName, presentName] of [
      [ks[l]!, entry.pastKey, entry.presentKey],
      [vs[l]!, entry.pastValue, entry.presentValue],
    ] as const) {
      const readers = g.consumers(value).filter((n) => !n.name.startsWith("/tdb/past/")); // not our own Shape of the new keys
      if (readers.length === 0) throw unsupported(`nothing reads ${value} in block ${l}`, value);
      g.addInput(tensorValueInfo(pastName, "float32", ["batch_size", "tdb_past", H, dh]));
      e.node("Concat", [pastName, value], { axis: 1 }, [presentName], `h.${l}/${pastName.endsWith("key") ? "Key" : "Value"}`);
      for (const n of readers) n.input = n.input.map((i) => (i === value ? presentName : i));
    }
    g.invalidate();
    rewireMask(g, l, tapValue(hookMap, `blocks.${l}.attn.hook_pattern` as HookName), descendants(g, entry.presentKey), { causal, notCausal, padBias, fullBias, causalFloat });
    layers.push(entry);
  }

  // Outputs: logits and the presents; the export's own present.* (and what only they read) go.
  g.graph.output = g.graph.output.filter((o) => o.name === "logits");
  for (const x of layers) for (const name of [x.presentKey, x.presentValue]) g.addOutput(tensorValueInfo(name, "float32", ["batch_size", "tdb_past_plus_seq", H, dh]));
  g.invalidate();
  pruneDeadNodes(g);
  removeUnusedInputs(g);
  if (!g.inputNames().includes(past0)) throw unsupported("the key cache of block 0 is not read", past0);
  if (inputElemType(g, maskInput) === undefined) throw unsupported("no attention mask input", maskInput);
  g.sortTopologically();
  return { layers, maskInput };
}

/**
 * Whether `v` is computed from a rank-4 constant (the causal-mask buffer `[1, 1, n_ctx, n_ctx]`
 * sliced to the scores), through any ops: the `b` of legacy exports' `w * b - 1e4 * (1 - b)`.
 */
function readsMaskBuffer(g: OnnxGraph, v: string): boolean {
  const stack = [v];
  const seen = new Set<string>();
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x) || seen.size > 256) continue;
    seen.add(x);
    const t = g.initializer(x);
    if (t) {
      if (t.dims.length === 4) return true;
      continue;
    }
    const p = g.producer(x);
    if (!p) continue;
    if (p.opType === "Constant") {
      if (p.attribute.find((a) => a.name === "value")?.t?.dims.length === 4) return true;
      continue;
    }
    if (p.opType === "Shape" || p.opType === "Size") continue;
    for (const i of p.input) if (i) stack.push(i);
  }
  return false;
}

/**
 * Replaces the masking between block `l`'s scores MatMul and its Softmax: a `Where` on a boolean
 * mask gets the causal mask (or its negation, when the scores are its third operand); a `Mul` of
 * the scores by a float mask sliced from the causal buffer (legacy `w * b - 1e4 * (1 - b)`) has
 * that mask replaced by the causal mask as floats, everywhere it is read (so `1 - b` follows); an
 * `Add` of a bias gets the padding bias when a `Where` or such a `Mul` did the causal part, else
 * the combined bias. Without any `Add` (exports with no `attention_mask`), one adding the padding
 * bias is put before the Softmax (its input stays the `hook_attn_scores` value).
 */
function rewireMask(
  g: OnnxGraph,
  l: number,
  pattern: string,
  fromKeys: ReadonlySet<string>,
  masks: { causal: string; notCausal: string; padBias: string; fullBias: string; causalFloat: string },
): void {
  const softmax = g.producer(pattern);
  if (softmax?.opType !== "Softmax") throw unsupported(`block ${l}'s pattern is not a Softmax output`, softmax?.opType);
  let v = softmax.input[0]!;
  let where = false;
  const adds: { node: NodeProto; at: number }[] = [];
  for (let steps = 0; ; steps++) {
    const p = g.producer(v);
    if (!p || steps > 32) throw unsupported(`block ${l}: no scores MatMul found before the Softmax`, v);
    if (p.opType === "MatMul" && p.input.some((i) => fromKeys.has(i))) break;
    if (!SCORE_PATH_OPS.has(p.opType)) throw unsupported(`block ${l}: unexpected ${p.opType} between the scores and the Softmax`, p.opType);
    const on = p.input.findIndex((i) => fromKeys.has(i));
    if (on < 0) throw unsupported(`block ${l}: ${p.opType} ${p.name} before the Softmax does not read the scores`, p.name);
    if (p.opType === "Where") {
      if (on === 0) throw unsupported(`block ${l}: the scores are the condition of ${p.name}`, p.name);
      p.input[0] = on === 1 ? masks.causal : masks.notCausal;
      where = true;
    } else if (p.opType === "Mul" && p.input.length === 2 && readsMaskBuffer(g, p.input[1 - on]!)) {
      const b = p.input[1 - on]!;
      for (const n of g.consumers(b)) n.input = n.input.map((i) => (i === b ? masks.causalFloat : i));
      g.invalidate();
      where = true;
    } else if (p.opType === "Add" && p.input.length === 2) {
      if (readsMaskBuffer(g, p.input[1 - on]!)) throw unsupported(`block ${l}: ${p.name} adds a causal mask computed from the mask buffer without a Mul`, p.name);
      adds.push({ node: p, at: 1 - on });
    }
    v = p.input[on]!;
  }
  if (!where && adds.length === 0) throw unsupported(`block ${l}: no causal mask (Where, Mul or Add) found between the scores and the Softmax`, l);
  for (const { node, at } of adds) node.input[at] = where ? masks.padBias : masks.fullBias;
  if (adds.length === 0) {
    // No padding bias in the export: add tdb-js's, keeping the Softmax input's name.
    const scores = softmax.input[0]!;
    const p = g.producer(scores)!;
    const before = g.uniqueName(`${scores}_unpadded`);
    p.output = p.output.map((o) => (o === scores ? before : o));
    new GraphEmitter(g, `/tdb/past/h.${l}`).node("Add", [before, masks.padBias], {}, [scores], "PadBias");
  }
  g.invalidate();
}
