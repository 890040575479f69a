/**
 * The I/O conventions of the graph a model was exported with: the element type of the token
 * inputs (int64, or int32 as onnxruntime-genai declares them), the declared layout of past
 * key/value inputs (decoder-with-past exports: `past_key_values.N.key` `[batch, heads, past,
 * d_head]`, or the older `past_N` `[2, batch, heads, past, d_head]`), the float type of the
 * activations (float32 or float16) and whether there is a `logits` output at all
 * (feature-extraction exports have `last_hidden_state` instead).
 *
 * @module
 */
import type { ModelProto, ValueInfoProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { ArchDims } from "../hooks/adapter.js";
import { elemTypeOf, type ElemType, type HostTensor } from "../onnx/tensor.js";

/** One declared graph input or output: element type (undefined when not declared or unknown) and dims. */
export interface DeclaredValue {
  type: ElemType | undefined;
  /** Numbers for fixed dims, strings for symbolic ones, undefined for unknown ones. */
  dims: (number | string | undefined)[] | undefined;
}

/** What {@link graphIo} reads from a graph's signature. */
export interface GraphIo {
  /** Declared inputs by name. */
  inputs: Map<string, DeclaredValue>;
  /** Output names, in order. */
  outputs: string[];
  /** Whether there is an output named `logits`. */
  hasLogits: boolean;
  /** Float type of the activations: the type of `logits` (else of the first float output). */
  floatType: "float32" | "float16";
}

function declared(v: ValueInfoProto): DeclaredValue {
  if (v.type?.value.case !== "tensorType") return { type: undefined, dims: undefined };
  const t = v.type.value.value;
  let type: ElemType | undefined;
  try {
    type = t.elemType ? elemTypeOf(t.elemType) : undefined;
  } catch {
    type = undefined;
  }
  const dims = t.shape?.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : undefined));
  return { type, dims };
}

/** The signature facts of `model`'s main graph (see {@link GraphIo}). */
export function graphIo(model: ModelProto): GraphIo {
  const g = model.graph;
  const inits = new Set(g?.initializer.map((t) => t.name) ?? []);
  const inputs = new Map<string, DeclaredValue>();
  for (const v of g?.input ?? []) if (!inits.has(v.name)) inputs.set(v.name, declared(v));
  const outputs = (g?.output ?? []).map((o) => o.name);
  const outTypes = (g?.output ?? []).map((o) => declared(o).type);
  const logitsAt = outputs.indexOf("logits");
  const float = logitsAt >= 0 ? outTypes[logitsAt] : outTypes.find((t) => t === "float16" || t === "float32");
  return { inputs, outputs, hasLogits: logitsAt >= 0, floatType: float === "float16" ? "float16" : "float32" };
}

/** `E_NO_LOGITS`: `what` needs logits and the graph has none; names the outputs it has. */
export function noLogitsError(what: string, outputs: readonly string[]): TdbError {
  return new TdbError(
    "E_NO_LOGITS",
    `${what} needs logits, but this graph has no "logits" output (a feature-extraction export?); its outputs: ${outputs.join(", ") || "none"}. Hooks work: trace it and read trace.cache`,
    { value: "logits", allowed: [...outputs] },
  );
}

/** A token input (`input_ids`, `attention_mask`, `position_ids`) as the graph declares it: int64 or int32. */
export function tokenFeed(io: GraphIo, name: string, data: BigInt64Array, dims: number[]): HostTensor {
  const type = io.inputs.get(name)?.type ?? "int64";
  // A graph exported without dynamic axes declares a fixed batch size or sequence length: say so before onnxruntime does.
  const fixed = io.inputs.get(name)?.dims;
  for (let i = 0; i < dims.length; i++) {
    const f = fixed?.[i];
    if (typeof f === "number" && f !== dims[i]) {
      const what = i === 0 ? "batch size (rows)" : "sequence length (tokens)";
      throw new TdbError("E_BAD_INPUT", `the graph declares ${name} with a fixed ${what} of ${f} (exported without dynamic axes?); this run feeds ${dims[i]}`, { value: dims[i], allowed: [f] });
    }
  }
  if (type === "int64") return { type, data, dims };
  if (type === "int32") return { type, data: Int32Array.from(data, (v) => Number(v)), dims };
  throw new TdbError("E_UNSUPPORTED_GRAPH", `graph input ${name} is declared ${type}; tdb-js feeds token inputs as int64 or int32`, {
    value: type,
    allowed: ["int64", "int32"],
  });
}

