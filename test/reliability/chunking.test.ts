/**
 * Issue 12, bounded memory: `trace` and `intervene` run big batches in row chunks sized to
 * `maxBatchBytes` (the result plus one running chunk). A chunked run must give exactly the
 * unchunked result (every cached hook, the logits, the tokens); a request whose result does not
 * fit the budget is refused with E_MEMORY_BUDGET before anything runs.
 */
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { patchFrom, steer, zeroHead, zeroNeuron } from "../../src/intervene/edits.js";
import { editTargets } from "../../src/intervene/compile.js";
import type { HookName } from "../../src/hooks/names.js";
import { runtimeOf, type Model } from "../../src/model/model.js";
import { planChunks, rowBytes, type RowBytes } from "../../src/runtime/memory.js";
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

/** A budget that fits the result of `rows` rows plus `chunk` running rows (and half a row more). */
function budgetFor(rows: number, chunk: number, row: RowBytes): number {
  return rows * row.kept + (chunk + 0.5) * row.running;
}

/** The padded length of PROMPTS (token rows: no BOS is prepended). */
const S = Math.max(...PROMPTS.map((p) => p.length));

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
  it("one-row chunks equal the unchunked trace, all hooks cached", async () => {
    const whole = await model.trace(PROMPTS);
    const row = rowBytes(runtimeOf(model).config, S, S, runtimeOf(model).selectHooks("all"), []);
    const budget = budgetFor(PROMPTS.length, 1, row);
    expect(planChunks(PROMPTS.length, row, budget, "t").chunkRows).toBe(1);
    const rows = await model.trace(PROMPTS, { maxBatchBytes: budget });
    expect(rows.cache.size).toBeGreaterThan(20);
    expectSameTrace(rows, whole);
  });

  it("uneven chunks (2 + 2 + 1 rows) with selected positions equal the unchunked trace", async () => {
    const hooks = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"] as HookName[];
    const whole = await model.trace(PROMPTS, { hooks, positions: [0, -1] });
    const row = rowBytes(runtimeOf(model).config, S, S, hooks, [], 2);
    const budget = budgetFor(PROMPTS.length, 2, row);
    expect(planChunks(PROMPTS.length, row, budget, "t").chunkRows).toBe(2);
    const twos = await model.trace(PROMPTS, { hooks, positions: [0, -1], maxBatchBytes: budget });
    expect(whole.cache.get("blocks.0.attn.hook_pattern").dims[0]).toBe(PROMPTS.length);
    expectSameTrace(twos, whole);
  });

  it("each chunked row equals that prompt traced alone (independent of batching)", async () => {
    // Rows padded to the batch length: compare the real positions with a one-prompt trace.
    const hooks = ["blocks.1.hook_resid_post"] as HookName[];
    const budget = budgetFor(PROMPTS.length, 1, rowBytes(runtimeOf(model).config, S, S, hooks, []));
    const chunked = await model.trace(PROMPTS, { hooks, maxBatchBytes: budget });
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
      const n = P[0]!.length;
      const row = rowBytes(runtimeOf(model).config, n, n, [], await editTargets(runtimeOf(model), variants.flat(), n));
      // Each chunk holds the clean row and one variant.
      const rows = await model.intervene(P, [], { variants, prefixShare, logits: "all", maxBatchBytes: budgetFor(variants.length + 1, 2, row) });
      expectSameTrace(rows.edited, whole.edited);
      expectSameTrace(rows.clean, whole.clean);
      // Variants that edit nothing are the clean run.
      for (const r of [1, 5]) expect(Array.from(rows.edited.selectRows([r]).logits.data)).toEqual(Array.from(rows.clean.logits.data));
    });
  }

  it("with cached hooks and last-position logits", async () => {
    const hooks = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"] as HookName[];
    const whole = await model.intervene(P, [], { variants, hooks });
    const n = P[0]!.length;
    const row = rowBytes(runtimeOf(model).config, n, 1, hooks, await editTargets(runtimeOf(model), variants.flat(), n));
    const rows = await model.intervene(P, [], { variants, hooks, maxBatchBytes: budgetFor(variants.length + 1, 2, row) });
    expect(rows.edited.logits.dims).toEqual([variants.length, 1, whole.edited.logits.dims[2]]);
    expectSameTrace(rows.edited, whole.edited);
  });
});

