/**
 * Options and input types of the model runtime, shared by the {@link Model} facade and the
 * feature modules.
 *
 * @module
 */
import type { HookName } from "../hooks/names.js";
import type { ModelFiles } from "../io/files.js";
import type { HubOptions } from "../io/remote.js";
import { DEVICES, LOG_LEVELS, type Device, type LogLevel, type OptimizationLevel } from "../backend/ort.js";
import { fn, object, oneOf, options, positiveInt, positiveNumber } from "../base/check.js";
import { TdbError } from "../base/errors.js";

/** onnxruntime's graph optimization levels, as {@link LoadOptions.optimizationLevel} takes them. */
export const OPTIMIZATION_LEVELS: readonly OptimizationLevel[] = Object.freeze(["disabled", "basic", "extended", "all"]);

/**
 * Checks every field of `Model.load`'s options where they enter, so that a wrong type or value is
 * an `E_BAD_OPTION` naming it, before any file is read (`null` is not "absent").
 */
export function checkLoadOptions(opts: LoadOptions | undefined): LoadOptions {
  const o = options("load options", opts);
  if (o.dtype !== undefined) oneOf("dtype", o.dtype, Object.keys(ONNX_FILES) as Dtype[]);
  if (o.device !== undefined) oneOf("device", o.device, DEVICES);
  if (o.optimizationLevel !== undefined) oneOf("optimizationLevel", o.optimizationLevel, OPTIMIZATION_LEVELS);
  if (o.logLevel !== undefined) oneOf("logLevel", o.logLevel, LOG_LEVELS);
  if (o.maxSessions !== undefined) positiveInt("maxSessions", o.maxSessions);
  for (const k of ["cacheDir", "revision"] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "string" || v.trim() === "")) {
      throw new TdbError("E_BAD_OPTION", `${k} must be a non-empty string`, { value: v, allowed: "a non-empty string" });
    }
  }
  if (o.weightsDir !== undefined && o.weightsDir !== false && (typeof o.weightsDir !== "string" || o.weightsDir.trim() === "")) {
    throw new TdbError("E_BAD_OPTION", "weightsDir must be a directory path or false", { value: o.weightsDir === null ? null : typeof o.weightsDir, allowed: "a directory path, or false" });
  }
  if (o.files !== undefined) fn("files.read", object<ModelFiles>("files", o.files, "a ModelFiles adapter", "E_BAD_OPTION").read);
  if (o.hub !== undefined) {
    const hub = object<NonNullable<LoadOptions["hub"]>>("hub", o.hub, "hub options", "E_BAD_OPTION");
    if (hub.timeoutMs !== undefined) positiveNumber("hub.timeoutMs", hub.timeoutMs);
    if (hub.fetch !== undefined) fn("hub.fetch", hub.fetch);
  }
  return o;
}

/**
 * The model `Model.load()` loads without an id, and the CLI without `--model`: `tdb:brown-small`,
 * a GPT-2-architecture model trained on the Brown corpus that ships inside the package
 * (`models/brown-small/`; Node.js and Deno).
 */
export const DEFAULT_MODEL_ID = "tdb:brown-small";

/** ONNX file names tried in order for each dtype, as transformers.js names them. */
export const ONNX_FILES = {
  fp32: ["onnx/model.onnx", "onnx/decoder_model_merged.onnx", "onnx/decoder_model.onnx", "model.onnx"],
} as const;

/** Weight dtypes tdb-js can hook today. */
export type Dtype = keyof typeof ONNX_FILES;

/** Which hooks to cache: names, a predicate over names, or `"all"` (every non-opt-in hook). */
export type HookSelector = "all" | readonly HookName[] | ((name: HookName) => boolean);

