/**
 * Issue 12, bounded memory: `trace` and `intervene` run big batches in row chunks sized to
 * `maxBatchBytes`. A chunked run must give exactly the unchunked result (every cached hook, the
 * logits, the tokens), and a budget below one row still runs, one row at a time.
 */
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { steer, zeroHead, zeroNeuron } from "../../src/intervene/edits.js";
import type { HookName } from "../../src/hooks/names.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
import { batchRowBytes } from "../../src/runtime/runtime.js";
import type { Trace } from "../../src/trace/trace.js";
import { useTestModel } from "../helpers/models.js";

let model: Model;
useTestModel({}, (_tm, m) => {
  model = m;
});

/** Prompts of different lengths, so that rows are right-padded. */
const PROMPTS = [
  [3, 14, 15, 92, 65],
  [35, 89],
  [79, 32, 38, 46, 26, 43, 38],
  [27, 18, 28],
  [1, 41, 42],
];

/** Asserts two traces are identical: tokens, logits and every cached hook, bit for bit. */
function expectSameTrace(a: Trace, b: Trace): void {
  expect(a.tokens).toEqual(b.tokens);
  expect(a.strTokens).toEqual(b.strTokens);
  expect(a.logits.dims).toEqual(b.logits.dims);
  expect(a.logits.labels).toEqual(b.logits.labels);
  expect(Buffer.from(a.logits.data.buffer, a.logits.data.byteOffset, a.logits.data.byteLength).equals(Buffer.from(b.logits.data.buffer, b.logits.data.byteOffset, b.logits.data.byteLength))).toBe(true);
  const names = [...a.cache].map(([n]) => n);
  expect(names).toEqual([...b.cache].map(([n]) => n));
  for (const n of names) {
    const x = a.cache.get(n);
    const y = b.cache.get(n);
    expect(x.dims, n).toEqual(y.dims);
    expect(x.labels, n).toEqual(y.labels);
    expect(Array.from(x.data), n).toEqual(Array.from(y.data));
  }
  expect(a.positions).toEqual(b.positions);
  expect(a.logitPositions).toEqual(b.logitPositions);
}

describe("trace in row chunks (maxBatchBytes)", () => {
  it("one-row chunks (budget below one row) equal the unchunked trace, all hooks cached", async () => {
    const whole = await model.trace(PROMPTS);
    const rows = await model.trace(PROMPTS, { maxBatchBytes: 1 });
    expect(rows.cache.size).toBeGreaterThan(20);
    expectSameTrace(rows, whole);
  });

  it("uneven chunks (2 + 2 + 1 rows) with selected positions equal the unchunked trace", async () => {
    const hooks = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"] as HookName[];
    const S = Math.max(...PROMPTS.map((p) => p.length));
    const perRow = batchRowBytes(runtimeOf(model).config, S, S, hooks, []);
    const whole = await model.trace(PROMPTS, { hooks, positions: [0, -1] });
    const twos = await model.trace(PROMPTS, { hooks, positions: [0, -1], maxBatchBytes: 2.5 * perRow });
    expect(whole.cache.get("blocks.0.attn.hook_pattern").dims[0]).toBe(PROMPTS.length);
    expectSameTrace(twos, whole);
  });

  it("each chunked row equals that prompt traced alone (independent of batching)", async () => {
    // Rows padded to the batch length: compare the real positions with a one-prompt trace.
    const chunked = await model.trace(PROMPTS, { hooks: ["blocks.1.hook_resid_post"], maxBatchBytes: 1 });
    for (const [b, p] of PROMPTS.entries()) {
      const alone = await model.trace([p], { hooks: ["blocks.1.hook_resid_post"] });
      const a = chunked.cache.get("blocks.1.hook_resid_post");
      const d = a.dims[2]!;
      const S = a.dims[1]!;
      for (let s = 0; s < p.length; s++) {
        for (let i = 0; i < d; i++) {
          expect(a.data[(b * S + s) * d + i]).toBeCloseTo(alone.cache.get("blocks.1.hook_resid_post").data[s * d + i]!, 5);
        }
      }
    }
  });

  it("a bad budget is a typed E_BAD_OPTION", async () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "1e9" as unknown as number]) {
      const err = await model.trace(PROMPTS, { maxBatchBytes: bad }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TdbError);
      expect((err as TdbError).code).toBe("E_BAD_OPTION");
    }
  });
});

describe("intervene variants in row chunks (maxBatchBytes)", () => {
  const P = [PROMPTS[0]!];
  const variants = [[zeroHead(0, 0)], [], [zeroNeuron(1, 3)], [steer("blocks.1.hook_resid_pre", new Array<number>(64).fill(0.5))], [zeroHead(1, 1), zeroNeuron(0, 2)], []];

  for (const prefixShare of [true, false]) {
    it(`one variant per chunk equals one chunk for all (prefixShare ${prefixShare})`, async () => {
      const whole = await model.intervene(P, [], { variants, prefixShare, logits: "all" });
      const rows = await model.intervene(P, [], { variants, prefixShare, logits: "all", maxBatchBytes: 1 });
      expectSameTrace(rows.edited, whole.edited);
      expectSameTrace(rows.clean, whole.clean);
      // Variants that edit nothing are the clean run.
      for (const r of [1, 5]) expect(Array.from(rows.edited.selectRows([r]).logits.data)).toEqual(Array.from(rows.clean.logits.data));
    });
  }

  it("with cached hooks and last-position logits", async () => {
    const hooks = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"] as HookName[];
    const whole = await model.intervene(P, [], { variants, hooks });
    const rows = await model.intervene(P, [], { variants, hooks, maxBatchBytes: 1 });
    expect(rows.edited.logits.dims).toEqual([variants.length, 1, whole.edited.logits.dims[2]]);
    expectSameTrace(rows.edited, whole.edited);
  });
});
