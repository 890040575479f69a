/**
 * The pure SAE splice maths: the five SAELens hook tensors against the float64 reference, and
 * latent edits (`x + decode(z') - decode(z)`) against closed forms computed here.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { Sae, type SaeConfig, type SaeWeights } from "../../src/sae/sae.js";
import { editedActivation, editLatents, saeHookName, spliceSae, SAE_HOOK_SUFFIXES } from "../../src/sae/splice.js";
import { scaleLatent, setLatent, zeroLatent, isLatentEdit } from "../../src/sae/latent-edits.js";
import { thrown } from "../helpers/errors.js";
import { reference, worstError } from "./reference.js";

const D_IN = 10;
const D_SAE = 24;
const ROWS = 7;

function uniform(rng: Rng, n: number, scale: number, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => offset + scale * (2 * rng.uniform() - 1));
}

function weights(seed: number): SaeWeights {
  const rng = new Rng(seed);
  return { W_enc: uniform(rng, D_IN * D_SAE, 0.6), W_dec: uniform(rng, D_SAE * D_IN, 0.5), b_enc: uniform(rng, D_SAE, 0.2, 0.1), b_dec: uniform(rng, D_IN, 0.3) };
}

const x = uniform(new Rng(3), ROWS * D_IN, 2, 0.2);
const w = weights(11);
const cfg: SaeConfig = { architecture: "standard", dIn: D_IN, dSae: D_SAE };

/** (z' - z) W_dec / s added to x, in float64, for the rows and latents changed; s = per-row input scale. */
function byHand(z: number[][], zNew: number[][], scale: (r: number) => number): Float64Array {
  const out = Float64Array.from(x);
  for (let r = 0; r < ROWS; r++) {
    for (let j = 0; j < D_SAE; j++) {
      const dz = zNew[r]![j]! - z[r]![j]!;
      if (dz === 0) continue;
      for (let i = 0; i < D_IN; i++) out[r * D_IN + i]! += (dz * w.W_dec[j * D_IN + i]!) / scale(r);
    }
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("spliceSae", () => {
  it("gives SAELens's five hook tensors, as the float64 reference computes them", async () => {
    const sae = Sae.create(cfg, w, { compute: "js" });
    const ref = reference(cfg, w, x);
    const t = await spliceSae(sae, x);
    expect(t.input).toBe(x);
    expect(worstError(t.actsPre, ref.pre)).toBeLessThan(1e-5);
    expect(worstError(t.actsPost, ref.latents)).toBeLessThan(1e-5);
    expect(worstError(t.recons, ref.recons)).toBeLessThan(1e-5);
    const err = ref.recons.map((row, r) => row.map((v, i) => x[r * D_IN + i]! - v));
    expect(worstError(t.error, err)).toBeLessThan(1e-5);
    // Some latents active, some not: the comparison means something.
    const active = ref.latents.flat().filter((v) => v > 0).length;
    expect(active).toBeGreaterThan(ROWS);
    expect(active).toBeLessThan(ROWS * D_SAE);
  });

  it("names hooks as SAELens does", () => {
    expect(SAE_HOOK_SUFFIXES).toEqual(["hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"]);
    expect(saeHookName("blocks.2.hook_mlp_out", "hook_sae_acts_post")).toBe("blocks.2.hook_mlp_out.hook_sae_acts_post");
    expect(thrown(() => saeHookName("blocks.0.hook_mlp_out", "hook_sae_latents" as never)).code).toBe("E_BAD_OPTION");
  });
});

describe("latent edits", () => {
  const ref = reference(cfg, w, x);
  const z = ref.latents;

  it("editLatents zeroes, scales and sets the chosen latents of the chosen rows, in order", () => {
    const zf = Float32Array.from(z.flat());
    const out = editLatents(zf, D_SAE, [
      { op: "scale", latents: [1, 2], value: 3, rows: [0, 4] },
      { op: "zero", latents: [2], rows: [4] },
      { op: "set", latents: [5], value: -1.5, rows: [6] },
    ]);
    const want = z.map((row) => row.slice());
    for (const r of [0, 4]) for (const j of [1, 2]) want[r]![j]! *= 3;
    want[4]![2] = 0;
    want[6]![5] = -1.5;
    expect(worstError(out, want)).toBeLessThan(1e-6);
    expect(zf).toEqual(Float32Array.from(z.flat())); // input untouched
  });

  it("editedActivation is x + (z' - z) W_dec (no normalisation)", async () => {
    const sae = Sae.create(cfg, w, { compute: "js" });
    const j = z[2]!.findIndex((v) => v > 0);
    expect(j).toBeGreaterThanOrEqual(0);
    const out = await editedActivation(sae, x, [{ op: "zero", latents: [j], rows: [2, 3] }, { op: "set", latents: [0], value: 2, rows: [5] }]);
    const zNew = z.map((row) => row.slice());
    for (const r of [2, 3]) zNew[r]![j] = 0;
    zNew[5]![0] = 2;
    const want = byHand(z, zNew, () => 1);
    expect(maxDiff(out, want)).toBeLessThan(1e-5);
    expect(maxDiff(out, x)).toBeGreaterThan(1e-2); // it did change something
    for (const r of [0, 1, 4, 6]) expect(out.subarray(r * D_IN, (r + 1) * D_IN)).toEqual(x.subarray(r * D_IN, (r + 1) * D_IN));
  });

  it("editedActivation undoes a per-row normalisation (constant_norm_rescale): x + (z' - z) W_dec / s", async () => {
    const c: SaeConfig = { ...cfg, normalizeActivations: "constant_norm_rescale" };
    const sae = Sae.create(c, w, { compute: "js" });
    const zn = reference(c, w, x).latents;
    const out = await editedActivation(sae, x, [{ op: "scale", latents: [0, 1, 2, 3], value: 4, rows: [0, 1, 2, 3, 4, 5, 6] }]);
    const zNew = zn.map((row) => row.map((v, j) => (j < 4 ? 4 * v : v)));
    const norm = (r: number) => Math.sqrt(Array.from(x.subarray(r * D_IN, (r + 1) * D_IN)).reduce((s, v) => s + v * v, 0));
    const want = byHand(zn, zNew, (r) => Math.sqrt(D_IN) / norm(r));
    expect(maxDiff(out, want)).toBeLessThan(1e-5);
    expect(maxDiff(out, x)).toBeGreaterThan(1e-2);
  });

  it("an identity edit (scale 1) gives x back exactly", async () => {
    const sae = Sae.create(cfg, w);
    const out = await editedActivation(sae, x, [{ op: "scale", latents: [0, 1, 2, 3, 4, 5], value: 1, rows: [0, 1, 2, 3, 4, 5, 6] }]);
    expect(out).toEqual(x);
  });

  it("bad changes are typed errors", () => {
    const zf = Float32Array.from(z.flat());
    expect(thrown(() => editLatents(zf, D_SAE, [{ op: "zero", latents: [D_SAE], rows: [0] }])).code).toBe("E_INDEX_RANGE");
    expect(thrown(() => editLatents(zf, D_SAE, [{ op: "zero", latents: [0], rows: [ROWS] }])).code).toBe("E_INDEX_RANGE");
    expect(thrown(() => editLatents(zf, D_SAE, [{ op: "scale", latents: [0], rows: [0] }])).code).toBe("E_BAD_OPTION");
    expect(thrown(() => editLatents(zf, D_SAE, [{ op: "set", latents: [0], value: NaN, rows: [0] }])).code).toBe("E_BAD_OPTION");
    const e = thrown(() => editLatents(zf, D_SAE, [{ op: "clamp" as never, latents: [0], rows: [0] }]));
    expect(e.code).toBe("E_BAD_OPTION");
    expect(e.allowed).toEqual(["zero", "scale", "set"]);
  });

  it("the helpers build latent edits", () => {
    const sae = Sae.create({ ...cfg, hookName: "blocks.0.hook_mlp_out" }, w);
    expect(zeroLatent(sae, 3)).toEqual({ kind: "latent", op: "zero", sae, latents: [3] });
    expect(scaleLatent(sae, [1, 2], 0.5, { positions: [-1] })).toEqual({ kind: "latent", op: "scale", sae, latents: [1, 2], value: 0.5, positions: [-1] });
    expect(setLatent(sae, 4, 2, { rows: [1], hook: "blocks.1.hook_mlp_out" })).toEqual({ kind: "latent", op: "set", sae, latents: [4], value: 2, rows: [1], hook: "blocks.1.hook_mlp_out" });
    expect(isLatentEdit(zeroLatent(sae, 1))).toBe(true);
    expect(isLatentEdit({ hook: "blocks.0.hook_mlp_out", kind: "zero" })).toBe(false);
    expect(thrown(() => zeroLatent(sae, "3" as never)).code).toBe("E_BAD_INPUT");
  });
});
