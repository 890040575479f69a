/**
 * SAELens directories written by hand here (cfg.json text, safetensors header text and value
 * bytes) load and encode as the float64 reference says; save then load gives identical files;
 * bad directories are typed errors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { memoryFiles } from "../../src/io/files.js";
import { loadSae, parseSaeConfig } from "../../src/sae/saelens.js";
import { saveSae } from "../../src/sae/save.js";
import type { SaeConfig, SaeWeights } from "../../src/sae/sae.js";
import { rejected, thrown } from "../helpers/errors.js";
import { reference, worstError } from "./reference.js";

const root = mkdtempSync(join(tmpdir(), "tdb-sae-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const D_IN = 6;
const D_SAE = 16;
const ROWS = 7;
const rng = new Rng(3);
/** Values m/64 with |m| < 128: exact in float32 and in bfloat16. */
const values = (n: number) => Float32Array.from({ length: n }, () => (rng.int(255) - 127) / 64);
const W: Required<Pick<SaeWeights, "W_enc" | "W_dec" | "b_enc" | "b_dec" | "threshold">> = {
  W_enc: values(D_IN * D_SAE),
  W_dec: values(D_SAE * D_IN),
  b_enc: values(D_SAE),
  b_dec: values(D_IN),
  threshold: Float32Array.from(values(D_SAE), (v) => Math.abs(v) / 2),
};
const x = Float32Array.from({ length: ROWS * D_IN }, () => 3 * (rng.uniform() - 0.4));

