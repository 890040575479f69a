/**
 * Positions as users give them: absolute, or negative counting back from the end.
 *
 * @module
 */
import { TdbError } from "./errors.js";

/**
 * The absolute position of `p` in a sequence of `length` tokens (negative counts from the end);
 * `E_POSITION_RANGE` naming the allowed range otherwise. `what` prefixes the message.
 *
 * @example
 * ```ts
 * resolvePosition(-1, 8); // 7
 * ```
 */
export function resolvePosition(p: number, length: number, what = "position"): number {
  const q = p < 0 ? length + p : p;
  if (!Number.isInteger(q) || q < 0 || q >= length) {
    throw new TdbError("E_POSITION_RANGE", `${what} ${p} out of range [${-length}, ${length - 1}] for ${length} tokens`, { value: p, allowed: [-length, length - 1] });
  }
  return q;
}
