/**
 * ONNX external data: tensors whose bytes live in a side file (`model.onnx_data`) named by
 * `external_data` entries (`location`, `offset`, `length`).
 *
 * This module never touches the file system: reading is a callback, writing returns bytes.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { StringStringEntryProtoSchema, TensorProto_DataLocation, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { subgraphsOf } from "./walk.js";

/** Reads an external data file named by a tensor's `location` (relative to the model file). */
export type ExternalDataLoader = (location: string) => Promise<Uint8Array>;

function nodeTensors(n: NodeProto, visit: (t: TensorProto) => void): void {
  for (const a of n.attribute) {
    if (a.t) visit(a.t);
    for (const t of a.tensors ?? []) visit(t);
    for (const s of [...(a.sparseTensor ? [a.sparseTensor] : []), ...(a.sparseTensors ?? [])]) {
      if (s.values) visit(s.values);
      if (s.indices) visit(s.indices);
    }
  }
}

function graphTensors(g: GraphProto, visit: (t: TensorProto) => void): void {
  for (const t of g.initializer) visit(t);
  for (const s of g.sparseInitializer ?? []) {
    if (s.values) visit(s.values);
    if (s.indices) visit(s.indices);
  }
  for (const n of g.node) {
    nodeTensors(n, visit);
    for (const s of subgraphsOf(n)) graphTensors(s, visit);
  }
}

/**
 * Calls `visit` for every tensor of a model: initializers and sparse initializers of every
 * graph and subgraph, and tensors in node attributes (e.g. `Constant`), functions included.
 */
export function forEachTensor(model: ModelProto, visit: (t: TensorProto) => void): void {
  if (model.graph) graphTensors(model.graph, visit);
  for (const f of model.functions ?? []) for (const n of f.node) {
    nodeTensors(n, visit);
    for (const s of subgraphsOf(n)) graphTensors(s, visit);
  }
  for (const t of model.trainingInfo ?? []) {
    if (t.initialization) graphTensors(t.initialization, visit);
    if (t.algorithm) graphTensors(t.algorithm, visit);
  }
}

/** Rejects locations that could escape the model's directory. */
function checkLocation(location: string, tensor: string): void {
  const bad = location === "" || location.startsWith("/") || location.startsWith("\\") || /^[a-zA-Z]:/.test(location) || location.split(/[\\/]/).includes("..");
  if (bad) {
    throw new TdbError("E_ONNX_INVALID", `tensor ${tensor}: external data location ${JSON.stringify(location)} must be a relative path inside the model directory`, {
      value: location,
    });
  }
}

function entry(t: TensorProto, key: string): string | undefined {
  return t.externalData.find((e) => e.key === key)?.value;
}

function parseCount(t: TensorProto, key: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) {
    throw new TdbError("E_ONNX_INVALID", `tensor ${t.name}: external data ${key} ${JSON.stringify(v)} is not a byte count`, { value: v });
  }
  return n;
}

/**
 * Loads the bytes of every tensor stored as external data (main graph, subgraphs, attributes),
 * reading each file once through `load` and viewing the tensor's range with `subarray` (no
 * copy). Resolved tensors become ordinary tensors (`rawData` set, data location `DEFAULT`, no
 * `external_data` entries), so the model can be re-encoded and handed to onnxruntime as bytes.
 * Edits the model in place; returns the number of tensors resolved.
 *
 * Throws `E_ONNX_INVALID` for a location outside the model directory or a range past the end
 * of its file. Errors of `load` propagate.
 *
 * @example
 * ```ts
 * const model = decodeModel(await readFile(join(dir, "model.onnx")));
 * await resolveExternalData(model, (location) => readFile(join(dir, location)));
 * ```
 */
