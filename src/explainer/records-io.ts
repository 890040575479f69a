/**
 * Record sets and harvest checkpoints as bytes (platform-free; `records-node.ts` writes them to
 * disk atomically).
 *
 * A record set is a directory: `index.json` (format, settings, the random windows, the token
 * strings, the groups and their files) and one binary file per group (`mlp.3.bin`,
 * `attn.0.bin`, `sae.<hook>.bin`), so one layer loads without the others. A group file is the 8
 * bytes `TDBRECG1`, a little-endian uint32 header length, a UTF-8 JSON header (key, kind, hook,
 * nodes, count, windows as `[doc, offset, length]`, the arrays' names, dtypes and lengths), zero
 * padding to a multiple of 8 bytes, then each array's bytes (little-endian, as typed arrays hold
 * them on every supported platform), each padded to a multiple of 8 bytes.
 *
 * A checkpoint is one file: `TDBRECC1`, a uint32 header length, a JSON header (settings, random
 * windows, corpus position, counters, each group's byte length), padding, then the group files.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ModelFiles } from "../io/files.js";
import { HarvestedRecords, emptyGroup, type RandomWindow, type RecordGroup, type RecordGroupKind, type RecordSettings, type WindowRef } from "./records-data.js";
import type { CorpusPosition, RecordsCheckpoint } from "./records.js";
import type { ExplainableNode } from "./types.js";

const GROUP_MAGIC = "TDBRECG1";
const CHECKPOINT_MAGIC = "TDBRECC1";
/** `format` of a record set's index.json. */
export const RECORDS_FORMAT = "tdb-records";
/** Version of the record files. */
export const RECORDS_VERSION = 1;

type ArrayDtype = "float32" | "float64" | "int32" | "int16" | "uint32";
type AnyArray = Float32Array | Float64Array | Int32Array | Int16Array | Uint32Array;

const CTOR = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int16: Int16Array, uint32: Uint32Array } as const;

function dtypeOf(a: AnyArray): ArrayDtype {
  return a instanceof Float32Array ? "float32" : a instanceof Float64Array ? "float64" : a instanceof Int32Array ? "int32" : a instanceof Int16Array ? "int16" : "uint32";
}

const pad8 = (n: number): number => (n + 7) & ~7;
const UTF8 = new TextEncoder();

/** magic + uint32 length + JSON header + padding, then each array padded: as byte chunks. */
function pack(magic: string, header: object, arrays: readonly Uint8Array[]): Uint8Array[] {
  const json = UTF8.encode(JSON.stringify(header));
  const head = new Uint8Array(pad8(12 + json.length));
  head.set(UTF8.encode(magic), 0);
  new DataView(head.buffer).setUint32(8, json.length, true);
  head.set(json, 12);
  const out: Uint8Array[] = [head];
  for (const a of arrays) {
    out.push(a);
    if (a.length % 8 !== 0) out.push(new Uint8Array(pad8(a.length) - a.length));
  }
  return out;
}

function bytesOf(a: AnyArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function bad(what: string, detail: string, value?: unknown): TdbError {
  return new TdbError("E_BAD_INPUT", `${what} is not a tdb-js record file: ${detail}`, { value, allowed: `a file written by encodeRecords / writeRecords (version ${RECORDS_VERSION})` });
}

/** Splits a packed file into its header and arrays (copied, so they are aligned). */
function unpack(bytes: Uint8Array, magic: string, what: string): { header: Record<string, unknown>; body: number } {
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== magic) throw bad(what, `it does not start with ${magic}`);
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + len > bytes.length) throw bad(what, "the header is longer than the file", len);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `${what}: its header is not JSON`, { cause });
  }
  if (header === null || typeof header !== "object") throw bad(what, "its header is not an object");
  return { header: header as Record<string, unknown>, body: pad8(12 + len) };
}

interface GroupHeader {
  key: string;
  kind: RecordGroupKind;
  hook: string;
  nodes: ExplainableNode[];
  count: number;
  windows: [string, number, number][];
  arrays: { name: string; dtype: ArrayDtype; length: number }[];
}

/** One group as a file's byte chunks. */
export function encodeGroup(g: RecordGroup): Uint8Array[] {
  const ids = new Int32Array(g.windows.reduce((n, w) => n + w.ids.length, 0));
  let o = 0;
  for (const w of g.windows) {
    ids.set(w.ids, o);
    o += w.ids.length;
  }
  const named: [string, AnyArray | undefined][] = [
    ["windowIds", ids],
    ["topSize", g.topSize],
    ["topPeak", g.topPeak],
    ["topWin", g.topWin],
    ["topAct", g.topAct],
    ["topKeys", g.topKeys],
    ["randomAct", g.randomAct],
    ["randomKeys", g.randomKeys],
    ["sum", g.sum],
    ["positive", g.positive],
    ["max", g.max],
    ["hist", g.hist],
  ];
  const present = named.filter((e): e is [string, AnyArray] => e[1] !== undefined);
  const header: GroupHeader = {
    key: g.key,
    kind: g.kind,
    hook: g.hook,
    nodes: [...g.nodes],
    count: g.count,
    windows: g.windows.map((w) => [w.doc, w.offset, w.ids.length]),
    arrays: present.map(([name, a]) => ({ name, dtype: dtypeOf(a), length: a.length })),
  };
  return pack(GROUP_MAGIC, header, present.map(([, a]) => bytesOf(a)));
}

