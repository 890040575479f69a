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
  const threshold = opts.sizeThreshold ?? 1024;
  const alignment = opts.alignment ?? 64;
  if (!Number.isInteger(alignment) || alignment < 1) {
    throw new TdbError("E_BAD_OPTION", `alignment must be a positive integer, got ${alignment}`, { value: alignment });
  }
  checkLocation(opts.location, "(externalizeData)");
  if (!model.graph) throw new TdbError("E_ONNX_INVALID", "the model has no graph");
  const moves = new Map<TensorProto, number>();
  let size = 0;
  const plan = (t: TensorProto) => {
    if (moves.has(t) || t.dataLocation === TensorProto_DataLocation.EXTERNAL) return t;
    const n = t.rawData?.byteLength ?? 0;
    if (n === 0 || n < threshold) return t;
    size = Math.ceil(size / alignment) * alignment;
    moves.set(t, size);
    size += t.rawData.byteLength;
    return t;
  };
  mapInitializers(model.graph, plan);
  const data = new Uint8Array(size);
  const replaced = new Map<TensorProto, TensorProto>();
  for (const [t, offset] of moves) {
    data.set(t.rawData, offset);
    const ext = copy(t, {
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        create(StringStringEntryProtoSchema, { key: "location", value: opts.location }),
        create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(t.rawData.byteLength) }),
      ],
    });
    delete (ext as Partial<TensorProto>).rawData; // unset, not empty: the field is left out
    replaced.set(t, ext);
  }
  const graph = mapInitializers(model.graph, (t) => replaced.get(t) ?? t);
  return { model: copy(model, { graph }), data };
}
