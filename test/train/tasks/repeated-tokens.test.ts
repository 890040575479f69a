/**
 * The toy induction task's data: deterministic, every sequence holds a repeated segment of
 * distinct tokens at a varying offset and length, the filler never uses the segment's tokens,
 * and the stream's mask marks exactly the copy targets (checked by recomputing them here from
 * the tokens alone).
 */
import { describe, expect, it } from "vitest";
import { copyPositions, repeatedTokenSequences, repeatedTokensData } from "../../../src/train/tasks/repeated-tokens.js";
import { thrown } from "../../helpers/errors.js";

const OPTS = { vocabSize: 32, seqLen: 24, count: 300, seed: 9 };

describe("repeated tokens", () => {
  it("is deterministic in the seed", () => {
    const a = repeatedTokensData(OPTS);
    const b = repeatedTokensData(OPTS);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    const c = repeatedTokensData({ ...OPTS, seed: 10 });
    expect(Array.from(c.tokens)).not.toEqual(Array.from(a.tokens));
  });

  it("each sequence: BOS, a repeated segment of distinct tokens, filler from other tokens", () => {
    const seqs = repeatedTokenSequences(OPTS);
    const lengths = new Set<number>();
    const firsts = new Set<number>();
    for (const s of seqs) {
      expect(s.tokens).toHaveLength(OPTS.seqLen);
      expect(s.tokens[0]).toBe(0);
      expect(s.tokens.slice(1).every((t) => t > 0 && t < OPTS.vocabSize)).toBe(true);
      const seg = s.tokens.slice(s.first, s.first + s.length);
      expect(s.tokens.slice(s.repeat, s.repeat + s.length)).toEqual(seg);
      expect(s.repeat).toBe(s.first + s.length);
      expect(new Set(seg).size).toBe(s.length);
      expect(s.length).toBeGreaterThanOrEqual(4);
      expect(s.repeat + s.length).toBeLessThanOrEqual(OPTS.seqLen);
      const filler = s.tokens.filter((_, i) => i > 0 && (i < s.first || i >= s.repeat + s.length));
      expect(filler.filter((t) => seg.includes(t))).toEqual([]);
      lengths.add(s.length);
      firsts.add(s.first);
    }
    // Lengths and offsets vary over their whole ranges: no fixed distance to copy from.
    expect(Math.min(...lengths)).toBe(4);
    expect(Math.max(...lengths)).toBe(Math.floor((OPTS.seqLen - 1) / 2));
    expect(firsts.size).toBeGreaterThan(10);
  });

  it("the mask marks exactly the tokens predictable by copying the token after an earlier occurrence", () => {
    const d = repeatedTokensData(OPTS);
    expect(d.tokens.length).toBe(OPTS.count * OPTS.seqLen + 1);
    for (let i = 0; i < OPTS.count; i++) {
      const row = Array.from(d.tokens.subarray(i * OPTS.seqLen, (i + 1) * OPTS.seqLen));
      const s = d.sequences[i]!;
      // Independently: position p's target is a copy target when the token at p occurred
      // earlier inside the segment and the token after that occurrence is the target.
      const want: number[] = [];
      for (let p = s.repeat; p < s.repeat + s.length - 1; p++) {
        const prev = row.indexOf(row[p]!);
        if (prev < p && row[prev + 1] === row[p + 1]) want.push(p);
      }
      expect(copyPositions(s)).toEqual(want);
      const marked = [];
      for (let p = 0; p < OPTS.seqLen; p++) if (d.mask[i * OPTS.seqLen + p + 1]) marked.push(p);
      expect(marked).toEqual(want);
    }
  });

  it("trigram filler: the token after a pair is mostly one fixed token, the same across seeds of one table; the loss mask adds the filler", () => {
    /** For each (a, b) pair seen in filler, the counts of the next filler token. */
    const follow = (trigram: number, seed: number, tableSeed = 0) => {
      const m = new Map<number, Map<number, number>>();
      for (const s of repeatedTokenSequences({ ...OPTS, count: 2000, seed, trigram, tableSeed })) {
        for (let i = 3; i < OPTS.seqLen; i++) {
          if (i >= s.first && i < s.repeat + s.length) continue;
          const key = s.tokens[i - 2]! * OPTS.vocabSize + s.tokens[i - 1]!;
          const c = m.get(key) ?? new Map<number, number>();
          c.set(s.tokens[i]!, (c.get(s.tokens[i]!) ?? 0) + 1);
          m.set(key, c);
        }
      }
      return m;
    };
    /** Share of filler tokens that are their pair's most frequent follower (pairs seen >= 8 times), and that follower per pair. */
    const modal = (m: Map<number, Map<number, number>>) => {
      let top = 0;
      let all = 0;
      const best = new Map<number, number>();
      for (const [k, c] of m) {
        const n = [...c.values()].reduce((x, y) => x + y, 0);
        if (n < 8) continue;
        const [tok, cnt] = [...c].sort((x, y) => y[1] - x[1])[0]!;
        top += cnt;
        all += n;
        best.set(k, tok);
      }
      return { share: top / all, best };
    };
    const uniform = modal(follow(0, 1));
    const a = modal(follow(0.8, 1, 5));
    const b = modal(follow(0.8, 2, 5));
    expect(uniform.share).toBeLessThan(0.4);
    // 0.8 x the chance that the table's token is not in the segment (which the filler never uses).
    expect(a.share).toBeGreaterThan(0.55);
    let agree = 0;
    let both = 0;
    for (const [k, t] of a.best) {
      if (!b.best.has(k)) continue;
      both++;
      if (b.best.get(k) === t) agree++;
    }
    expect(both).toBeGreaterThan(20);
    expect(agree / both).toBeGreaterThan(0.9);
    // The loss mask: the copy targets, plus every filler token from position 2 on.
    const d = repeatedTokensData({ ...OPTS, trigram: 0.8 });
    d.sequences.forEach((s, i) => {
      for (let p = 0; p < OPTS.seqLen; p++) {
        const inRepeatRegion = p >= s.first && p < s.repeat + s.length;
        const copy = d.mask[i * OPTS.seqLen + p] === 1;
        const want = copy || (p >= 2 && !inRepeatRegion);
        expect(d.lossMask[i * OPTS.seqLen + p], `seq ${i} pos ${p}`).toBe(want ? 1 : 0);
      }
    });
    // Uniform filler: the loss mask is the copy mask.
    const u = repeatedTokensData(OPTS);
    expect(Array.from(u.lossMask)).toEqual(Array.from(u.mask));
  });

  it("bad options are E_BAD_OPTION with the allowed range", () => {
    for (const bad of [{ seqLen: 4 }, { minRepeat: 1 }, { maxRepeat: 50 }, { vocabSize: 5 }, { count: 0 }, { seed: -1 }, { bosId: 32 }, { trigram: 1 }, { trigram: -0.1 }]) {
      const e = thrown(() => repeatedTokenSequences({ ...OPTS, ...bad }));
      expect(e.code, JSON.stringify(bad)).toBe("E_BAD_OPTION");
      expect(e.allowed).toBeDefined();
    }
  });
});
