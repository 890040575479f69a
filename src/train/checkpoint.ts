/**
 * Training checkpoints: one binary file holding the parameters, the AdamW moments, the step, the
 * data position and the hash of the run's config. Node-only (file system, hashing).
 *
 * Layout: the 8 bytes `TDBCKPT1`, a little-endian uint32 header length, the header (UTF-8 JSON:
 * version, config hash, step, data position, parameter names and dims, SHA-256 of the body),
 * zero padding to a multiple of 4 bytes, then the body: for each parameter in header order, its
 * values, m and v as float32. Written to a temporary file and renamed, so a reader sees the old
 * checkpoint or the new one, never a partial file.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileSystemError } from "../io/fs-error.js";
import { writeAtomic } from "../io/write-atomic.js";
import { TdbError } from "../base/errors.js";
import type { DataPosition } from "./data.js";

const MAGIC = "TDBCKPT1";
const VERSION = 1;

/** What a checkpoint holds. */
export interface CheckpointState {
  /** Hash of the config the run was started with ({@link configHash} in train.ts). */
  configHash: string;
  /** Optimizer steps done. */
  step: number;
  /** Data position after the last step. */
  data: DataPosition;
  /** Training loss of the last step (NaN when none). */
  loss: number;
  /** Parameters, in order, with their AdamW moments. */
  params: { name: string; dims: number[]; data: Float32Array; m: Float32Array; v: Float32Array }[];
}

interface Header {
  version: number;
  configHash: string;
  step: number;
  data: DataPosition;
  loss: number | null;
  params: { name: string; dims: number[] }[];
  sha256: string;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes `s` to `path` atomically (temporary file, then rename). */
export async function writeCheckpoint(path: string, s: CheckpointState): Promise<void> {
  const hash = createHash("sha256");
  const chunks: Uint8Array[] = [];
  for (const p of s.params) {
    for (const a of [p.data, p.m, p.v]) {
      const b = bytesOf(a);
      hash.update(b);
      chunks.push(b);
    }
  }
  const header: Header = {
    version: VERSION,
    configHash: s.configHash,
    step: s.step,
    data: s.data,
    loss: Number.isFinite(s.loss) ? s.loss : null,
    params: s.params.map((p) => ({ name: p.name, dims: p.dims })),
    sha256: hash.digest("hex"),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const lead = 12 + json.length;
  const pad = (4 - (lead % 4)) % 4;
  const head = new Uint8Array(lead + pad);
  head.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(head.buffer).setUint32(8, json.length, true);
  head.set(json, 12);
  await writeAtomic(path, [head, ...chunks], "write the checkpoint");
}

function corrupt(path: string, why: string): TdbError {
  return new TdbError("E_CHECKPOINT", `checkpoint ${path} is corrupt or not a tdb-js checkpoint: ${why}`, { value: path, allowed: `a ${MAGIC} file written by train()` });
}

/**
 * Reads a checkpoint. `E_CHECKPOINT` when the file is not one (magic, header, size or checksum
 * wrong: truncated or damaged), `E_FILE_SYSTEM` when it cannot be read. The caller checks the
 * config hash and the parameters.
 */
export async function readCheckpoint(path: string): Promise<CheckpointState> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (cause) {
    throw fileSystemError(cause, path, "read the checkpoint");
  }
  if (buf.length < 12 || buf.subarray(0, 8).toString("latin1") !== MAGIC) throw corrupt(path, "no TDBCKPT1 magic");
  const len = buf.readUInt32LE(8);
  if (12 + len > buf.length) throw corrupt(path, "the header runs past the end of the file");
  let h: Header;
  try {
    h = JSON.parse(buf.subarray(12, 12 + len).toString("utf8")) as Header;
  } catch {
    throw corrupt(path, "the header is not JSON");
  }
  if (h.version !== VERSION) throw corrupt(path, `version ${String(h.version)} (this tdb-js reads ${VERSION})`);
  if (typeof h.configHash !== "string" || !Number.isInteger(h.step) || !Array.isArray(h.params) || typeof h.sha256 !== "string" || !h.data) {
    throw corrupt(path, "the header lacks fields");
  }
  const lead = 12 + len;
  let off = lead + ((4 - (lead % 4)) % 4);
  const sizes = h.params.map((p) => p.dims.reduce((a, b) => a * b, 1));
  const bodyBytes = sizes.reduce((a, n) => a + 12 * n, 0);
  if (buf.length !== off + bodyBytes) throw corrupt(path, `${buf.length} bytes, expected ${off + bodyBytes} (truncated?)`);
  const body = buf.subarray(off);
  if (createHash("sha256").update(body).digest("hex") !== h.sha256) throw corrupt(path, "checksum mismatch");
  // One aligned copy of the body; the arrays view it.
  const copy = new Float32Array(bodyBytes / 4);
  new Uint8Array(copy.buffer).set(body);
  off = 0;
  const take = (n: number) => {
    const a = copy.subarray(off, off + n);
    off += n;
    return a;
  };
  const params = h.params.map((p, i) => ({ name: p.name, dims: p.dims, data: take(sizes[i]!), m: take(sizes[i]!), v: take(sizes[i]!) }));
  return { configHash: h.configHash, step: h.step, data: h.data, loss: typeof h.loss === "number" ? h.loss : NaN, params };
}
