/**
 * Framed binary files (Node.js and Deno), the container of tdb-js's checkpoints: 8 magic bytes,
 * a little-endian uint32 header length, the header (UTF-8 JSON, with a `sha256` field holding the
 * SHA-256 of the body), zero padding to a multiple of `align` bytes, then the body. Written to a
 * temporary file and renamed (`writeAtomic`), so a reader sees the previous file or the new one,
 * never a partial file; read back with every framing fact checked (magic, header, size,
 * checksum), so a truncated or damaged file is refused rather than half-loaded.
 *
 * What the header says and how the body is laid out belong to each file kind (training and SAE
 * checkpoints); the framing is here, once.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { TdbError } from "../base/errors.js";
import { fileSystemError } from "./fs-error.js";
import { writeAtomic } from "./write-atomic.js";

/** How a framed file kind is framed. */
export interface FrameFormat {
  /** Exactly 8 ASCII characters at the start of the file, e.g. `"TDBCKPT1"`. */
  magic: string;
  /** The body starts at a multiple of this many bytes (4 or 8), so it can be viewed as typed arrays. */
  align: number;
}

/**
 * Writes a framed file atomically: `header` (any JSON object; its `sha256` field is set here to
 * the body's hash) and the body chunks, written in order. `what` names the file in an
 * `E_FILE_SYSTEM` error ("write the checkpoint to").
 *
 * @example
 * ```ts
 * await writeFramedFile(path, { magic: "TDBCKPT1", align: 4 }, { version: 1, step: 10 }, [bytes]);
 * ```
 */
export async function writeFramedFile(path: string, format: FrameFormat, header: Record<string, unknown>, body: readonly Uint8Array[], what: string): Promise<void> {
  const hash = createHash("sha256");
  for (const b of body) hash.update(b);
  const json = new TextEncoder().encode(JSON.stringify({ ...header, sha256: hash.digest("hex") }));
  const lead = 12 + json.length;
  const head = new Uint8Array(lead + padTo(lead, format.align));
  head.set(new TextEncoder().encode(format.magic), 0);
  new DataView(head.buffer).setUint32(8, json.length, true);
  head.set(json, 12);
  await writeAtomic(path, [head, ...body], what);
}

/** Zero bytes that bring `n` to a multiple of `align`. */
export function padTo(n: number, align: number): number {
  return (align - (n % align)) % align;
}

/** What {@link readFramedFile} needs besides the format. */
export interface FrameReadOptions<H> {
  /** Names the file in an `E_FILE_SYSTEM` error ("read the checkpoint"). */
  what: string;
  /** The error for a file that is not a valid one of this kind; `why` says what is wrong. */
  corrupt: (why: string) => TdbError;
  /**
   * Checks the parsed header (throwing `corrupt(...)` for a wrong version or missing fields) and
   * returns it typed, with the body size in bytes it implies.
   */
  header: (parsed: unknown) => { header: H; bodyBytes: number };
  /** Return `undefined` when the file does not exist, instead of an `E_FILE_SYSTEM` error. */
  missingOk?: boolean;
}

/**
 * Reads a framed file: the checked header and a copy of the body (its own aligned buffer).
 * `corrupt` errors for a wrong magic, a header running past the end, a header that is not JSON,
 * a size other than the header implies (truncated?) or a checksum mismatch.
 */
export async function readFramedFile<H>(path: string, format: FrameFormat, opts: FrameReadOptions<H>): Promise<{ header: H; body: Uint8Array } | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (cause) {
    if (opts.missingOk && (cause as { code?: unknown }).code === "ENOENT") return undefined;
    throw fileSystemError(cause, path, opts.what);
  }
  const { magic } = format;
  if (buf.length < 12 || buf.subarray(0, 8).toString("latin1") !== magic) throw opts.corrupt(`no ${magic} magic`);
  const len = buf.readUInt32LE(8);
  if (12 + len > buf.length) throw opts.corrupt("the header runs past the end of the file");
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.subarray(12, 12 + len).toString("utf8"));
  } catch {
    throw opts.corrupt("the header is not JSON");
  }
  const sha = (parsed as { sha256?: unknown } | null)?.sha256;
  const { header, bodyBytes } = opts.header(parsed);
  if (typeof sha !== "string") throw opts.corrupt("the header lacks fields");
  const start = 12 + len + padTo(12 + len, format.align);
  if (buf.length !== start + bodyBytes) throw opts.corrupt(`${buf.length} bytes, expected ${start + bodyBytes} (truncated?)`);
  const body = buf.subarray(start);
  if (createHash("sha256").update(body).digest("hex") !== sha) throw opts.corrupt("checksum mismatch");
  const copy = new Uint8Array(bodyBytes);
  copy.set(body);
  return { header, body: copy };
}
