/**
 * Head detectors: detection patterns and scores on hand-built attention patterns with closed-form
 * scores, then `model.headScores` on a model whose weights hold a known previous-token head (0.0)
 * and induction head (1.0), checked against the float64 reference's attention patterns.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  detectionScore,
  duplicateTokenPattern,
  headScores,
  inductionPattern,
  previousTokenPattern,
  repeatedRandomTokens,
  scoreLayerPatterns,
} from "../../src/circuits/head-scores.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { thrown, rejected } from "../helpers/errors.js";
import { makeInductionModel, repeatedDistinctRows } from "./_induction-model.js";
import type { TestModel } from "../helpers/models.js";

/** An n x n matrix from a function of (query, key). */
function matrix(n: number, f: (i: number, j: number) => number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = f(i, j);
  return m;
}

/** Ones at the listed (i, j). */
function ones(n: number, cells: [number, number][]): number[] {
  const m = new Array<number>(n * n).fill(0);
  for (const [i, j] of cells) m[i * n + j] = 1;
  return m;
}

const harmonic = (n: number) => Array.from({ length: n }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);

describe("detection patterns", () => {
  it("previous token: ones just below the diagonal", () => {
    expect([...previousTokenPattern(4)]).toEqual(ones(4, [[1, 0], [2, 1], [3, 2]]));
    expect([...previousTokenPattern(1)]).toEqual([0]);
  });

  it("duplicate token: earlier copies of the query's token, never the diagonal", () => {
    // tokens  0:5 1:7 2:5 3:7 4:5
    expect([...duplicateTokenPattern([5, 7, 5, 7, 5])]).toEqual(ones(5, [[2, 0], [3, 1], [4, 0], [4, 2]]));
  });

  it("induction: the token after each earlier copy of the query's token", () => {
    // tokens 0:9 1:5 2:7 3:5 4:7; query 3 (5) -> key 2 (after the 5 at 1); query 4 (7) -> key 3 (after the 7 at 2)
    expect([...inductionPattern([9, 5, 7, 5, 7])]).toEqual(ones(5, [[3, 2], [4, 3]]));
    // a repeated adjacent token points at the diagonal: query 2 (4) -> key 2 (after the 4 at 1)
    expect([...inductionPattern([1, 4, 4])]).toEqual(ones(3, [[2, 2]]));
  });
});

