/**
 * Record sets and harvest checkpoints on disk (Node.js and Deno): every file is written to a
 * temporary file and renamed (`writeAtomic`), group files before `index.json`, so a reader
 * sees a complete record set (the previous one or the new one per file) and an interrupted
 * checkpoint write leaves the previous checkpoint in place.
 *
 * @module
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileSystemError } from "../io/fs-error.js";
import { directoryFiles } from "../io/node-files.js";
import { writeAtomic } from "../io/write-atomic.js";
import type { HarvestedRecords } from "./records-data.js";
import { decodeCheckpoint, decodeRecords, encodeCheckpoint, encodeRecords, type DecodeRecordsOptions } from "./records-io.js";
import type { RecordsCheckpoint, RecordsCheckpointer } from "./records.js";

/**
 * Writes a record set to directory `dir` (created if needed): one file per group (layer) and
 * `index.json`, each atomically, the index last. Failures are `E_FILE_SYSTEM`.
 *
 * @example
 * ```ts
 * await writeRecords("records/brown-small", records);
 * ```
 */
export async function writeRecords(dir: string, records: HarvestedRecords): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw fileSystemError(e, dir, "create the records directory");
  }
  const files = encodeRecords(records);
  for (const [name, bytes] of files) if (name !== "index.json") await writeAtomic(join(dir, name), bytes, "write records to");
  await writeAtomic(join(dir, "index.json"), files.get("index.json")!, "write records to");
}

/**
 * Reads a record set written by {@link writeRecords}, all groups or the ones named
 * (`{ groups: ["mlp.3"] }`).
 *
 * @example
 * ```ts
 * const records = await readRecords("records/brown-small", { groups: ["mlp.0"] });
 * ```
 */
export async function readRecords(dir: string, opts: DecodeRecordsOptions = {}): Promise<HarvestedRecords> {
  return decodeRecords(directoryFiles(dir), opts);
}

/** Writes a harvest checkpoint to `path` atomically. */
export async function writeRecordsCheckpoint(path: string, cp: RecordsCheckpoint): Promise<void> {
  await writeAtomic(path, encodeCheckpoint(cp), "write the records checkpoint to");
}

/** The checkpoint at `path`, or `undefined` when there is none (a fresh start). */
export async function readRecordsCheckpoint(path: string): Promise<RecordsCheckpoint | undefined> {
  let bytes: Uint8Array;
  try {
    const b = await readFile(path);
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    throw fileSystemError(e, path, "read the records checkpoint");
  }
  return decodeCheckpoint(bytes, path);
}

/**
 * A checkpointer for `harvestRecords` that writes to `path` every `every` forward passes;
 * resume with `{ resume: await readRecordsCheckpoint(path) }`.
 *
 * @example
 * ```ts
 * const path = "harvest.ckpt";
 * const records = await harvestRecords(model, corpus, { nodes, checkpoint: fileCheckpointer(path), resume: await readRecordsCheckpoint(path) });
 * ```
 */
export function fileCheckpointer(path: string, every = 50): RecordsCheckpointer {
  return { every, save: (cp) => writeRecordsCheckpoint(path, cp) };
}
