/**
 * SAEs in the forward pass of a generated 2-layer model, checked against the independent float64
 * forward (test/reference) with the SAE computed here in float64: SAE hooks in the cache,
 * splicing without the error term, latent edits (alone, after an upstream edit, at two hooks),
 * the identity edit, variants against separate runs, batch rows, and bad input.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/base/random.js";
import { steer, zeroAttention, zeroHead, zeroNeuron, type Edit } from "../../src/intervene/edits.js";
import type { Model } from "../../src/model/model.js";
import { scaleLatent, setLatent, zeroLatent, type LatentEdit } from "../../src/sae/latent-edits.js";
import { Sae } from "../../src/sae/sae.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { rejected } from "../helpers/errors.js";
import { maxAbsDiff, useTestModel, type TestModel } from "../helpers/models.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";

const C = TINY_GPT2; // 2 layers, 4 heads, d_model 64, d_mlp 256, vocab 512
const TOL = 2e-4;

let tm: TestModel;
let model: Model;
useTestModel({ config: C, seed: 5 }, (t, m) => ((tm = t), (model = m)));

function rowsFor(lengths: number[], seed: number): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => rng.int(C.vocab_size)));
}

/** A standard SAE with random weights, scaled so that some but not all latents fire. */
function makeSae(dIn: number, dSae: number, seed: number, hookName?: string, encScale = 2): Sae {
  const rng = new Rng(seed);
  const u = (n: number, s: number, o = 0) => Float32Array.from({ length: n }, () => o + s * (2 * rng.uniform() - 1));
  const e = encScale / Math.sqrt(dIn);
  return Sae.create(
    { architecture: "standard", dIn, dSae, ...(hookName ? { hookName } : {}) },
    { W_enc: u(dIn * dSae, e), W_dec: u(dSae * dIn, 0.3), b_enc: u(dSae, 0.1, 0.05), b_dec: u(dIn, 0.05) },
  );
}

/** The SAE's forward rule in float64 (standard, no normalisation), written here from its definition. */
function f64(sae: Sae) {
  const { W_enc, W_dec, b_enc, b_dec } = sae.weights;
  const { dIn, dSae } = sae;
  const encode = (x: ArrayLike<number>, off = 0): Float64Array => {
    const z = new Float64Array(dSae);
    for (let j = 0; j < dSae; j++) {
      let s = b_enc![j]!;
      for (let i = 0; i < dIn; i++) s += (x[off + i]! - b_dec[i]!) * W_enc[i * dSae + j]!;
      z[j] = Math.max(0, s);
    }
    return z;
  };
  const decode = (z: ArrayLike<number>): Float64Array => {
    const out = Float64Array.from(b_dec);
    for (let j = 0; j < dSae; j++) if (z[j] !== 0) for (let i = 0; i < dIn; i++) out[i]! += z[j]! * W_dec[j * dIn + i]!;
    return out;
  };
  /** Rows x d_in (one per position) -> latents, reconstructions. */
  const rows = (x: ArrayLike<number>, n: number) => {
    const z: Float64Array[] = [];
    const r: Float64Array[] = [];
    for (let p = 0; p < n; p++) {
      z.push(encode(x, p * dIn));
      r.push(decode(z[p]!));
    }
    return { z, r };
  };
  /** x' = x + (z' - z) W_dec at the given positions of a [S, d_in] block starting at `off`, in place. */
  const editInPlace = (t: Float64Array, off: number, positions: number[], edit: (z: Float64Array) => Float64Array) => {
    for (const p of positions) {
      const o = off + p * dIn;
      const z = encode(t, o);
      const zNew = edit(z.slice());
      for (let j = 0; j < dSae; j++) {
        const dz = zNew[j]! - z[j]!;
        if (dz !== 0) for (let i = 0; i < dIn; i++) t[o + i]! += dz * W_dec[j * dIn + i]!;
      }
    }
  };
  return { encode, decode, rows, editInPlace };
}

/** Reference logits of right-padded rows; `onHook` may edit hook_embed, attn.hook_pattern and mlp.hook_post. */
function refRun(rows: number[][], opts: Parameters<typeof gpt2Reference>[4] = {}) {
  const S = Math.max(...rows.map((r) => r.length));
  const padded = rows.map((r) => [...r, ...new Array<number>(S - r.length).fill(0)]);
  const mask = rows.map((r) => [...r.map(() => 1), ...new Array<number>(S - r.length).fill(0)]);
  return gpt2Reference(C, tm.weights, padded, mask, opts);
}