describe("detectionScore on constructed attention patterns (closed forms)", () => {
  const n = 9;

  it("a perfect previous-token head scores (n-1)/n, 1 without the diagonal or on matched rows", () => {
    const a = matrix(n, (i, j) => (i === 0 ? (j === 0 ? 1 : 0) : j === i - 1 ? 1 : 0));
    const d = previousTokenPattern(n);
    expect(detectionScore(a, d, n)).toBeCloseTo((n - 1) / n, 12);
    expect(detectionScore(a, d, n, { excludeCurrentToken: true })).toBeCloseTo(1, 12);
    expect(detectionScore(a, d, n, { queries: "matched" })).toBeCloseTo(1, 12);
  });

  it("uniform causal attention: (H_n - 1)/n, and (H_n - 3/2)/(n - H_n) without BOS", () => {
    const a = matrix(n, (i, j) => (j <= i ? 1 / (i + 1) : 0));
    const d = previousTokenPattern(n);
    const H = harmonic(n);
    expect(detectionScore(a, d, n)).toBeCloseTo((H - 1) / n, 12);
    // column 0 removed: row i >= 1 keeps mass i/(i+1); the previous token of row 1 is BOS itself
    expect(detectionScore(a, d, n, { excludeBos: true })).toBeCloseTo((H - 1.5) / (n - H), 12);
    // diagonal removed: row i keeps i/(i+1) (row 0 keeps nothing); hits are unchanged
    expect(detectionScore(a, d, n, { excludeCurrentToken: true })).toBeCloseTo((H - 1) / (n - H), 12);
  });

  it("induction on [BOS, r, r]: m/(2m+1) for a perfect head, 1 on matched rows or without BOS", () => {
    const m = 6;
    const half = [11, 12, 13, 14, 15, 16];
    const tokens = [0, ...half, ...half];
    const N = tokens.length;
    // first half (and BOS) attend to BOS; query m+1+k attends to k+2, the token after the first copy
    const a = matrix(N, (i, j) => (i <= m ? (j === 0 ? 1 : 0) : j === i - m + 1 ? 1 : 0));
    const d = inductionPattern(tokens);
    expect(detectionScore(a, d, N)).toBeCloseTo(m / (2 * m + 1), 12);
    expect(detectionScore(a, d, N, { queries: "matched" })).toBeCloseTo(1, 12);
    expect(detectionScore(a, d, N, { excludeBos: true })).toBeCloseTo(1, 12);
    // the same head is no duplicate-token head; as a previous-token head only query 1 (-> BOS) hits
    expect(detectionScore(a, duplicateTokenPattern(tokens), N)).toBe(0);
    expect(detectionScore(a, previousTokenPattern(N), N)).toBeCloseTo(1 / (2 * m + 1), 12);
  });

  it("a duplicate-token head splitting its mass with BOS: m/(2(2m+1)), 1/2 on matched rows, 1 without BOS", () => {
    const m = 5;
    const half = [3, 1, 4, 2, 6];
    const tokens = [9, ...half, ...half];
    const N = tokens.length;
    const a = matrix(N, (i, j) => (i <= m ? (j === 0 ? 1 : 0) : j === 0 || j === i - m ? 0.5 : 0));
    const d = duplicateTokenPattern(tokens);
    expect(detectionScore(a, d, N)).toBeCloseTo(m / (2 * (2 * m + 1)), 12);
    expect(detectionScore(a, d, N, { queries: "matched" })).toBeCloseTo(0.5, 12);
    expect(detectionScore(a, d, N, { excludeBos: true })).toBeCloseTo(1, 12);
  });

  it("all mass excluded scores 0; bad shapes and options are typed errors", () => {
    const a = matrix(3, (_, j) => (j === 0 ? 1 : 0));
    expect(detectionScore(a, previousTokenPattern(3), 3, { excludeBos: true })).toBe(0);
    expect(thrown(() => detectionScore(a, previousTokenPattern(2), 3)).code).toBe("E_BAD_INPUT");
    const e = thrown(() => detectionScore(a, previousTokenPattern(3), 3, { queries: "some" as never }));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.allowed).toEqual(["all", "matched"]);
  });
});

describe("scoreLayerPatterns: batches with padding", () => {
  it("averages per-row scores and ignores padded positions", () => {
    // row 0: 4 tokens, row 1: 6 tokens, padded to 6; 2 heads. Head 0 perfect previous-token head,
    // head 1 uniform causal. Padded cells hold 7s, which must not count.
    const rows = [
      [1, 2, 3, 4],
      [5, 6, 7, 8, 9, 10],
    ];
    const B = 2, H = 2, S = 6;
    const data = new Float64Array(B * H * S * S).fill(7);
    rows.forEach((r, b) => {
      const n = r.length;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          data[((b * H + 0) * S + i) * S + j] = i === 0 ? (j === 0 ? 1 : 0) : j === i - 1 ? 1 : 0;
          data[((b * H + 1) * S + i) * S + j] = j <= i ? 1 / (i + 1) : 0;
        }
      }
    });
    const s = scoreLayerPatterns({ data, dims: [B, H, S, S] }, rows, "previousToken");
    expect(s[0]).toBeCloseTo((3 / 4 + 5 / 6) / 2, 12);
    expect(s[1]).toBeCloseTo(((harmonic(4) - 1) / 4 + (harmonic(6) - 1) / 6) / 2, 12);
    expect(thrown(() => scoreLayerPatterns({ data, dims: [B, H, S, S] }, [rows[0]!], "induction")).code).toBe("E_BAD_INPUT");
  });
});

describe("repeatedRandomTokens", () => {
  it("is seeded, repeats its half, keeps the prefix and skips excluded ids", () => {
    const a = repeatedRandomTokens({ dVocab: 8, seqLen: 20, batch: 3, seed: 4, prefix: [7], exclude: [7, 0] });
    expect(a).toEqual(repeatedRandomTokens({ dVocab: 8, seqLen: 20, batch: 3, seed: 4, prefix: [7], exclude: [7, 0] }));
    expect(a).not.toEqual(repeatedRandomTokens({ dVocab: 8, seqLen: 20, batch: 3, seed: 5, prefix: [7], exclude: [7, 0] }));
    for (const row of a) {
      expect(row.length).toBe(41);
      expect(row[0]).toBe(7);
      expect(row.slice(1, 21)).toEqual(row.slice(21));
      expect(row.slice(1).every((t) => t >= 1 && t <= 6)).toBe(true);
    }
  });
});