/** Layer of a past input: `past_key_values.N.*` or `past_N`. */
export function pastLayer(name: string): number | undefined {
  const m = /^past_key_values\.(\d+)\.|^past_(\d+)$/.exec(name);
  return m ? Number(m[1] ?? m[2]) : undefined;
}

/**
 * An empty past (length 0) for a full-sequence run of a decoder-with-past graph: `[B, H, 0,
 * d_head]` for `past_key_values.N.key/value`, `[2, B, H, 0, d_head]` for `past_N`; fixed dims
 * the graph declares win over the config's (e.g. fewer key/value heads), and the element type is
 * the declared one (float32 or float16). `rows(layer)`, when given, is the batch of that layer.
 */
export function pastFeed(io: GraphIo, name: string, B: number, dims: ArchDims, rows?: (layer: number) => number): HostTensor {
  const decl = io.inputs.get(name);
  const rank = decl?.dims?.length ?? (name.startsWith("past_key_values.") ? 4 : 5);
  if (rank !== 4 && rank !== 5) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `past input ${name} has rank ${rank}; tdb-js feeds [batch, heads, past, d_head] or [2, batch, heads, past, d_head]`, {
      value: decl?.dims?.map((d) => d ?? "?") ?? rank,
      allowed: ["[batch, heads, past, d_head]", "[2, batch, heads, past, d_head]"],
    });
  }
  const layer = pastLayer(name);
  const batch = rows && layer !== undefined ? rows(layer) : B;
  const conv = rank === 4 ? [batch, dims.nHeads, 0, dims.dHead] : [2, batch, dims.nHeads, 0, dims.dHead];
  const shape = conv.map((d, i) => {
    const fixed = decl?.dims?.[i];
    if (i === rank - 2 || i === rank - 4) return d; // past length 0, batch
    return typeof fixed === "number" ? fixed : d;
  });
  const type = decl?.type ?? "float32";
  if (type === "float32") return { type, data: new Float32Array(0), dims: shape };
  if (type === "float16") return { type, data: new Uint16Array(0), dims: shape };
  throw new TdbError("E_UNSUPPORTED_GRAPH", `past input ${name} is declared ${type}; tdb-js feeds float32 or float16 past keys/values`, { value: type, allowed: ["float32", "float16"] });
}

/** The graph inputs tdb-js feeds (beside its own `tdb_*` inputs). */
export const FED_INPUTS = ["input_ids", "attention_mask", "position_ids", "past_key_values.N.key/value", "past_N", "use_cache_branch"] as const;

/**
 * Checks at load that every graph input is one tdb-js can feed, in a type it can feed: token
 * inputs int64 or int32, past inputs float32 or float16 of rank 4 or 5. `E_UNSUPPORTED_GRAPH`
 * naming the input, its declared type and what is allowed otherwise.
 */
export function checkGraphInputs(io: GraphIo, dims: ArchDims): void {
  for (const [name, decl] of io.inputs) {
    if (name === "input_ids" || name === "attention_mask" || name === "position_ids") tokenFeed(io, name, new BigInt64Array(0), []);
    else if (pastLayer(name) !== undefined) pastFeed(io, name, 1, dims);
    else if (name === "use_cache_branch" || name.startsWith("tdb_")) continue;
    else {
      throw new TdbError("E_UNSUPPORTED_GRAPH", `graph input ${JSON.stringify(name)} (${decl.type ?? "untyped"}) is not one tdb-js knows how to feed`, {
        value: name,
        allowed: [...FED_INPUTS],
      });
    }
  }
}
