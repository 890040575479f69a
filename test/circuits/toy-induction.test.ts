/**
 * Known circuit of the shipped `tdb:toy-induction` model, measured on held-out sequences of its
 * task (a seed its script never uses): a layer-0 previous-token head and a layer-1 induction
 * head, scored here directly from `hook_pattern`; zero-ablating the induction head (and, since
 * the induction head reads the previous-token head's output at its keys, the previous-token
 * head) drops copying accuracy to near chance; `attribute` ranks the induction head first among
 * heads. Loaded by its packaged id, so the `tdb:` resolution is tested too.
 */
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packagedModelDir } from "../../src/io/packaged.js";
import { zeroHead } from "../../src/intervene/edits.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { copyPositions, repeatedTokenSequences, type RepeatedSequence } from "../../src/train/tasks/repeated-tokens.js";
import { rejected } from "../helpers/errors.js";

/** The task of scripts/models/toy-induction.ts, with a held-out seed. */
const TASK = { vocabSize: 63, seqLen: 40, minRepeat: 4, maxRepeat: 19, trigram: 0.8, tableSeed: 1 };
const HELD_OUT = { count: 128, seed: 4242 };
const V = TASK.vocabSize;
const S = TASK.seqLen;
const CHANCE = 1 / (V - 1);

let model: Model;
let seqs: RepeatedSequence[];
let rows: number[][];
let L: number;
let H: number;

beforeAll(async () => {
  model = await Model.load("tdb:toy-induction");
  seqs = repeatedTokenSequences({ ...TASK, ...HELD_OUT });
  rows = seqs.map((s) => s.tokens);
  L = model.config.nLayers;
  H = model.config.nHeads;
});
afterAll(async () => {
  await model?.dispose();
});

/** Argmax accuracy at the copy positions (the repeat's 2nd..k-th tokens). */
function copyAccuracy(logits: ArrayLike<number>): number {
  let hit = 0;
  let n = 0;
  seqs.forEach((s, b) => {
    for (const p of copyPositions(s)) {
      const o = (b * S + p) * V;
      let best = 0;
      for (let t = 1; t < V; t++) if (logits[o + t]! > logits[o + best]!) best = t;
      if (best === s.tokens[p + 1]) hit++;
      n++;
    }
  });
  return hit / n;
}

interface Scores {
  layer: number;
  head: number;
  /** Mean attention from q to q - 1 over q >= 1. */
  prev: number;
  /** Mean attention from each copy position to the token after the earlier occurrence. */
  induction: number;
  /** Share of copy positions where that attention is >= 0.5. */
  inductionAtLeastHalf: number;
}