/** A group from its file's bytes; `s` are the record set's settings (array sizes are checked against them). */
export function decodeGroup(bytes: Uint8Array, s: RecordSettings, what = "record group"): RecordGroup {
  const { header, body } = unpack(bytes, GROUP_MAGIC, what);
  const h = header as unknown as GroupHeader;
  if (typeof h.key !== "string" || !Array.isArray(h.nodes) || !Array.isArray(h.windows) || !Array.isArray(h.arrays) || !["mlp", "attn", "sae"].includes(h.kind)) {
    throw bad(what, "its header lacks key, kind, nodes, windows or arrays");
  }
  const arrays = new Map<string, AnyArray>();
  let o = body;
  for (const a of h.arrays) {
    const ctor = CTOR[a.dtype];
    if (!ctor || !Number.isSafeInteger(a.length) || a.length < 0) throw bad(what, `array ${a.name} has a bad dtype or length`, a);
    const n = a.length * ctor.BYTES_PER_ELEMENT;
    if (o + n > bytes.length) throw bad(what, `array ${a.name} runs past the end of the file`, { offset: o, bytes: n, file: bytes.length });
    arrays.set(a.name, new ctor(bytes.slice(o, o + n).buffer));
    o += pad8(n);
  }
  const g = emptyGroup(h.key, h.kind, h.hook, h.nodes, s);
  const n = h.nodes.length;
  const { topK: K, randomK: R, contextTokens: C } = s;
  const want: Record<string, number> = {
    topSize: n,
    topPeak: n * K,
    topWin: n * K,
    topAct: n * K * C,
    randomAct: n * R * C,
    sum: n,
    positive: n,
    max: n,
    hist: g.hist.length,
  };
  if (h.kind === "attn") Object.assign(want, { topKeys: n * K * C, randomKeys: n * R * C });
  for (const [name, len] of Object.entries(want)) {
    const a = arrays.get(name);
    // A checkpoint's groups have no random excerpts yet.
    if (!a || (a.length !== len && !(name.startsWith("random") && a.length === 0))) throw bad(what, `array ${name} is missing or has the wrong length`, { name, length: a?.length, expected: len });
  }
  const ids = arrays.get("windowIds") as Int32Array | undefined;
  if (!ids) throw bad(what, "array windowIds is missing");
  let at = 0;
  const windows: WindowRef[] = h.windows.map(([doc, offset, len]) => {
    const w = { doc, offset, ids: ids.slice(at, at + len) };
    at += len;
    return w;
  });
  if (at !== ids.length) throw bad(what, "window lengths do not add up to windowIds", { sum: at, ids: ids.length });
  return {
    ...g,
    count: h.count,
    windows,
    topSize: arrays.get("topSize") as Int32Array,
    topPeak: arrays.get("topPeak") as Float32Array,
    topWin: arrays.get("topWin") as Int32Array,
    topAct: arrays.get("topAct") as Float32Array,
    topKeys: arrays.get("topKeys") as Int16Array | undefined,
    randomAct: arrays.get("randomAct") as Float32Array,
    randomKeys: arrays.get("randomKeys") as Int16Array | undefined,
    sum: arrays.get("sum") as Float64Array,
    positive: arrays.get("positive") as Float64Array,
    max: arrays.get("max") as Float32Array,
    hist: arrays.get("hist") as Uint32Array,
  };
}

interface RandomJson {
  doc: string;
  offset: number;
  hash: number;
  ids: number[];
}

const randomToJson = (w: RandomWindow): RandomJson => ({ doc: w.doc, offset: w.offset, hash: w.hash, ids: [...w.ids] });
const randomFromJson = (w: RandomJson): RandomWindow => ({ doc: w.doc, offset: w.offset, hash: w.hash, ids: Int32Array.from(w.ids) });

/** The file of a group in a record set directory. */
export function groupFile(key: string): string {
  return `${key}.bin`;
}

/**
 * A record set as files (name -> bytes): `index.json` and one `<group>.bin` per group. Write
 * the group files first and `index.json` last (`writeRecords` does).
 *
 * @example
 * ```ts
 * const files = encodeRecords(records); // { "index.json": ..., "mlp.0.bin": ... }
 * ```
 */
