/**
 * Training checkpoints: one binary file holding the parameters, the AdamW moments, the step, the
 * data position and the hash of the run's config. Node-only (file system, hashing).
 *
 * Layout: a framed file (`src/io/framed-file.ts`: the 8 bytes `TDBCKPT1`, the header length, the
 * JSON header with the body's SHA-256, padding to 4 bytes, the body). The header holds the
 * version, config hash, step, data position and parameter names and dims; the body, for each
 * parameter in header order, its values, m and v as float32. Written to a temporary file and
 * renamed, so a reader sees the old checkpoint or the new one, never a partial file.
 *
 * @module
 */
import { readFramedFile, writeFramedFile } from "../io/framed-file.js";
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

const FORMAT = { magic: MAGIC, align: 4 };

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes `s` to `path` atomically (temporary file, then rename). */
export async function writeCheckpoint(path: string, s: CheckpointState): Promise<void> {
  const chunks = s.params.flatMap((p) => [p.data, p.m, p.v].map(bytesOf));
  const header: Omit<Header, "sha256"> = {
    version: VERSION,
    configHash: s.configHash,
    step: s.step,
    data: s.data,
    loss: Number.isFinite(s.loss) ? s.loss : null,
    params: s.params.map((p) => ({ name: p.name, dims: p.dims })),
  };
  await writeFramedFile(path, FORMAT, { ...header }, chunks, "write the checkpoint");
}

function corrupt(path: string, why: string): TdbError {
  return new TdbError("E_CHECKPOINT", `checkpoint ${path} is corrupt or not a tdb-js checkpoint: ${why}`, { value: path, allowed: `a ${MAGIC} file written by train()` });
}

const sizeOf = (p: { dims: number[] }): number => p.dims.reduce((a, b) => a * b, 1);

/** Checks a parsed header; the body size it implies (values, m and v of each parameter). */
function checkHeader(path: string, parsed: unknown): { header: Header; bodyBytes: number } {
  const h = parsed as Header | null;
  if (h === null || typeof h !== "object" || h.version !== VERSION) throw corrupt(path, `version ${String(h?.version)} (this tdb-js reads ${VERSION})`);
  if (typeof h.configHash !== "string" || !Number.isInteger(h.step) || !Array.isArray(h.params) || typeof h.sha256 !== "string" || !h.data) {
    throw corrupt(path, "the header lacks fields");
  }
  return { header: h, bodyBytes: h.params.reduce((a, p) => a + 12 * sizeOf(p), 0) };
}

/**
 * Reads a checkpoint. `E_CHECKPOINT` when the file is not one (magic, header, size or checksum
 * wrong: truncated or damaged), `E_FILE_SYSTEM` when it cannot be read. The caller checks the
 * config hash and the parameters.
 */
export async function readCheckpoint(path: string): Promise<CheckpointState> {
  const file = await readFramedFile(path, FORMAT, { what: "read the checkpoint", corrupt: (why) => corrupt(path, why), header: (parsed) => checkHeader(path, parsed) });
  const { header: h, body } = file!;
  // The body is its own aligned copy; the arrays view it.
  const all = new Float32Array(body.buffer, body.byteOffset, body.byteLength / 4);
  let off = 0;
  const take = (n: number) => {
    const a = all.subarray(off, off + n);
    off += n;
    return a;
  };
  const params = h.params.map((p) => ({ name: p.name, dims: p.dims, data: take(sizeOf(p)), m: take(sizeOf(p)), v: take(sizeOf(p)) }));
  return { configHash: h.configHash, step: h.step, data: h.data, loss: typeof h.loss === "number" ? h.loss : NaN, params };
}
