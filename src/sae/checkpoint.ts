/**
 * SAE training checkpoints (Node.js and Deno): one binary file with the weights, the Adam
 * moments, the step, the data position, each latent's last firing step and the losses so far:
 * enough that `trainSae` resumed from it continues the run (on array data, to the same final
 * weights as an uninterrupted run).
 *
 * Layout: a framed file (`src/io/framed-file.ts`: the 8 bytes `TDBSAEC1`, the header length, the
 * JSON header with the body's SHA-256, padding to 8 bytes, the body). The header holds the
 * version, config hash, step, data position, resampled count and the arrays' names, dtypes and
 * lengths; the body each array's bytes (little-endian), each padded to a multiple of 8 bytes.
 * Written to a temporary file and renamed, so a reader sees the previous checkpoint or the new
 * one, never a partial file.
 *
 * Loading this module registers it with `trainSae` (`setSaeCheckpointIo`); `trainSae` loads it
 * on first use of its `checkpoint` option where nothing registered it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { TdbError } from "../base/errors.js";
import { padTo, readFramedFile, writeFramedFile } from "../io/framed-file.js";
import type { RowSourcePosition } from "./train-data.js";
import { setSaeCheckpointIo } from "./train.js";

const MAGIC = "TDBSAEC1";
const VERSION = 1;

/** An array a checkpoint holds. */
export type SaeCheckpointArray = Float32Array | Float64Array | Int32Array;

/** What an SAE checkpoint holds. */
export interface SaeCheckpointState {
  /** Hash of the run's options and data (see {@link saeRunHash}): a checkpoint of another run is refused. */
  configHash: string;
  /** Steps done. */
  step: number;
  /** Data position after the last step. */
  data: RowSourcePosition;
  /** Latents resampled so far. */
  resampled: number;
  /** Named arrays: weights, Adam moments (`m.W_enc`, `v.W_enc`, ...), `last_fired`, losses. */
  arrays: Record<string, SaeCheckpointArray>;
}

type Dtype = "float32" | "float64" | "int32";

interface Header {
  version: number;
  configHash: string;
  step: number;
  data: RowSourcePosition;
  resampled: number;
  arrays: { name: string; dtype: Dtype; length: number }[];
  sha256: string;
}

function dtypeOf(a: SaeCheckpointArray): Dtype {
  return a instanceof Float32Array ? "float32" : a instanceof Float64Array ? "float64" : "int32";
}

const WIDTH: Record<Dtype, number> = { float32: 4, float64: 8, int32: 4 };
/**
 * SHA-256 (hex) of a run's identity: `identity` (JSON of the options that shape the run) and,
 * for array data, the data's bytes.
 *
 * @example
 * ```ts
 * saeRunHash(JSON.stringify({ dIn: 64, dSae: 512 }), x); // 64 hex digits
 * ```
 */
export function saeRunHash(identity: string, data?: Float32Array): string {
  const h = createHash("sha256").update(identity);
  if (data) h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return h.digest("hex");
}

const FORMAT = { magic: MAGIC, align: 8 };

/**
 * Writes an SAE checkpoint to `path` atomically (temporary file, then rename). File-system
 * failures are `E_FILE_SYSTEM`.
 */
export async function writeSaeCheckpoint(path: string, s: SaeCheckpointState): Promise<void> {
  const chunks: Uint8Array[] = [];
  const zeros = new Uint8Array(8);
  const entries = Object.entries(s.arrays);
  for (const [, a] of entries) {
    const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    chunks.push(b, zeros.subarray(0, padTo(b.length, 8)));
  }
  const header: Omit<Header, "sha256"> = {
    version: VERSION,
    configHash: s.configHash,
    step: s.step,
    data: s.data,
    resampled: s.resampled,
    arrays: entries.map(([name, a]) => ({ name, dtype: dtypeOf(a), length: a.length })),
  };
  await writeFramedFile(path, FORMAT, { ...header }, chunks, "write the SAE checkpoint to");
}

function corrupt(path: string, why: string): TdbError {
  return new TdbError("E_CHECKPOINT", `SAE checkpoint ${path} is corrupt or not one: ${why}`, { value: path, allowed: `a ${MAGIC} file written by trainSae` });
}

/** Checks a parsed header; the body size it implies. */
function checkHeader(path: string, parsed: unknown): { header: Header; bodyBytes: number } {
  const h = parsed as Header | null;
  if (h === null || typeof h !== "object" || h.version !== VERSION) throw corrupt(path, `version ${String(h?.version)} (this tdb-js reads ${VERSION})`);
  if (typeof h.configHash !== "string" || !Number.isInteger(h.step) || !Array.isArray(h.arrays) || typeof h.sha256 !== "string" || !h.data || !Number.isInteger(h.resampled)) {
    throw corrupt(path, "the header lacks fields");
  }
  let size = 0;
  for (const a of h.arrays) {
    if (!(a.dtype in WIDTH) || !Number.isSafeInteger(a.length) || a.length < 0) throw corrupt(path, `array ${String(a.name)} has a bad dtype or length`);
    size += a.length * WIDTH[a.dtype] + padTo(a.length * WIDTH[a.dtype], 8);
  }
  return { header: h, bodyBytes: size };
}

/**
 * Reads an SAE checkpoint; `undefined` when `path` does not exist. `E_CHECKPOINT` when the file is
 * not one (magic, header, size or checksum wrong: truncated or damaged), `E_FILE_SYSTEM` when it
 * cannot be read.
 */
export async function readSaeCheckpoint(path: string): Promise<SaeCheckpointState | undefined> {
  const file = await readFramedFile(path, FORMAT, {
    what: "read the SAE checkpoint",
    corrupt: (why) => corrupt(path, why),
    header: (parsed) => checkHeader(path, parsed),
    missingOk: true,
  });
  if (!file) return undefined;
  const { header: h, body } = file;
  const arrays: Record<string, SaeCheckpointArray> = {};
  let off = 0;
  for (const a of h.arrays) {
    const bytes = a.length * WIDTH[a.dtype];
    const buf = body.buffer.slice(body.byteOffset + off, body.byteOffset + off + bytes);
    arrays[a.name] = a.dtype === "float32" ? new Float32Array(buf) : a.dtype === "float64" ? new Float64Array(buf) : new Int32Array(buf);
    off += bytes + padTo(bytes, 8);
  }
  return { configHash: h.configHash, step: h.step, data: h.data, resampled: h.resampled, arrays };
}

setSaeCheckpointIo({ hash: saeRunHash, write: writeSaeCheckpoint, read: readSaeCheckpoint });