describe("intervene on a batch in row chunks (maxBatchBytes)", () => {
  it("chunked edited and clean runs equal the unchunked ones, with a row-aligned patch source", async () => {
    // Patching each row from a different trace of the same shape: row r must read source row r,
    // also when it runs in a later chunk.
    const source = await model.trace(PROMPTS.map((p) => p.map((t) => (t * 7 + 3) % 200)), { hooks: ["blocks.0.hook_resid_post"] });
    const edits = [patchFrom("blocks.0.hook_resid_post", source), zeroHead(1, 0, { rows: [1, 3] })];
    const whole = await model.intervene(PROMPTS, edits);
    const rt = runtimeOf(model);
    const row = rowBytes(rt.config, S, S, [], await editTargets(rt, edits, S, { rows: PROMPTS.length }));
    const chunked = await model.intervene(PROMPTS, edits, { maxBatchBytes: budgetFor(2 * PROMPTS.length, 2, row) });
    expect(planChunks(2 * PROMPTS.length, row, budgetFor(2 * PROMPTS.length, 2, row), "t").chunkRows).toBe(2);
    expectSameTrace(chunked.edited, whole.edited);
    expectSameTrace(chunked.clean, whole.clean);
    // The patch really changed something (rows differ from clean).
    expect(Array.from(chunked.edited.logits.data)).not.toEqual(Array.from(chunked.clean.logits.data));
  });
});

describe("requests over the budget (E_MEMORY_BUDGET)", () => {
  it("a trace whose result does not fit is refused with the bytes needed and the budget", async () => {
    const row = rowBytes(runtimeOf(model).config, S, S, runtimeOf(model).selectHooks("all"), []);
    const budget = PROMPTS.length * row.kept; // the result alone, nothing left to run a row
    const err = await model.trace(PROMPTS, { maxBatchBytes: budget }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_MEMORY_BUDGET");
    expect((err as TdbError).allowed).toBe(budget);
    expect((err as TdbError).value).toBeCloseTo(PROMPTS.length * row.kept + row.running, 0);
    // Asking for less (last-position logits, one hook) fits the same budget.
    const small = await model.trace(PROMPTS, { maxBatchBytes: budget, logits: "last", hooks: ["blocks.0.hook_resid_post"] });
    expect(small.logits.dims).toEqual([PROMPTS.length, 1, runtimeOf(model).config.dVocab]);
  });

  it("variants whose results do not fit are refused", async () => {
    const variants = Array.from({ length: 50 }, (_, i) => [zeroHead(i % 2, 0)]);
    const err = await model.intervene([PROMPTS[0]!], [], { variants, maxBatchBytes: 4096 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as TdbError).code).toBe("E_MEMORY_BUDGET");
  });

  it("the default budget is half the memory the backend reports available", async () => {
    const { registeredOrtBackend, setOrtBackend } = await import("../../src/backend/ort.js");
    const { defaultBudget } = await import("../../src/runtime/memory.js");
    const real = registeredOrtBackend()!;
    try {
      setOrtBackend({ ...real, availableMemory: () => 10_000 });
      expect(defaultBudget()).toBe(5000);
      const err = await model.trace(PROMPTS).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as TdbError).code).toBe("E_MEMORY_BUDGET");
      expect((err as TdbError).allowed).toBe(5000);
      setOrtBackend({ ...real, availableMemory: () => undefined });
      expect(defaultBudget()).toBe(1024 ** 3);
    } finally {
      setOrtBackend(real);
    }
    expect((await model.trace(PROMPTS)).tokens.length).toBe(PROMPTS.length);
  });
});

describe("trace logits option", () => {
  it('logits "last" equals each row\'s last real position of the full logits', async () => {
    const all = await model.trace(PROMPTS, { hooks: [] });
    const last = await model.trace(PROMPTS, { hooks: [], logits: "last" });
    const V = all.logits.dims[2]!;
    expect(last.logits.dims).toEqual([PROMPTS.length, 1, V]);
    PROMPTS.forEach((p, b) => {
      const from = (b * S + p.length - 1) * V;
      expect(Array.from(last.logits.data.subarray(b * V, (b + 1) * V))).toEqual(Array.from(all.logits.data.subarray(from, from + V)));
    });
    await expect(model.trace(PROMPTS, { logits: "first" as "last" })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
  });
});