/** Max |a - b| over the real positions of [batch, pos, V] logits of rows of these lengths. */
function logitDiff(a: ArrayLike<number>, b: ArrayLike<number>, lengths: number[], S: number, V = C.vocab_size): number {
  return maxAbsDiff(a, b, (i) => {
    const pos = Math.floor(i / V) % S;
    const row = Math.floor(i / (V * S));
    return pos < lengths[row]!;
  });
}

const POST0 = "blocks.0.mlp.hook_post";
const POST1 = "blocks.1.mlp.hook_post";
const saePost0 = makeSae(C.n_inner!, 96, 1, POST0);
const saePost1 = makeSae(C.n_inner!, 80, 2, POST1);
const saeZ = makeSae(C.n_embd, 40, 3, "blocks.0.attn.hook_z");
const saeResid = makeSae(C.n_embd, 48, 4, "blocks.1.hook_resid_pre");

/** The latent of `sae` most active at position p of the [S, d_in] block. */
function activeLatent(sae: Sae, t: ArrayLike<number>, p: number): number {
  const z = f64(sae).encode(t, p * sae.dIn);
  let best = 0;
  for (let j = 1; j < z.length; j++) if (z[j]! > z[best]!) best = j;
  expect(z[best]!).toBeGreaterThan(0.1);
  return best;
}

