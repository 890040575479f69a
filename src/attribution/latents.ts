/**
 * Sparse-autoencoder latents as attribution nodes. The attribution feature must not import
 * `src/sae/`, so it declares here the small structural interface ({@link SaeLike}) it needs; a
 * `Sae` satisfies it as it is.
 *
 * An SAE on hook `x` (any architecture) splits the hook's value at each position into latents
 * and an error term, with the error kept (the SAE spliced, the model unchanged):
 * `x = (f W_dec + b_dec) / s + mu + err`, where `s` and `mu` undo the SAE's input normalisation
 * (`s` = `normScalingFactor` for `expected_average_only_in`, the row's own scale for
 * `constant_norm_rescale` and `layer_norm`, 1 otherwise; `mu` = the row mean for `layer_norm`,
 * else 0). Latent `i` at position `t` therefore writes `f_i W_dec[i] / s_t` into the hook, and
 * `dL/df_i = dL/dx[t] . W_dec[i] / s_t`. For the per-row normalisations, `s_t` and `mu_t` are
 * the values computed from the traced input row and held constant (as the spliced SAE holds
 * them: they come from the input, not from the latents).
 *
 * Supported hooks: the residual stream (`hook_resid_pre`, `hook_resid_mid`, `hook_resid_post`),
 * `hook_attn_out` and `hook_mlp_out` (d_model: the write vector is the decoder row),
 * `mlp.hook_post` (d_mlp: the decoder row mapped through `W_out`) and `attn.hook_z`
 * (n_heads * d_head, flattened head-major as SAELens does: mapped through `W_O`).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { parseHookName, type HookName } from "../hooks/names.js";
import type { ModelRuntime } from "../runtime/runtime.js";

/** The config fields of an SAE that attribution reads (a `Sae`'s `config` has them). */
export interface SaeLikeConfig {
  /** Forward rule (SAELens's `architecture`: standard, topk, jumprelu, gated). */
  readonly architecture: string;
  /** Input width: the hook's last dimension (n_heads * d_head for `attn.hook_z`). */
  readonly dIn: number;
  /** Number of latents. */
  readonly dSae: number;
  /** Subtract `b_dec` from the input before encoding. [default: true] */
  readonly applyBDecToInput?: boolean;
  /** Input normalisation (SAELens's `normalize_activations`). [default: "none"] */
  readonly normalizeActivations?: string;
  /** `expected_average_only_in`'s input scale. [default: 1] */
  readonly normScalingFactor?: number;
  /** The hook the SAE reads, TransformerLens name (`blocks.1.hook_mlp_out`). */
  readonly hookName?: string;
  /** Head index of per-head SAEs (not supported by attribution), else undefined or null. */
  readonly hookHeadIndex?: number | null;
}

/** The weights of an SAE that attribution reads: float32, C order, SAELens's names and shapes. */
export interface SaeLikeWeights {
  /** Encoder [d_in, d_sae]. */
  readonly W_enc: Float32Array;
  /** Decoder [d_sae, d_in]. */
  readonly W_dec: Float32Array;
  /** Decoder bias [d_in]. */
  readonly b_dec: Float32Array;
  /** Encoder bias [d_sae] (standard, topk, jumprelu). */
  readonly b_enc?: Float32Array;
  /** Gated: log scale of the magnitude path [d_sae]. */
  readonly r_mag?: Float32Array;
  /** Gated: magnitude bias [d_sae]. */
  readonly b_mag?: Float32Array;
}

/**
 * What attribution needs of a sparse autoencoder: its config, weights, and its own forward rule
 * (`encode`, any architecture) and `decode`. A `Sae` (from `loadSae`, `Sae.create` or
 * `trainSae`) is one, without a cast.
 */
export interface SaeLike {
  /** Architecture, widths, normalisation and hook. */
  readonly config: SaeLikeConfig;
  /** Encoder and decoder weights. */
  readonly weights: SaeLikeWeights;
  /** Latents of `rows` input rows (rows x d_in, flat): rows x d_sae. */
  encode(x: Float32Array, rows?: number): Promise<Float32Array>;
  /** Reconstructions of latent rows, the normalisation undone (per-row ones need `options.input`). */
  decode(z: Float32Array, rows?: number, options?: { input?: Float32Array }): Promise<Float32Array>;
}

