/**
 * `runCheck` on a model whose weights hold a known induction circuit (test/circuits/_induction-model.ts):
 * assertions whose truth is established here independently, from the float64 reference forward
 * on the same weights (logit differences, an ablation done by hand in the reference, reference
 * attention patterns scored by the detector functions) or from the construction itself (heads
 * whose W_O is zero write nothing, so ablating them changes nothing). True assertions pass, false
 * ones fail, and one that cannot be evaluated is an error that does not stop the others.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCheck, type CheckReport } from "../../src/check/run.js";
import { copyingPositions } from "../../src/circuits/copying.js";
import { scoreLayerPatterns } from "../../src/circuits/head-scores.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { makeInductionModel, repeatedDistinctRows } from "../circuits/_induction-model.js";
import { rejected } from "../helpers/errors.js";
import type { TestModel } from "../helpers/models.js";

let tm: TestModel;
let bos: number;
/** Two rows ending in token 4 whose earlier 4 was followed by 5: induction predicts 5. */
let rows: number[][];

beforeAll(async () => {
  tm = await makeInductionModel();
  bos = (JSON.parse(await readFile(tm.config, "utf8")) as { bos_token_id: number }).bos_token_id;
  rows = [
    [bos, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4],
    [bos, 9, 10, 4, 5, 11, 12, 9, 10, 4],
  ];
});
afterAll(async () => {
  await tm?.cleanup();
});

/** Last-position float64 logits of a row, optionally with head `head` of layer 1 zero-ablated (its attention probabilities zeroed, so its z is 0). */
function refLast(row: number[], ablateHead1?: number): Float64Array {
  const S = row.length;
  const onHook = (name: string, t: RefTensor) => {
    if (ablateHead1 !== undefined && name === "blocks.1.attn.hook_pattern") t.data.fill(0, ablateHead1 * S * S, (ablateHead1 + 1) * S * S);
  };
  const r = gpt2Reference(tm.arch, tm.weights, [row], undefined, { onHook });
  const V = tm.arch.vocab_size;
  return r.logits.data.slice((S - 1) * V, S * V);
}

const diff = (l: Float64Array) => l[5]! - l[4]!;

