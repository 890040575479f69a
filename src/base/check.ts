/**
 * Checks of options and arguments at the public API boundary. Each helper returns the value
 * when it is acceptable and throws a {@link TdbError} naming the option, the offending value
 * and what is allowed otherwise, so that JavaScript callers (no type checker) and values
 * computed at run time (NaN, a string read from a form) never reach the computation.
 *
 * @module
 */
import { TdbError, type TdbErrorCode } from "./errors.js";

/** Largest finite float32, the type of every tensor the library feeds to onnxruntime. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** A short, printable form of a bad value for messages. */
function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}

/**
 * `v` if it is an integer `>= min` (default 1); `E_BAD_OPTION` otherwise.
 *
 * @example
 * ```ts
 * positiveInt("topK", 5); // 5
 * positiveInt("topK", 0); // throws E_BAD_OPTION
 * ```
 */
export function positiveInt(name: string, v: unknown, min = 1): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new TdbError("E_BAD_OPTION", `${name} must be an integer >= ${min}, got ${show(v)}`, { value: v, allowed: `an integer >= ${min}` });
  }
  return v;
}

/**
 * `v` if it is a finite number `> 0`; `E_BAD_OPTION` otherwise.
 *
 * @example
 * ```ts
 * positiveNumber("maxBatchBytes", 2 ** 30);
 * ```
 */
export function positiveNumber(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !(v > 0)) {
    throw new TdbError("E_BAD_OPTION", `${name} must be a finite number > 0, got ${show(v)}`, { value: v, allowed: "a finite number > 0" });
  }
  return v;
}

/**
 * `v` if it is a finite number `>= min`; `E_BAD_OPTION` otherwise.
 *
 * @example
 * ```ts
 * finiteNumber("temperature", 0.7, 0);
 * ```
 */
export function finiteNumber(name: string, v: unknown, min = -Infinity): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min) {
    const allowed = min === -Infinity ? "a finite number" : `a finite number >= ${min}`;
    throw new TdbError("E_BAD_OPTION", `${name} must be ${allowed}, got ${show(v)}`, { value: v, allowed });
  }
  return v;
}

/**
 * `v` if it is one of `allowed`; `E_BAD_OPTION` listing them otherwise.
 *
 * @example
 * ```ts
 * oneOf("logits", opts.logits, ["all", "last"] as const);
 * ```
 */
export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(v)) {
    throw new TdbError("E_BAD_OPTION", `${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${show(v)}`, { value: v, allowed });
  }
  return v as T;
}

/**
 * `v` if it is a boolean; `E_BAD_OPTION` otherwise.
 *
 * @example
 * ```ts
 * boolean("prefixShare", opts.prefixShare ?? true);
 * ```
 */
export function boolean(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new TdbError("E_BAD_OPTION", `${name} must be true or false, got ${show(v)}`, { value: v, allowed: [true, false] });
  return v;
}

/**
 * `v` if it is an array; a `code` error (default `E_BAD_OPTION`) otherwise.
 *
 * @example
 * ```ts
 * array("variants", opts.variants, "an array of edit arrays");
 * ```
 */
export function array<T>(name: string, v: unknown, what = "an array", code: TdbErrorCode = "E_BAD_OPTION"): readonly T[] {
  if (!Array.isArray(v)) throw new TdbError(code, `${name} must be ${what}, got ${show(v)}`, { value: v === null ? null : typeof v, allowed: what });
  return v as readonly T[];
}

/**
 * `v` if it is a non-null object (not an array); a `code` error (default `E_BAD_INPUT`) otherwise.
 *
 * @example
 * ```ts
 * object("edit", e, "an Edit object");
 * ```
 */
export function object<T extends object>(name: string, v: unknown, what = "an object", code: TdbErrorCode = "E_BAD_INPUT"): T {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TdbError(code, `${name} must be ${what}, got ${show(v)}`, { value: v === null ? null : typeof v, allowed: what });
  }
  return v as T;
}

/**
 * Throws `E_BAD_INPUT` unless every value of `xs` is finite and representable as a float32
 * (|x| <= 3.4e38), naming `what` and the first bad index.
 *
 * @example
 * ```ts
 * float32Values(scaled, "blocks.0.hook_resid_pre value");
 * ```
 */
export function float32Values(xs: ArrayLike<number>, what: string): void {
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    if (!Number.isFinite(x) || Math.abs(x) > FLOAT32_MAX) {
      const why = Number.isFinite(x) ? "overflows float32" : "is not finite";
      throw new TdbError("E_BAD_INPUT", `${what} at index ${i} (${x}) ${why}; edits must be finite float32 numbers`, {
        value: x,
        allowed: `finite numbers with |x| <= ${FLOAT32_MAX}`,
      });
    }
  }
}

/**
 * The options argument of an entry point: `{}` when undefined, `v` when it is an object, and
 * `E_BAD_OPTION` otherwise (a number or string where options go is a caller's mistake).
 *
 * @example
 * ```ts
 * const o = options("trace options", opts);
 * ```
 */
export function options<T extends object>(name: string, v: T | undefined): T {
  if (v === undefined) return {} as T;
  return object<T>(name, v, "an options object", "E_BAD_OPTION");
}

/**
 * `v` if it is a function; `E_BAD_OPTION` otherwise.
 *
 * @example
 * ```ts
 * fn("metric", opts.metric);
 * ```
 */
export function fn<T extends (...args: never[]) => unknown>(name: string, v: unknown): T {
  if (typeof v !== "function") throw new TdbError("E_BAD_OPTION", `${name} must be a function, got ${show(v)}`, { value: v === null ? null : typeof v, allowed: "a function" });
  return v as T;
}
