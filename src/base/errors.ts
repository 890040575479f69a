/**
 * Typed errors. Every failure the library can foresee is a {@link TdbError} with a stable
 * `code`, the offending value and what would have been allowed, so that scripts can branch on
 * `err.code` and people can read `err.message`.
 *
 * @module
 */

/** Stable machine-readable error codes. Never renamed once released. */
export type TdbErrorCode =
  | "E_EMPTY_PROMPT"
  | "E_PROMPT_TOO_LONG"
  | "E_UNKNOWN_HOOK"
  | "E_LAYER_RANGE"
  | "E_POSITION_RANGE"
  | "E_INDEX_RANGE"
  | "E_UNSUPPORTED_GRAPH"
  /** The graph has no `logits` output (a feature-extraction export): hooks work, what needs logits does not. */
  | "E_NO_LOGITS"
  | "E_HOOK_UNAVAILABLE"
  | "E_NOT_CACHED"
  | "E_ONNX_DECODE"
  | "E_ONNX_INVALID"
  | "E_MISSING_FILE"
  | "E_FILE_SYSTEM"
  | "E_CONFIG_MISMATCH"
  | "E_OFFLINE"
  | "E_NOT_SINGLE_TOKEN"
  | "E_BAD_OPTION"
  | "E_BAD_INPUT"
  | "E_NO_GRADIENT"
  | "E_NO_RUNTIME"
  | "E_RUNTIME"
  | "E_DISPOSED"
  | "E_NON_FINITE"
  | "E_BAD_SPEC"
  | "E_CHECKPOINT"
  | "E_CHECKPOINT_MISMATCH"
  | "E_MEMORY_BUDGET"
  | "E_SAFETENSORS"
  | "E_SAE_CONFIG"
  | "E_LLM_CONFIG"
  | "E_LLM_AUTH"
  | "E_LLM_HTTP"
  | "E_LLM_RATE_LIMIT"
  | "E_LLM_SERVER"
  | "E_LLM_TIMEOUT"
  | "E_LLM_NETWORK"
  | "E_LLM_ABORTED"
  | "E_LLM_BAD_REPLY";

/** Details carried by a {@link TdbError}. */
export interface TdbErrorDetails {
  /** The offending value, when there is one (already stringified if large). */
  value?: unknown;
  /** What would have been accepted: a list of names, a range, a short description. */
  allowed?: unknown;
  /** The underlying error, if this one wraps another. */
  cause?: unknown;
}

/**
 * Base class of every error tdb-js throws on purpose.
 *
 * @example
 * ```ts
 * try { model.trace("") } catch (e) {
 *   if (e instanceof TdbError && e.code === "E_EMPTY_PROMPT") console.log("say something");
 * }
 * ```
 */
export class TdbError extends Error {
  /** Stable code; see {@link TdbErrorCode}. */
  readonly code: TdbErrorCode;
  /** The offending value, if any. */
  readonly value: unknown;
  /** What would have been allowed, if that can be said. */
  readonly allowed: unknown;

  /** `details.value` is the offending value, `details.allowed` what would have been accepted. */
  constructor(code: TdbErrorCode, message: string, details: TdbErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "TdbError";
    this.code = code;
    this.value = details.value;
    this.allowed = details.allowed;
  }

  /** A JSON-friendly form, as the CLI prints it with `--json`. */
  toJSON(): { name: string; code: TdbErrorCode; message: string; value?: unknown; allowed?: unknown } {
    return { name: this.name, code: this.code, message: this.message, value: this.value, allowed: this.allowed };
  }
}

/** Formats a list of allowed values for an error message, eliding the middle of long lists. */
export function formatAllowed(values: readonly unknown[], max = 12): string {
  const shown = values.length > max ? [...values.slice(0, max - 2), "…", values[values.length - 1]] : values;
  return shown.map((v) => (typeof v === "string" && v !== "…" ? JSON.stringify(v) : String(v))).join(", ");
}
