/**
 * Sae encode/decode of every architecture and normalisation against a float64 reference written
 * here in plain loops (SAELens's forward rules), on random weights, in loops and in onnxruntime.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { ONNX_MIN_MACS, Sae, estimateNormScalingFactor, type SaeArchitecture, type SaeConfig, type SaeNormalization, type SaeWeights } from "../../src/sae/sae.js";
import { rejected, thrown } from "../helpers/errors.js";
import { reference, worstError } from "./reference.js";

const D_IN = 12;
const D_SAE = 40;
const ROWS = 9;

function randomArray(rng: Rng, n: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => offset + scale * (2 * rng.uniform() - 1));
}

function randomWeights(seed: number): Required<SaeWeights> {
  const rng = new Rng(seed);
  return {
    W_enc: randomArray(rng, D_IN * D_SAE, 0.5),
    W_dec: randomArray(rng, D_SAE * D_IN, 0.5),
    b_enc: randomArray(rng, D_SAE, 0.2),
    b_dec: randomArray(rng, D_IN, 0.3),
    threshold: randomArray(rng, D_SAE, 0.4, 0.2), // some negative: ReLU still applies
    b_gate: randomArray(rng, D_SAE, 0.3),
    r_mag: randomArray(rng, D_SAE, 0.5),
    b_mag: randomArray(rng, D_SAE, 0.3),
  };
}

function expectClose(actual: Float32Array, expected: number[][], tol: number): void {
  expect(worstError(actual, expected)).toBeLessThan(tol);
}

const x = randomArray(new Rng(5), ROWS * D_IN, 2, 0.3);
const weights = randomWeights(1);
const configs: Record<SaeArchitecture, SaeConfig> = {
  standard: { architecture: "standard", dIn: D_IN, dSae: D_SAE },
  topk: { architecture: "topk", dIn: D_IN, dSae: D_SAE, k: 5 },
  jumprelu: { architecture: "jumprelu", dIn: D_IN, dSae: D_SAE },
  gated: { architecture: "gated", dIn: D_IN, dSae: D_SAE },
};

describe.each(["js", "onnx"] as const)("compute %s", (compute) => {
  for (const arch of ["standard", "topk", "jumprelu", "gated"] as const) {
    it(`${arch}: encode and decode equal the float64 reference`, async () => {
      const sae = Sae.create(configs[arch], weights, { compute });
      const ref = reference(configs[arch], weights, x);
      const z = await sae.encode(x, ROWS);
      expectClose(z, ref.latents, 1e-5);
      expectClose(await sae.encodePre(x), ref.pre, 1e-5);
      expectClose(await sae.decode(z, ROWS), ref.recons, 1e-5);
      // the reference's own latents decode the same: decode does not depend on encode's state
      expectClose(await sae.decode(Float32Array.from(ref.latents.flat()), ROWS), ref.recons, 1e-5);
      const active = ref.latents.flat().filter((v) => v > 0).length;
      expect(active).toBeGreaterThan(0);
      expect(active).toBeLessThan(ROWS * D_SAE);
      if (arch === "topk") for (const row of ref.latents) expect(row.filter((v) => v > 0).length).toBeLessThanOrEqual(5);
      await sae.dispose();
    });
  }

  it("apply_b_dec_to_input false leaves the input as is", async () => {
    const cfg: SaeConfig = { ...configs.standard, applyBDecToInput: false };
    const sae = Sae.create(cfg, weights, { compute });
    expectClose(await sae.encode(x), reference(cfg, weights, x).latents, 1e-5);
    await sae.dispose();
  });
});

describe("topk selection", () => {
  it("keeps the k largest, ties to the lower index, ReLU on what is kept (closed form)", async () => {
    const eye = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
    const sae = Sae.create(
      { architecture: "topk", dIn: 4, dSae: 4, k: 2, applyBDecToInput: false },
      { W_enc: eye, W_dec: eye, b_enc: new Float32Array(4), b_dec: new Float32Array(4) },
      { compute: "js" },
    );
    const z = await sae.encode(new Float32Array([1, 3, 3, 2, 2, 2, 2, -1, -1, -2, -3, -4, 0.5, -1, 4, 0.5, 2, 2, 3, 0]));
    expect([...z]).toEqual([0, 3, 3, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0.5, 0, 4, 0, 2, 0, 3, 0]);
  });
});

describe("compute auto", () => {
  it(`above ONNX_MIN_MACS runs in onnxruntime and equals the float64 reference`, async () => {
    const dIn = 64;
    const dSae = 512;
    const rows = 130; // 4.26M multiply-adds >= 2^22
    const rng = new Rng(9);
    const w = { W_enc: randomArray(rng, dIn * dSae, 0.2), W_dec: randomArray(rng, dSae * dIn, 0.2), b_enc: randomArray(rng, dSae, 0.1), b_dec: randomArray(rng, dIn, 0.1) };
    const cfg: SaeConfig = { architecture: "standard", dIn, dSae };
    const big = randomArray(rng, rows * dIn);
    expect(rows * dIn * dSae).toBeGreaterThanOrEqual(ONNX_MIN_MACS);
    const sae = Sae.create(cfg, w);
    const ref = reference(cfg, w, big);
    expectClose(await sae.encode(big, rows), ref.latents, 1e-5);
    expectClose(await sae.decode(Float32Array.from(ref.latents.flat()), rows), ref.recons, 1e-5);
    await sae.dispose();
  });
});

describe("normalisations", () => {
  for (const norm of ["expected_average_only_in", "constant_norm_rescale", "layer_norm"] as const) {
    it(`${norm}: forward equals the float64 reference`, async () => {
      const cfg: SaeConfig = { ...configs.jumprelu, normalizeActivations: norm, normScalingFactor: 0.37 };
      const sae = Sae.create(cfg, weights, { compute: "js" });
      const ref = reference(cfg, weights, x);
      const { latents, reconstruction } = await sae.forward(x, ROWS);
      expectClose(latents, ref.latents, 1e-5);
      expectClose(reconstruction, ref.recons, 1e-5);
    });
  }

  it("per-row normalisations need the input to decode", async () => {
    const sae = Sae.create({ ...configs.standard, normalizeActivations: "layer_norm" }, weights);
    const z = await sae.encode(x);
    expect((await rejected(sae.decode(z))).code).toBe("E_BAD_OPTION");
  });

  it("estimateNormScalingFactor makes the mean row norm sqrt(d_in)", () => {
    const s = estimateNormScalingFactor(x, D_IN);
    let total = 0;
    for (let r = 0; r < ROWS; r++) {
      let ss = 0;
      for (let i = 0; i < D_IN; i++) ss += (s * x[r * D_IN + i]!) ** 2;
      total += Math.sqrt(ss);
    }
    expect(total / ROWS).toBeCloseTo(Math.sqrt(D_IN), 5);
  });

  it("folding the scale into the weights keeps the function (SAELens's fold)", async () => {
    const sae = Sae.create({ ...configs.standard, normalizeActivations: "expected_average_only_in", normScalingFactor: 2.5 }, weights, { compute: "js" });
    const folded = sae.foldNormScalingFactor();
    expect(folded.config.normalizeActivations).toBe("none");
    expect(folded.config.normScalingFactor).toBeUndefined();
    const a = await sae.forward(x);
    const b = await folded.forward(x);
    for (let i = 0; i < a.reconstruction.length; i++) expect(b.reconstruction[i]).toBeCloseTo(a.reconstruction[i]!, 4);
    for (let i = 0; i < a.latents.length; i++) expect(b.latents[i]).toBeCloseTo(a.latents[i]!, 4);
  });
});

describe("bad input", () => {
  it("a weight of the wrong length is E_SAE_CONFIG", () => {
    const e = thrown(() => Sae.create(configs.standard, { ...weights, b_enc: new Float32Array(D_SAE + 1) }));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.allowed).toBe(D_SAE);
  });

  it("a missing weight is E_SAE_CONFIG", () => {
    const { threshold: _, ...rest } = weights;
    expect(thrown(() => Sae.create(configs.jumprelu, rest as SaeWeights)).code).toBe("E_SAE_CONFIG");
  });

  it("an unknown architecture or normalisation, a bad k are E_SAE_CONFIG", () => {
    expect(thrown(() => Sae.create({ ...configs.standard, architecture: "mystery" as SaeArchitecture }, weights)).code).toBe("E_SAE_CONFIG");
    const e = thrown(() => Sae.create({ ...configs.standard, normalizeActivations: "whiten" as SaeNormalization }, weights));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.allowed).toContain("layer_norm");
    expect(thrown(() => Sae.create({ ...configs.topk, k: D_SAE + 1 }, weights)).code).toBe("E_SAE_CONFIG");
  });

  it("input that is not rows x d_in is E_BAD_INPUT", async () => {
    const sae = Sae.create(configs.standard, weights);
    expect((await rejected(sae.encode(new Float32Array(D_IN * 2 + 1)))).code).toBe("E_BAD_INPUT");
    expect((await rejected(sae.encode(x, ROWS + 1))).code).toBe("E_BAD_INPUT");
    expect((await rejected(sae.decode(new Float32Array(D_IN)))).code).toBe("E_BAD_INPUT");
  });
});
