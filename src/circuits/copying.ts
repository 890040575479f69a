/**
 * In-context copying (what induction heads are for): the positions of a token row where copying
 * from the previous occurrence of the current token predicts the next token, and how often a
 * model's top prediction there is that token.
 *
 * A position i (not the last) is a *copying position* when its token occurred before, and the
 * token that followed its most recent earlier occurrence j is the next token: `tokens[j] ===
 * tokens[i]` with j < i the largest such, and `tokens[j + 1] === tokens[i + 1]`. On a sequence of
 * n distinct random tokens repeated twice after BOS, these are the positions n+1 .. 2n-1 (every
 * second-half token except the last), so copying accuracy is the share of the repeated half
 * predicted correctly.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/**
 * The copying positions of a token row (see the module overview) and the token each predicts.
 *
 * @example
 * ```ts
 * copyingPositions([0, 5, 6, 7, 5, 6, 7]); // [{ position: 4, target: 6 }, { position: 5, target: 7 }]
 * ```
 */
export function copyingPositions(tokens: readonly number[]): { position: number; target: number }[] {
  const last = new Map<number, number>();
  const out: { position: number; target: number }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const j = last.get(tokens[i]!);
    if (j !== undefined && i + 1 < tokens.length && tokens[j + 1] === tokens[i + 1]) out.push({ position: i, target: tokens[i + 1]! });
    last.set(tokens[i]!, i);
  }
  return out;
}

/**
 * Copying accuracy of one row: the share of its copying positions whose largest logit (`logitsAt(i)`,
 * the next-token logits at position i) is the copied token; `null` when the row has none.
 *
 * @example
 * ```ts
 * copyingAccuracy(trace.tokens[0], (i) => trace.logitsAt({ position: i }));
 * ```
 */
export function copyingAccuracy(tokens: readonly number[], logitsAt: (position: number) => ArrayLike<number>): { accuracy: number | null; correct: number; total: number } {
  const targets = copyingPositions(tokens);
  let correct = 0;
  for (const { position, target } of targets) {
    const l = logitsAt(position);
    if (l.length === 0) throw new TdbError("E_BAD_INPUT", `no logits at position ${position}`, { value: position, allowed: "logits at every position" });
    let best = 0;
    for (let v = 1; v < l.length; v++) if (l[v]! > l[best]!) best = v;
    if (best === target) correct++;
  }
  return { accuracy: targets.length === 0 ? null : correct / targets.length, correct, total: targets.length };
}