/** A safetensors file: the header text as given (offsets typed in the test), then the raw bytes. */
function safetensors(header: string, parts: readonly Uint8Array[]): Uint8Array {
  const h = new TextEncoder().encode(header);
  const size = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(8 + h.length + size);
  out[0] = h.length & 0xff;
  out[1] = h.length >> 8;
  out.set(h, 8);
  let at = 8 + h.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const f32bytes = (a: Float32Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
/** bfloat16 bytes: the high half of each float32 (exact for the m/64 values above). */
const bf16bytes = (a: Float32Array) => {
  const u = new Uint32Array(Float32Array.from(a).buffer);
  return new Uint8Array(new Uint16Array(Array.from(u, (v) => v >>> 16)).buffer);
};

// F32, offsets in the order written: W_dec, W_enc, b_dec, b_enc
const n = { enc: 4 * D_IN * D_SAE, dec: 4 * D_SAE * D_IN, bdec: 4 * D_IN, benc: 4 * D_SAE };
const topkHeader =
  `{"W_dec":{"dtype":"F32","shape":[${D_SAE},${D_IN}],"data_offsets":[0,${n.dec}]},` +
    `"W_enc":{"dtype":"F32","shape":[${D_IN},${D_SAE}],"data_offsets":[${n.dec},${n.dec + n.enc}]},` +
    `"b_dec":{"dtype":"F32","shape":[${D_IN}],"data_offsets":[${n.dec + n.enc},${n.dec + n.enc + n.bdec}]},` +
    `"b_enc":{"dtype":"F32","shape":[${D_SAE}],"data_offsets":[${n.dec + n.enc + n.bdec},${n.dec + n.enc + n.bdec + n.benc}]}}`;
const topkWeights = safetensors(topkHeader, [f32bytes(W.W_dec), f32bytes(W.W_enc), f32bytes(W.b_dec), f32bytes(W.b_enc)],
);
// SAELens 5 wrote TopK SAEs as "standard" with activation_fn_str "topk"
const topkCfg = `{"architecture": "standard", "d_in": ${D_IN}, "d_sae": ${D_SAE}, "dtype": "float32", "device": "cpu",
  "model_name": "tdb:brown-small", "hook_name": "blocks.2.hook_mlp_out", "hook_layer": 2, "hook_head_index": null,
  "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}, "apply_b_dec_to_input": true,
  "finetuning_scaling_factor": false, "context_size": 128, "prepend_bos": true, "normalize_activations": "none",
  "sae_lens_training_version": "5.5.0"}`;
const topkConfig: SaeConfig = { architecture: "topk", dIn: D_IN, dSae: D_SAE, k: 3 };

// BF16, SAELens 6 layout (metadata nested, no b_dec subtraction), a gap-free hand layout
const b = { enc: 2 * D_IN * D_SAE, dec: 2 * D_SAE * D_IN, bdec: 2 * D_IN, vec: 2 * D_SAE };
const jumpWeights = safetensors(
  `{"W_enc":{"dtype":"BF16","shape":[${D_IN},${D_SAE}],"data_offsets":[0,${b.enc}]},` +
    `"b_enc":{"dtype":"BF16","shape":[${D_SAE}],"data_offsets":[${b.enc},${b.enc + b.vec}]},` +
    `"threshold":{"dtype":"BF16","shape":[${D_SAE}],"data_offsets":[${b.enc + b.vec},${b.enc + 2 * b.vec}]},` +
    `"W_dec":{"dtype":"BF16","shape":[${D_SAE},${D_IN}],"data_offsets":[${b.enc + 2 * b.vec},${b.enc + 2 * b.vec + b.dec}]},` +
    `"b_dec":{"dtype":"BF16","shape":[${D_IN}],"data_offsets":[${b.enc + 2 * b.vec + b.dec},${b.enc + 2 * b.vec + b.dec + b.bdec}]}}`,
  [bf16bytes(W.W_enc), bf16bytes(W.b_enc), bf16bytes(W.threshold), bf16bytes(W.W_dec), bf16bytes(W.b_dec)],
);
const jumpCfg = `{"architecture": "jumprelu", "d_in": ${D_IN}, "d_sae": ${D_SAE}, "dtype": "bfloat16", "device": "cpu",
  "apply_b_dec_to_input": false, "normalize_activations": "none", "reshape_activations": "none",
  "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.4.hook_resid_post", "hook_layer": 4}}`;
const jumpConfig: SaeConfig = { architecture: "jumprelu", dIn: D_IN, dSae: D_SAE, applyBDecToInput: false };

const enc = (s: string) => new TextEncoder().encode(s);
const topkFiles = () => memoryFiles("hand", { "cfg.json": enc(topkCfg), "sae_weights.safetensors": topkWeights });

describe("hand-written SAELens directories", () => {
  it("SAELens 5 topk (F32) loads and encodes as the float64 reference says", async () => {
    const sae = await loadSae(topkFiles(), { compute: "js" });
    expect(sae.config).toMatchObject({ architecture: "topk", k: 3, hookName: "blocks.2.hook_mlp_out", hookLayer: 2, modelName: "tdb:brown-small" });
    const ref = reference(topkConfig, W, x);
    expect(worstError(await sae.encode(x), ref.latents)).toBeLessThan(1e-5);
    expect(worstError((await sae.forward(x)).reconstruction, ref.recons)).toBeLessThan(1e-5);
    for (const row of ref.latents) expect(row.filter((v) => v > 0).length).toBeGreaterThan(0);
  });

  it("SAELens 6 jumprelu (BF16, metadata nested) loads from a directory and encodes as the reference says", async () => {
    const dir = join(root, "hub", "layer_4");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "cfg.json"), jumpCfg);
    writeFileSync(join(dir, "sae_weights.safetensors"), jumpWeights);
    const sae = await loadSae(join(root, "hub"), { subfolder: "layer_4", compute: "onnx" });
    expect(sae.config).toMatchObject({ architecture: "jumprelu", applyBDecToInput: false, hookName: "blocks.4.hook_resid_post", hookLayer: 4, dtype: "bfloat16" });
    const ref = reference(jumpConfig, W, x);
    expect(worstError(await sae.encode(x), ref.latents)).toBeLessThan(1e-5);
    expect(worstError(await sae.decode(Float32Array.from(ref.latents.flat())), ref.recons)).toBeLessThan(1e-5);
    await sae.dispose();
  });
});

