/**
 * What the offline explainers share (the token-pattern explainer of neurons and latents,
 * `offline.ts`, and the attention-head explainer, `offline-heads.ts`): option checks, record
 * checks, and the split of records into a training part and held-out validation excerpts.
 * Internal to the explainer feature.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ActivationRecord } from "./types.js";

/** A fraction option of `fn`: a finite number in [0, 1], with either end open as asked; else `E_BAD_OPTION`. */
export function checkFraction(fn: string, name: string, v: unknown, lowOpen: boolean, highOpen: boolean): number {
  const ok = typeof v === "number" && Number.isFinite(v) && (lowOpen ? v > 0 : v >= 0) && (highOpen ? v < 1 : v <= 1);
  if (!ok) {
    const range = `${lowOpen ? "(" : "["}0, 1${highOpen ? ")" : "]"}`;
    throw new TdbError("E_BAD_OPTION", `${fn}: ${name} must be a number in ${range}`, { value: v, allowed: range });
  }
  return v as number;
}

/** A count option of `fn`: an integer >= `min` (default 1); else `E_BAD_OPTION`. */
export function checkCount(fn: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new TdbError("E_BAD_OPTION", `${fn}: ${name} must be an integer >= ${min}`, { value: v, allowed: `integer >= ${min}` });
  }
  return v;
}

/**
 * An activation record checked: tokens, ids and activations arrays of equal length, string
 * tokens, integer ids >= 0, finite activations (`E_BAD_INPUT`, `E_NON_FINITE`; `where` names it).
 */
export function checkRecord(r: unknown, where: string): ActivationRecord {
  if (typeof r !== "object" || r === null) {
    throw new TdbError("E_BAD_INPUT", `${where}: not an activation record`, { value: r, allowed: "{ tokens, ids, activations }" });
  }
  const rec = r as Partial<ActivationRecord>;
  const { tokens, ids, activations } = rec;
  if (!Array.isArray(tokens) || !Array.isArray(ids) || !Array.isArray(activations)) {
    throw new TdbError("E_BAD_INPUT", `${where}: tokens, ids and activations must be arrays`, {
      value: { tokens: typeof tokens, ids: typeof ids, activations: typeof activations },
      allowed: "{ tokens: string[], ids: number[], activations: number[] }",
    });
  }
  if (ids.length !== tokens.length || activations.length !== tokens.length) {
    throw new TdbError("E_BAD_INPUT", `${where}: ${tokens.length} tokens, ${ids.length} ids, ${activations.length} activations`, {
      value: { tokens: tokens.length, ids: ids.length, activations: activations.length },
      allowed: "equal lengths",
    });
  }
  for (let i = 0; i < tokens.length; i++) {
    if (typeof tokens[i] !== "string") {
      throw new TdbError("E_BAD_INPUT", `${where}: token ${i} is not a string`, { value: tokens[i], allowed: "string" });
    }
    if (!Number.isInteger(ids[i]) || ids[i]! < 0) {
      throw new TdbError("E_BAD_INPUT", `${where}: id ${i} is not a token id`, { value: ids[i], allowed: "integer >= 0" });
    }
    if (typeof activations[i] !== "number" || !Number.isFinite(activations[i])) {
      throw new TdbError("E_NON_FINITE", `${where}: activation ${i} is not a finite number`, { value: activations[i], allowed: "finite numbers" });
    }
  }
  return rec as ActivationRecord;
}

/** Splits `items` by interleaving: a fraction `h` goes to the second (held-out) half. */
export function interleave<T>(items: readonly T[], h: number): { train: T[]; held: T[] } {
  const train: T[] = [];
  const held: T[] = [];
  items.forEach((x, i) => (Math.floor((i + 1) * h) > Math.floor(i * h) ? held : train).push(x));
  return { train, held };
}

/** Held-out top and random records, 1:1 (the first n of each, n the smaller count; all of one when the other is empty). */
export function pairUp(top: readonly ActivationRecord[], random: readonly ActivationRecord[]): ActivationRecord[] {
  if (top.length === 0 || random.length === 0) return [...top, ...random];
  const n = Math.min(top.length, random.length);
  return [...top.slice(0, n), ...random.slice(0, n)];
}