export function encodeRecords(records: HarvestedRecords): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const g of records.groups) files.set(groupFile(g.key), concat(encodeGroup(g)));
  const index = {
    format: RECORDS_FORMAT,
    version: RECORDS_VERSION,
    settings: records.settings,
    tokens: records.tokens,
    groups: records.groups.map((g) => ({ key: g.key, kind: g.kind, hook: g.hook, nodes: g.nodes.length, file: groupFile(g.key) })),
    random: records.random.map(randomToJson),
    tokenStrings: [...records.tokenStrings],
  };
  files.set("index.json", UTF8.encode(JSON.stringify(index)));
  return files;
}

/** Options of {@link decodeRecords}. */
export interface DecodeRecordsOptions {
  /** Load only these groups (keys such as `mlp.3`); unknown keys are `E_BAD_INPUT`. [default: all] */
  groups?: readonly string[];
}

/**
 * Reads a record set written by {@link encodeRecords} from a file adapter (under Node
 * `readRecords(dir)`; in a browser `urlFiles(...)` or `memoryFiles(...)`), all groups or some.
 * A missing index is `E_MISSING_FILE`, a file that is not a record file `E_BAD_INPUT`.
 *
 * @example
 * ```ts
 * const layer3 = await decodeRecords(memoryFiles("records", Object.fromEntries(files)), { groups: ["mlp.3"] });
 * ```
 */
export async function decodeRecords(files: ModelFiles, opts: DecodeRecordsOptions = {}): Promise<HarvestedRecords> {
  const raw = await files.read("index.json");
  if (raw === null) throw new TdbError("E_MISSING_FILE", `${files.origin} has no index.json (not a record set)`, { value: files.origin, allowed: "a directory written by writeRecords" });
  let index: {
    format?: unknown;
    version?: unknown;
    settings: RecordSettings;
    groups: { key: string; file: string }[];
    random: RandomJson[];
    tokenStrings: [number, string][];
  };
  try {
    index = JSON.parse(new TextDecoder().decode(raw));
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `${files.origin}/index.json is not JSON`, { cause });
  }
  if (index?.format !== RECORDS_FORMAT || index.version !== RECORDS_VERSION || !Array.isArray(index.groups)) {
    throw bad(`${files.origin}/index.json`, "wrong format or version", { format: index?.format, version: index?.version });
  }
  const wanted = opts.groups ?? index.groups.map((g) => g.key);
  const known = new Map(index.groups.map((g) => [g.key, g.file]));
  const groups: RecordGroup[] = [];
  for (const key of wanted) {
    const file = known.get(key);
    if (file === undefined) throw new TdbError("E_BAD_INPUT", `the record set has no group ${JSON.stringify(key)}`, { value: key, allowed: [...known.keys()] });
    const bytes = await files.read(file);
    if (bytes === null) throw new TdbError("E_MISSING_FILE", `${files.origin} has no ${file}`, { value: file, allowed: "the files index.json lists" });
    groups.push(decodeGroup(bytes, index.settings, `${files.origin}/${file}`));
  }
  return new HarvestedRecords(index.settings, groups, index.random.map(randomFromJson), new Map(index.tokenStrings));
}

/** A harvest checkpoint as one file's byte chunks (see the module comment). */
export function encodeCheckpoint(cp: RecordsCheckpoint): Uint8Array[] {
  const blobs = cp.groups.map((g) => concat(encodeGroup(g)));
  const header = {
    format: RECORDS_FORMAT,
    version: RECORDS_VERSION,
    settings: cp.settings,
    random: cp.random.map(randomToJson),
    position: cp.position,
    progress: cp.progress,
    groups: blobs.map((b) => b.length),
  };
  return pack(CHECKPOINT_MAGIC, header, blobs);
}

/** A harvest checkpoint from the bytes {@link encodeCheckpoint} made; anything else is `E_CHECKPOINT`. */
export function decodeCheckpoint(bytes: Uint8Array, what = "records checkpoint"): RecordsCheckpoint {
  try {
    const { header, body } = unpack(bytes, CHECKPOINT_MAGIC, what);
    const h = header as { version: unknown; settings: RecordSettings; random: RandomJson[]; position: CorpusPosition; progress: RecordsCheckpoint["progress"]; groups: number[] };
    if (h.version !== RECORDS_VERSION || !Array.isArray(h.groups) || !Array.isArray(h.random)) throw bad(what, "wrong version or header");
    let o = body;
    const groups = h.groups.map((len) => {
      const g = decodeGroup(bytes.subarray(o, o + len), h.settings, what);
      o += pad8(len);
      return g;
    });
    return { settings: h.settings, groups, random: h.random.map(randomFromJson), position: h.position, progress: h.progress };
  } catch (e) {
    if (e instanceof TdbError && e.code === "E_CHECKPOINT") throw e;
    throw new TdbError("E_CHECKPOINT", `${what} cannot be read: ${(e as Error).message}`, { cause: e });
  }
}