/** Hook kinds (block-hook suffixes) an SAE's latents can be attribution nodes of. */
export const LATENT_HOOK_SUFFIXES = Object.freeze([
  "hook_resid_pre",
  "hook_resid_mid",
  "hook_resid_post",
  "hook_attn_out",
  "hook_mlp_out",
  "mlp.hook_post",
  "attn.hook_z",
] as const);

/** An SAE checked against a model: its hook, layer, where it writes, and the map into d_model. */
export interface ResolvedSae {
  sae: SaeLike;
  hook: HookName;
  layer: number;
  suffix: (typeof LATENT_HOOK_SUFFIXES)[number];
  dIn: number;
  dSae: number;
  /**
   * Where the latents' writes enter the residual stream, on a scale where `resid_pre` of layer
   * L is 2L, `resid_mid` of L is 2L + 1 and `resid_post` of L is 2L + 2 (see {@link residualPoint}).
   */
  writePoint: number;
  /** The map from the hook into d_model ([d_in, d_model], `W_out` or `W_O`), or undefined for d_model hooks. */
  map?: Float32Array;
}

/**
 * The point of a residual-stream hook on the scale of {@link ResolvedSae.writePoint}: a node
 * that writes at point `w` is in the residual stream read at point `r` (directly, not through
 * later layers) when `w <= r`.
 */
export function residualPoint(hook: HookName, nLayers: number): number {
  const m = /^blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post)$/.exec(hook);
  if (!m) throw new TdbError("E_UNKNOWN_HOOK", `${hook} is not a residual-stream hook`, { value: hook, allowed: ["hook_resid_pre", "hook_resid_mid", "hook_resid_post"] });
  const l = Number(m[1]);
  if (l >= nLayers) throw new TdbError("E_LAYER_RANGE", `layer ${l} out of range`, { value: l, allowed: [0, nLayers - 1] });
  return 2 * l + (m[2] === "hook_resid_pre" ? 0 : m[2] === "hook_resid_mid" ? 1 : 2);
}

/** The residual stream a latent's hook reads from (for upstream traces: its direct inputs arrive there). */
export function readsFor(s: ResolvedSae): HookName {
  const l = s.layer;
  switch (s.suffix) {
    case "hook_resid_pre":
    case "hook_resid_mid":
    case "hook_resid_post":
      return s.hook;
    case "hook_attn_out":
    case "attn.hook_z":
      return `blocks.${l}.hook_resid_pre`;
    default:
      return `blocks.${l}.hook_resid_mid`;
  }
}

const WRITE_OFFSET: Record<ResolvedSae["suffix"], number> = {
  hook_resid_pre: 0,
  hook_resid_mid: 1,
  "hook_attn_out": 1,
  "attn.hook_z": 1,
  hook_resid_post: 2,
  hook_mlp_out: 2,
  "mlp.hook_post": 2,
};

const isF32 = (x: unknown): x is Float32Array => x instanceof Float32Array;

/**
 * Checks one SAE against the model: an object with config and weights, a `hookName` naming a
 * supported hook of this model, `d_in` matching the hook's width, weights of the right lengths.
 */
