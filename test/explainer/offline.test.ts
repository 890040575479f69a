/**
 * The offline (N2G-style) explainer on hand-built records, where the rule the node follows is
 * known by construction: context patterns ("B" only after "A"), wildcards ("B" two tokens after
 * "A"), token folding, the defined results for empty/constant/inactive records, typed errors for
 * malformed records and options.
 */
import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { explainOffline, PatternTrie, simulateOffline, tokenKey } from "../../src/explainer/offline.js";
import type { ActivationRecord, NodeRecords } from "../../src/explainer/types.js";
import { thrown } from "../helpers/errors.js";
import { refPearson } from "../helpers/pearson.js";

const VOCAB = new Map<string, number>();
const idOf = (t: string) => {
  let id = VOCAB.get(t);
  if (id === undefined) VOCAB.set(t, (id = VOCAB.size + 100));
  return id;
};

/** A record from tokens and a rule giving each token's activation from the tokens before it. */
function rec(tokens: string[], rule: (tokens: string[], p: number) => number): ActivationRecord {
  return { tokens, ids: tokens.map(idOf), activations: tokens.map((_, p) => rule(tokens, p)) };
}

function records(top: ActivationRecord[], random: ActivationRecord[]): NodeRecords {
  const acts = [...top, ...random].flatMap((r) => r.activations);
  return {
    node: { kind: "mlp_neuron", layer: 1, index: 7 },
    top,
    random,
    stats: { count: acts.length, max: Math.max(0, ...acts), mean: 0, density: 0, quantiles: [0, 0, 0, 0] },
  };
}

const FILL = ["x", "y", "z", "w", "v", "u", "t", "s"];
const filler = (i: number, n: number) => Array.from({ length: n }, (_, j) => FILL[(i * 3 + j * 5) % FILL.length]!);

