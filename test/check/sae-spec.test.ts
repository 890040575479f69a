/**
 * SAE latents in `tdb check` specs: `saes:` (directories relative to the spec, loaded on first
 * use), attribution nodes `sae.<hook>[.<latent>[@<position>]]` and `among: [sae_latent]`, and
 * `{ latent: "<hook>:<index>[@<position>]" }` edits (zero, scale, set). Truth is established
 * independently: latent activations by the float64 SAE reference on the float64 model
 * reference's hook values; the latents' total effects by central finite differences of the
 * float64 reference's logit difference (final LayerNorm scale frozen, as attribution holds it);
 * latent edits by the float64 reference with the decoder row's change put into the residual
 * stream by hand.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCheck, type CheckReport } from "../../src/check/run.js";
import { parseSpec } from "../../src/check/spec.js";
import { Model } from "../../src/model/model.js";
import { Sae } from "../../src/sae/sae.js";
import { saveSae } from "../../src/sae/save.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { reference as saeReference } from "../sae/reference.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { thrown } from "../helpers/errors.js";
import { tdb } from "../cli/_run.js";
import { uniform } from "../helpers/uniform.js";

const HOOK = "blocks.0.hook_mlp_out";
const M = 24;

describe("parseSpec with SAEs", () => {
  const attr = { id: "a", description: "d", kind: "attribution", prompt: "x", target: "a", distractor: "b" };
  const abl = { id: "b", description: "d", kind: "ablation", prompt: "x", target: "a", distractor: "b", comparison: ">", threshold: 0 };

  it("accepts saes, latent node patterns, among sae_latent and latent edits", () => {
    const s = parseSpec({
      saes: ["./sae", "tdb:brown-small/blocks.2.hook_mlp_out"],
      assertions: [
        { ...attr, id: "n1", node: "sae.blocks.2.hook_mlp_out.123" },
        { ...attr, id: "n2", node: "sae.blocks.2.hook_mlp_out.123@5" },
        { ...attr, id: "n3", node: "sae.blocks.0.mlp.hook_post", among: ["sae_latent", "mlp_neuron"] },
        { ...abl, id: "e", edits: [{ latent: "blocks.2.hook_mlp_out:123@-1" }, { latent: "blocks.1.hook_resid_pre:4", scale: 2, positions: [3] }, { latent: "blocks.1.hook_resid_pre:5", set: 0.5 }] },
      ],
    });
    expect(s.saes).toEqual(["./sae", "tdb:brown-small/blocks.2.hook_mlp_out"]);
    expect(s.assertions[2]).toMatchObject({ among: ["sae_latent", "mlp_neuron"] });
    expect(parseSpec(s)).toEqual(s);
  });

  const cases: [string, unknown, string, unknown][] = [
    ["saes not an array", { saes: "./sae", assertions: [{ ...attr, node: "1.0" }] }, "spec.saes", "./sae"],
    ["saes empty", { saes: [], assertions: [{ ...attr, node: "1.0" }] }, "spec.saes", []],
    ["an empty SAE source", { saes: ["./a", ""], assertions: [{ ...attr, node: "1.0" }] }, "spec.saes[1]", ""],
    ["a latent node without saes", { assertions: [{ ...attr, node: "sae.blocks.0.hook_mlp_out.3" }] }, "assertions[0].node", null],
    ["among sae_latent without saes", { assertions: [{ ...attr, node: "1.0", among: ["sae_latent"] }] }, "assertions[0].among", null],
    ["a latent edit without saes", { assertions: [{ ...abl, edits: [{ head: "0.0" }, { latent: "blocks.0.hook_mlp_out:3" }] }] }, "assertions[0].edits[1]", null],
    ["a malformed latent node", { saes: ["./a"], assertions: [{ ...attr, node: "sae.blocks.0.hook_mlp_out.x" }] }, "assertions[0].node", "sae.blocks.0.hook_mlp_out.x"],
    ["a latent node with a negative position", { saes: ["./a"], assertions: [{ ...attr, node: "sae.blocks.0.hook_mlp_out.3@-1" }] }, "assertions[0].node", "sae.blocks.0.hook_mlp_out.3@-1"],
    ["a malformed latent edit", { saes: ["./a"], assertions: [{ ...abl, edits: [{ latent: "blocks.0.hook_mlp_out.3" }] }] }, "assertions[0].edits[0].latent", "blocks.0.hook_mlp_out.3"],
    ["scale and set together", { saes: ["./a"], assertions: [{ ...abl, edits: [{ latent: "blocks.0.hook_mlp_out:3", scale: 2, set: 1 }] }] }, "assertions[0].edits[0]", ["scale", "set"]],
    ["a non-numeric scale", { saes: ["./a"], assertions: [{ ...abl, edits: [{ latent: "blocks.0.hook_mlp_out:3", scale: "2" }] }] }, "assertions[0].edits[0].scale", "2"],
    ["an unknown field of a latent edit", { saes: ["./a"], assertions: [{ ...abl, edits: [{ latent: "blocks.0.hook_mlp_out:3", sae: "x" }] }] }, "assertions[0].edits[0].sae", "sae"],
  ];
  for (const [what, doc, path, value] of cases) {
    it(`E_BAD_SPEC: ${what}`, () => {
      const e = thrown(() => parseSpec(doc));
      expect(e.code).toBe("E_BAD_SPEC");
      expect(e.message.startsWith(`${path}:`), e.message).toBe(true);
      expect(e.value).toEqual(value);
      expect(e.allowed).toBeDefined();
    });
  }
});

describe("runCheck with SAE latents", () => {
  let tm: TestModel;
  let model: Model;
  let dir: string;
  let sae: Sae;
  let tokens: number[];
  let target: string;
  let distractor: string;
  const PROMPT = "The quick brown fox jumps";

  beforeAll(async () => {
    tm = await makeTestModel({ seed: 23 });
    model = await Model.load(tm.dir);
    tokens = model.toTokens(PROMPT);
    const t = await model.trace(PROMPT, { hooks: [] });
    const picks = t
      .topK(20)
      .map((x) => x.str)
      .filter((s) => s.trim().length > 0 && model.toTokens(s, { prependBos: false }).length === 1);
    [target, distractor] = [picks[0]!, picks[1]!];
    const d = tm.arch.n_embd;
    const r = uniform(5);
    sae = Sae.create(
      { architecture: "standard", dIn: d, dSae: M, hookName: HOOK },
      {
        W_enc: Float32Array.from({ length: d * M }, () => (r() * 4) / Math.sqrt(d)),
        W_dec: Float32Array.from({ length: M * d }, () => r() * 0.3),
        b_enc: Float32Array.from({ length: M }, () => r() * 0.1),
        b_dec: Float32Array.from({ length: d }, () => r() * 0.05),
      },
      { compute: "js" },
    );
    dir = await mkdtemp(join(tmpdir(), "tdb-sae-spec-"));
    await saveSae(sae, join(dir, "sae-mlp-out"));
  });
  afterAll(async () => {
    await model?.dispose();
    await tm?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const S = () => tokens.length;
  const ref = (opts: Parameters<typeof gpt2Reference>[4] = {}) => gpt2Reference(tm.arch, tm.weights, [tokens], undefined, opts);
  const diff = (r: ReturnType<typeof ref>) => {
    const V = tm.arch.vocab_size;
    const [T, D] = [model.toSingleToken(target), model.toSingleToken(distractor)];
    return r.logits.data[(S() - 1) * V + T]! - r.logits.data[(S() - 1) * V + D]!;
  };
  /** The reference run with `vector` added to the residual stream entering block 1 at position `t` (what a change of blocks.0.hook_mlp_out there does). */
  const withAdded = (t: number, vector: ArrayLike<number>, lnFinalScale?: ArrayLike<number>) => {
    const d = tm.arch.n_embd;
    const resid = ref().cache.get("blocks.1.hook_resid_pre")!.data;
    return ref({ lnFinalScale, replaceResidPre: new Map([[1, { position: t, vector: Array.from({ length: d }, (_, j) => resid[t * d + j]! + vector[j]!) }]]) });
  };
  const decRow = (i: number) => sae.weights.W_dec.subarray(i * tm.arch.n_embd, (i + 1) * tm.arch.n_embd);
  const latents = () => saeReference(sae.config, sae.weights, Float32Array.from(ref().cache.get(HOOK)!.data)).latents;

  /** Every active latent's total effect by central finite differences (latent scaled by 1 +- eps), largest |effect| first. */
  function rankedLatents(): { latent: number; position: number; total: number }[] {
    const f = latents();
    const lnScale = ref().cache.get("ln_final.hook_scale")!.data;
    const eps = 1e-4;
    const out: { latent: number; position: number; total: number }[] = [];
    for (let t = 0; t < S(); t++) {
      for (let i = 0; i < M; i++) {
        const a = f[t]![i]!;
        if (a <= 0) continue;
        const at = (e: number) => diff(withAdded(t, Array.from(decRow(i), (w) => e * a * w), lnScale));
        out.push({ latent: i, position: t, total: (at(eps) - at(-eps)) / (2 * eps) });
      }
    }
    return out.sort((x, y) => Math.abs(y.total) - Math.abs(x.total));
  }

  const base = () => ({ kind: "attribution", prompts: [PROMPT], target, distractor });
  const byId = (r: CheckReport, id: string) => r.assertions.find((a) => a.id === id)!;

  it("ranks latents and ablates them as the float64 reference says; errors stay per assertion", async () => {
    const ranked = rankedLatents();
    const [first, second] = ranked;
    expect(Math.abs(first!.total) - Math.abs(second!.total), "the top two latents are far enough apart to rank").toBeGreaterThan(1e-3);
    const f = latents();
    const P = S() - 1;
    const top = [...f[P]!.keys()].sort((a, b) => f[P]![b]! - f[P]![a]!)[0]!;
    const a = f[P]![top]!;
    expect(a).toBeGreaterThan(0.05);
    const clean = diff(ref());
    const zeroed = diff(withAdded(P, Array.from(decRow(top), (w) => -a * w)));
    const tripled = diff(withAdded(P, Array.from(decRow(top), (w) => 2 * a * w)));
    const set = diff(withAdded(P, Array.from(decRow(top), (w) => (1.5 - a) * w)));
    expect(Math.abs(zeroed - clean)).toBeGreaterThan(1e-3);
    const edited = (id: string, edit: Record<string, unknown>, comparison: string, threshold: number) => ({
      id,
      description: id,
      kind: "ablation",
      prompts: [PROMPT],
      edits: [edit],
      target,
      distractor,
      metric: "edited",
      comparison,
      threshold,
    });
    const spec = {
      saes: ["./sae-mlp-out"],
      assertions: [
        { ...base(), id: "top-latent", description: "the top latent by |total effect|", node: `sae.${HOOK}.${first!.latent}@${first!.position}`, among: ["sae_latent"], rank: 1 },
        { ...base(), id: "second-not-top", description: "the second latent is not the top one", node: `sae.${HOOK}.${second!.latent}@${second!.position}`, among: ["sae_latent"], rank: 1 },
        { ...base(), id: "any-position", description: "the top latent at any position", node: `sae.${HOOK}.${first!.latent}`, among: ["sae_latent"], rank: 1 },
        { ...base(), id: "any-latent", description: "some latent of the SAE is in the table", node: `sae.${HOOK}`, rank: 100 },
        { ...base(), id: "no-sae-at-hook", description: "a latent of an SAE the spec does not have", node: "sae.blocks.1.hook_mlp_out.0", rank: 1 },
        edited("zero", { latent: `${HOOK}:${top}@-1` }, ">", zeroed - 0.01),
        edited("zero-fails", { latent: `${HOOK}:${top}`, positions: [P] }, ">", zeroed + 0.01),
        edited("scale", { latent: `${HOOK}:${top}@${P}`, scale: 3 }, "<", tripled + 0.01),
        edited("set", { latent: `${HOOK}:${top}@${P}`, set: 1.5 }, "<", set + 0.01),
        edited("out-of-range", { latent: `${HOOK}:${M}` }, ">", 0),
        { id: "plain", description: "assertions without SAEs run as before", kind: "logit_diff", prompts: [PROMPT], target, distractor, comparison: ">", threshold: clean - 0.01 },
      ],
    };
    const path = join(dir, "spec.json");
    await writeFile(path, JSON.stringify(spec));
    const report = await runCheck(path, { model: tm.dir });

    expect(byId(report, "top-latent")).toMatchObject({ status: "passed", measured: 1 });
    expect(byId(report, "second-not-top")).toMatchObject({ status: "failed", measured: 2 });
    expect(byId(report, "any-position")).toMatchObject({ status: "passed", measured: 1 });
    expect(byId(report, "any-latent").status).toBe("passed");
    expect(byId(report, "no-sae-at-hook")).toMatchObject({ status: "error", error: { code: "E_BAD_OPTION", value: "blocks.1.hook_mlp_out", allowed: [HOOK] } });
    const close = (got: number | null, want: number, what: string) => expect(Math.abs(got! - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-4 + 1e-3 * Math.abs(want));
    expect(byId(report, "zero").status).toBe("passed");
    close(byId(report, "zero").measured, zeroed, "zero-ablated logit difference");
    expect(byId(report, "zero-fails").status).toBe("failed");
    close(byId(report, "zero-fails").measured, zeroed, "zero-ablated logit difference (positions)");
    expect(byId(report, "scale").status).toBe("passed");
    close(byId(report, "scale").measured, tripled, "latent x 3");
    close(byId(report, "set").measured, set, "latent set to 1.5");
    expect(byId(report, "out-of-range")).toMatchObject({ status: "error", error: { code: "E_INDEX_RANGE", value: M, allowed: [0, M - 1] } });
    expect(byId(report, "plain").status).toBe("passed");
    close(byId(report, "plain").measured, clean, "clean logit difference");
  }, 120_000);

  it("an SAE that cannot load errs the assertions that need it, not the others; tdb check exits 1", async () => {
    const spec = {
      saes: ["./missing-sae"],
      assertions: [
        { ...base(), id: "latent", description: "needs the SAE", node: `sae.${HOOK}.0`, rank: 1 },
        { id: "plain", description: "does not", kind: "top_token", prompts: [PROMPT], token: target, k: 20 },
      ],
    };
    const path = join(dir, "missing.json");
    await writeFile(path, JSON.stringify(spec));
    const report = await runCheck(path, { model: tm.dir });
    expect(byId(report, "latent")).toMatchObject({ status: "error", error: { code: "E_MISSING_FILE" } });
    expect(byId(report, "plain").status).toBe("passed");
    const r = await tdb(["check", path, "--model", tm.dir, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ schema: "tdb.check/1", counts: { total: 2, passed: 1, errors: 1 } });
  }, 120_000);
});