async function headScores(): Promise<Scores[]> {
  const hooks = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern` as const);
  const t = await model.trace(rows, { hooks });
  const out: Scores[] = [];
  for (let l = 0; l < L; l++) {
    const A = t.cache.get(`blocks.${l}.attn.hook_pattern`);
    expect(A.dims).toEqual([seqs.length, H, S, S]);
    for (let h = 0; h < H; h++) {
      let prev = 0;
      let nPrev = 0;
      let ind = 0;
      let half = 0;
      let nInd = 0;
      seqs.forEach((s, b) => {
        for (let q = 1; q < S; q++) {
          prev += A.at(b, h, q, q - 1);
          nPrev++;
        }
        for (const q of copyPositions(s)) {
          // The current token s.tokens[q] occurred at q - k; the token after it is at q - k + 1.
          const key = q - s.length + 1;
          expect(s.tokens[key - 1]).toBe(s.tokens[q]);
          const a = A.at(b, h, q, key);
          ind += a;
          if (a >= 0.5) half++;
          nInd++;
        }
      });
      out.push({ layer: l, head: h, prev: prev / nPrev, induction: ind / nInd, inductionAtLeastHalf: half / nInd });
    }
  }
  return out;
}

describe("tdb:toy-induction", () => {
  it("loads by its packaged id: a 2-layer attention-only GPT-2 whose MLP hooks are unavailable", async () => {
    expect(L).toBe(2);
    expect(model.config.raw.tdb_attn_only).toBe(true);
    const map = runtimeOf(model).hookMap;
    expect(map.unavailable.get("blocks.1.mlp.hook_post")).toMatch(/attention-only/);
    expect(map.sources.has("blocks.1.attn.hook_pattern")).toBe(true);
    const e = await rejected(Model.load("tdb:no-such-model"));
    expect(e.code).toBe("E_MISSING_FILE");
    expect(e.allowed).toContain("tdb:toy-induction");
    // Its tokenizer: words of the toy vocabulary, BOS prepended.
    expect(model.toTokens("a b c a b")).toEqual([0, 1, 2, 3, 1, 2]);
  });

  it("transformers.js runs the shipped files: greedy generation continues a repeat", async () => {
    env.allowRemoteModels = false;
    const dir = await packagedModelDir("tdb:toy-induction");
    const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const lm = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype: "fp32" });
    try {
      const inputs = tok("<|endoftext|> q 7 x B m k R 2 q 7 x");
      const out = (await lm.generate({ ...inputs, max_new_tokens: 5, do_sample: false })) as { tolist(): bigint[][] };
      const text = tok.decode(out.tolist()[0]!.map(Number), { skip_special_tokens: true });
      expect(text).toBe("q 7 x B m k R 2 q 7 x B m k R 2");
    } finally {
      await lm.dispose();
    }
  });

  it("copies: the repeated half is predicted far above chance", async () => {
    const acc = copyAccuracy((await model.forward(rows)).data);
    expect(acc).toBeGreaterThan(0.95);
  });

  it("a layer-0 head is the top previous-token head; a layer-1 head is the induction head, with >= 0.5 on the token after the previous occurrence", async () => {
    const scores = await headScores();
    const prev = [...scores].sort((a, b) => b.prev - a.prev);
    expect(prev[0]!.layer).toBe(0);
    expect(prev[0]!.prev).toBeGreaterThan(0.5);
    expect(prev[0]!.prev).toBeGreaterThan(3 * prev[1]!.prev);
    const ind = [...scores].sort((a, b) => b.induction - a.induction);
    expect(ind[0]!.layer).toBe(1);
    expect(ind[0]!.induction).toBeGreaterThanOrEqual(0.5);
    expect(ind[0]!.inductionAtLeastHalf).toBeGreaterThan(0.75);
    expect(ind[0]!.induction).toBeGreaterThan(3 * ind[1]!.induction);
  });

  it("zero-ablating the induction head drops copying to near chance; so does the previous-token head it reads (K-composition)", async () => {
    const scores = await headScores();
    const indHead = [...scores].sort((a, b) => b.induction - a.induction)[0]!;
    const prevHead = [...scores].sort((a, b) => b.prev - a.prev)[0]!;
    const clean = copyAccuracy((await model.forward(rows)).data);
    const ablated = new Map<string, number>();
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const r = await model.intervene(rows, [zeroHead(l, h)], { logits: "all" });
        ablated.set(`${l}.${h}`, copyAccuracy(r.edited.logits.data));
      }
    }
    if (process.env.TDB_TEST_VERBOSE) console.log({ clean, ablated, scores });
    expect(ablated.get(`${indHead.layer}.${indHead.head}`)).toBeLessThan(3 * CHANCE);
    expect(ablated.get(`${prevHead.layer}.${prevHead.head}`)).toBeLessThan(3 * CHANCE);
    // Any head outside the circuit costs far less than the induction head (none in a model
    // with one head per layer; the check stays for retrained variants).
    const cost = (k: string) => clean - ablated.get(k)!;
    for (const k of ablated.keys()) {
      if (k === `${indHead.layer}.${indHead.head}` || k === `${prevHead.layer}.${prevHead.head}`) continue;
      expect(cost(k), k).toBeLessThan(0.25 * cost(`${indHead.layer}.${indHead.head}`));
    }
  });

  it("attribute ranks the induction head first among heads by estimated total effect", async () => {
    const scores = await headScores();
    const ind = [...scores].sort((a, b) => b.induction - a.induction)[0]!;
    const indName = `${ind.layer}.${ind.head}`;
    let first = 0;
    let topNodeFirst = 0;
    const meanPerHead = new Map<string, number>();
    const prompts = seqs.slice(0, 8);
    for (const s of prompts) {
      // Cut at the last copy position: why the copied token rather than the model's runner-up?
      const q = s.repeat + s.length - 2;
      const prompt = s.tokens.slice(0, q + 1);
      const target = s.tokens[q + 1]!;
      const last = (await model.forward([prompt])).data.subarray(q * V, (q + 1) * V);
      let runnerUp = target === 1 ? 2 : 1;
      for (let x = 1; x < V; x++) if (x !== target && last[x]! > last[runnerUp]!) runnerUp = x;
      const table = await model.attribute([prompt], { target, distractor: runnerUp, topK: 100_000, nodeTypes: ["attention_head"] });
      expect(table.nodes).toHaveLength(table.counts.attention_head);
      const perHead = new Map<string, number>();
      for (const n of table.nodes) perHead.set(`${n.layer}.${n.head}`, (perHead.get(`${n.layer}.${n.head}`) ?? 0) + n.totalEffect);
      for (const [k, v] of perHead) meanPerHead.set(k, (meanPerHead.get(k) ?? 0) + v / prompts.length);
      const best = [...perHead].sort((a, b) => b[1] - a[1])[0]![0];
      if (best === indName) first++;
      // The single node with the largest positive effect: the induction head attending to the token to copy.
      const top = [...table.nodes].sort((a, b) => b.totalEffect - a.totalEffect)[0]!;
      if (`${top.layer}.${top.head}` === indName && top.keyPosition === q - s.length + 1) topNodeFirst++;
    }
    if (process.env.TDB_TEST_VERBOSE) console.log({ first, topNodeFirst, of: prompts.length, meanPerHead });
    // Measured on the shipped model: first on 8 of 8 prompts (a retrain with seed 2: 15 of 16).
    expect([...meanPerHead].sort((a, b) => b[1] - a[1])[0]![0]).toBe(indName);
    expect(first).toBeGreaterThanOrEqual(prompts.length - 1);
    expect(topNodeFirst).toBeGreaterThanOrEqual(prompts.length - 2); // measured: 7 of 8
  });
});