export async function resolveExternalData(model: ModelProto, load: ExternalDataLoader): Promise<number> {
  const pending: { t: TensorProto; location: string }[] = [];
  forEachTensor(model, (t) => {
    if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) return;
    const location = entry(t, "location");
    if (location === undefined) {
      throw new TdbError("E_ONNX_INVALID", `tensor ${t.name} is stored externally but names no location`, { value: t.name });
    }
    checkLocation(location, t.name);
    pending.push({ t, location });
  });
  const files = new Map<string, Promise<Uint8Array>>();
  for (const { location } of pending) if (!files.has(location)) files.set(location, load(location));
  const loaded = new Map<string, Uint8Array>();
  for (const [location, p] of files) loaded.set(location, await p);
  for (const { t, location } of pending) {
    const file = loaded.get(location)!;
    const offset = parseCount(t, "offset", entry(t, "offset")) ?? 0;
    const length = parseCount(t, "length", entry(t, "length")) ?? file.byteLength - offset;
    if (offset + length > file.byteLength || length < 0) {
      throw new TdbError("E_ONNX_INVALID", `tensor ${t.name}: external range [${offset}, ${offset + length}) is past the end of ${location} (${file.byteLength} bytes)`, {
        value: { offset, length },
        allowed: file.byteLength,
      });
    }
    t.rawData = file.subarray(offset, offset + length) as Uint8Array<ArrayBuffer>;
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
    t.externalData = [];
  }
  return pending.length;
}

/** Options of {@link externalizeData}. */
export interface ExternalizeOptions {
  /** File name the tensors will be stored in, relative to the model file, e.g. `"model.onnx_data"`. */
  location: string;
  /** Move initializers with at least this many bytes of raw data. Default 1024. */
  sizeThreshold?: number;
  /** Start each tensor at a multiple of this many bytes in the data file. Default 64. */
  alignment?: number;
}

/** Result of {@link externalizeData}. */
export interface Externalized {
  /** A copy of the model whose large initializers point into the data file. */
  model: ModelProto;
  /** The data file's bytes. */
  data: Uint8Array;
}

/** A copy of a message object keeping its prototype (so proto2 field presence is unchanged). */
function copy<T extends object>(x: T, changes: Partial<T>): T {
  return Object.assign(Object.create(Object.getPrototypeOf(x) as object) as T, x, changes);
}

/** A structural copy of a graph where `map` may replace initializers; untouched parts are shared. */
function mapInitializers(g: GraphProto, map: (t: TensorProto) => TensorProto): GraphProto {
  let changed = false;
  const initializer = g.initializer.map((t) => {
    const r = map(t);
    if (r !== t) changed = true;
    return r;
  });
  const node = g.node.map((n) => {
    if (subgraphsOf(n).length === 0) return n;
    const attribute = n.attribute.map((a) => {
      const gg = a.g ? mapInitializers(a.g, map) : undefined;
      const graphs = (a.graphs ?? []).map((s) => mapInitializers(s, map));
      if (gg === a.g && graphs.every((s, k) => s === a.graphs[k])) return a;
      return copy(a, gg ? { g: gg, graphs } : { graphs });
    });
    if (attribute.every((a, k) => a === n.attribute[k])) return n;
    changed = true;
    return copy(n, { attribute });
  });
  return changed ? copy(g, { initializer, node }) : g;
}

/** Where one tensor's bytes sit in an external data file. */
export interface ExternalSlot {
  /** Byte offset in the data file (a multiple of the plan's alignment). */
  offset: number;
  /** Byte length. */
  length: number;
}

/** Result of {@link planExternalData}: which tensors move, and where. */
export interface ExternalPlan {
  /** Tensors that move (initializers of the main graph and subgraphs), by object identity. */
  slots: Map<TensorProto, ExternalSlot>;
  /** Size of the data file, bytes. */
  size: number;
}

function checkAlignment(alignment: number): void {
  if (!Number.isInteger(alignment) || alignment < 1) {
    throw new TdbError("E_BAD_OPTION", `alignment must be a positive integer, got ${alignment}`, { value: alignment, allowed: "a positive integer" });
  }
}