describe("model.headScores on hand-set weights (previous-token head 0.0, induction head 1.0)", () => {
  let tm: TestModel;
  let model: Model;
  beforeAll(async () => {
    tm = await makeInductionModel();
    model = await Model.load(tm.dir);
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
  });

  it("finds head 0.0 as the previous-token head and head 1.0 as the induction head", async () => {
    const rows = repeatedDistinctRows(3, 15, model.bosTokenId);
    const s = await model.headScores({ input: rows });
    const n = 31;
    // Head 0.0 attends (almost) only to the previous token, query 0 to itself: (n-1)/n.
    expect(s.score("previousToken", 0, 0)).toBeGreaterThan(0.999 * ((n - 1) / n));
    expect(s.top("previousToken")[0]).toMatchObject({ layer: 0, head: 0 });
    // Head 1.0 attends to the token after the first copy on the 15 second-half rows: ~15/31 ("all"), ~1 on matched rows.
    expect(s.score("induction", 1, 0)).toBeGreaterThan(0.999 * (15 / 31));
    expect(s.score("induction", 1, 0)).toBeLessThanOrEqual(15 / 31 + 1e-6);
    expect(s.top("induction")[0]).toMatchObject({ layer: 1, head: 0 });
    expect(s.above("induction", 0.3).map((h) => `${h.layer}.${h.head}`)).toEqual(["1.0"]);
    const matched = await model.headScores({ input: rows, queries: "matched", detectors: ["induction"] });
    expect(matched.score("induction", 1, 0)).toBeGreaterThan(0.999);
    expect(matched.detectors).toEqual(["induction"]);
    expect(thrown(() => matched.score("previousToken", 0, 0)).code).toBe("E_BAD_OPTION");
  });

  it("matches scores of the float64 reference's attention patterns, every head and detector", async () => {
    const rows = repeatedDistinctRows(2, 12, model.bosTokenId);
    const s = await model.headScores({ input: rows, excludeBos: true });
    const patterns = new Map<string, { data: Float64Array; dims: number[] }>();
    gpt2Reference(tm.arch, tm.weights, rows, undefined, { onHook: (name, t) => name.endsWith("hook_pattern") && patterns.set(name, t) });
    for (const det of ["previousToken", "duplicateToken", "induction"] as const) {
      for (let l = 0; l < 2; l++) {
        const ref = scoreLayerPatterns(patterns.get(`blocks.${l}.attn.hook_pattern`)!, rows, det, { excludeBos: true });
        for (let h = 0; h < 4; h++) expect(Math.abs(s.score(det, l, h) - ref[h]!), `${det} ${l}.${h}`).toBeLessThan(1e-5);
      }
    }
  });

  it("scores the default seeded random repeated tokens, the same for the same seed", async () => {
    const a = await model.headScores({ seqLen: 10, batch: 2, seed: 3 });
    const b = await headScores(runtimeOf(model), { seqLen: 10, batch: 2, seed: 3 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens.length).toBe(2);
    expect(a.tokens[0]!.length).toBe(21);
    expect(a.tokens[0]![0]).toBe(model.bosTokenId);
    expect(a.scores.induction).toEqual(b.scores.induction);
    const c = await model.headScores({ seqLen: 10, batch: 2, seed: 4 });
    expect(c.tokens).not.toEqual(a.tokens);
    // default length: min(50, floor((n_ctx - 1) / 2)) = 15 for 32 positions
    expect((await model.headScores({ batch: 1 })).tokens[0]!.length).toBe(31);
  });

  it("rejects bad options with typed errors", async () => {
    expect((await rejected(model.headScores({ seqLen: 16 }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(model.headScores({ detectors: ["bogus" as never] }))).allowed).toEqual(["previousToken", "duplicateToken", "induction"]);
    expect((await rejected(model.headScores({ batch: 0 }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(model.headScores({ excludeBos: "yes" as never }))).code).toBe("E_BAD_OPTION");
  });
});