describe("explainOffline: token patterns", () => {
  it("a single-token detector: the token alone, scored 1 on held-out records", () => {
    const rule = (t: string[], p: number) => (t[p] === " jury" ? 8 : 0);
    const top = Array.from({ length: 10 }, (_, i) => rec([...filler(i, 3), " jury", ...filler(i + 1, 2)], rule));
    const random = Array.from({ length: 10 }, (_, i) => rec(filler(i + 2, 6), rule));
    const r = explainOffline(records(top, random));
    expect(r.status).toBe("ok");
    expect(r.patterns.map((p) => p.tokens)).toEqual([[" jury"]]);
    expect(r.patterns[0]).toMatchObject({ activation: 8, normalized: 10, support: 5, precision: 1, pivots: 5, text: 'the token " jury"' });
    expect(r.explanation).toBe('the token " jury" (10/10)');
    // Held out: every second record (5 top, 5 random), 1:1.
    expect(r.trained).toEqual({ top: 5, random: 5 });
    expect(r.validation).toEqual([top[1], top[3], top[5], top[7], top[9], random[1], random[3], random[5], random[7], random[9]]);
    expect(r.simulated).toEqual(r.validation.map((v) => v.tokens.map((t) => (t === " jury" ? 8 : 0))));
    expect(r.score).toBeCloseTo(1, 12);
    expect(r.scores.r2).toBeCloseTo(1, 12);
    expect(r.scores).toMatchObject({ records: 10, n: 10 * 6 });
    expect(r.scores.degenerate).toBeUndefined();
  });

  it('context: "B" fires only after "A"; the pattern is "B" after "A", and "B" alone predicts 0', () => {
    const rule = (t: string[], p: number) => (t[p] === "B" && t[p - 1] === "A" ? 10 : 0);
    const top = Array.from({ length: 8 }, (_, i) => rec([...filler(i, 2), "A", "B", ...filler(i + 3, 2)], rule));
    // Random excerpts: "B" after other tokens and "A" before other tokens, never firing.
    const random = Array.from({ length: 8 }, (_, i) => rec([...filler(i, 2), "B", "A", ...filler(i + 1, 1), "B"], rule));
    const r = explainOffline(records(top, random));
    expect(r.patterns).toHaveLength(1);
    expect(r.patterns[0]).toMatchObject({ tokens: ["A", "B"], keys: [`id:${idOf("A")}`, `id:${idOf("B")}`], activation: 10, text: '"B" after "A"' });
    expect(r.explanation).toBe('"B" after "A" (10/10)');
    expect(simulateOffline(r.patterns, rec(["x", "B", "A", "B"], rule))).toEqual([0, 0, 0, 10]);
    expect(r.score).toBeCloseTo(1, 12);
  });

  it('wildcards: "B" fires two tokens after "A" whatever lies between: "B" after "A" <any>', () => {
    const rule = (t: string[], p: number) => (t[p] === "B" && t[p - 2] === "A" ? 6 : 0);
    const top = Array.from({ length: 10 }, (_, i) => rec(["y", "A", FILL[i % FILL.length]!, "B", "z"], rule));
    const random = Array.from({ length: 10 }, (_, i) => rec(["A", "B", FILL[(i + 2) % FILL.length]!, "B", "x"], rule));
    const r = explainOffline(records(top, random));
    expect(r.patterns.map((p) => p.text)).toEqual(['"B" after "A" <any>']);
    expect(r.patterns[0]!.keys).toEqual([`id:${idOf("A")}`, null, `id:${idOf("B")}`]);
    // An unseen middle token still matches.
    expect(simulateOffline(r.patterns, rec(["A", "never", "B", "B"], rule))).toEqual([0, 0, 6, 0]);
    expect(r.score).toBeCloseTo(1, 12);
    // Without wildcards, each middle token is its own pattern (seen once each: the shortest consistent).
    const exact = explainOffline(records(top, random), { wildcards: false });
    expect(exact.patterns.every((p) => p.keys.every((k) => k !== null))).toBe(true);
  });

  it("several patterns are listed strongest first with their 0..10 levels; maxListed elides the rest", () => {
    const level: Record<string, number> = { " a": 9, " b": 6, " c": 3 };
    const rule = (t: string[], p: number) => level[t[p]!] ?? 0;
    const top = Array.from({ length: 12 }, (_, i) => rec([...filler(i, 2), [" a", " b", " c"][Math.floor(i / 4)]!, "x"], rule));
    const random = Array.from({ length: 6 }, (_, i) => rec(filler(i, 5), rule));
    const r = explainOffline(records(top, random), { pivotThreshold: 0.1 });
    expect(r.patterns.map((p) => [p.text, p.normalized])).toEqual([
      ['the token " a"', 10],
      ['the token " b"', 7],
      ['the token " c"', 3],
    ]);
    expect(r.explanation).toBe('the token " a" (10/10); the token " b" (7/10); the token " c" (3/10)');
    // The score is the Pearson correlation of true and simulated activations pooled over the held-out records.
    expect(r.simulated).toEqual(r.validation.map((v) => v.tokens.map((t) => level[t] ?? 0)));
    expect(r.score).toBeCloseTo(refPearson(r.validation.flatMap((v) => v.activations), r.simulated.flat()), 12);
    expect(explainOffline(records(top, random), { pivotThreshold: 0.1, maxListed: 1 }).explanation).toBe(
      'the token " a" (10/10); and 2 more patterns',
    );
  });

  it("fold: case and leading space, documented in the explanation", () => {
    const rule = (t: string[], p: number) => (t[p]!.trim().toLowerCase() === "jury" ? 5 : 0);
    const forms = [" jury", "Jury", " JURY", "jury"];
    const top = Array.from({ length: 8 }, (_, i) => rec([...filler(i, 2), forms[i % 4]!, "x"], rule));
    const random = Array.from({ length: 8 }, (_, i) => rec(filler(i, 4), rule));
    const r = explainOffline(records(top, random), { fold: { case: true, space: true } });
    expect(r.patterns).toHaveLength(1);
    expect(r.patterns[0]!.keys).toEqual(["s:jury"]);
    expect(r.explanation).toBe('the token " jury" (10/10) (tokens matched in any case, with or without a leading space)');
    expect(simulateOffline(r.patterns, { tokens: ["JURY", " Jury", " jar"] }, r.fold)).toEqual([5, 5, 0]);
    expect(tokenKey(" Jury", 3, { space: true })).toBe("s:Jury");
    expect(tokenKey(" Jury", 3)).toBe("id:3");
    // Exact matching (the default) needs ids.
    expect(thrown(() => new PatternTrie(r.patterns).predict({ tokens: ["jury"] }))).toMatchObject({ code: "E_BAD_INPUT" });
  });

  it("the trie predicts the longest matching pattern (ties: the larger activation), 0 elsewhere", () => {
    const pat = (keys: (string | null)[], activation: number) =>
      ({ keys, tokens: keys, activation, normalized: 0, support: 1, precision: 1, pivots: 1, text: "" }) as const;
    const trie = new PatternTrie([pat(["s:b"], 2), pat(["s:a", "s:b"], 10), pat(["s:c", null, "s:b"], 4), pat(["s:a", null, "s:b"], 7)], { case: true });
    // [x b]: only "b" -> 2; [a b]: "a b" (depth 2) -> 10; [c x b]: "c * b" (depth 3) -> 4; [a a b]: depth 3 "a * b" 7 beats depth 2 "a b".
    expect(trie.predict({ tokens: ["x", "b", "A", "b", "c", "x", "b", "a", "a", "B"] })).toEqual([0, 2, 0, 10, 0, 0, 4, 0, 0, 7]);
    expect(trie.fold).toEqual({ case: true, space: false });
  });

  it("holdout 0 scores in-sample; top records only are scored alone", () => {
    const rule = (t: string[], p: number) => (t[p] === "q" ? 3 : 0);
    const top = Array.from({ length: 4 }, (_, i) => rec([...filler(i, 2), "q"], rule));
    const r = explainOffline(records(top, []), { holdout: 0 });
    expect(r.trained).toEqual({ top: 4, random: 0 });
    expect(r.validation).toEqual(top);
    expect(r.score).toBeCloseTo(1, 12);
    expect(explainOffline(records(top, [])).validation).toEqual([top[1], top[3]]);
  });

  it("long contexts: a rule 30 tokens deep is found with maxContext 40 (wildcards only up to 8 tokens)", () => {
    // Fires on "B" only when the excerpt starts with "A" 30 tokens earlier; the tokens between repeat.
    const rule = (t: string[], p: number) => (t[p] === "B" && t[p - 30] === "A" ? 5 : 0);
    const mid = Array.from({ length: 29 }, (_, j) => FILL[j % 3]!);
    const top = Array.from({ length: 6 }, () => rec(["A", ...mid, "B"], rule));
    const random = Array.from({ length: 6 }, () => rec(["C", ...mid, "B"], rule));
    const r = explainOffline(records(top, random), { maxContext: 40 });
    expect(r.patterns).toHaveLength(1);
    expect(r.patterns[0]!.tokens).toEqual(["A", ...mid, "B"]);
    expect(r.score).toBeCloseTo(1, 12);
  });

  it("is deterministic: the same records give the same result", () => {
    const rule = (t: string[], p: number) => (t[p] === "B" && t[p - 1] === "A" ? 10 : t[p] === "x" ? 2 : 0);
    const top = Array.from({ length: 8 }, (_, i) => rec([...filler(i, 3), "A", "B", ...filler(i + 3, 2)], rule));
    const random = Array.from({ length: 8 }, (_, i) => rec([...filler(i, 2), "B", "A", "x"], rule));
    expect(JSON.stringify(explainOffline(records(top, random)))).toBe(JSON.stringify(explainOffline(records(top, random))));
  });
});

