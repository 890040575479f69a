/**
 * The offline head explainer on synthetic head records, one per pattern kind, each made by a rule
 * written here (query -> key and activation): the explainer must name the rule's kind, and its
 * score must equal the reference Pearson correlation of the true activations with the simulation
 * the rule implies (two levels: where the rule points at a key, and elsewhere), computed here
 * without the explainer. Also: relation keys on hand-checked cases, degenerate and malformed input.
 */
import { describe, expect, it } from "vitest";
import { explainHeadOffline, HEAD_PATTERN_KINDS, relationKeys, simulateHead, type HeadPatternKind } from "../../src/explainer/offline-heads.js";
import type { ActivationRecord, NodeRecords } from "../../src/explainer/types.js";
import { thrown } from "../helpers/errors.js";
import { refPearson } from "../helpers/pearson.js";
import { uniform } from "../helpers/uniform.js";

const LETTERS = "abcdefghijklxy".split("");
const idOf = (t: string) => 100 + LETTERS.indexOf(t.trim());
const HEAD = { kind: "attention_head", layer: 1, head: 2 } as const;

/** A rule: for query q of `ids`, the activation and the recorded key, or null for "not firing" (noise with a random earlier key). */
type Rule = (ids: number[], q: number) => { act: number; key: number } | null;

function headRec(letters: string[], rule: Rule, rnd: () => number): ActivationRecord {
  const ids = letters.map(idOf);
  const acts: number[] = [];
  const keys: number[] = [];
  ids.forEach((_, q) => {
    const r = rule(ids, q);
    if (r) {
      acts.push(r.act);
      keys.push(r.key);
    } else {
      // Weak attention, 0.02..0.2, to a random key at or before q.
      acts.push(0.11 + 0.09 * rnd());
      keys.push(Math.min(q, Math.floor(((rnd() + 1) / 2) * (q + 1))));
    }
  });
  return { tokens: letters.map((l) => ` ${l}`), ids, activations: acts, keys };
}

function records(top: ActivationRecord[], random: ActivationRecord[]): NodeRecords {
  const acts = [...top, ...random].flatMap((r) => r.activations);
  return { node: HEAD, top, random, stats: { count: acts.length, max: Math.max(...acts), mean: 0, density: 1, quantiles: [0, 0, 0, 0] } };
}

/** Seeded letters: `n` draws from the first `k` letters. */
function letters(rnd: () => number, n: number, k = LETTERS.length): string[] {
  return Array.from({ length: n }, () => LETTERS[Math.min(k - 1, Math.floor(((rnd() + 1) / 2) * k))]!);
}

/** The latest position before q holding the token at q, or -1 (written here, apart from the explainer). */
function latestCopy(ids: number[], q: number): number {
  for (let k = q - 1; k >= 0; k--) if (ids[k] === ids[q]) return k;
  return -1;
}