/**
 * Lays out the raw bytes of the large initializers of `model` (main graph and subgraphs; tensors
 * already external are left where they are) in one data file, each at a multiple of
 * `alignment`, without copying anything. Write each tensor's `rawData` at its slot's offset, then
 * point the model at the file with {@link pointToExternalData}; {@link externalizeData} does
 * both in memory.
 *
 * @example
 * ```ts
 * const plan = planExternalData(model, { sizeThreshold: 65536, alignment: 4096 });
 * for (const [t, { offset }] of plan.slots) writeSync(fd, t.rawData, 0, t.rawData.byteLength, offset);
 * ```
 */
export function planExternalData(model: ModelProto, opts: Omit<ExternalizeOptions, "location"> = {}): ExternalPlan {
  const threshold = opts.sizeThreshold ?? 1024;
  const alignment = opts.alignment ?? 64;
  checkAlignment(alignment);
  if (!model.graph) throw new TdbError("E_ONNX_INVALID", "the model has no graph");
  const slots = new Map<TensorProto, ExternalSlot>();
  let size = 0;
  mapInitializers(model.graph, (t) => {
    if (slots.has(t) || t.dataLocation === TensorProto_DataLocation.EXTERNAL) return t;
    const n = t.rawData?.byteLength ?? 0;
    if (n === 0 || n < threshold) return t;
    size = Math.ceil(size / alignment) * alignment;
    slots.set(t, { offset: size, length: n });
    size += n;
    return t;
  });
  return { slots, size };
}

/** A copy of `t` that keeps its bytes in `location` at `slot` (rawData unset). */
export function externalTensor(t: TensorProto, location: string, slot: ExternalSlot): TensorProto {
  // Field by field, leaving rawData out (unset, not empty: it is left out of the encoding), so
  // that tensors whose bytes are read on demand (an accessor) are not read here.
  const ext = Object.create(Object.getPrototypeOf(t) as object) as TensorProto;
  for (const k of Object.keys(t) as (keyof TensorProto)[]) if (k !== "rawData") (ext as unknown as Record<string, unknown>)[k] = t[k];
  ext.dataLocation = TensorProto_DataLocation.EXTERNAL;
  ext.externalData = [
    create(StringStringEntryProtoSchema, { key: "location", value: location }),
    create(StringStringEntryProtoSchema, { key: "offset", value: String(slot.offset) }),
    create(StringStringEntryProtoSchema, { key: "length", value: String(slot.length) }),
  ];
  return ext;
}

/**
 * A copy of `model` whose initializers found in `slots` (by object identity, in the main graph
 * and subgraphs) are external tensors in `location`; everything else is shared with `model`,
 * which is not modified.
 */
export function pointToExternalData(model: ModelProto, location: string, slots: ReadonlyMap<TensorProto, ExternalSlot>): ModelProto {
  checkLocation(location, "(pointToExternalData)");
  if (!model.graph) throw new TdbError("E_ONNX_INVALID", "the model has no graph");
  const replaced = new Map<TensorProto, TensorProto>();
  const graph = mapInitializers(model.graph, (t) => {
    const slot = slots.get(t);
    if (!slot) return t;
    let r = replaced.get(t);
    if (!r) replaced.set(t, (r = externalTensor(t, location, slot)));
    return r;
  });
  return graph === model.graph ? model : copy(model, { graph });
}

/**
 * Moves the raw bytes of large initializers (of the main graph and of subgraphs) into one data
 * buffer, for writing `model.onnx` next to `model.onnx_data`. The input model is not modified;
 * the returned model shares everything but the moved tensors with it.
 *
 * @example
 * ```ts
 * const { model: small, data } = externalizeData(model, { location: "model.onnx_data" });
 * await writeFile(join(dir, "model.onnx"), encodeModel(small));
 * await writeFile(join(dir, "model.onnx_data"), data);
 * ```
 */
export function externalizeData(model: ModelProto, opts: ExternalizeOptions): Externalized {
  checkAlignment(opts.alignment ?? 64);
  checkLocation(opts.location, "(externalizeData)");
  const plan = planExternalData(model, opts);
  const data = new Uint8Array(plan.size);
  for (const [t, { offset }] of plan.slots) data.set(t.rawData, offset);
  return { model: pointToExternalData(model, opts.location, plan.slots), data };
}