describe("explainOffline: degenerate and malformed records", () => {
  it("empty records: status empty, no patterns, score 0", () => {
    const r = explainOffline(records([], []));
    expect(r).toMatchObject({ status: "empty", patterns: [], score: 0, simulated: [], validation: [] });
    expect(r.scores).toEqual({ correlation: 0, r2: 0, n: 0, records: 0, degenerate: "empty" });
    expect(r.explanation).toMatch(/^no pattern/);
    const blank = explainOffline(records([rec([], () => 0)], [rec([], () => 0)]));
    expect(blank.status).toBe("empty");
  });

  it("constant activations: status constant, simulated all 0, score 0", () => {
    const top = Array.from({ length: 4 }, (_, i) => rec(filler(i, 4), () => 0.5));
    const r = explainOffline(records(top, top.slice()));
    expect(r.status).toBe("constant");
    expect(r.scores.degenerate).toBe("constant-activations");
    expect(r.patterns).toEqual([]);
    expect(r.score).toBe(0);
    expect(r.simulated).toEqual(r.validation.map((v) => v.tokens.map(() => 0)));
    expect(r.explanation).toBe("no pattern: the activation is 0.5 at every token");
  });

  it("no positive activation: status inactive", () => {
    const rule = (t: string[], p: number) => -0.1 * p;
    const top = Array.from({ length: 4 }, (_, i) => rec(filler(i, 4), rule));
    const r = explainOffline(records(top, []));
    expect(r).toMatchObject({ status: "inactive", patterns: [], score: 0 });
  });

  it("malformed records and options are typed errors with value and allowed", () => {
    const ok = rec(["a", "b"], () => 1);
    const bad = (r: unknown): NodeRecords => ({ ...records([], []), top: [r as ActivationRecord] });
    expect(thrown(() => explainOffline(bad({ ...ok, ids: [1] })))).toMatchObject({
      code: "E_BAD_INPUT",
      value: { tokens: 2, ids: 1, activations: 2 },
      allowed: "equal lengths",
    });
    expect(thrown(() => explainOffline(bad({ ...ok, activations: [1, NaN] })))).toMatchObject({ code: "E_NON_FINITE", allowed: "finite numbers" });
    expect(thrown(() => explainOffline(bad({ ...ok, ids: [1, 2.5] })))).toMatchObject({ code: "E_BAD_INPUT", value: 2.5 });
    expect(thrown(() => explainOffline(bad({ ...ok, tokens: ["a", 3] })))).toMatchObject({ code: "E_BAD_INPUT", value: 3 });
    expect(thrown(() => explainOffline(bad({ tokens: "ab" })))).toMatchObject({ code: "E_BAD_INPUT" });
    expect(thrown(() => explainOffline(bad(null)))).toMatchObject({ code: "E_BAD_INPUT" });
    expect(thrown(() => explainOffline({ node: ok } as unknown as NodeRecords))).toMatchObject({ code: "E_BAD_INPUT" });
    const r = records([ok], []);
    expect(thrown(() => explainOffline(r, { holdout: 1 }))).toMatchObject({ code: "E_BAD_OPTION", value: 1, allowed: "[0, 1)" });
    expect(thrown(() => explainOffline(r, { keep: 0 }))).toMatchObject({ code: "E_BAD_OPTION", value: 0, allowed: "(0, 1]" });
    expect(thrown(() => explainOffline(r, { maxContext: 1.5 }))).toMatchObject({ code: "E_BAD_OPTION", value: 1.5 });
    expect(thrown(() => explainOffline(r, { minSupport: 0 }))).toMatchObject({ code: "E_BAD_OPTION", value: 0 });
    expect(thrown(() => explainOffline(r, { wildcards: "yes" as never }))).toMatchObject({ code: "E_BAD_OPTION", value: "yes", allowed: [true, false] });
    expect(() => explainOffline(r, { holdout: 0 })).not.toThrow();
    // An option given as undefined is its default.
    expect(explainOffline(r, { holdout: undefined, keep: undefined })).toEqual(explainOffline(r));
    expect(thrown(() => new PatternTrie([{ keys: [], activation: 1 } as never]))).toBeInstanceOf(TdbError);
  });
});