describe("trace with saes", () => {
  it("adds the five SAELens hooks per SAE (hook_z read flattened) and leaves the logits unchanged", async () => {
    const rows = rowsFor([9, 5], 1);
    const clean = await model.trace(rows, { hooks: [] });
    const t = await model.trace(rows, { hooks: [], saes: [saeResid, saePost0, saeZ] });
    expect(maxAbsDiff(t.logits.data, clean.logits.data)).toBeLessThanOrEqual(1e-6);
    const keys = [...t.cache.keys()];
    // forward order: z (block 0 attention), post (block 0 MLP), resid_pre of block 1; each hook then its five
    const sfx = ["hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"];
    expect(keys).toEqual(["blocks.0.attn.hook_z", POST0, "blocks.1.hook_resid_pre"].flatMap((h) => [h, ...sfx.map((s) => `${h}.${s}`)]));
    for (const sae of [saeResid, saePost0, saeZ]) {
      const h = sae.config.hookName!;
      const x = t.cache.get(h);
      const S = 9;
      const n = 2 * S;
      const input = t.cache.get(`${h}.hook_sae_input`);
      expect(input.dims).toEqual([2, S, sae.dIn]);
      expect(input.labels).toEqual(["batch", "pos", "d_in"]);
      expect(Array.from(input.data)).toEqual(Array.from(x.data));
      expect(t.cache.get(`${h}.hook_sae_acts_post`).dims).toEqual([2, S, sae.dSae]);
      const ref = f64(sae).rows(x.data, n);
      const post = t.cache.get(`${h}.hook_sae_acts_post`).data;
      const pre = t.cache.get(`${h}.hook_sae_acts_pre`).data;
      const recons = t.cache.get(`${h}.hook_sae_recons`).data;
      const error = t.cache.get(`${h}.hook_sae_error`).data;
      let active = 0;
      for (let p = 0; p < n; p++) {
        for (let j = 0; j < sae.dSae; j++) {
          expect(Math.abs(post[p * sae.dSae + j]! - ref.z[p]![j]!)).toBeLessThan(1e-4);
          expect(Math.max(0, pre[p * sae.dSae + j]!)).toBeCloseTo(post[p * sae.dSae + j]!, 6);
          if (ref.z[p]![j]! > 0) active++;
        }
        for (let i = 0; i < sae.dIn; i++) {
          expect(Math.abs(recons[p * sae.dIn + i]! - ref.r[p]![i]!)).toBeLessThan(1e-4);
          expect(Math.abs(error[p * sae.dIn + i]! - (x.data[p * sae.dIn + i]! - ref.r[p]![i]!))).toBeLessThan(1e-4);
        }
      }
      expect(active).toBeGreaterThan(n);
      expect(active).toBeLessThan(n * sae.dSae);
    }
  });

  it("with positions, the SAE hooks hold the kept positions", async () => {
    const rows = rowsFor([9, 5], 1);
    const t = await model.trace(rows, { hooks: [], positions: [0, -1], saes: [saePost0] });
    const x = t.cache.get(POST0);
    expect(x.dims).toEqual([2, 2, 256]);
    expect(t.cache.get(`${POST0}.hook_sae_acts_post`).dims).toEqual([2, 2, 96]);
    const z = f64(saePost0).encode(x.data, 3 * 256); // row 1, last padded position
    const got = t.cache.get(`${POST0}.hook_sae_acts_post`).data.subarray(3 * 96, 4 * 96);
    expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - z[j]!)))).toBeLessThan(1e-4);
  });

  it("takes a map hook -> SAE, for SAEs whose config names no hook", async () => {
    const anon = makeSae(C.n_embd, 32, 9);
    const t = await model.trace("hello", { hooks: [], saes: new Map([["blocks.0.hook_mlp_out", anon]]) });
    expect(t.cache.get("blocks.0.hook_mlp_out.hook_sae_recons").dims[2]).toBe(C.n_embd);
    const t2 = await model.trace("hello", { hooks: [], saes: { "blocks.1.hook_attn_out": anon } });
    expect(t2.cache.has("blocks.1.hook_attn_out.hook_sae_error")).toBe(true);
  });

  it("useErrorTerm: false splices the reconstructions in, each SAE reading the spliced run (float64 reference)", async () => {
    const rows = rowsFor([8, 6], 2);
    const t = await model.trace(rows, { hooks: [], saes: [saePost1, saePost0], useErrorTerm: false });
    const inputs = new Map<string, Float64Array>();
    const ref = refRun(rows, {
      onHook: (name: string, x: RefTensor) => {
        if (name !== POST0 && name !== POST1) return;
        inputs.set(name, x.data.slice());
        const sae = name === POST0 ? saePost0 : saePost1;
        const f = f64(sae);
        const n = x.data.length / sae.dIn;
        for (let p = 0; p < n; p++) x.data.set(f.decode(f.encode(x.data, p * sae.dIn)), p * sae.dIn);
      },
    });
    const clean = refRun(rows);
    const lengths = [8, 6];
    expect(logitDiff(t.logits.data, ref.logits.data, lengths, 8)).toBeLessThan(TOL);
    expect(logitDiff(t.logits.data, clean.logits.data, lengths, 8)).toBeGreaterThan(0.05);
    // the second SAE's input is its hook in the run where the first is spliced
    const in1 = t.cache.get(`${POST1}.hook_sae_input`).data;
    expect(maxAbsDiff(in1, inputs.get(POST1)!, (i) => Math.floor(i / 256) % 8 < lengths[Math.floor(i / (256 * 8))]!)).toBeLessThan(TOL);
    // downstream sees the reconstruction: the cached hook is it
    expect(Array.from(t.cache.get(POST0).data)).toEqual(Array.from(t.cache.get(`${POST0}.hook_sae_recons`).data));
  });

  it("bad SAEs and hooks are typed errors", async () => {
    const anon = makeSae(C.n_embd, 16, 10);
    let e = await rejected(model.trace("hi", { saes: [anon] }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(model.trace("hi", { saes: [makeSae(63, 16, 11, "blocks.0.hook_resid_pre")] }));
    expect(e.code).toBe("E_SAE_CONFIG");
    expect(e.value).toBe(63);
    expect(e.allowed).toBe(64);
    e = await rejected(model.trace("hi", { saes: [makeSae(64, 16, 11, "blocks.0.mlp.hook_post")] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_SAE_CONFIG", 64, 256]);
    const perHead = Sae.create({ ...anon.config, dIn: 16, hookName: "blocks.0.attn.hook_z", hookHeadIndex: 2 }, { ...anon.weights, W_enc: new Float32Array(16 * 16), W_dec: new Float32Array(16 * 16), b_dec: new Float32Array(16) });
    expect((await rejected(model.trace("hi", { saes: [perHead] }))).code).toBe("E_SAE_CONFIG");
    e = await rejected(model.trace("hi", { saes: { "blocks.0.hook_nonsense": anon } }));
    expect(e.code).toBe("E_UNKNOWN_HOOK");
    e = await rejected(model.trace("hi", { saes: { "blocks.7.hook_resid_pre": anon } }));
    expect(e.code).toBe("E_LAYER_RANGE");
    e = await rejected(model.trace("hi", { saes: { "blocks.0.attn.hook_pattern": anon } }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(model.trace("hi", { saes: [saePost0, makeSae(256, 8, 12, POST0)] }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(model.trace("hi", { saes: [{ config: { hookName: POST0 } } as unknown as Sae] }));
    expect(e.code).toBe("E_BAD_INPUT");
    e = await rejected(model.trace("hi", { saes: [saePost0], useErrorTerm: "no" as unknown as boolean }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(model.trace("hi", { saes: [saePost0], useErrorTerm: false, positions: [-1] }));
    expect(e.code).toBe("E_BAD_OPTION");
    // an SAE hook that was not attached
    const t = await model.trace("hi", { hooks: [POST0] });
    expect(() => t.cache.get(`${POST0}.hook_sae_acts_post`)).toThrow(expect.objectContaining({ code: "E_NOT_CACHED" }));
  });
});

describe("latent edits in intervene", () => {
  it("latent ablation after an upstream edit equals the float64 reference with the edit made by hand", async () => {
    const row = rowsFor([8], 3)[0]!;
    const clean = await model.trace([row], { hooks: [POST0] });
    const j = activeLatent(saePost0, clean.cache.get(POST0).data, 7);
    const r = await model.intervene([row], [zeroAttention(0, 1), zeroLatent(saePost0, j, { positions: [3, -1] })]);
    const hand = (latentToo: boolean) =>
      refRun([row], {
        onHook: (name: string, t: RefTensor) => {
          if (name === "blocks.0.attn.hook_pattern") {
            // zeroAttention(0, 1): head 1's probabilities from every query, no renormalisation
            for (let q = 0; q < 8; q++) for (let k = 0; k < 8; k++) t.data[(1 * 8 + q) * 8 + k] = 0;
          }
          if (latentToo && name === POST0) f64(saePost0).editInPlace(t.data, 0, [3, 7], (z) => ((z[j] = 0), z));
        },
      });
    const want = hand(true);
    expect(logitDiff(r.edited.logits.data, want.logits.data, [8], 8)).toBeLessThan(TOL);
    // the latent edit matters beyond the upstream edit
    expect(logitDiff(r.edited.logits.data, hand(false).logits.data, [8], 8)).toBeGreaterThan(1e-2);
  });

  it("scale and set edits at two SAE hooks in one call equal the reference (two passes by hand)", async () => {
    const row = rowsFor([7], 4)[0]!;
    const clean = await model.trace([row], { hooks: [POST0, "blocks.1.hook_resid_pre"] });
    const j = activeLatent(saePost0, clean.cache.get(POST0).data, 2);
    const k = activeLatent(saeResid, clean.cache.get("blocks.1.hook_resid_pre").data, 5);
    const edits = [scaleLatent(saePost0, j, 3), setLatent(saeResid, [k, 0], 1.5, { positions: [5] })];
    const r = await model.intervene([row], edits);
    const post = (name: string, t: RefTensor) => {
      if (name === POST0) f64(saePost0).editInPlace(t.data, 0, [0, 1, 2, 3, 4, 5, 6], (z) => ((z[j]! *= 3), z));
    };
    const pass1 = refRun([row], { onHook: post });
    const resid = pass1.cache.get("blocks.1.hook_resid_pre")!.data.slice();
    f64(saeResid).editInPlace(resid, 0, [5], (z) => ((z[k] = 1.5), (z[0] = 1.5), z));
    const want = refRun([row], { onHook: post, replaceResidPre: new Map([[1, { position: 5, vector: resid.subarray(5 * 64, 6 * 64) }]]) });
    expect(logitDiff(r.edited.logits.data, want.logits.data, [7], 7)).toBeLessThan(TOL);
    expect(logitDiff(r.edited.logits.data, pass1.logits.data, [7], 7)).toBeGreaterThan(1e-3);
  });

  it("an ordinary edit of the same hook applies before the SAE reads it when listed first, after it when listed after", async () => {
    const row = rowsFor([6], 8)[0]!;
    const R1 = "blocks.1.hook_resid_pre";
    const clean = await model.trace([row], { hooks: [R1] });
    const k = activeLatent(saeResid, clean.cache.get(R1).data, 4);
    const v = Array.from(new Rng(9).normalArray(64, 0, 0.5));
    const add = new Map([[1, v]]);
    const zk = (z: Float64Array) => ((z[k] = 0), z);
    // steer first: the SAE reads the steered value
    const before = await model.intervene([row], [steer(R1, v), zeroLatent(saeResid, k, { positions: [4] })]);
    const x1 = refRun([row], { addToResidPre: add }).cache.get(R1)!.data.slice();
    f64(saeResid).editInPlace(x1, 0, [4], zk);
    const want1 = refRun([row], { addToResidPre: add, replaceResidPre: new Map([[1, { position: 4, vector: x1.subarray(4 * 64, 5 * 64) }]]) });
    expect(logitDiff(before.edited.logits.data, want1.logits.data, [6], 6)).toBeLessThan(TOL);
    // steer after: the SAE reads the clean value, the steering adds on top of its edit
    const after = await model.intervene([row], [zeroLatent(saeResid, k, { positions: [4] }), steer(R1, v)]);
    const x2 = refRun([row]).cache.get(R1)!.data.slice();
    f64(saeResid).editInPlace(x2, 0, [4], zk);
    const vec2 = Array.from(x2.subarray(4 * 64, 5 * 64), (x, i) => x + v[i]!);
    const want2 = refRun([row], { addToResidPre: add, replaceResidPre: new Map([[1, { position: 4, vector: vec2 }]]) });
    expect(logitDiff(after.edited.logits.data, want2.logits.data, [6], 6)).toBeLessThan(TOL);
    expect(logitDiff(before.edited.logits.data, after.edited.logits.data, [6], 6)).toBeGreaterThan(1e-3);
  });

  it("latent ablation on hook_z equals hand-built set edits of each head's z", async () => {
    const row = rowsFor([7], 10)[0]!;
    const Z = "blocks.0.attn.hook_z";
    const clean = await model.trace([row], { hooks: [Z] });
    const x = Float64Array.from(clean.cache.get(Z).data); // [1, 7, 4, 16] = 7 rows of 64
    const j = activeLatent(saeZ, x, 5);
    f64(saeZ).editInPlace(x, 0, [2, 5], (z) => ((z[j] = 0), z));
    const sets: Edit[] = [];
    for (const p of [2, 5]) for (let h = 0; h < 4; h++) sets.push({ hook: Z, kind: "set", at: { head: h }, positions: [p], value: Array.from(x.subarray(p * 64 + h * 16, p * 64 + (h + 1) * 16)) });
    const hand = await model.intervene([row], sets);
    const r = await model.intervene([row], [zeroLatent(saeZ, j, { positions: [2, 5] })]);
    expect(logitDiff(r.edited.logits.data, hand.edited.logits.data, [7], 7)).toBeLessThan(1e-4);
    expect(logitDiff(r.edited.logits.data, r.clean.logits.data, [7], 7)).toBeGreaterThan(1e-3);
  });

  it("an identity edit (scale 1) keeps the logits within 1e-4 of the clean run", async () => {
    const rows = rowsFor([9, 4], 5);
    const all = Array.from({ length: 96 }, (_, i) => i);
    const r = await model.intervene(rows, [scaleLatent(saePost0, all, 1), scaleLatent(saeZ, [0, 1, 2], 1), scaleLatent(saeResid, [5], 1, { positions: [0, 1, 2, 3] })]);
    expect(logitDiff(r.edited.logits.data, r.clean.logits.data, [9, 4], 9)).toBeLessThanOrEqual(1e-4);
  });

  it("rows: an edit of one row leaves the other alone and equals that row run on its own", async () => {
    const rows = rowsFor([9, 5], 6);
    const clean = await model.trace([rows[1]!], { hooks: [POST0] });
    const j = activeLatent(saePost0, clean.cache.get(POST0).data, 4);
    const r = await model.intervene(rows, [zeroLatent(saePost0, j, { rows: [1] })]);
    const alone = await model.intervene([rows[1]!], [zeroLatent(saePost0, j)]);
    const V = C.vocab_size;
    expect(maxAbsDiff(r.edited.logits.data.subarray(0, 9 * V), r.clean.logits.data.subarray(0, 9 * V))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(r.edited.logits.data.subarray(9 * V, 14 * V), alone.edited.logits.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(alone.edited.logits.data, alone.clean.logits.data)).toBeGreaterThan(1e-3);
  });

  it("variants with latent edits (alone, with ordinary edits, at two hooks) equal separate runs", async () => {
    const prompt = rowsFor([8], 7)[0]!;
    const clean = await model.trace([prompt], { hooks: [POST0, "blocks.1.hook_resid_pre"] });
    const j = activeLatent(saePost0, clean.cache.get(POST0).data, 7);
    const k = activeLatent(saeResid, clean.cache.get("blocks.1.hook_resid_pre").data, 6);
    const variants = [
      [zeroLatent(saePost0, j)],
      [scaleLatent(saePost0, j, 3, { positions: [-1] })],
      [zeroAttention(0, 1), zeroLatent(saePost0, j)],
      [zeroNeuron(1, 5)],
      [],
      [zeroLatent(saeResid, k, { positions: [6] }), zeroLatent(saePost0, j)],
      [zeroHead(1, 2), setLatent(saeZ, 3, 2)],
    ];
    for (const shared of [[], [scaleLatent(saeResid, k, 0.5)], [zeroNeuron(0, 3, { rows: [0] }), zeroLatent(saePost0, 1)]]) {
      const r = await model.intervene([prompt], shared, { variants });
      expect(r.rows).toBe(variants.length);
      const changed: number[] = [];
      for (let i = 0; i < variants.length; i++) {
        const alone = await model.intervene([prompt], [...shared, ...variants[i]!]);
        expect(maxAbsDiff(r.edited.logitsAt({ batch: i }), alone.edited.logitsAt()), `variant ${i}`).toBeLessThan(1e-5);
        changed.push(maxAbsDiff(alone.edited.logitsAt(), alone.clean.logitsAt()));
      }
      // every variant but the empty one (without shared edits) changes the last position
      changed.forEach((c, i) => (i === 4 && shared.length === 0 ? expect(c).toBe(0) : expect(c).toBeGreaterThan(1e-4)));
    }
  });

  it("bad latent edits are typed errors", async () => {
    const p = "hello there";
    const cases: [LatentEdit[], string][] = [
      [[zeroLatent(saePost0, 96)], "E_INDEX_RANGE"],
      [[zeroLatent(saePost0, -1)], "E_INDEX_RANGE"],
      [[zeroLatent(saePost0, [])], "E_BAD_INPUT"],
      [[zeroLatent(makeSae(64, 8, 13, POST0), 0)], "E_SAE_CONFIG"],
      [[zeroLatent(makeSae(64, 8, 13), 0)], "E_BAD_OPTION"],
      [[zeroLatent(saePost0, 0, { hook: "blocks.0.mlp.hook_nope" as never })], "E_UNKNOWN_HOOK"],
      [[{ ...scaleLatent(saePost0, 0, 2), value: undefined }], "E_BAD_OPTION"],
      [[{ ...zeroLatent(saePost0, 0), op: "clamp" as never }], "E_BAD_OPTION"],
      [[zeroLatent(saePost0, 0, { positions: [40] })], "E_POSITION_RANGE"],
      [[zeroLatent(saePost0, 0, { rows: [3] })], "E_INDEX_RANGE"],
      [[zeroLatent(saePost0, 0), zeroLatent(makeSae(256, 96, 14, POST0), 0)], "E_BAD_OPTION"],
    ];
    for (const [edits, code] of cases) expect((await rejected(model.intervene(p, edits))).code, JSON.stringify(code)).toBe(code);
    const e = await rejected(model.intervene(p, [], { variants: [[zeroLatent(saePost0, 0, { rows: [0] })]] }));
    expect(e.code).toBe("E_BAD_OPTION");
    expect((await rejected(model.intervene(["a", "b"], [], { variants: [[zeroLatent(saePost0, 0)]] }))).code).toBe("E_BAD_INPUT");
  });
});
