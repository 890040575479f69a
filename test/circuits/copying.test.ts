/**
 * Copying positions and copying accuracy on hand-made token rows and logits.
 */
import { describe, expect, it } from "vitest";
import { copyingAccuracy, copyingPositions } from "../../src/circuits/copying.js";
import { thrown } from "../helpers/errors.js";

/** Logits over a vocabulary of `V` with the maximum at `top`. */
const oneHot = (V: number, top: number) => Float32Array.from({ length: V }, (_, v) => (v === top ? 1 : 0));

describe("copyingPositions", () => {
  it("on [BOS, r, r]: every second-half token but the last, predicting the next one", () => {
    const half = [3, 8, 1, 6, 2];
    const row = [9, ...half, ...half];
    expect(copyingPositions(row)).toEqual([
      { position: 6, target: 8 },
      { position: 7, target: 1 },
      { position: 8, target: 6 },
      { position: 9, target: 2 },
    ]);
  });

  it("uses the most recent earlier occurrence, and skips continuations that differ", () => {
    // The 5 at 0 is followed by 1 and the 5 at 2 by 7. At 2 the earlier 5 says 1 but 7 follows: not
    // a copying position. At 4 the most recent 5 (at 2) says 7 and 7 follows: one (the first
    // occurrence would have said 1).
    expect(copyingPositions([5, 1, 5, 7, 5, 7])).toEqual([{ position: 4, target: 7 }]);
    expect(copyingPositions([1, 2, 3])).toEqual([]);
    expect(copyingPositions([4, 4, 4])).toEqual([{ position: 1, target: 4 }]);
  });
});

describe("copyingAccuracy", () => {
  it("counts top-1 hits at copying positions only", () => {
    const row = [9, 3, 8, 1, 3, 8, 1]; // copying positions 4 (-> 8) and 5 (-> 1)
    const tops: Record<number, number> = { 0: 3, 1: 8, 2: 1, 3: 3, 4: 8, 5: 0, 6: 2 };
    const r = copyingAccuracy(row, (i) => oneHot(10, tops[i]!));
    expect(r).toEqual({ accuracy: 0.5, correct: 1, total: 2 });
    expect(copyingAccuracy([1, 2], () => oneHot(3, 0))).toEqual({ accuracy: null, correct: 0, total: 0 });
    expect(thrown(() => copyingAccuracy(row, () => new Float32Array(0))).code).toBe("E_BAD_INPUT");
  });
});
