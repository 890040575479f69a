/**
 * Scores on constructed cases with closed-form answers: a perfect simulator scores 1, a shuffled
 * one near 0, a constant one by the documented rule (correlation 0, flagged; R^2 = 1 - SSE/SST),
 * pooling over records; balanced accuracy by hand; and delphi's detection and fuzzing scorers
 * driven through a real chat server by scripted "judges" (perfect, always-yes, malformed).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { binaryScore, scoreDetection, scoreFuzzing, scoreSimulations } from "../../src/explainer/scoring.js";
import { openAiClient } from "../../src/explainer/openai-client.js";
import type { ActivationRecord } from "../../src/explainer/types.js";
import { thrown } from "../helpers/errors.js";
import { lastUser, startChatServer, text, type ChatServer, type ReceivedRequest } from "../helpers/chat-server.js";

describe("scoreSimulations on constructed cases", () => {
  it("a perfect simulator (10 a / max) scores correlation 1 and R^2 1; any increasing affine map keeps correlation 1", () => {
    const actual = [
      [0, 0.4, 2, 0],
      [1, 0, 0, 0.2],
    ];
    const max = 2;
    const perfect = actual.map((r) => r.map((a) => (10 * a) / max));
    const s = scoreSimulations(actual, perfect, max);
    expect(s.correlation).toBeCloseTo(1, 12);
    expect(s.r2).toBeCloseTo(1, 12);
    expect([s.n, s.records, s.degenerate]).toEqual([8, 2, undefined]);
    const affine = scoreSimulations(actual, actual.map((r) => r.map((a) => 3 * a + 1)), max);
    expect(affine.correlation).toBeCloseTo(1, 12);
    expect(affine.r2).toBeLessThan(1);
  });

  it("hand-computed cases: r = 0.5; pooled r = 1/sqrt(101) though each record alone is perfect", () => {
    // deviations (-1,0,1) and (-1,1,0): sum of products 1, norms sqrt(2) each -> 1/2
    expect(scoreSimulations([[1, 2, 3]], [[1, 3, 2]], 3).correlation).toBeCloseTo(0.5, 12);
    // pooled a = [0,1,10,11], s = [0,1,0,1]: sum da*ds = 1, sum da^2 = 101, sum ds^2 = 1
    const pooled = scoreSimulations(
      [
        [0, 1],
        [10, 11],
      ],
      [
        [0, 1],
        [0, 1],
      ],
      11,
    );
    expect(pooled.correlation).toBeCloseTo(1 / Math.sqrt(101), 12);
  });

  it("a constant simulator: correlation 0 flagged constant-simulation, R^2 = 1 - SSE/SST by hand", () => {
    // t = [0, 0, 5, 10] (max 10), mean 3.75, SST = 68.75; s = 1 everywhere, SSE = 1 + 1 + 16 + 81 = 99
    const s = scoreSimulations([[0, 0, 5, 10]], [[1, 1, 1, 1]], 10);
    expect(s.correlation).toBe(0);
    expect(s.degenerate).toBe("constant-simulation");
    expect(s.r2).toBeCloseTo(1 - 99 / 68.75, 12);
    // predicting the mean everywhere gives R^2 = 0
    expect(scoreSimulations([[0, 0, 5, 10]], [[3.75, 3.75, 3.75, 3.75]], 10).r2).toBeCloseTo(0, 12);
  });

  it("constant true activations and no tokens: correlation 0 and R^2 0, flagged", () => {
    expect(scoreSimulations([[2, 2, 2]], [[0, 5, 10]], 2)).toEqual({ correlation: 0, r2: 0, n: 3, records: 1, degenerate: "constant-activations" });
    expect(scoreSimulations([], [], 1)).toEqual({ correlation: 0, r2: 0, n: 0, records: 0, degenerate: "empty" });
  });

  it("a shuffled simulator scores near 0 (|r| < 0.1 over 4000 sparse tokens; chance sd ~0.016)", () => {
    const rng = new Rng(7);
    const actual = Array.from({ length: 64 }, () => Array.from({ length: 64 }, () => (rng.uniform() < 0.1 ? 1 + 4 * rng.uniform() : 0)));
    const perfect = actual.map((r) => r.map((a) => (10 * a) / 5));
    const flat = perfect.flat();
    for (let i = flat.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [flat[i], flat[j]] = [flat[j]!, flat[i]!];
    }
    const shuffled = actual.map((r, i) => flat.slice(i * 64, i * 64 + r.length));
    const s = scoreSimulations(actual, shuffled, 5);
    expect(Math.abs(s.correlation)).toBeLessThan(0.1);
    expect(s.r2).toBeLessThan(0); // a shuffled simulation is worse than the mean
    expect(scoreSimulations(actual, perfect, 5).correlation).toBeCloseTo(1, 12);
  });

  it("rejects mismatched shapes, non-finite values and a non-positive max", () => {
    expect(thrown(() => scoreSimulations([[1, 2]], [[1]], 1)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => scoreSimulations([[1]], [], 1)).code).toBe("E_BAD_INPUT");
    expect(thrown(() => scoreSimulations([[1, NaN]], [[1, 2]], 1)).code).toBe("E_NON_FINITE");
    expect(thrown(() => scoreSimulations([[1]], [[1]], 0)).code).toBe("E_BAD_INPUT");
  });
});

describe("binaryScore", () => {
  it("balanced accuracy, precision, recall and F1 by hand", () => {
    // labels: 3 positives, 1 negative; predictions: TP, TP, FN, FP
    const s = binaryScore([true, true, true, false], [true, true, false, true]);
    expect(s.truePositiveRate).toBeCloseTo(2 / 3, 12);
    expect(s.trueNegativeRate).toBe(0);
    expect(s.balancedAccuracy).toBeCloseTo(1 / 3, 12);
    expect(s.accuracy).toBe(0.5);
    expect(s.precision).toBeCloseTo(2 / 3, 12);
    expect(s.f1).toBeCloseTo(2 / 3, 12);
    expect(binaryScore([true, false], [true, true]).balancedAccuracy).toBe(0.5); // always-yes is chance
    expect(binaryScore([false, false], [false, true])).toMatchObject({ balancedAccuracy: 0.5, degenerate: "no-positives" });
    expect(binaryScore([], [])).toMatchObject({ balancedAccuracy: 0, degenerate: "empty" });
  });
});

// ---------------------------------------------------------------------------------------------
const WEEKDAYS = new Set([" Monday", " Tuesday", " Friday", " Sunday"]);
const rec = (tokens: string[], act: (t: string) => number): ActivationRecord => ({ tokens, ids: tokens.map((_, i) => i), activations: tokens.map(act) });
const fires = (t: string): number => (WEEKDAYS.has(t) ? 3 : 0);
const top = [
  rec([" See", " you", " on", " Monday", "."], fires),
  rec([" Every", " Friday", " we", " swim"], fires),
  rec([" It", " rained", " Sunday", " night"], fires),
  rec([" Tuesday", " was", " cold"], fires),
];
const random = [rec([" The", " cat", " sat"], () => 0), rec([" He", " paid", " in", " cash"], () => 0), rec([" Rivers", " flow"], () => 0), rec([" A", " red", " kite"], () => 0)];

function excerpts(req: ReceivedRequest): string[] {
  return [...lastUser(req).matchAll(/^Excerpt \d+: (".*")$/gm)].map((m) => JSON.parse(m[1]!) as string);
}

const servers: ChatServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
});
async function judge(answer: (excerpt: string) => number | string): Promise<ChatServer> {
  const s = await startChatServer();
  servers.push(s);
  s.fallback = (req) => text(JSON.stringify(excerpts(req).map(answer)));
  return s;
}

describe("detection scorer (delphi) through a chat server", () => {
  it("a perfect judge scores balanced accuracy 1, an always-yes judge 0.5; batches mix both classes", async () => {
    const s = await judge((e) => ([...WEEKDAYS].some((d) => e.includes(d)) ? 1 : 0));
    const llm = openAiClient({ baseURL: s.baseURL, model: "judge", env: {} });
    const r = await scoreDetection("names of weekdays", { top, random }, llm, { batchSize: 3 });
    expect([r.balancedAccuracy, r.n, r.positives, r.negatives]).toEqual([1, 8, 4, 4]);
    expect(r.failures).toEqual([]);
    expect(s.requests).toHaveLength(3); // 8 items in batches of 3
    expect(lastUser(s.requests[0]!)).toContain("Explanation: this neuron activates for names of weekdays");
    expect(excerpts(s.requests[0]!)).toHaveLength(3);
    expect(r.items.map((i) => i.text).sort()).toEqual([...top, ...random].map((x) => x.tokens.join("")).sort());

    const yes = await judge(() => 1);
    const r2 = await scoreDetection("anything", { top, random }, openAiClient({ baseURL: yes.baseURL, model: "judge", env: {} }));
    expect(r2.balancedAccuracy).toBe(0.5);
  });

  it("leaves out random excerpts that peak as high as a top excerpt", async () => {
    const s = await judge(() => 0);
    const hot = rec([" Monday", " again"], fires);
    const r = await scoreDetection("x", { top, random: [...random, hot] }, openAiClient({ baseURL: s.baseURL, model: "j", env: {} }));
    expect(r.negatives).toBe(4);
    expect(r.items.some((i) => i.set === "random" && i.index === 4)).toBe(false);
  });

  it("a malformed reply fails its batch: listed in failures, its items unanswered and out of the score", async () => {
    const s = await judge((e) => ([...WEEKDAYS].some((d) => e.includes(d)) ? 1 : 0));
    const llm = openAiClient({ baseURL: s.baseURL, model: "j", env: {} });
    s.push(text("I cannot tell."));
    const r = await scoreDetection("names of weekdays", { top, random }, llm, { batchSize: 4, concurrency: 1 });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.items).toEqual([0, 1, 2, 3]);
    expect(r.failures[0]!.reply).toBe("I cannot tell.");
    expect(r.items.slice(0, 4).every((i) => i.prediction === undefined)).toBe(true);
    expect(r.n).toBe(4);
    expect(r.balancedAccuracy).toBe(1);
  });
});

describe("fuzzing scorer (delphi) through a chat server", () => {
  const marked = (e: string): string[] => [...e.matchAll(/\[\[(.*?)\]\]/g)].map((m) => ` ${m[1]}`);
  it("correct marks on the active tokens vs the same number of decoys; a perfect judge scores 1", async () => {
    const s = await judge((e) => (marked(e).every((t) => WEEKDAYS.has(t)) ? 1 : 0));
    const r = await scoreFuzzing("names of weekdays", top, openAiClient({ baseURL: s.baseURL, model: "j", env: {} }), { seed: 3 });
    expect([r.positives, r.negatives]).toEqual([4, 4]);
    expect(r.balancedAccuracy).toBe(1);
    for (const it of r.items) {
      const m = marked(it.text);
      expect(m).toHaveLength(1); // one active token per excerpt, one decoy
      expect(WEEKDAYS.has(m[0]!)).toBe(it.label);
    }
    const no = await judge(() => 0);
    expect((await scoreFuzzing("x", top, openAiClient({ baseURL: no.baseURL, model: "j", env: {} }))).balancedAccuracy).toBe(0.5);
  });
});
