/**
 * Options and input types of the model runtime, shared by the {@link Model} facade and the
 * feature modules.
 *
 * @module
 */
import type { HookName } from "../hooks/names.js";
import type { ModelFiles } from "../io/files.js";
import type { HubOptions } from "../io/remote.js";
import type { Device, LogLevel, OptimizationLevel } from "../backend/ort.js";

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
   * Approximate memory budget of one batched run, in bytes (a finite number > 0): the batch runs
   * in row chunks that fit (same result as one run), so that peak memory is about the result
   * plus one chunk. A single row over the budget still runs, one row at a time (a row cannot be
   * split). [default: 1 GiB]
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

