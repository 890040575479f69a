/**
 * SAE latents as attribution nodes, checked against independent computations: activations by
 * the float64 SAE reference (test/sae/reference.ts) on the float64 model reference's hook
 * values; write magnitudes and direct effects in closed form; total effects by central finite
 * differences of the logit difference with the latent scaled by (1 +- eps) (the float64
 * reference for `mlp.hook_post`, the real model with an ordinary `add` edit for other hooks);
 * the decomposition "latents + decoder bias + error = x . dL/dx" against a finite difference of
 * the hook's value scaled at one position; traceUpstream from a latent by finite differences.
 */
import { describe, expect, it } from "vitest";
import type { AttributionNode, NodeTable } from "../../src/attribution/node-table.js";
import type { Model } from "../../src/model/model.js";
import { Sae, type SaeArchitecture, type SaeConfig } from "../../src/sae/sae.js";
import type { Edit } from "../../src/intervene/edits.js";
import type { HookName } from "../../src/hooks/names.js";
import { gpt2Config, TINY_GPT2 } from "../../src/synthetic/config.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { reference as saeReference } from "../sae/reference.js";
import { useTestModel, type TestModel } from "../helpers/models.js";
import { rejected } from "../helpers/errors.js";
import { uniform } from "../helpers/uniform.js";

let tm: TestModel;
let model: Model;
useTestModel({ config: TINY_GPT2, seed: 33 }, (t, m) => {
  tm = t;
  model = m;
});

const P = [5, 300, 41, 77, 130, 9, 250, 18];
const S = P.length;
const T = 100;
const D = 200;
const d = TINY_GPT2.n_embd;
const H = TINY_GPT2.n_head;
const dh = d / H;
const dm = TINY_GPT2.n_inner;
const V = TINY_GPT2.vocab_size;


/** A small random SAE on `hookName` (about half its latents active on typical inputs). */
function makeSae(architecture: SaeArchitecture, hookName: string, dIn: number, dSae: number, seed: number, extra: Partial<SaeConfig> = {}, encScale = 1): Sae {
  const r = uniform(seed);
  const a = encScale / Math.sqrt(dIn);
  return Sae.create(
    { architecture, dIn, dSae, hookName, ...(architecture === "topk" ? { k: 6 } : {}), ...extra },
    {
      W_enc: Float32Array.from({ length: dIn * dSae }, () => r() * a),
      W_dec: Float32Array.from({ length: dSae * dIn }, () => r() * 0.3),
      b_enc: Float32Array.from({ length: dSae }, () => r() * 0.1),
      b_dec: Float32Array.from({ length: dIn }, () => r() * 0.05),
      threshold: Float32Array.from({ length: dSae }, () => 0.02 + 0.02 * r()),
      b_gate: Float32Array.from({ length: dSae }, () => r() * 0.1),
      r_mag: Float32Array.from({ length: dSae }, () => r() * 0.5),
      b_mag: Float32Array.from({ length: dSae }, () => r() * 0.1),
    },
    { compute: "js" },
  );
}

const ref = (onHook?: (name: string, t: RefTensor) => void, lnFinalScale?: ArrayLike<number>) => gpt2Reference(tm.arch, tm.weights, [P], undefined, { onHook, lnFinalScale });
const refLogitDiff = (r: ReturnType<typeof ref>) => r.logits.data[(S - 1) * V + T]! - r.logits.data[(S - 1) * V + D]!;

/** Rows [S, width] of a reference hook as float32 (what the SAE reads). */
const refRows = (hook: string): Float32Array => Float32Array.from(ref().cache.get(hook)!.data);