describe("save and load", () => {
  it("save then load gives identical files and identical weights", async () => {
    const sae = await loadSae(topkFiles());
    const a = join(root, "a");
    const bDir = join(root, "b");
    await saveSae(sae, a);
    const again = await loadSae(a);
    await again.save(bDir); // the method: same writer, loaded on first use
    for (const f of ["cfg.json", "sae_weights.safetensors"]) expect(readFileSync(join(bDir, f)).equals(readFileSync(join(a, f)))).toBe(true);
    for (const name of ["W_enc", "W_dec", "b_enc", "b_dec"] as const) expect([...again.weights[name]!]).toEqual([...W[name]]);
    const cfg = JSON.parse(readFileSync(join(a, "cfg.json"), "utf8")) as Record<string, unknown>;
    expect(cfg).toMatchObject({ architecture: "topk", k: 3, activation_fn_kwargs: { k: 3 }, hook_name: "blocks.2.hook_mlp_out", d_in: D_IN, context_size: 128 });
    // the reference writer's layout: the hand-written file with its header padded to 8 bytes
    const header = new TextDecoder().decode(topkWeights.subarray(8, 8 + topkHeader.length));
    const padded = safetensors(header + " ".repeat((8 - (header.length % 8)) % 8), [topkWeights.subarray(8 + header.length)]);
    expect(readFileSync(join(a, "sae_weights.safetensors")).equals(Buffer.from(padded))).toBe(true);
  });

  it("a stored expected_average_only_in scale is folded on save (SAELens's layout), same function", async () => {
    const scaled = await loadSae(
      memoryFiles("scaled", { "cfg.json": enc(topkCfg.replace('"normalize_activations": "none"', '"normalize_activations": "expected_average_only_in"')), "sae_weights.safetensors": topkWeights }),
      { normScalingFactor: 4, compute: "js" },
    );
    const dir = join(root, "scaled");
    await saveSae(scaled, dir);
    const back = await loadSae(dir, { compute: "js" });
    expect(back.config.normalizeActivations).toBe("none");
    const ref = reference({ ...topkConfig, normalizeActivations: "expected_average_only_in", normScalingFactor: 4 }, W, x);
    expect(worstError((await back.forward(x)).reconstruction, ref.recons)).toBeLessThan(1e-5);
    expect(worstError(await back.encode(x), ref.latents)).toBeLessThan(1e-5);
  });
});

describe("bad directories", () => {
  const load = (cfg: string, weights: Uint8Array = topkWeights) => loadSae(memoryFiles("bad", { "cfg.json": enc(cfg), "sae_weights.safetensors": weights }));

  it("an unknown architecture is E_SAE_CONFIG naming it and the known ones", async () => {
    const e = await rejected(load(topkCfg.replace('"architecture": "standard"', '"architecture": "matryoshka"')));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.value).toBe("matryoshka");
    expect(e.allowed).toEqual(["standard", "topk", "jumprelu", "gated"]);
  });

  it("d_in disagreeing with the tensors is E_SAE_CONFIG", async () => {
    const e = await rejected(load(topkCfg.replace(`"d_in": ${D_IN}`, `"d_in": ${D_IN + 1}`)));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.message).toMatch(/W_enc is \[6, 16\], but d_in 7/);
    expect(e.value).toEqual([D_IN, D_SAE]);
    expect(e.allowed).toEqual([D_IN + 1, D_SAE]);
  });

  it("a missing tensor is E_SAE_CONFIG", async () => {
    const e = await rejected(load(topkCfg.replace('"architecture": "standard"', '"architecture": "jumprelu"').replace('"activation_fn_str": "topk"', '"activation_fn_str": "relu"')));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.message).toMatch(/no tensor threshold/);
  });

  it("a corrupt safetensors file is E_SAFETENSORS", async () => {
    expect((await rejected(load(topkCfg, topkWeights.subarray(0, topkWeights.length - 1)))).code).toBe("E_SAFETENSORS");
  });

  it("an unknown normalize_activations is E_SAE_CONFIG with the allowed ones", async () => {
    const e = await rejected(load(topkCfg.replace('"normalize_activations": "none"', '"normalize_activations": "whiten"')));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.allowed).toEqual(["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"]);
  });

  it("cfg.json that is not JSON is E_SAE_CONFIG; a missing file E_MISSING_FILE", async () => {
    expect((await rejected(load("{nope"))).code).toBe("E_SAE_CONFIG");
    expect((await rejected(loadSae(memoryFiles("x", { "cfg.json": enc(topkCfg) })))).code).toBe("E_MISSING_FILE");
    expect((await rejected(loadSae(join(root, "nothing-here")))).code).toMatch(/E_MISSING_FILE|E_FILE_SYSTEM|E_OFFLINE/);
  });

  it("a topk SAE without k is E_SAE_CONFIG", () => {
    expect(thrown(() => parseSaeConfig({ architecture: "topk", d_in: 4, d_sae: 8 })).code).toBe("E_SAE_CONFIG");
  });
});
