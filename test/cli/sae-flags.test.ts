/**
 * `--sae` on `tdb trace`, `tdb attribute` and `tdb ablate` (with `--latent`), run as child
 * processes on a generated model with SAEs saved in SAELens's layout, and checked against
 * independent computations: latent activations against the float64 SAE reference
 * (test/sae/reference.ts) encoding the float64 model reference's hook values; write magnitudes
 * in closed form; total effects by central finite differences of the float64 reference's logit
 * difference (final LayerNorm scale frozen, as attribution holds it); a latent ablation against
 * the float64 reference with `f_i W_dec[i]` taken out of the residual stream by hand.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model } from "../../src/model/model.js";
import { Sae, type SaeConfig } from "../../src/sae/sae.js";
import { saveSae } from "../../src/sae/save.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";
import { reference as saeReference } from "../sae/reference.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { tdb, type CliRun } from "./_run.js";
import { uniform } from "../helpers/uniform.js";

const PROMPT = "The quick brown fox jumps";
const HOOK = "blocks.0.hook_mlp_out";
const HOOK2 = "blocks.1.hook_resid_pre";
const M = 32;

let tm: TestModel;
let model: Model;
let tmp: string;
let saeDir: string;
let sae2Dir: string;
let sae: Sae;
let sae2: Sae;
let tokens: number[];


/** A random SAE on `hookName`; about half its latents fire on this model's activations. */
function makeSae(hookName: string, dIn: number, dSae: number, seed: number, extra: Partial<SaeConfig> = {}): Sae {
  const r = uniform(seed);
  return Sae.create(
    { architecture: "standard", dIn, dSae, hookName, ...extra },
    {
      W_enc: Float32Array.from({ length: dIn * dSae }, () => (r() * 4) / Math.sqrt(dIn)),
      W_dec: Float32Array.from({ length: dSae * dIn }, () => r() * 0.3),
      b_enc: Float32Array.from({ length: dSae }, () => r() * 0.1),
      b_dec: Float32Array.from({ length: dIn }, () => r() * 0.05),
    },
    { compute: "js" },
  );
}