/** d loss / d final resid at the last position with the final LN scale frozen, in closed form (zero elsewhere). */
function closedFormG(): number[] {
  const scale = ref().cache.get("ln_final.hook_scale")!.data;
  const wte = tm.weights.get("transformer.wte.weight")!.data;
  const lnw = tm.weights.get("transformer.ln_f.weight")!.data;
  const gw = Array.from({ length: d }, (_, i) => (wte[T * d + i]! - wte[D * d + i]!) * lnw[i]!);
  const mean = gw.reduce((a, b) => a + b, 0) / d;
  return gw.map((x) => (x - mean) / scale[S - 1]!);
}

const decRow = (sae: Sae, i: number) => sae.weights.W_dec.subarray(i * sae.dIn, (i + 1) * sae.dIn);
const latents = (t: NodeTable, hook: string) => t.nodes.filter((n) => n.type === "sae_latent" && n.hook === hook);
const close = (got: number, want: number, what: string, abs = 1e-4, rel = 2e-3) => expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(abs + rel * Math.abs(want));
/** The rows with the largest |total effect|. */
const topByTotal = (ns: AttributionNode[], n: number) => [...ns].sort((a, b) => Math.abs(b.totalEffect) - Math.abs(a.totalEffect)).slice(0, n);

describe("SAE latents on mlp.hook_post (mapped through W_out), against the float64 reference", () => {
  const hook = "blocks.0.mlp.hook_post";
  it("activation, write magnitude, direct effect, total effect; latents + bias + error = x . grad", async () => {
    const sae = makeSae("standard", hook, dm, 48, 1, {}, 4);
    const table = await model.attribute([P], { target: T, distractor: D, topK: 100000, nodeTypes: ["sae_latent"], saes: [sae] });
    expect(table.counts).toEqual({ mlp_neuron: 0, attention_head: 0, token_embedding: 0, sae_latent: S * 48 });
    const rows = latents(table, hook);
    const x = refRows(hook);
    const want = saeReference(sae.config, sae.weights, x);
    const active = want.latents.flat().filter((v) => v > 0).length;
    expect(rows).toHaveLength(active);
    expect(active).toBeGreaterThan(S * 5);
    const scale = ref().cache.get("ln_final.hook_scale")!.data;
    const g = closedFormG();
    const W_out = tm.weights.get("transformer.h.0.mlp.c_proj.weight")!.data; // [d_mlp, d_model]
    const written = (i: number) => {
      const w = new Float64Array(d);
      const row = decRow(sae, i);
      for (let j = 0; j < dm; j++) for (let o = 0; o < d; o++) w[o]! += row[j]! * W_out[j * d + o]!;
      return w;
    };
    /** d/de of the frozen-scale reference loss with `add(e)` applied to the hook's row t. */
    const fd = (t: number, add: (row: Float64Array, e: number) => void, eps = 1e-4) => {
      const run = (e: number) =>
        refLogitDiff(
          ref((name, tt) => {
            if (name === hook) add(tt.data.subarray(t * dm, (t + 1) * dm), e);
          }, scale),
        );
      return (run(eps) - run(-eps)) / (2 * eps);
    };
    for (const n of rows) {
      expect(n.id).toBe(`sae.${hook}.${n.index}@${n.position}`);
      expect(n.layer).toBe(0);
      const f = want.latents[n.position]![n.index!]!;
      close(n.activation, f, `${n.id} activation`);
      const w = written(n.index!);
      close(n.writeMagnitude, Math.abs(f) * Math.hypot(...w), `${n.id} write`);
      close(n.directEffect, n.position === S - 1 ? f * w.reduce((s2, v, o) => s2 + v * g[o]!, 0) : 0, `${n.id} direct`);
    }
    // Total effects by finite differences: the latent scaled by (1 + e) adds e f W_dec[i] to the hook.
    for (const n of topByTotal(rows, 6)) {
      const f = want.latents[n.position]![n.index!]!;
      const row = decRow(sae, n.index!);
      close(n.totalEffect, fd(n.position, (r, e) => row.forEach((v, j) => (r[j]! += e * f * v))), `${n.id} total`);
    }
    // The decomposition at every position, against d/de L(x[t] (1 + e)) and d/de L(x[t] + e b_dec).
    const terms = table.saeTerms!;
    expect(terms.map((s) => s.hook)).toEqual([hook]);
    let nonZero = 0;
    for (let t = 0; t < S; t++) {
      const sum = rows.filter((n) => n.position === t).reduce((s2, n) => s2 + n.totalEffect, 0);
      const xg = fd(t, (r, e) => r.forEach((v, j) => (r[j] = v * (1 + e))));
      close(sum + terms[0]!.biasEffect[t]! + terms[0]!.errorEffect[t]!, xg, `x . grad at ${t}`, 1e-4, 1e-3);
      close(terms[0]!.biasEffect[t]!, fd(t, (r, e) => r.forEach((v, j) => (r[j] = v + e * sae.weights.b_dec[j]!))), `bias term at ${t}`);
      if (Math.abs(xg) > 1e-3) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(S / 2);
  });

  it("the graph's gradient w.r.t. the hook, element by element (an identity SAE: total = (x + c) dL/dx)", async () => {
    const c = 100;
    const eye = new Float32Array(dm * dm);
    for (let j = 0; j < dm; j++) eye[j * dm + j] = 1;
    const id = Sae.create({ architecture: "standard", dIn: dm, dSae: dm, hookName: hook }, { W_enc: eye, W_dec: eye, b_enc: new Float32Array(dm).fill(c), b_dec: new Float32Array(dm) });
    const table = await model.attribute([P], { target: T, distractor: D, topK: 100000, nodeTypes: ["sae_latent"], saes: [id] });
    const rows = latents(table, hook);
    expect(rows).toHaveLength(S * dm);
    const scale = ref().cache.get("ln_final.hook_scale")!.data;
    const x = refRows(hook);
    const r = uniform(10);
    for (let q = 0; q < 12; q++) {
      const t = q < 4 ? S - 1 : Math.floor(((r() + 1) / 2) * S);
      const j = Math.floor(((r() + 1) / 2) * dm);
      const n = rows.find((m) => m.position === t && m.index === j)!;
      const eps = 1e-4;
      const run = (e: number) => refLogitDiff(ref((name, tt) => name === hook && (tt.data[t * dm + j]! += e), scale));
      const grad = (run(eps) - run(-eps)) / (2 * eps);
      close(n.activation, x[t * dm + j]! + c, `${n.id} activation`);
      close(n.totalEffect / n.activation, grad, `dL/dx[${t}, ${j}]`, 1e-5, 2e-3);
    }
  });
});

describe("SAE latents through the real model: several architectures, hooks and normalisations at once", () => {
  const saes = () => [
    makeSae("topk", "blocks.0.hook_mlp_out", d, 32, 2, { normalizeActivations: "expected_average_only_in", normScalingFactor: 3 }, 2),
    makeSae("standard", "blocks.1.hook_resid_mid", d, 32, 3, { normalizeActivations: "layer_norm" }),
    makeSae("jumprelu", "blocks.1.attn.hook_z", d, 24, 4, {}, 6),
    makeSae("standard", "blocks.0.hook_resid_pre", d, 16, 5, { applyBDecToInput: false, normalizeActivations: "constant_norm_rescale" }),
    makeSae("gated", "blocks.0.mlp.hook_post", dm, 24, 11, {}, 4),
  ];
  /** Hook-space multiplier of the decoder output at row t (what undoes the input normalisation). */
  const decScale = (sae: Sae, x: Float32Array, t: number) => {
    const w = sae.dIn;
    const row = Array.from(x.subarray(t * w, (t + 1) * w));
    const norm = sae.config.normalizeActivations ?? "none";
    if (norm === "expected_average_only_in") return 1 / sae.config.normScalingFactor!;
    if (norm === "constant_norm_rescale") return Math.hypot(...row) / Math.sqrt(w);
    if (norm === "layer_norm") {
      const mu = row.reduce((a, b) => a + b, 0) / w;
      return Math.sqrt(row.reduce((a, b) => a + (b - mu) ** 2, 0) / (w - 1)) + 1e-5;
    }
    return 1;
  };
  /** `add` edits putting `vec` (width d_in of the hook) at position t, scaled by e; hook_z needs one edit per head. */
  const addAt = (hook: string, vec: ArrayLike<number>, t: number, e: number): Edit[] =>
    hook.endsWith("attn.hook_z")
      ? Array.from({ length: H }, (_, h) => ({ hook: hook as HookName, kind: "add" as const, value: Array.from(vec).slice(h * dh, (h + 1) * dh), scale: e, at: { head: h }, positions: [t] }))
      : [{ hook: hook as HookName, kind: "add", value: vec, scale: e, positions: [t] }];
  const fdEdits = async (edits: (e: number) => Edit[], eps: number) => {
    const run = async (e: number) => (await model.intervene([P], edits(e))).edited.logitDiff(T, D);
    return ((await run(eps)) - (await run(-eps))) / (2 * eps);
  };

  it("activations (float64 SAE reference), totals and the decomposition by finite differences of the real model", async () => {
    const list = saes();
    const table = await model.attribute([P], { target: T, distractor: D, topK: 100000, detachFinalLnScale: false, saes: list });
    expect(table.counts.sae_latent).toBe(S * (32 + 32 + 24 + 16 + 24));
    expect(table.saeTerms!.map((s) => s.hook)).toEqual(list.map((s) => s.config.hookName));
    for (const [j, sae] of list.entries()) {
      const hook = sae.config.hookName!;
      const rows = latents(table, hook);
      const x = refRows(hook);
      const want = saeReference(sae.config, sae.weights, x);
      expect(rows.length, hook).toBe(want.latents.flat().filter((v) => v > 0).length);
      expect(rows.length, hook).toBeGreaterThan(S);
      for (const n of rows) close(n.activation, want.latents[n.position]![n.index!]!, `${n.id} activation`, 1e-4, 1e-3);
      // Totals: the latent scaled by (1 + e) adds e f W_dec[i] (times the decoder scale) at its position.
      for (const n of topByTotal(rows, 3)) {
        const c = n.activation * decScale(sae, x, n.position);
        const vec = Array.from(decRow(sae, n.index!), (v) => v * c);
        close(n.totalEffect, await fdEdits((e) => addAt(hook, vec, n.position, e), 1e-2), `${n.id} total`, 3e-4, 1e-2);
      }
      // latents + bias + error = x . dL/dx at a few positions: d/de L(x[t] (1 + e)).
      const terms = table.saeTerms![j]!;
      for (const t of [2, 5, S - 1]) {
        const sum = rows.filter((n) => n.position === t).reduce((s2, n) => s2 + n.totalEffect, 0) + terms.biasEffect[t]! + terms.errorEffect[t]!;
        const xt = Array.from(x.subarray(t * sae.dIn, (t + 1) * sae.dIn));
        close(sum, await fdEdits((e) => addAt(hook, xt, t, e), 1e-2), `${hook} x . grad at ${t}`, 3e-4, 1e-2);
      }
    }
  });

  it("direct effects in closed form (frozen final LayerNorm scale); node columns unchanged by the SAEs", async () => {
    const list = saes();
    const plain = await model.attribute([P], { target: T, distractor: D, topK: 30 });
    const table = await model.attribute([P], { target: T, distractor: D, topK: 30, saes: list });
    expect(plain.saeTerms).toBeUndefined();
    expect(Object.keys(plain.counts).sort()).toEqual(["attention_head", "mlp_neuron", "token_embedding"]);
    // The model's own nodes are the same numbers with or without SAEs.
    const byId = new Map(plain.nodes.map((n) => [n.id, n]));
    const shared = table.nodes.filter((n) => byId.has(n.id));
    expect(shared.length).toBeGreaterThan(5);
    for (const n of shared) expect(n).toEqual(byId.get(n.id));
    expect(table.tokenEffects).toEqual(plain.tokenEffects);
    expect(table.loss).toBe(plain.loss);
    const g = closedFormG();
    const W_O = tm.weights.get("transformer.h.1.attn.c_proj.weight")!.data; // [d, d] = [(head, d_head), d_model]
    const W_out = tm.weights.get("transformer.h.0.mlp.c_proj.weight")!.data; // [d_mlp, d_model]
    const full = await model.attribute([P], { target: T, distractor: D, topK: 100000, nodeTypes: ["sae_latent"], saes: list });
    let checked = 0;
    for (const sae of list) {
      const hook = sae.config.hookName!;
      const x = refRows(hook);
      for (const n of latents(full, hook)) {
        const c = n.activation * decScale(sae, x, n.position);
        let w = Array.from(decRow(sae, n.index!));
        const M = hook.endsWith("hook_z") ? W_O : hook.endsWith("mlp.hook_post") ? W_out : undefined;
        if (M) w = Array.from({ length: d }, (_, o) => w.reduce((s2, v, j) => s2 + v * M[j * d + o]!, 0));
        close(n.writeMagnitude, Math.abs(c) * Math.hypot(...w), `${n.id} write`, 1e-5, 1e-3);
        const direct = n.position === S - 1 ? c * w.reduce((s2, v, o) => s2 + v * g[o]!, 0) : 0;
        close(n.directEffect, direct, `${n.id} direct`, 1e-5, 1e-3);
        if (direct !== 0) checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
    // The mixed table keeps latents next to neurons, ranked together.
    expect(table.nodes.some((n) => n.type === "sae_latent")).toBe(true);
    expect(table.nodes.some((n) => n.type === "mlp_neuron")).toBe(true);
  });
});

describe("traceUpstream from an SAE latent", () => {
  it("the loss is the latent's pre-activation; upstream neurons, embeddings, patterns and latents by finite differences", async () => {
    const hook = "blocks.1.hook_mlp_out";
    const sae = makeSae("standard", hook, d, 32, 6, {}, 2);
    const upSae = makeSae("standard", "blocks.0.mlp.hook_post", dm, 48, 7, {}, 4);
    const t = 6;
    const latent = 11;
    const pre = (onHook?: (name: string, tt: RefTensor) => void) => {
      const x = Float32Array.from(ref(onHook).cache.get(hook)!.data);
      // The pre-activation in float64 from its definition, (x - b_dec) . W_enc[:, i] + b_enc[i].
      let s2 = sae.weights.b_enc![latent]!;
      for (let j = 0; j < d; j++) s2 += (x[t * d + j]! - sae.weights.b_dec[j]!) * sae.weights.W_enc[j * 32 + latent]!;
      return s2;
    };
    const table = await model.traceUpstream([P], { type: "sae_latent", sae, latent, position: t }, { topK: 8, saes: [upSae] });
    close(table.loss, pre(), "loss");
    expect(table.loss).toBeCloseTo(saeReference(sae.config, sae.weights, refRows(hook)).pre[t]![latent]!, 4);
    const upX = refRows("blocks.0.mlp.hook_post");
    const upF = saeReference(upSae.config, upSae.weights, upX).latents;
    let effective = 0;
    let cut = 0;
    for (const n of table.nodes) {
      const eps = 1e-4;
      let edit: (name: string, tt: RefTensor, e: number) => void;
      if (n.type === "mlp_neuron") edit = (name, tt, e) => name === `blocks.${n.layer}.mlp.hook_post` && (tt.data[n.position * dm + n.index!]! *= 1 + e);
      else if (n.type === "attention_head") edit = (name, tt, e) => name === `blocks.${n.layer}.attn.hook_pattern` && (tt.data[(n.head! * S + n.position) * S + n.keyPosition!]! *= 1 + e);
      else if (n.type === "token_embedding") edit = (name, tt, e) => name === "hook_embed" && tt.data.subarray(n.position * d, (n.position + 1) * d).forEach((v, j, a) => (a[j] = v * (1 + e)));
      else {
        const f = upF[n.position]![n.index!]!;
        close(n.activation, f, `${n.id} activation`);
        const row = decRow(upSae, n.index!);
        edit = (name, tt, e) => name === "blocks.0.mlp.hook_post" && row.forEach((v, j) => (tt.data[n.position * dm + j]! += e * f * v));
      }
      const fd = (pre((name, tt) => edit(name, tt, eps)) - pre((name, tt) => edit(name, tt, -eps))) / (2 * eps);
      close(n.totalEffect, fd, `${n.id} total`);
      if (Math.abs(fd) > 1e-3) effective++;
      // Nothing after the latent's position reaches it; layer-1 neurons reach it, but not through resid_mid.
      if (n.position > t) {
        expect([Math.abs(n.totalEffect), Math.abs(n.directEffect)], n.id).toEqual([0, 0]);
        cut++;
      }
      if (n.type === "mlp_neuron" && n.layer! >= 1) expect(Math.abs(n.directEffect), n.id).toBe(0);
    }
    expect(effective).toBeGreaterThan(3);
    expect(cut).toBeGreaterThan(0);
    expect(table.nodes.some((n) => n.type === "sae_latent" && n.totalEffect !== 0)).toBe(true);
  });

  it("normalised SAEs: the loss is the SAE's own pre-activation (per-row scale held), gated uses the magnitude path", async () => {
    for (const [arch, norm, hook] of [
      ["standard", "layer_norm", "blocks.1.hook_resid_pre"],
      ["standard", "constant_norm_rescale", "blocks.1.hook_resid_pre"],
      ["jumprelu", "expected_average_only_in", "blocks.1.hook_resid_pre"],
      ["topk", "none", "blocks.1.attn.hook_z"],
      ["standard", "none", "blocks.0.hook_attn_out"],
    ] as const) {
      const sae = makeSae(arch, hook, d, 16, 8, { normalizeActivations: norm, normScalingFactor: norm === "expected_average_only_in" ? 2.5 : undefined });
      const want = saeReference(sae.config, sae.weights, refRows(hook)).pre;
      for (const t of [3, S - 1]) {
        const up = await model.traceUpstream([P], { type: "sae_latent", sae, latent: 5, position: t }, { topK: 2 });
        close(up.loss, want[t]![5]!, `${arch} ${norm} at ${t}`);
      }
    }
    const r = uniform(9);
    const gated = Sae.create(
      { architecture: "gated", dIn: dm, dSae: 8, hookName: "blocks.0.mlp.hook_post" },
      {
        W_enc: Float32Array.from({ length: dm * 8 }, () => r() * 0.2),
        W_dec: Float32Array.from({ length: 8 * dm }, () => r() * 0.2),
        b_dec: Float32Array.from({ length: dm }, () => r() * 0.05),
        b_gate: Float32Array.from({ length: 8 }, () => r() * 0.1),
        r_mag: Float32Array.from({ length: 8 }, () => r() * 0.5),
        b_mag: Float32Array.from({ length: 8 }, () => r() * 0.1),
      },
    );
    const up = await model.traceUpstream([P], { type: "sae_latent", sae: gated, latent: 3, position: -1 }, { topK: 2 });
    close(up.loss, saeReference(gated.config, gated.weights, refRows("blocks.0.mlp.hook_post")).pre[S - 1]![3]!, "gated");
  });
});

describe("SAE latents: bad input", () => {
  it("d_in that does not match the hook, unknown or unsupported hooks, no hookName, bad latents", async () => {
    const opts = { target: T, distractor: D };
    let e = await rejected(model.attribute([P], { ...opts, saes: [makeSae("standard", "blocks.0.hook_mlp_out", dm, 8, 1)] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_SAE_CONFIG", dm, d]);
    e = await rejected(model.attribute([P], { ...opts, saes: [makeSae("standard", "blocks.0.mlp.hook_post", d, 8, 1)] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_SAE_CONFIG", d, dm]);
    e = await rejected(model.attribute([P], { ...opts, saes: [makeSae("standard", "blocks.0.hook_nonsense", d, 8, 1)] }));
    expect(e.code).toBe("E_UNKNOWN_HOOK");
    expect(e.value).toBe("blocks.0.hook_nonsense");
    e = await rejected(model.attribute([P], { ...opts, saes: [makeSae("standard", "blocks.0.attn.hook_q", d, 8, 1)] }));
    expect([e.code, e.value]).toEqual(["E_UNKNOWN_HOOK", "blocks.0.attn.hook_q"]);
    expect(e.allowed).toContain("blocks.<layer>.hook_mlp_out");
    e = await rejected(model.attribute([P], { ...opts, saes: [makeSae("standard", "blocks.7.hook_mlp_out", d, 8, 1)] }));
    expect(e.code).toBe("E_LAYER_RANGE");
    const noHook = Sae.create({ architecture: "standard", dIn: d, dSae: 4 }, { W_enc: new Float32Array(d * 4), W_dec: new Float32Array(4 * d), b_enc: new Float32Array(4), b_dec: new Float32Array(d) });
    e = await rejected(model.attribute([P], { ...opts, saes: [noHook] }));
    expect([e.code, e.value]).toEqual(["E_SAE_CONFIG", "missing"]);
    e = await rejected(model.traceUpstream([P], { type: "sae_latent", sae: noHook, latent: 0, position: 0 }));
    expect(e.code).toBe("E_SAE_CONFIG");
    const ok = makeSae("standard", "blocks.0.hook_mlp_out", d, 8, 1);
    e = await rejected(model.attribute([P], { ...opts, saes: [ok, makeSae("topk", "blocks.0.hook_mlp_out", d, 8, 2)] }));
    expect([e.code, e.value]).toEqual(["E_BAD_OPTION", "blocks.0.hook_mlp_out"]);
    e = await rejected(model.attribute([P], { ...opts, nodeTypes: ["sae_latent"] }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(model.traceUpstream([P], { type: "sae_latent", sae: ok, latent: 8, position: 0 }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_INDEX_RANGE", 8, [0, 7]]);
    e = await rejected(model.traceUpstream([P], { type: "sae_latent", sae: ok, latent: 0, position: S }));
    expect(e.code).toBe("E_POSITION_RANGE");
  });
});

describe("SAE latents on an attention-only model", () => {
  let attnOnly: Model;
  useTestModel({ config: gpt2Config({ n_layer: 2, n_head: 4, n_embd: 32, n_positions: 32, vocab_size: 300, attn_only: true }), seed: 21 }, (_, m) => {
    attnOnly = m;
  });
  it("an SAE on a missing MLP hook is E_HOOK_UNAVAILABLE; one on the residual stream works", async () => {
    const e = await rejected(attnOnly.attribute([[1, 2, 3, 4]], { target: 5, distractor: 6, saes: [makeSae("standard", "blocks.1.hook_mlp_out", 32, 8, 1)] }));
    expect([e.code, e.value]).toEqual(["E_HOOK_UNAVAILABLE", "blocks.1.hook_mlp_out"]);
    expect(e.allowed).toContain("blocks.1.hook_resid_post");
    const t = await attnOnly.attribute([[1, 2, 3, 4]], { target: 5, distractor: 6, nodeTypes: ["sae_latent"], saes: [makeSae("standard", "blocks.0.hook_resid_post", 32, 8, 1)] });
    expect(t.counts.sae_latent).toBe(4 * 8);
    expect(t.nodes.length).toBeGreaterThan(0);
  });
});