export function resolveSae(model: ModelRuntime, sae: SaeLike, what = "sae"): ResolvedSae {
  if (typeof sae !== "object" || sae === null || typeof sae.config !== "object" || typeof sae.weights !== "object" || typeof sae.encode !== "function") {
    throw new TdbError("E_BAD_OPTION", `${what} must be an SAE (a Sae from loadSae, Sae.create or trainSae)`, {
      value: sae === null ? null : typeof sae,
      allowed: "an object with config, weights, encode and decode",
    });
  }
  const c = model.config;
  const cfg = sae.config;
  const allowedHooks = LATENT_HOOK_SUFFIXES.map((s) => `blocks.<layer>.${s}`);
  if (typeof cfg.hookName !== "string" || cfg.hookName === "") {
    throw new TdbError("E_SAE_CONFIG", `${what} has no hookName: attribution needs to know which hook the SAE reads`, {
      value: cfg.hookName === undefined ? "missing" : (cfg.hookName as unknown),
      allowed: allowedHooks,
    });
  }
  const parsed = parseHookName(cfg.hookName, c.nLayers);
  const suffix = parsed.kind.suffix as ResolvedSae["suffix"];
  if (parsed.layer === undefined || !LATENT_HOOK_SUFFIXES.includes(suffix)) {
    throw new TdbError("E_UNKNOWN_HOOK", `${what} reads ${cfg.hookName}; attribution supports SAEs on ${allowedHooks.join(", ")}`, { value: cfg.hookName, allowed: allowedHooks });
  }
  if (cfg.hookHeadIndex !== undefined && cfg.hookHeadIndex !== null) {
    throw new TdbError("E_SAE_CONFIG", `${what} is a per-head SAE (hookHeadIndex ${cfg.hookHeadIndex}); attribution supports SAEs on whole hooks`, { value: cfg.hookHeadIndex, allowed: [null] });
  }
  const hook = parsed.name;
  if (!model.hookMap.sources.has(hook)) {
    throw new TdbError("E_HOOK_UNAVAILABLE", `${what} reads ${hook}, which this model does not have (${model.hookMap.unavailable.get(hook) ?? "not in the graph"})`, {
      value: hook,
      allowed: [...model.hookMap.sources.keys()].filter((h) => LATENT_HOOK_SUFFIXES.some((s) => h.endsWith(`.${s}`))),
    });
  }
  const width = suffix === "mlp.hook_post" ? c.dMlp : suffix === "attn.hook_z" ? c.nHeads * c.dHead : c.dModel;
  if (cfg.dIn !== width) {
    throw new TdbError("E_SAE_CONFIG", `${what} has d_in ${cfg.dIn}, but ${hook} has width ${width}`, { value: cfg.dIn, allowed: width });
  }
  const dSae = cfg.dSae;
  const w = sae.weights;
  const lengths: [string, unknown, number][] = [
    ["W_enc", w.W_enc, width * dSae],
    ["W_dec", w.W_dec, dSae * width],
    ["b_dec", w.b_dec, width],
  ];
  for (const [name, t, n] of lengths) {
    if (!isF32(t) || t.length !== n) {
      throw new TdbError("E_SAE_CONFIG", `${what}: ${name} must be a Float32Array of ${n} values (d_in ${width}, d_sae ${dSae})`, { value: isF32(t) ? t.length : typeof t, allowed: n });
    }
  }
  const layer = parsed.layer;
  const blk = model.weights.blocks[layer]!;
  const map = suffix === "mlp.hook_post" ? blk.W_out.data : suffix === "attn.hook_z" ? blk.W_O.data : undefined;
  return { sae, hook, layer, suffix, dIn: width, dSae, writePoint: 2 * layer + WRITE_OFFSET[suffix], map: map as Float32Array | undefined };
}

/** Checks a list of SAEs (at most one per hook). */
export function resolveSaes(model: ModelRuntime, saes: readonly SaeLike[] | undefined): ResolvedSae[] {
  if (saes === undefined) return [];
  if (!Array.isArray(saes)) throw new TdbError("E_BAD_OPTION", "saes must be an array of SAEs", { value: typeof saes, allowed: "an array of Sae" });
  const out = (saes as readonly SaeLike[]).map((s, i) => resolveSae(model, s, `saes[${i}]`));
  const seen = new Map<string, number>();
  out.forEach((s, i) => {
    const j = seen.get(s.hook);
    if (j !== undefined) throw new TdbError("E_BAD_OPTION", `saes[${j}] and saes[${i}] both read ${s.hook}; give one SAE per hook`, { value: s.hook, allowed: "one SAE per hook" });
    seen.set(s.hook, i);
  });
  return out;
}

/**
 * How the SAE's decoder output maps back into hook space at each of `rows` input rows:
 * `x_hat = (z W_dec + b_dec) * scale + mean`. Per-row normalisations are computed from the rows
 * as the SAE computes them (unbiased standard deviation + 1e-5 for `layer_norm`).
 */
