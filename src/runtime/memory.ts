/**
 * The memory budget of batched runs (`maxBatchBytes` of `trace` and `intervene`): what one row
 * costs, how many rows a chunk may hold, and the default budget sized from free memory.
 *
 * The budget bounds the memory a call adds: the result it returns plus the chunk it is running.
 * A request whose result alone does not fit is refused before anything runs, with a typed
 * `E_MEMORY_BUDGET` error, instead of running the process out of memory.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { registeredOrtBackend } from "../backend/ort.js";
import { hookKindOf, type HookName } from "../hooks/names.js";
import type { ModelConfig } from "./config.js";
import { labelSize } from "./patched-graph.js";

/** Budget used where free memory cannot be known (a browser): 1 GiB. */
export const FALLBACK_BUDGET_BYTES = 1024 ** 3;
/** Share of the available memory the default budget takes. */
export const DEFAULT_BUDGET_SHARE = 0.5;
/**
 * Largest chunk (bytes while it runs) when the budget allows more: bigger chunks run no faster,
 * they only hold more memory at once.
 */
export const MAX_CHUNK_BYTES = 512 * 1024 ** 2;

/** What one batch row costs, in bytes. */
export interface RowBytes {
  /** Kept in the result: the row's logits and cached hooks (float32). */
  kept: number;
  /**
   * Held while the row runs: onnxruntime's output tensors, their copies (`kept`), the edit feeds
   * (mul and add of every edited hook) and an estimate of onnxruntime's working set.
   */
  running: number;
}

/**
 * What one row of a run over `S` positions costs: `logitPositions` positions of logits, the
 * cached `hooks` (only `keptPositions` of their first position axis kept, when given) and edit
 * points on the `edits` hooks.
 */
export function rowBytes(
  c: ModelConfig,
  S: number,
  logitPositions: number,
  hooks: readonly HookName[],
  edits: readonly HookName[],
  keptPositions: number = S,
): RowBytes {
  const size = (h: HookName, P: number) => {
    let firstPos = true;
    return hookKindOf(h)!.dims.slice(1).reduce((n, l) => {
      const s = labelSize(l, c);
      if (s !== "seq") return n * (s === "batch" ? 1 : s);
      const keep = firstPos && l !== "key_pos" ? P : S;
      if (l !== "key_pos") firstPos = false;
      return n * keep;
    }, 1);
  };
  const logits = logitPositions * c.dVocab;
  const kept = 4 * (logits + hooks.reduce((n, h) => n + size(h, keptPositions), 0));
  const outputs = 4 * (logits + hooks.reduce((n, h) => n + size(h, S), 0));
  const feeds = 4 * 2 * edits.reduce((n, h) => n + size(h, S), 0);
  // Live intermediates of one block (residual copies, MLP hidden, attention scores and
  // probabilities) plus the full-vocabulary logits the last MatMul writes before any selection.
  const working = 4 * S * (8 * c.dModel + 2 * c.dMlp + 2 * c.nHeads * S + c.dVocab);
  return { kept, running: kept + outputs + feeds + working };
}

/** How a batched run is split, and the memory it is planned to take. */
export interface ChunkPlan {
  /** Rows of the whole request. */
  rows: number;
  /** Rows per chunk (`rows` when the batch runs at once). */
  chunkRows: number;
  /** Bytes of the result. */
  resultBytes: number;
  /** Planned peak bytes the call adds: the result plus one running chunk (or the one run). */
  peakBytes: number;
  /** The budget planned against. */
  budgetBytes: number;
}

/**
 * The default budget: half the memory the process can still take when the runtime can tell
 * (onnxruntime-node: free memory, or the cgroup limit), 1 GiB otherwise.
 */
export function defaultBudget(): number {
  const free = registeredOrtBackend()?.availableMemory?.();
  return free !== undefined && Number.isFinite(free) && free > 0 ? Math.floor(free * DEFAULT_BUDGET_SHARE) : FALLBACK_BUDGET_BYTES;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * Splits `rows` rows of cost `row` into chunks that keep the result plus one running chunk within
 * `budget` bytes; chunks run at most {@link MAX_CHUNK_BYTES} at once. A batch small enough runs
 * whole (no copy). Throws `E_MEMORY_BUDGET` when not even one row fits beside the result.
 *
 * @example
 * ```ts
 * planChunks(500, { kept: 1e6, running: 3e6 }, 2e9).chunkRows; // 170 (512 MiB / 3 MB)
 * ```
 */
export function planChunks(rows: number, row: RowBytes, budget: number, what: string): ChunkPlan {
  const whole = rows * row.running;
  if (whole <= Math.min(budget, MAX_CHUNK_BYTES)) return { rows, chunkRows: rows, resultBytes: rows * row.kept, peakBytes: whole, budgetBytes: budget };
  const resultBytes = rows * row.kept;
  const room = Math.min(budget - resultBytes, MAX_CHUNK_BYTES);
  const chunkRows = Math.min(rows, Math.floor(room / row.running));
  if (!(chunkRows >= 1)) {
    const need = resultBytes + row.running;
    throw new TdbError(
      "E_MEMORY_BUDGET",
      `${what} needs about ${mib(need)} (a result of ${mib(resultBytes)}, ${rows} rows of ${mib(row.kept)}, plus ${mib(row.running)} to run one row), over the memory budget of ${mib(budget)}: ` +
        "cache fewer hooks, keep fewer positions or only the last position's logits, run fewer rows at once, or raise maxBatchBytes",
      { value: need, allowed: budget },
    );
  }
  return { rows, chunkRows, resultBytes, peakBytes: resultBytes + chunkRows * row.running, budgetBytes: budget };
}