/** Options for {@link Model.load}. */
export interface LoadOptions {
  /** Weight dtype; selects the ONNX file. [default: "fp32"] */
  dtype?: Dtype;
  /** Execution device. [default: "cpu"] */
  device?: Device;
  /** Hooks to build the first patched session for, at load time. [default: none until the first trace] */
  hooks?: HookSelector;
  /** Download cache for hub ids (Node). [default: `$TDB_HOME/hub`, else `~/.cache/tdb-js/hub`] */
  cacheDir?: string;
  /** Hub revision. [default: "main"] */
  revision?: string;
  /** onnxruntime graph optimization level. [default: "all"] */
  optimizationLevel?: OptimizationLevel;
  /**
   * onnxruntime's own logging to stderr, from this severity up ("verbose", "info", "warning",
   * "error", "fatal"). Failures reach you as typed errors either way; "error" also lets
   * onnxruntime print them. [default: "fatal"]
   */
  logLevel?: LogLevel;
  /**
   * Sessions kept alive at once, of every kind together: the unpatched forward, patched
   * sessions (one per hook set / edit points) and attribution sessions. A session counts as the
   * prepacked copies of the weight matrices onnxruntime holds for it (~0.5 GB each for GPT-2
   * small): 1 for forward and patched graphs, 2 for an attribution graph (forward + backward).
   * Before a session is built, the least recently used idle sessions are released until it fits;
   * sessions that calls are running on are never released, so concurrent calls on different
   * sessions can exceed the bound (by one session each) until they finish. See docs/memory.md.
   * [default: 2]
   */
  maxSessions?: number;
  /**
   * Where sessions read the weights from (onnxruntime-node). A directory: the weights are
   * written once to `tdb-js-weights-<host>-<pid>-XXXXXX/weights.bin` there and memory-mapped by
   * every session, and the model drops its in-memory copy (weights are read back on demand);
   * removed by `dispose` or at process exit. `false`: every session gets a copy of the weights
   * and the model keeps its bytes in memory (no files written). [default: the OS temporary directory]
   */
  weightsDir?: string | false;
  /** Read files through this adapter instead of the filesystem or the hub. */
  files?: ModelFiles;
  /** Hub download settings (timeout, custom fetch) for hub ids. */
  hub?: Pick<HubOptions, "timeoutMs" | "fetch">;
}

/** Options for {@link Model.trace}. */
export interface TraceOptions {
  /** Hooks to cache. [default: "all"] */
  hooks?: HookSelector;
  /** Keep only these positions (negative counts from the end) on `pos`/`query_pos` axes. */
  positions?: readonly number[];
  /** Prepend the BOS token to string prompts, as TransformerLens does. [default: true] */
  prependBos?: boolean;
  /**
   * Logits of every position (`"all"`), or only of each row's last real token (`"last"`: dims
   * `[batch, 1, d_vocab]`, a fraction of the memory for long prompts). [default: "all"]
   */
  logits?: "all" | "last";
  /**
   * Memory budget of the call, in bytes (a finite number > 0): the result plus the chunk of rows
   * running at a time stay within it. Big batches run in row chunks (same result as one run); a
   * request whose result alone does not fit fails with `E_MEMORY_BUDGET` before anything runs.
   * [default: half the memory the process can still take (Node), 1 GiB where that is unknown]
   */
  maxBatchBytes?: number;
}

/** A prompt, a batch of prompts, a token row, or a batch of token rows. */
export type ModelInput = string | readonly string[] | readonly number[] | readonly (readonly number[])[];

/** Multiplier and addend fed to one edit point, full shape of the hook tensor. */
export interface EditFeed {
  mul: Float32Array;
  add: Float32Array;
  dims: number[];
  /** Rank-1 update `x + (x . p) r` before mul/add ([batch, pos, width] tensors only): p [batch, width, 1], r like mul. */
  projP?: Float32Array;
  projR?: Float32Array;
}

/** What {@link ModelRuntime.run} runs: the internal entry point of trace, intervene and sweeps. */
export interface RunSpec {
  /** Hooks to cache. */
  hooks: readonly HookName[];
  /** Edit feeds by hook name (hooks that are one tensor must not both appear). */
  edits?: ReadonlyMap<HookName, EditFeed>;
  /** Positions (absolute, per row) whose logits are computed; all when undefined. */
  logitPositions?: number[][];
  /** Keep only these positions (absolute) on `pos`/`query_pos` axes of cached hooks. */
  positions?: readonly number[];
  /**
   * Shared-prefix batching (see `PatchSpec.prefixShare`): `rows[L]` lists, for each row entering
   * block L, the row of block L-1 it continues (block -1 is the single prompt row). The batch
   * must be one prompt; the trace's rows are the rows of the last block. No cached hooks.
   */
  prefixRows?: readonly (readonly number[])[];
}