export function decoderScale(cfg: SaeLikeConfig, x: Float32Array, rows: number): { scale: Float64Array; mean: Float64Array } {
  const d = cfg.dIn;
  const norm = cfg.normalizeActivations ?? "none";
  const scale = new Float64Array(rows).fill(1);
  const mean = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (norm === "expected_average_only_in") {
      scale[r] = 1 / (cfg.normScalingFactor ?? 1);
    } else if (norm === "constant_norm_rescale") {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
      scale[r] = Math.sqrt(ss) / Math.sqrt(d);
    } else if (norm === "layer_norm") {
      let s = 0;
      for (let i = 0; i < d; i++) s += x[r * d + i]!;
      const mu = s / d;
      let v = 0;
      for (let i = 0; i < d; i++) v += (x[r * d + i]! - mu) ** 2;
      mean[r] = mu;
      scale[r] = Math.sqrt(v / (d - 1)) + 1e-5;
    } else if (norm !== "none") {
      throw new TdbError("E_SAE_CONFIG", `unsupported normalize_activations ${JSON.stringify(norm)}`, {
        value: norm,
        allowed: ["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"],
      });
    }
  }
  return { scale, mean };
}

const writeNorms = new WeakMap<ModelRuntime, WeakMap<SaeLike, Float64Array>>();

/**
 * `||W_dec[i] M||` (or `||W_dec[i]||` without a map), computed on first use per latent and kept
 * per model and SAE (NaN = not computed yet): the map is the model's weight, and latents are
 * sparse, so only the latents that fire are ever computed (d_in x d_model each).
 */
function writeNorm(s: ResolvedSae, model: ModelRuntime, i: number): number {
  let bySae = writeNorms.get(model);
  if (!bySae) writeNorms.set(model, (bySae = new WeakMap()));
  let n = bySae.get(s.sae);
  if (!n) bySae.set(s.sae, (n = new Float64Array(s.dSae).fill(NaN)));
  if (n[i] === n[i]) return n[i]!;
  const W = s.sae.weights.W_dec;
  const d = s.dIn;
  let ss = 0;
  if (!s.map) {
    for (let j = 0; j < d; j++) ss += W[i * d + j]! ** 2;
  } else {
    const D = model.config.dModel;
    const acc = new Float64Array(D);
    for (let j = 0; j < d; j++) {
      const w = W[i * d + j]!;
      if (w === 0) continue;
      for (let o = 0; o < D; o++) acc[o]! += w * s.map[j * D + o]!;
    }
    for (let o = 0; o < D; o++) ss += acc[o]! ** 2;
  }
  n[i] = Math.sqrt(ss);
  return n[i]!;
}

/** Per-SAE terms of the decomposition `x . dL/dx = sum of latent total effects + bias + error` at each position. */
export interface SaeTerms {
  /** The SAE's hook. */
  hook: string;
  /** Latents scored: positions x d_sae. */
  latents: number;
  /** `(x - x_hat)[t] . dL/dx[t]` per position: the error term's total effect (kept, so it is part of the model). */
  errorEffect: number[];
  /** `(b_dec * scale + mean)[t] . dL/dx[t]` per position: the decoder bias's (and normalisation mean's) share. */
  biasEffect: number[];
}

/** A latent's columns at one position (all four are 0 for inactive latents, which are not listed). */
export interface LatentEntry {
  position: number;
  latent: number;
  activation: number;
  writeMagnitude: number;
  directEffect: number;
  totalEffect: number;
}

/**
 * The columns of every active latent of one SAE, from the hook's value `x` and its gradient
 * `gx` (both [S, d_in]) and the residual gradient `g` ([S, d_model]) the loss reads; `direct`
 * says whether the latents write directly into that residual.
 */