describe("runCheck", () => {
  let report: CheckReport;
  let refDiffs: number[];
  let refDrops: number[];
  let refInduction11: number;
  let copyRows: number[][];
  let refCopy: { clean: number; ablated: number };

  beforeAll(async () => {
    refDiffs = rows.map((r) => diff(refLast(r)));
    refDrops = rows.map((r) => diff(refLast(r)) - diff(refLast(r, 0)));
    // Reference induction score of head 1.1 on the matched rows of two repeated rows.
    const seqRows = [
      [bos, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6],
      [bos, 7, 3, 9, 11, 2, 7, 3, 9, 11, 2],
    ];
    const pad = (r: number[]) => [...r, ...new Array<number>(13 - r.length).fill(bos)];
    let pattern: RefTensor | undefined;
    gpt2Reference(tm.arch, tm.weights, seqRows.map(pad), seqRows.map((r) => pad(r).map((_, i) => (i < r.length ? 1 : 0))), {
      onHook: (n, t) => {
        if (n === "blocks.1.attn.hook_pattern") pattern = { data: t.data.slice(), dims: [...t.dims] };
      },
    });
    refInduction11 = scoreLayerPatterns(pattern!, seqRows, "induction", { queries: "matched" })[1]!;

    // Reference copying accuracy (top-1 = the copied token at copying positions), clean and with head 1.0 ablated.
    copyRows = repeatedDistinctRows(2, 10, bos);
    const accuracy = (ablate?: number) => {
      let hit = 0;
      let total = 0;
      for (const row of copyRows) {
        const S = row.length;
        const V = tm.arch.vocab_size;
        const onHook = (name: string, t: RefTensor) => {
          if (ablate !== undefined && name === "blocks.1.attn.hook_pattern") t.data.fill(0, ablate * S * S, (ablate + 1) * S * S);
        };
        const logits = gpt2Reference(tm.arch, tm.weights, [row], undefined, { onHook }).logits.data;
        for (const { position, target } of copyingPositions(row)) {
          const l = logits.subarray(position * V, (position + 1) * V);
          hit += l.indexOf(Math.max(...l)) === target ? 1 : 0;
          total++;
        }
      }
      return hit / total;
    };
    refCopy = { clean: accuracy(), ablated: accuracy(0) };

    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    report = await runCheck(
      {
        name: "induction circuit",
        prependBos: false,
        assertions: [
          // true: the reference's mean logit difference 5 - 4, minus a margin
          { id: "ld-true", description: "induction predicts 5 over 4", kind: "logit_diff", prompts: rows, target: 5, distractor: 4, comparison: ">", threshold: mean(refDiffs) - 0.01 },
          // false: the same plus a margin
          { id: "ld-false", description: "logit diff above the true value", kind: "logit_diff", prompts: rows, target: 5, distractor: 4, comparison: ">", threshold: mean(refDiffs) + 0.01, aggregate: "mean" },
          { id: "ld-all", description: "every prompt at least its minimum", kind: "logit_diff", prompts: rows, target: 5, distractor: 4, comparison: ">=", threshold: Math.min(...refDiffs) - 0.01, aggregate: "all" },
          { id: "top", description: "5 is the top token", kind: "top_token", prompts: rows, token: 5 },
          { id: "top-false", description: "4 is the top token", kind: "top_token", prompts: rows, token: 4 },
          // true: zero-ablating head 1.0 drops the logit difference by (almost) the reference's drop
          { id: "abl-true", description: "ablating 1.0 drops the logit diff", kind: "ablation", prompts: rows, edits: [{ head: "1.0" }], target: 5, distractor: 4, metric: "drop", comparison: ">", threshold: Math.min(...refDrops) - 0.01, aggregate: "min" },
          // false: head 1.1 has W_O = 0, so ablating it changes nothing
          { id: "abl-false", description: "ablating 1.1 drops the logit diff by more than 1", kind: "ablation", prompts: rows, edits: [{ head: "1.1" }], target: 5, distractor: 4, metric: "drop", comparison: ">", threshold: 1 },
          { id: "abl-kl", description: "ablating 1.1 changes nothing", kind: "ablation", prompts: rows, edits: [{ kind: "zero", hook: "blocks.1.attn.hook_z", at: { head: 1 } }], metric: "kl", comparison: "<", threshold: 1e-9 },
          // the same ablation of 1.0 as an intervene edit in JSON: it must take effect to pass
          { id: "abl-json", description: "ablating 1.0 (JSON edit) drops the logit diff", kind: "ablation", prompts: rows, edits: [{ kind: "scale", hook: "blocks.1.attn.hook_z", at: { head: [0] }, value: 0 }], target: 5, distractor: 4, metric: "drop", comparison: ">", threshold: Math.min(...refDrops) - 0.01, aggregate: "all" },
          { id: "attr-true", description: "the top head node is 1.0", kind: "attribution", prompts: rows, target: 5, distractor: 4, node: "1.0", among: ["attention_head"] },
          { id: "attr-false", description: "the top head node is 0.0", kind: "attribution", prompts: rows, target: 5, distractor: 4, node: "0.0", among: ["attention_head"] },
          { id: "hs-true", description: "1.0 is an induction head", kind: "head_score", head: "1.0", detector: "induction", queries: "matched", input: [[bos, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], [bos, 7, 3, 9, 11, 2, 7, 3, 9, 11, 2]], comparison: ">", threshold: 0.99 },
          { id: "hs-false", description: "1.1 is an induction head", kind: "head_score", head: "1.1", detector: "induction", queries: "matched", input: [[bos, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], [bos, 7, 3, 9, 11, 2, 7, 3, 9, 11, 2]], comparison: ">", threshold: 0.5 },
          { id: "hs-rank", description: "0.0 is the best previous-token head", kind: "head_score", head: "0.0", detector: "previousToken", rank: 1, seqLen: 10, batch: 2 },
          { id: "hs-range", description: "a head the model does not have", kind: "head_score", head: "5.0", detector: "induction", comparison: ">", threshold: 0 },
          { id: "copy-clean", description: "the model copies", kind: "copying", input: copyRows, comparison: ">=", threshold: refCopy.clean },
          { id: "copy-ablated", description: "without 1.0 it does not", kind: "copying", input: copyRows, edits: [{ head: "1.0" }], comparison: "<=", threshold: refCopy.ablated },
          { id: "copy-other", description: "1.1 costs nothing", kind: "copying", input: copyRows, edits: [{ head: "1.1" }], metric: "drop", comparison: "<", threshold: 0.05 },
          { id: "copy-false", description: "1.0 costs little", kind: "copying", input: copyRows, edits: [{ head: "1.0" }], metric: "drop", comparison: "<", threshold: 0.05 },
          { id: "ld-token", description: "a token id out of range", kind: "logit_diff", prompts: rows, target: 99999, distractor: 4, comparison: ">", threshold: 0 },
        ],
      },
      { model: tm.dir },
    );
  });

  const get = (id: string) => report.assertions.find((a) => a.id === id)!;

  it("the independently established facts hold on this model (the test's premises)", () => {
    expect(Math.min(...refDiffs)).toBeGreaterThan(3); // the circuit predicts 5
    expect(Math.min(...refDrops)).toBeGreaterThan(3); // and needs head 1.0 to
    expect(refInduction11).toBeLessThan(0.5);
    expect(refCopy.clean).toBe(1);
    expect(refCopy.ablated).toBeLessThan(0.1);
  });

  it("reports every assertion in spec order, passed or not", () => {
    expect(report.schema).toBe("tdb.check/1");
    expect(report.name).toBe("induction circuit");
    expect(report.model).toBe(tm.dir);
    expect(report.assertions.map((a) => a.id)).toEqual(["ld-true", "ld-false", "ld-all", "top", "top-false", "abl-true", "abl-false", "abl-kl", "abl-json", "attr-true", "attr-false", "hs-true", "hs-false", "hs-rank", "hs-range", "copy-clean", "copy-ablated", "copy-other", "copy-false", "ld-token"]);
    const status = Object.fromEntries(report.assertions.map((a) => [a.id, a.status]));
    expect(status).toEqual({
      "ld-true": "passed",
      "ld-false": "failed",
      "ld-all": "passed",
      top: "passed",
      "top-false": "failed",
      "abl-true": "passed",
      "abl-false": "failed",
      "abl-kl": "passed",
      "abl-json": "passed",
      "attr-true": "passed",
      "attr-false": "failed",
      "hs-true": "passed",
      "hs-false": "failed",
      "hs-rank": "passed",
      "hs-range": "error",
      "copy-clean": "passed",
      "copy-ablated": "passed",
      "copy-other": "passed",
      "copy-false": "failed",
      "ld-token": "error",
    });
    expect(report.passed).toBe(false);
    expect(report.counts).toEqual({ total: 20, passed: 12, failed: 6, errors: 2 });
  });

  it("measures the values the reference gives", () => {
    const ld = get("ld-true");
    ld.values!.forEach((v, i) => expect(Math.abs(v! - refDiffs[i]!)).toBeLessThan(1e-3));
    expect(Math.abs(get("ld-all").measured! - Math.min(...refDiffs))).toBeLessThan(1e-3);
    get("abl-true").values!.forEach((v, i) => expect(Math.abs(v! - refDrops[i]!)).toBeLessThan(1e-3));
    expect(get("abl-false").values).toEqual([0, 0]);
    get("abl-json").values!.forEach((v, i) => expect(Math.abs(v! - refDrops[i]!)).toBeLessThan(1e-3));
    expect(get("top").measured).toBe(1);
    expect(get("top-false").measured).toBe(0);
    expect(Math.abs(get("hs-false").measured! - refInduction11)).toBeLessThan(1e-5);
    expect(get("attr-true").measured).toBe(1);
    expect(get("attr-false").measured).toBeGreaterThan(1);
    expect(get("hs-rank").measured).toBe(1);
    expect(get("copy-clean").measured).toBe(refCopy.clean);
    expect(get("copy-ablated").measured).toBe(refCopy.ablated);
    expect(get("copy-other").measured).toBe(0);
    expect(get("copy-false").measured).toBe(refCopy.clean - refCopy.ablated);
  });

  it("says what was measured against what, and carries typed errors", () => {
    const f = get("ld-false");
    expect(f).toMatchObject({ passed: false, comparison: ">", aggregate: "mean" });
    expect(f.message).toContain("logit diff above the true value");
    expect(f.message).toContain("expected >");
    expect(get("hs-range").error).toMatchObject({ code: "E_LAYER_RANGE", value: 5 });
    expect(get("ld-token").error).toMatchObject({ code: "E_INDEX_RANGE", value: 99999 });
    expect(get("attr-true")).toMatchObject({ comparison: "<=", threshold: 1 });
  });
});

describe("runCheck inputs", () => {
  it("reads a spec file, with a model path relative to it", async () => {
    const path = join(tm.dir, "spec.yaml");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(path, `model: .\nprependBos: false\nassertions:\n  - id: top\n    description: induction predicts 5\n    kind: top_token\n    prompt: [${rows[0]!.join(", ")}]\n    token: 5\n`);
    const r = await runCheck(path);
    expect(r.spec).toBe(path);
    expect(r.name).toBe("spec.yaml");
    expect(r.model).toBe(tm.dir);
    expect(r.passed).toBe(true);
  });

  it("an invalid spec is E_BAD_SPEC before any model loads", async () => {
    const e = await rejected(runCheck({ assertions: [{ id: "x", description: "d", kind: "nope" }] }, { model: "/nonexistent" }));
    expect(e.code).toBe("E_BAD_SPEC");
  });
});