beforeAll(async () => {
  tm = await makeTestModel({ seed: 21 });
  model = await Model.load(tm.dir);
  tokens = model.toTokens(PROMPT);
  tmp = await mkdtemp(join(tmpdir(), "tdb-sae-flags-"));
  const d = tm.arch.n_embd;
  sae = makeSae(HOOK, d, M, 3);
  sae2 = makeSae(HOOK2, d, 24, 4, { architecture: "topk", k: 4 });
  saeDir = join(tmp, "sae-mlp-out");
  sae2Dir = join(tmp, "sae-resid");
  await saveSae(sae, saeDir);
  await saveSae(sae2, sae2Dir);
});
afterAll(async () => {
  await model?.dispose();
  await tm?.cleanup();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** The float64 reference run of the prompt (optionally with a frozen final LN scale and a residual edit). */
function ref(opts: Parameters<typeof gpt2Reference>[4] = {}) {
  return gpt2Reference(tm.arch, tm.weights, [tokens], undefined, opts);
}

/** Float64 SAE latents [S][d_sae] of the reference's value of the SAE's hook. */
function refLatents(s: Sae, hook: string): number[][] {
  return saeReference(s.config, s.weights, Float32Array.from(ref().cache.get(hook)!.data)).latents;
}

/** Two single-token strings: the clean top-1 and top-2 predictions. */
async function targetAndDistractor(): Promise<[string, string]> {
  const t = await model.trace(PROMPT, { hooks: [] });
  const picks = t
    .topK(20)
    .map((x) => x.str)
    .filter((s) => s.trim().length > 0 && model.toTokens(s, { prependBos: false }).length === 1);
  return [picks[0]!, picks[1]!];
}

const ok = (r: CliRun) => {
  expect(r.stderr, r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};
/** Values printed with 6 significant digits, against float64 values of a float32 model. */
const near = (got: number, want: number, what: string, abs = 1e-4, rel = 1e-3) => expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(abs + rel * Math.abs(want));

interface TraceSaeJson {
  source: string;
  hook: string;
  architecture: string;
  dIn: number;
  dSae: number;
  positions: { position: number; token: string; l0: number; latents: { latent: number; activation: number }[] }[];
}

describe("tdb trace --sae", () => {
  it("caches the selected SAE hooks and reports the top latents per position as the float64 encode gives them", async () => {
    const sel = `${HOOK}.hook_sae_acts_post,${HOOK2}.hook_sae_error,hook_embed`;
    const out = ok(await tdb(["trace", PROMPT, "--model", tm.dir, "--sae", saeDir, "--sae", sae2Dir, "--hooks", sel, "--json"]));
    const S = tokens.length;
    const cache = out.cache as { name: string; dims: number[]; labels: string[]; mean: number }[];
    expect(cache.map((c) => c.name).sort()).toEqual(sel.split(",").sort());
    const acts = cache.find((c) => c.name === `${HOOK}.hook_sae_acts_post`)!;
    expect(acts.dims).toEqual([1, S, M]);
    expect(acts.labels).toEqual(["batch", "pos", "d_sae"]);
    const want = refLatents(sae, HOOK);
    near(acts.mean, want.flat().reduce((a, b) => a + b, 0) / (S * M), "mean of acts_post");

    const saes = out.saes as TraceSaeJson[];
    expect(saes.map((s) => [s.source, s.hook, s.architecture, s.dSae])).toEqual([
      [saeDir, HOOK, "standard", M],
      [sae2Dir, HOOK2, "topk", 24],
    ]);
    const check = (s: TraceSaeJson, want: number[][], k: number) => {
      expect(s.positions).toHaveLength(S);
      let shown = 0;
      for (const p of s.positions) {
        const row = want[p.position]!;
        const order = [...row.keys()].filter((i) => row[i]! > 0).sort((a, b) => row[b]! - row[a]!);
        // L0 as the reference counts it (latents that are clearly on or off).
        expect(p.l0).toBeGreaterThanOrEqual(row.filter((v) => v > 1e-4).length);
        expect(p.l0).toBeLessThanOrEqual(row.filter((v) => v > -1e-4).length);
        expect(p.latents.length).toBe(Math.min(k, p.l0));
        p.latents.forEach((l, j) => {
          near(l.activation, row[l.latent]!, `latent ${l.latent} at ${p.position}`);
          // the j-th largest, up to ties within rounding
          near(l.activation, row[order[j]!]!, `rank ${j} at ${p.position}`);
          shown++;
        });
      }
      expect(shown).toBeGreaterThan(S);
    };
    check(saes[0]!, want, 5);
    check(saes[1]!, refLatents(sae2, HOOK2), 5);
    expect(Math.max(...saes[1]!.positions.map((p) => p.l0))).toBeLessThanOrEqual(4); // topk k = 4
  }, 60_000);

  it("prints the SAE hooks beside the others and the top latents per position in text mode", async () => {
    const r = await tdb(["trace", PROMPT, "--model", tm.dir, "--sae", saeDir]);
    expect(r.code).toBe(0);
    for (const s of ["hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"]) expect(r.stdout).toContain(`${HOOK}.${s}`);
    expect(r.stdout).toContain(`SAE ${HOOK} (${saeDir}; standard, ${M} latents)`);
    const want = refLatents(sae, HOOK);
    const last = tokens.length - 1;
    const top = [...want[last]!.keys()].sort((a, b) => want[last]![b]! - want[last]![a]!)[0]!;
    expect(r.stdout).toMatch(new RegExp(`^ +${last} .* L0 +\\d+  ${top}=${want[last]![top]!.toFixed(3).replace(".", "\\.")}`, "m"));
  }, 60_000);

  it("rejects SAE hooks in --hooks that no --sae reads, or with unknown suffixes (typed)", async () => {
    const none = await tdb(["trace", PROMPT, "--model", tm.dir, "--hooks", `${HOOK}.hook_sae_acts_post`, "--json"]);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout).error).toMatchObject({ code: "E_BAD_OPTION", value: HOOK, allowed: [] });
    const other = await tdb(["trace", PROMPT, "--model", tm.dir, "--sae", saeDir, "--hooks", `${HOOK2}.hook_sae_acts_post`, "--json"]);
    expect(JSON.parse(other.stdout).error).toMatchObject({ code: "E_BAD_OPTION", value: HOOK2, allowed: [HOOK] });
    const suffix = await tdb(["trace", PROMPT, "--model", tm.dir, "--sae", saeDir, "--hooks", `${HOOK}.hook_sae_nope`, "--json"]);
    expect(suffix.code).toBe(1);
    expect(JSON.parse(suffix.stdout).error.code).toBe("E_UNKNOWN_HOOK");
  }, 60_000);
});

interface NodeJson {
  id: string;
  type: string;
  hook?: string;
  index?: number;
  position: number;
  activation: number;
  writeMagnitude: number;
  directEffect: number;
  totalEffect: number;
}

describe("tdb attribute --sae", () => {
  it("scores latents as nodes: activation by the float64 encode, write in closed form, total effect by finite differences", async () => {
    const [target, distractor] = await targetAndDistractor();
    const out = ok(await tdb(["attribute", PROMPT, "--model", tm.dir, "--target", target, "--distractor", distractor, "--sae", saeDir, "--top", "40", "--json"]));
    const S = tokens.length;
    expect(out.counts).toMatchObject({ sae_latent: S * M });
    expect(out.saes).toEqual([{ source: saeDir, hook: HOOK, architecture: "standard", dIn: tm.arch.n_embd, dSae: M }]);
    const terms = out.saeTerms as { hook: string; latents: number; errorEffect: number[]; biasEffect: number[] }[];
    expect(terms.map((t) => [t.hook, t.latents, t.errorEffect.length])).toEqual([[HOOK, S * M, S]]);
    const nodes = (out.nodes as NodeJson[]).filter((n) => n.type === "sae_latent");
    expect(nodes.length).toBeGreaterThan(10);

    const want = refLatents(sae, HOOK);
    const clean = ref();
    const V = tm.arch.vocab_size;
    const d = tm.arch.n_embd;
    const [T, D] = [model.toSingleToken(target), model.toSingleToken(distractor)];
    const diff = (r: ReturnType<typeof ref>) => r.logits.data[(S - 1) * V + T]! - r.logits.data[(S - 1) * V + D]!;
    near(out.logitDiff as number, diff(clean), "logit difference");
    const lnScale = clean.cache.get("ln_final.hook_scale")!.data;
    const resid1 = clean.cache.get("blocks.1.hook_resid_pre")!.data;
    let checked = 0;
    for (const n of nodes) {
      const i = n.index!;
      const t = n.position;
      expect(n.id).toBe(`sae.${HOOK}.${i}@${t}`);
      expect(n.hook).toBe(HOOK);
      const f = want[t]![i]!;
      near(n.activation, f, `${n.id} activation`);
      const row = sae.weights.W_dec.subarray(i * d, (i + 1) * d);
      near(n.writeMagnitude, Math.abs(f) * Math.hypot(...row), `${n.id} write`);
      // Total effect: d/d(eps) of the logit difference with the latent scaled by (1 + eps); it
      // writes f W_dec[i] into blocks.0.hook_mlp_out, i.e. into blocks.1.hook_resid_pre at t.
      if (Math.abs(n.totalEffect) < 1e-3 || checked >= 6) continue;
      const eps = 1e-4;
      const at = (e: number) =>
        diff(
          ref({
            lnFinalScale: lnScale,
            replaceResidPre: new Map([[1, { position: t, vector: Array.from({ length: d }, (_, j) => resid1[t * d + j]! + e * f * row[j]!) }]]),
          }),
        );
      near(n.totalEffect, (at(eps) - at(-eps)) / (2 * eps), `${n.id} total effect`, 2e-4, 2e-3);
      checked++;
    }
    expect(checked).toBeGreaterThan(2);
  }, 60_000);

  it("shows the hook and latent of latent nodes in text mode, with two SAEs", async () => {
    const [target, distractor] = await targetAndDistractor();
    const r = await tdb(["attribute", PROMPT, "--model", tm.dir, "--target", target, "--distractor", distractor, "--sae", saeDir, "--sae", sae2Dir, "--top", "40"]);
    expect(r.code).toBe(0);
    const S = tokens.length;
    expect(r.stdout).toContain(`${S * (M + 24)} SAE latents (${HOOK}: ${M}, ${HOOK2}: 24)`);
    expect(r.stdout).toMatch(new RegExp(`^sae\\.${HOOK.replace(/\./g, "\\.")}\\.\\d+@\\d+ `, "m"));
  }, 60_000);
});

describe("tdb ablate --latent", () => {
  it("zero-ablates a latent as the float64 reference does with f_i W_dec[i] removed by hand", async () => {
    const [target, distractor] = await targetAndDistractor();
    const want = refLatents(sae, HOOK);
    const S = tokens.length;
    const P = S - 2;
    const i = [...want[P]!.keys()].sort((a, b) => want[P]![b]! - want[P]![a]!)[0]!; // the largest latent at P
    const f = want[P]![i]!;
    expect(f).toBeGreaterThan(0.05);
    const out = ok(await tdb(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--latent", `${HOOK}:${i}@${P}`, "--target", target, "--distractor", distractor, "--json"]));
    expect(out.ablated).toEqual([{ hook: HOOK, at: { d_sae: [i] }, positions: [P], sae: saeDir }]);
    const d = tm.arch.n_embd;
    const V = tm.arch.vocab_size;
    const [T, D] = [model.toSingleToken(target), model.toSingleToken(distractor)];
    const resid1 = ref().cache.get("blocks.1.hook_resid_pre")!.data;
    const row = sae.weights.W_dec.subarray(i * d, (i + 1) * d);
    const edited = ref({ replaceResidPre: new Map([[1, { position: P, vector: Array.from({ length: d }, (_, j) => resid1[P * d + j]! - f * row[j]!) }]]) });
    const clean = ref();
    const diff = (r: ReturnType<typeof ref>) => r.logits.data[(S - 1) * V + T]! - r.logits.data[(S - 1) * V + D]!;
    const ld = out.logitDiff as { before: number; after: number; change: number };
    near(ld.before, diff(clean), "before");
    near(ld.after, diff(edited), "after");
    expect(Math.abs(diff(edited) - diff(clean))).toBeGreaterThan(1e-3); // the ablation changes something
    near(ld.change, diff(edited) - diff(clean), "change");
  }, 60_000);

  it("takes latents and heads together, and prints the latent in text mode", async () => {
    const r = await tdb(["ablate", PROMPT, "--model", tm.dir, "--head", "0.1", "--sae", saeDir, "--latent", `${HOOK}:3`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${HOOK} {"d_sae":[3]} @ "all"`);
  }, 60_000);
});

describe("SAE flag errors", () => {
  const bad = async (args: string[], exit: number, code: string, fields: Record<string, unknown> = {}) => {
    const r = await tdb([...args, "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(exit);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code, ...fields });
  };
  it("usage errors (exit 2) before the model loads", async () => {
    const model = ["--model", "/nonexistent/never-loaded"];
    await bad(["ablate", PROMPT, "--latent", `${HOOK}:3`, ...model], 2, "E_USAGE", { value: "--latent" });
    await bad(["ablate", PROMPT, "--head", "0.0", "--sae", saeDir, ...model], 2, "E_USAGE", { value: "--sae" });
    await bad(["ablate", PROMPT, "--sae", saeDir, "--latent", "blocks.0.hook_mlp_out/3", ...model], 2, "E_USAGE", { value: "blocks.0.hook_mlp_out/3" });
    await bad(["ablate", PROMPT, "--sae", saeDir, "--latent", `${HOOK}:-3`, ...model], 2, "E_USAGE");
    await bad(["attribute", PROMPT, "--target", " a", "--distractor", " b", "--sae", "", ...model], 2, "E_USAGE");
    await bad(["check", "spec.yaml", "--sae", saeDir], 2, "E_USAGE", { value: "--sae" });
    await bad(["trace", PROMPT, "--latent", `${HOOK}:3`], 2, "E_USAGE", { value: "--latent" });
  }, 60_000);

  it("typed errors (exit 1): missing, corrupt and mismatched SAEs, unknown latents", async () => {
    const [target, distractor] = await targetAndDistractor();
    const attr = ["attribute", PROMPT, "--model", tm.dir, "--target", target, "--distractor", distractor];
    await bad([...attr, "--sae", join(tmp, "missing")], 1, "E_MISSING_FILE");
    const corrupt = join(tmp, "corrupt");
    await mkdir(corrupt, { recursive: true });
    await writeFile(join(corrupt, "cfg.json"), await readFile(join(saeDir, "cfg.json")));
    const st = await readFile(join(saeDir, "sae_weights.safetensors"));
    await writeFile(join(corrupt, "sae_weights.safetensors"), st.subarray(0, st.length - 100));
    await bad(["trace", PROMPT, "--model", tm.dir, "--sae", corrupt], 1, "E_SAFETENSORS");
    const wide = join(tmp, "wide");
    await saveSae(makeSae(HOOK, tm.arch.n_embd + 1, 8, 5), wide);
    await bad([...attr, "--sae", wide], 1, "E_SAE_CONFIG", { value: tm.arch.n_embd + 1, allowed: tm.arch.n_embd });
    await bad(["trace", PROMPT, "--model", tm.dir, "--sae", wide], 1, "E_SAE_CONFIG", { value: tm.arch.n_embd + 1, allowed: tm.arch.n_embd });
    await bad(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--latent", `${HOOK}:${M}`], 1, "E_INDEX_RANGE", { value: M, allowed: [0, M - 1] });
    await bad(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--latent", `${HOOK2}:1`], 1, "E_BAD_OPTION", { value: HOOK2, allowed: [HOOK] });
    await bad(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--latent", "blocks.0.hook_nope:1"], 1, "E_UNKNOWN_HOOK");
    await bad(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--latent", `${HOOK}:1@99`], 1, "E_POSITION_RANGE");
    await bad(["trace", PROMPT, "--model", tm.dir, "--sae", saeDir, "--sae", saeDir], 1, "E_BAD_OPTION", { value: HOOK });
    await bad(["ablate", PROMPT, "--model", tm.dir, "--sae", saeDir, "--sae", saeDir, "--latent", `${HOOK}:1`], 1, "E_BAD_OPTION", { value: HOOK });
    const hookless = join(tmp, "hookless");
    await saveSae(makeSae(HOOK, tm.arch.n_embd, 8, 6, { hookName: undefined }), hookless);
    await bad([...attr, "--sae", hookless], 1, "E_SAE_CONFIG", { value: null });
  }, 120_000);
});