export async function latentColumns(
  model: ModelRuntime,
  s: ResolvedSae,
  x: Float32Array,
  gx: Float32Array,
  g: Float32Array,
  S: number,
  direct: boolean,
): Promise<{ entries: LatentEntry[]; terms: SaeTerms }> {
  const { sae, dIn: d, dSae: m } = s;
  const D = model.config.dModel;
  const f = await sae.encode(x, S);
  const xHat = await sae.decode(f, S, { input: x });
  const { scale, mean } = decoderScale(sae.config, x, S);
  const W = sae.weights.W_dec;
  const bDec = sae.weights.b_dec;
  const entries: LatentEntry[] = [];
  const errorEffect: number[] = [];
  const biasEffect: number[] = [];
  const gMapped = new Float64Array(d);
  for (let t = 0; t < S; t++) {
    const gt = g.subarray(t * D, (t + 1) * D);
    const gxt = gx.subarray(t * d, (t + 1) * d);
    const xt = x.subarray(t * d, (t + 1) * d);
    let err = 0;
    let bias = 0;
    for (let j = 0; j < d; j++) {
      err += (xt[j]! - xHat[t * d + j]!) * gxt[j]!;
      bias += (bDec[j]! * scale[t]! + mean[t]!) * gxt[j]!;
    }
    errorEffect.push(err);
    biasEffect.push(bias);
    // The residual gradient in hook space (M g[t] for mapped hooks), when the latents write directly.
    const useDirect = direct && gt.some((v) => v !== 0);
    if (useDirect) {
      if (s.map) {
        for (let j = 0; j < d; j++) {
          let acc = 0;
          for (let o = 0; o < D; o++) acc += s.map[j * D + o]! * gt[o]!;
          gMapped[j] = acc;
        }
      } else {
        for (let j = 0; j < d; j++) gMapped[j] = gt[j]!;
      }
    }
    for (let i = 0; i < m; i++) {
      const a = f[t * m + i]!;
      if (a === 0) continue;
      const row = i * d;
      let dg = 0;
      let dd = 0;
      for (let j = 0; j < d; j++) {
        const w = W[row + j]!;
        dg += w * gxt[j]!;
        if (useDirect) dd += w * gMapped[j]!;
      }
      const as = a * scale[t]!;
      entries.push({
        position: t,
        latent: i,
        activation: a,
        writeMagnitude: Math.abs(as) * writeNorm(s, model, i),
        directEffect: useDirect ? as * dd : 0,
        totalEffect: as * dg,
      });
    }
  }
  return { entries, terms: { hook: s.hook, latents: S * m, errorEffect, biasEffect } };
}

/**
 * The loss of an upstream trace from latent `latent` at position `t`: its encoder
 * pre-activation, `((x - mean) * s - b_dec * a) . e + b` (`e` = `W_enc[:, i]` and `b` = `b_enc[i]`;
 * for gated SAEs the magnitude path, `e` = `W_enc[:, i] * exp(r_mag[i])`, `b` = `b_mag[i]`, as
 * SAELens's `hook_sae_acts_pre`). It is `x[t] . direction + constant`: the direction is
 * `s * e` (centred for `layer_norm`). Per-row normalisations (`constant_norm_rescale`,
 * `layer_norm`) hold the row's scale at its value (`xRow` gives it), as attribution holds the
 * final LayerNorm's scale: the loss value is exact, the gradient treats the scale as constant.
 */
export function latentPreDirection(sae: SaeLike, latent: number, xRow: Float32Array | undefined): { direction: Float64Array; constant: number } {
  const cfg = sae.config;
  const w = sae.weights;
  const d = cfg.dIn;
  const m = cfg.dSae;
  const gated = cfg.architecture === "gated";
  const magnitude = gated ? Math.exp(w.r_mag![latent]!) : 1;
  const bias = gated ? w.b_mag![latent]! : (w.b_enc?.[latent] ?? 0);
  const e = Float64Array.from({ length: d }, (_, j) => w.W_enc[j * m + latent]! * magnitude);
  const norm = cfg.normalizeActivations ?? "none";
  let s = 1;
  if (norm === "expected_average_only_in") s = cfg.normScalingFactor ?? 1;
  else if (norm === "constant_norm_rescale" || norm === "layer_norm") s = 1 / decoderScale(cfg, xRow!, 1).scale[0]!;
  const applyB = cfg.applyBDecToInput ?? true;
  let constant = bias;
  if (applyB) for (let j = 0; j < d; j++) constant -= w.b_dec[j]! * e[j]!;
  const direction = e.map((v) => v * s);
  if (norm === "layer_norm") {
    const mu = direction.reduce((a, b) => a + b, 0) / d;
    for (let j = 0; j < d; j++) direction[j]! -= mu;
  }
  return { direction, constant };
}
