/**
 * The `tdb ablate` command, run as a child process, against the library (`model.intervene` on
 * the same model) and against the float64 reference with the same ablations done by hand (a
 * head's attention probabilities zeroed, so that its z is zero; one neuron's post-GELU value
 * zeroed at one position).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zeroHead, zeroNeuron } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { tdb } from "./_run.js";

const PROMPT = "The quick brown fox jumps";

interface TopEntry {
  token: number;
  str: string;
  logit: number;
  prob: number;
}

interface AblateJson {
  schema: string;
  model: string;
  prompt: string;
  tokens: number[];
  ablated: { hook: string; at: Record<string, number[]>; positions: number[] | "all" }[];
  before: TopEntry[];
  after: TopEntry[];
  logitDiff?: { target: string; distractor: string; before: number; after: number; change: number };
  kl: number;
}

let tm: TestModel;
let model: Model;
beforeAll(async () => {
  tm = await makeTestModel({ seed: 11 });
  model = await Model.load(tm.dir);
});
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
});

/** The CLI prints 6 significant digits. */
const close6 = (got: number, want: number, what: string) => expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));

/** Log-softmax of float64 logits. */
function logSoftmax(l: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]!);
  let s = 0;
  for (let i = 0; i < l.length; i++) s += Math.exp(l[i]! - m);
  const lse = m + Math.log(s);
  return Float64Array.from(l, (x) => x - lse);
}

/** Last-position logits of the float64 reference, with a hook edit. */
function refLast(tokens: number[], onHook?: (name: string, t: RefTensor) => void): Float64Array {
  const r = gpt2Reference(tm.arch, tm.weights, [tokens], undefined, { onHook });
  const V = tm.arch.vocab_size;
  return r.logits.data.slice((tokens.length - 1) * V, tokens.length * V);
}

/** Two single-token strings: the clean top-1 and top-2 predictions (as the CLI will resolve them). */
async function targetAndDistractor(): Promise<[string, string]> {
  const t = await model.trace(PROMPT, { hooks: [] });
  const picks = t
    .topK(20)
    .map((x) => x.str)
    .filter((s) => s.trim().length > 0 && model.toTokens(s, { prependBos: false }).length === 1);
  expect(picks.length).toBeGreaterThanOrEqual(2);
  return [picks[0]!, picks[1]!];
}

describe("tdb ablate --json", () => {
  it("matches model.intervene and the float64 reference: top tokens, logit difference, KL", async () => {
    const [target, distractor] = await targetAndDistractor();
    const [L, H, NL, NI, NP] = [1, 2, 0, 17, 3];
    const r = await tdb(["ablate", PROMPT, "--model", tm.dir, "--head", `${L}.${H}`, "--neuron", `${NL}.${NI}@${NP}`, "--target", target, "--distractor", distractor, "--top", "5", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as AblateJson;
    expect(out.schema).toBe("tdb.ablate/1");
    const tokens = model.toTokens(PROMPT);
    expect(out.tokens).toEqual(tokens);
    expect(out.ablated).toEqual([
      { hook: `blocks.${L}.attn.hook_z`, at: { head: [H] }, positions: "all" },
      { hook: `blocks.${NL}.mlp.hook_post`, at: { d_mlp: [NI] }, positions: [NP] },
    ]);
    expect(out.before).toHaveLength(5);
    expect(out.after).toHaveLength(5);

    // The library on the same model.
    const lib = await model.intervene(PROMPT, [zeroHead(L, H), zeroNeuron(NL, NI, { positions: [NP] })]);
    const [change] = lib.topKChanges(5);
    expect(out.before.map((x) => x.token)).toEqual(change!.before.map((x) => x.token));
    expect(out.after.map((x) => x.token)).toEqual(change!.after.map((x) => x.token));
    out.before.forEach((x, i) => close6(x.logit, change!.before[i]!.logit, `before[${i}].logit`));
    out.after.forEach((x, i) => close6(x.logit, change!.after[i]!.logit, `after[${i}].logit`));
    const diffs = lib.logitDiffs(target, distractor);
    close6(out.logitDiff!.before, diffs.clean[0]!, "logitDiff.before");
    close6(out.logitDiff!.after, diffs.edited[0]!, "logitDiff.after");
    close6(out.kl, lib.kl()[0]!, "kl");

    // The float64 reference with the same ablations done by hand.
    const S = tokens.length;
    const dm = tm.arch.n_inner;
    const clean = refLast(tokens);
    const ablated = refLast(tokens, (name, t) => {
      if (name === `blocks.${L}.attn.hook_pattern`) t.data.fill(0, H * S * S, (H + 1) * S * S); // [1, H, S, S]: z of head H is 0
      if (name === `blocks.${NL}.mlp.hook_post`) t.data[NP * dm + NI] = 0;
    });
    const [tt, dd] = [model.toSingleToken(target), model.toSingleToken(distractor)];
    const near = (got: number, want: number, what: string) => expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(want));
    near(out.logitDiff!.before, clean[tt]! - clean[dd]!, "reference logit diff before");
    near(out.logitDiff!.after, ablated[tt]! - ablated[dd]!, "reference logit diff after");
    near(out.logitDiff!.change, ablated[tt]! - ablated[dd]! - (clean[tt]! - clean[dd]!), "reference logit diff change");
    const lpC = logSoftmax(clean);
    const lpA = logSoftmax(ablated);
    const kl = lpC.reduce((s, x, i) => s + Math.exp(x) * (x - lpA[i]!), 0);
    expect(kl).toBeGreaterThan(1e-6); // the ablation changes something
    near(out.kl, kl, "reference KL");
    const top = (l: Float64Array) => [...l.keys()].sort((a, b) => l[b]! - l[a]!).slice(0, 5);
    expect(out.before.map((x) => x.token)).toEqual(top(clean));
    expect(out.after.map((x) => x.token)).toEqual(top(ablated));
    out.after.forEach((x, i) => {
      near(x.logit, ablated[x.token]!, `after[${i}] logit vs reference`);
      near(x.prob, Math.exp(lpA[x.token]!), `after[${i}] prob vs reference`);
    });
  });

  it("a negative neuron position counts from the end", async () => {
    const r = await tdb(["ablate", PROMPT, "--model", tm.dir, "--neuron", "0.5@-1", "--json"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as AblateJson;
    const tokens = model.toTokens(PROMPT);
    const S = tokens.length;
    const dm = tm.arch.n_inner;
    const clean = logSoftmax(refLast(tokens));
    const ablated = logSoftmax(refLast(tokens, (name, t) => {
      if (name === "blocks.0.mlp.hook_post") t.data[(S - 1) * dm + 5] = 0;
    }));
    const kl = clean.reduce((s, x, i) => s + Math.exp(x) * (x - ablated[i]!), 0);
    expect(kl).toBeGreaterThan(1e-9);
    expect(Math.abs(out.kl - kl), `${out.kl} vs ${kl}`).toBeLessThanOrEqual(1e-6 + 1e-3 * kl);
    expect(out.logitDiff).toBeUndefined();
  });
});