/** A permutation of the first 8 letters repeated: [p, p]. */
function repeated(rnd: () => number): string[] {
  const p = LETTERS.slice(0, 8);
  for (let i = p.length - 1; i > 0; i--) {
    const j = Math.floor(((rnd() + 1) / 2) * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return [...p, ...p];
}

/** Checks the two-level case: where `fires` the simulation is `act`, elsewhere one constant; the score is Pearson(true, indicator). */
function expectTwoLevel(r: ReturnType<typeof explainHeadOffline>, fires: (ids: number[], q: number) => boolean, act: number): void {
  const truth = r.validation.flatMap((v) => v.activations);
  const indicator = r.validation.flatMap((v) => v.ids.map((_, q) => (fires(v.ids, q) ? 1 : 0)));
  const sim = r.simulated.flat();
  const outside = sim.filter((_, i) => indicator[i] === 0);
  indicator.forEach((f, i) => f === 1 && expect(sim[i]).toBeCloseTo(act, 12));
  expect(new Set(outside.map((x) => x.toFixed(12))).size).toBe(1);
  expect(outside[0]!).toBeLessThan(act);
  expect(r.score).toBeCloseTo(refPearson(truth, indicator), 10);
}

describe("relationKeys (hand-checked)", () => {
  it("each positional rule on ids [7, 3, 5, 7, 3, 3]", () => {
    const ids = [7, 3, 5, 7, 3, 3];
    expect(relationKeys("previous", ids)).toEqual([-1, 0, 1, 2, 3, 4]);
    expect(relationKeys("self", ids)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(relationKeys("first", ids)).toEqual([0, 0, 0, 0, 0, 0]);
    // latest earlier copy: q3 (7) -> 0, q4 (3) -> 1, q5 (3) -> 4
    expect(relationKeys("duplicate", ids)).toEqual([-1, -1, -1, 0, 1, 4]);
    // the token after it: q3 -> 1, q4 -> 2, q5 -> 5 (itself, after the 3 at 4)
    expect(relationKeys("induction", ids)).toEqual([-1, -1, -1, 1, 2, 5]);
    expect(relationKeys("pairs", ids)).toEqual([-1, -1, -1, -1, -1, -1]);
  });
});

describe("explainHeadOffline names the planted rule (synthetic records)", () => {
  it("previous token: strong from every query but the first; score 1", () => {
    const rnd = uniform(1);
    const rule: Rule = (_, q) => (q >= 1 ? { act: 0.9, key: q - 1 } : { act: 0.05, key: 0 });
    const top = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const random = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const r = explainHeadOffline(records(top, random));
    expect(r.status).toBe("ok");
    expect(r.pattern?.kind).toBe("previous");
    expect(r.pattern?.agreement).toBe(1);
    expect(r.explanation).toMatch(/^attends to the previous token \(the key of 100% of its strongest attentions; 10\/10 where there is one, 1\/10 elsewhere\)/);
    expect(r.simulated).toEqual(r.validation.map((v) => v.ids.map((_, q) => expect.closeTo(q >= 1 ? 0.9 : 0.05, 12))));
    expect(r.score).toBeCloseTo(1, 12);
    expect(r.candidates.map((c) => c.kind)).toEqual(HEAD_PATTERN_KINDS);
  });

  it("self: the strength set by the query token, the key the query itself; score 1 (no smoothing)", () => {
    const rnd = uniform(2);
    const level = (id: number) => [0.9, 0.6, 0.3][(id - 100) % 3]!;
    const rule: Rule = (ids, q) => ({ act: level(ids[q]!), key: q });
    const top = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const random = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const r = explainHeadOffline(records(top, random), { smoothing: 0 });
    expect(r.pattern?.kind).toBe("self");
    expect(r.explanation).toMatch(/^attends to the current token itself/);
    expect(r.simulated).toEqual(r.validation.map((v) => v.ids.map((id) => expect.closeTo(level(id), 12))));
    expect(r.score).toBeCloseTo(1, 12);
  });

  it("first token: the same strengths, the key the first token; self is not eligible", () => {
    const rnd = uniform(3);
    const level = (id: number) => [0.9, 0.6, 0.3][(id - 100) % 3]!;
    const rule: Rule = (ids, q) => ({ act: level(ids[q]!), key: 0 });
    const top = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const random = Array.from({ length: 10 }, () => headRec(letters(rnd, 12), rule, rnd));
    const r = explainHeadOffline(records(top, random), { smoothing: 0 });
    expect(r.pattern?.kind).toBe("first");
    expect(r.explanation).toMatch(/^attends to the start of the context \(the first token after BOS\)/);
    expect(r.candidates.find((c) => c.kind === "self")?.eligible).toBe(false);
    expect(r.score).toBeCloseTo(1, 12);
  });

  for (const kind of ["duplicate", "induction"] as const) {
    it(`${kind}: strong where the query token occurred before, weak elsewhere; score = Pearson(true, indicator)`, () => {
      const rnd = uniform(kind === "duplicate" ? 4 : 5);
      const rule: Rule = (ids, q) => {
        const k = latestCopy(ids, q);
        return k < 0 ? null : { act: 0.8, key: kind === "duplicate" ? k : k + 1 };
      };
      const top = Array.from({ length: 10 }, () => headRec(repeated(rnd), rule, rnd));
      const random = Array.from({ length: 10 }, () => headRec(letters(rnd, 16), rule, rnd));
      const r = explainHeadOffline(records(top, random));
      expect(r.pattern?.kind).toBe(kind);
      expect(r.pattern?.agreement).toBe(1);
      // The other copy-based rule fires at the same places but gives other keys.
      const other: HeadPatternKind = kind === "duplicate" ? "induction" : "duplicate";
      expect(r.candidates.find((c) => c.kind === other)?.eligible).toBe(false);
      expectTwoLevel(r, (ids, q) => latestCopy(ids, q) >= 0, 0.8);
      expect(r.score).toBeGreaterThan(0.9);
    });
  }

  it('token pairs: " x" attends to an earlier " y" at any distance; named as the pair x -> y', () => {
    const rnd = uniform(6);
    const fires = (ids: number[], q: number) => ids[q] === idOf("x") && ids.slice(0, q).includes(idOf("y"));
    const rule: Rule = (ids, q) => (fires(ids, q) ? { act: 0.9, key: ids.lastIndexOf(idOf("y"), q - 1) } : null);
    // Top: filler (a..h), " y" at 2 + i % 3, " x" three to six tokens later and again at the end; random: filler with a lone " x" or " y".
    const top = Array.from({ length: 10 }, (_, i) => {
      const l = letters(rnd, 14, 8);
      l[2 + (i % 3)] = "y";
      l[8 + (i % 2)] = "x";
      l[13] = "x";
      return headRec(l, rule, rnd);
    });
    const random = Array.from({ length: 10 }, (_, i) => {
      const l = letters(rnd, 14, 8);
      l[3 + (i % 5)] = i % 2 ? "x" : "y";
      return headRec(l, rule, rnd);
    });
    const r = explainHeadOffline(records(top, random));
    expect(r.pattern?.kind).toBe("pairs");
    expect(r.pattern?.pairs[0]).toMatchObject({ query: " x", key: " y", queryId: idOf("x"), keyId: idOf("y"), activation: expect.closeTo(0.9, 12) });
    expect(r.explanation).toMatch(/^attends from query tokens to key tokens: " x" -> " y" \(10\/10\)/);
    // Where the pair is present the simulation is the rule's 0.9; the score is Pearson of truth and simulation.
    r.validation.forEach((v, i) => v.ids.forEach((_, q) => fires(v.ids, q) && expect(r.simulated[i]![q]).toBeCloseTo(0.9, 12)));
    const onScale = r.simulated.flat().map((v) => Math.min(10, (10 * Math.max(0, v)) / r.maxActivation)); // the documented 0..10 scale
    expect(r.score).toBeCloseTo(refPearson(r.validation.flatMap((v) => v.activations), onScale), 10);
    expect(r.score).toBeGreaterThan(0.9);
    expect(simulateHead(r.pattern!, { ids: [idOf("x"), idOf("y"), idOf("a"), idOf("x")] })[3]).toBeCloseTo(0.9, 12);
  });
});

describe("explainHeadOffline: degenerate and malformed input", () => {
  const rec = (acts: number[], keys?: number[]): ActivationRecord => ({
    tokens: acts.map(() => " a"),
    ids: acts.map(() => idOf("a")),
    activations: acts,
    ...(keys ? { keys } : {}),
  });

  it("empty, constant and inactive records: no pattern, score 0", () => {
    expect(explainHeadOffline(records([], [])).status).toBe("empty");
    const c = explainHeadOffline(records([rec([0.5, 0.5], [0, 1]), rec([0.5, 0.5], [0, 0])], [rec([0.5], [0])]));
    expect(c).toMatchObject({ status: "constant", pattern: null, score: 0 });
    const z = explainHeadOffline(records([rec([0, 0], [0, 0]), rec([0, 0], [0, 0])], [rec([0.3], [0])]));
    expect(z.status).toBe("inactive");
  });

  it("only kinds that do not agree, without pairs: unmatched", () => {
    const rnd = uniform(7);
    const rule: Rule = (_, q) => (q >= 1 ? { act: 0.9, key: q - 1 } : { act: 0.05, key: 0 });
    const top = Array.from({ length: 6 }, () => headRec(letters(rnd, 8), rule, rnd));
    const r = explainHeadOffline(records(top, []), { kinds: ["self", "duplicate"] });
    expect(r).toMatchObject({ status: "unmatched", pattern: null, score: 0 });
    expect(r.candidates.map((c) => c.kind)).toEqual(["self", "duplicate"]);
  });

  it("typed errors: not a head, missing or bad keys, bad options", () => {
    const ok = records([rec([0.1, 0.9], [0, 0])], []);
    expect(thrown(() => explainHeadOffline({ ...ok, node: { kind: "mlp_neuron", layer: 0, index: 1 } }))).toMatchObject({ code: "E_BAD_INPUT", allowed: "attention_head" });
    expect(thrown(() => explainHeadOffline(records([rec([0.1, 0.9])], [])))).toMatchObject({ code: "E_BAD_INPUT" });
    expect(thrown(() => explainHeadOffline(records([rec([0.1, 0.9], [0, 2])], [])))).toMatchObject({ code: "E_BAD_INPUT", allowed: "2 integers in [-1, 1]" });
    expect(thrown(() => explainHeadOffline(records([rec([0.1, NaN], [0, 0])], [])))).toMatchObject({ code: "E_NON_FINITE" });
    expect(thrown(() => explainHeadOffline(ok, { holdout: 1 }))).toMatchObject({ code: "E_BAD_OPTION", value: 1 });
    expect(thrown(() => explainHeadOffline(ok, { kinds: ["sideways" as never] }))).toMatchObject({ code: "E_BAD_OPTION" });
    expect(thrown(() => explainHeadOffline(ok, { smoothing: -1 }))).toMatchObject({ code: "E_BAD_OPTION" });
    expect(thrown(() => explainHeadOffline(null as never))).toMatchObject({ code: "E_BAD_INPUT" });
  });
});
