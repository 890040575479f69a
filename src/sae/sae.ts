/**
 * Sparse autoencoders for inference, with SAELens's architectures and their exact forward rules:
 *
 * - `standard`: `z = ReLU((x - b_dec·a) W_enc + b_enc)` (`a` = `apply_b_dec_to_input`),
 * - `topk`: the `k` largest pre-activations of each row kept (ReLU applied to them), the rest 0,
 * - `jumprelu`: `z = ReLU(pre) · (pre > threshold)`,
 * - `gated`: `z = (x' W_enc + b_gate > 0) · ReLU(x' (W_enc ⊙ exp(r_mag)) + b_mag)`,
 *
 * all decoded as `z W_dec + b_dec`. Input normalisations as SAELens names them
 * (`normalize_activations`): `none`; `expected_average_only_in` (inputs multiplied by a stored
 * scale factor so that E||x|| = sqrt(d_in), outputs divided by it; 1 when none is stored, as in
 * SAELens files, whose weights have it folded in); `constant_norm_rescale` (each row scaled to norm
 * sqrt(d_in), undone on output); `layer_norm` (each row centred and divided by its unbiased
 * standard deviation + 1e-5, undone on output).
 *
 * The affine maps run in onnxruntime (one small MatMul + Add graph per map, built with
 * `GraphBuilder`) when `rows · d_in · d_sae` is large, else in plain loops (float64 accumulation).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { createSession, type Session } from "../backend/ort.js";
import { GraphBuilder } from "../onnx/builder.js";
import { encodeModel } from "../onnx/proto.js";

/** SAE architectures tdb-js runs (SAELens's `architecture` values). */
export const SAE_ARCHITECTURES = Object.freeze(["standard", "topk", "jumprelu", "gated"] as const);
/** One of {@link SAE_ARCHITECTURES}. */
export type SaeArchitecture = (typeof SAE_ARCHITECTURES)[number];

/** Input normalisations (SAELens's `normalize_activations` values). */
export const SAE_NORMALIZATIONS = Object.freeze(["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"] as const);
/** One of {@link SAE_NORMALIZATIONS}. */
export type SaeNormalization = (typeof SAE_NORMALIZATIONS)[number];

/** Weight names, as SAELens names its parameters. */
export type SaeWeightName = "W_enc" | "W_dec" | "b_enc" | "b_dec" | "threshold" | "b_gate" | "r_mag" | "b_mag";

/** An SAE's weights, float32, C order: `W_enc` [d_in, d_sae], `W_dec` [d_sae, d_in], vectors [d_in] or [d_sae]. */
export interface SaeWeights {
  /** Encoder [d_in, d_sae]. */
  readonly W_enc: Float32Array;
  /** Decoder [d_sae, d_in]. */
  readonly W_dec: Float32Array;
  /** Decoder bias [d_in]. */
  readonly b_dec: Float32Array;
  /** Encoder bias [d_sae] (standard, topk, jumprelu). */
  readonly b_enc?: Float32Array;
  /** JumpReLU thresholds [d_sae]. */
  readonly threshold?: Float32Array;
  /** Gated: gate bias [d_sae]. */
  readonly b_gate?: Float32Array;
  /** Gated: log scale of the magnitude path [d_sae]. */
  readonly r_mag?: Float32Array;
  /** Gated: magnitude bias [d_sae]. */
  readonly b_mag?: Float32Array;
}

/** What an SAE is and where it attaches. Field meanings follow SAELens's cfg.json. */
export interface SaeConfig {
  /** Forward rule. */
  readonly architecture: SaeArchitecture;
  /** Input width (the hook's last dimension, or n_heads·d_head for `hook_z`). */
  readonly dIn: number;
  /** Number of latents. */
  readonly dSae: number;
  /** Latents kept per row (topk). */
  readonly k?: number;
  /** Subtract `b_dec` from the input before encoding. [default: true] */
  readonly applyBDecToInput?: boolean;
  /** Input normalisation. [default: "none"] */
  readonly normalizeActivations?: SaeNormalization;
  /** `expected_average_only_in`'s input scale (sqrt(d_in) / E||x||). [default: 1] */
  readonly normScalingFactor?: number;
  /** Hook the SAE reads, TransformerLens name (`blocks.2.hook_mlp_out`). */
  readonly hookName?: string;
  /** Layer of the hook. */
  readonly hookLayer?: number;
  /** Head index for per-head hooks, else undefined. */
  readonly hookHeadIndex?: number | null;
  /** Model the SAE was trained on. */
  readonly modelName?: string;
  /** SAELens's `dtype` (the dtype it runs in; weights here are always float32). [default: "float32"] */
  readonly dtype?: string;
  /** Other cfg.json fields, kept as read and written back by `save`. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** Where the affine maps run: plain loops, onnxruntime, or chosen by size. */
export type SaeCompute = "auto" | "js" | "onnx";

/** Options of {@link Sae.create}. */
export interface SaeOptions {
  /** Where encode/decode run. [default: "auto": onnxruntime from {@link ONNX_MIN_MACS} multiply-adds on] */
  compute?: SaeCompute;
}

/** Options of {@link Sae.decode}. */
export interface DecodeOptions {
  /**
   * The input rows the latents were encoded from: needed to undo per-row normalisations
   * (`constant_norm_rescale`, `layer_norm`), ignored otherwise.
   */
  input?: Float32Array;
}

/**
 * Multiply-adds (rows · d_in · d_sae) from which `compute: "auto"` builds an onnxruntime session
 * (and uses it from then on, for every size). Below it, and before any call this large, plain
 * loops run: no session to build for small SAEs. Measured (2 shared cores, noisy), 256 x 2048:
 * 8 rows (4.2M multiply-adds) 7 to 12 ms in loops, 0.1 to 0.4 ms in onnxruntime, whose session
 * takes about 34 ms to build.
 */
export const ONNX_MIN_MACS = 2 ** 22;

const REQUIRED: Record<SaeArchitecture, readonly SaeWeightName[]> = {
  standard: ["W_enc", "W_dec", "b_enc", "b_dec"],
  topk: ["W_enc", "W_dec", "b_enc", "b_dec"],
  jumprelu: ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"],
  gated: ["W_enc", "W_dec", "b_dec", "b_gate", "r_mag", "b_mag"],
};

/** The weights `architecture` needs, in SAELens's names. */
export function requiredWeights(architecture: SaeArchitecture): readonly SaeWeightName[] {
  return REQUIRED[architecture];
}

/** The shape weight `name` has in an SAE of these widths. */
export function weightShape(name: SaeWeightName, dIn: number, dSae: number): number[] {
  switch (name) {
    case "W_enc":
      return [dIn, dSae];
    case "W_dec":
      return [dSae, dIn];
    case "b_dec":
      return [dIn];
    default:
      return [dSae];
  }
}

const posInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v > 0;

function checkConfig(c: SaeConfig): void {
  if (!SAE_ARCHITECTURES.includes(c.architecture)) {
    throw new TdbError("E_SAE_CONFIG", `unknown SAE architecture ${JSON.stringify(c.architecture)}`, { value: c.architecture, allowed: SAE_ARCHITECTURES });
  }
  if (!posInt(c.dIn)) throw new TdbError("E_SAE_CONFIG", `d_in must be a positive integer, got ${String(c.dIn)}`, { value: c.dIn, allowed: "a positive integer" });
  if (!posInt(c.dSae)) throw new TdbError("E_SAE_CONFIG", `d_sae must be a positive integer, got ${String(c.dSae)}`, { value: c.dSae, allowed: "a positive integer" });
  if (c.architecture === "topk" && !(posInt(c.k) && c.k <= c.dSae)) {
    throw new TdbError("E_SAE_CONFIG", `topk needs k in 1..d_sae (${c.dSae}), got ${String(c.k)}`, { value: c.k, allowed: `1..${c.dSae}` });
  }
  const norm = c.normalizeActivations ?? "none";
  if (!SAE_NORMALIZATIONS.includes(norm)) {
    throw new TdbError("E_SAE_CONFIG", `unsupported normalize_activations ${JSON.stringify(norm)}`, { value: norm, allowed: SAE_NORMALIZATIONS });
  }
  const s = c.normScalingFactor;
  if (s !== undefined && !(typeof s === "number" && Number.isFinite(s) && s > 0)) {
    throw new TdbError("E_SAE_CONFIG", `normScalingFactor must be a finite positive number, got ${String(s)}`, { value: s, allowed: "> 0" });
  }
}

/** y = x W + b for rows of x: in loops or in an onnxruntime session built on first use. */
class Affine {
  private session: Promise<Session> | undefined;

  constructor(
    private readonly W: Float32Array,
    private readonly b: Float32Array,
    private readonly dIn: number,
    private readonly dOut: number,
  ) {}

  async apply(x: Float32Array, rows: number, compute: SaeCompute): Promise<Float32Array> {
    // Once a session exists it wins at every size (measured: 1 row of 256 x 2048, 0.07 ms vs 0.23 ms).
    const onnx = compute === "onnx" || (compute === "auto" && (this.session !== undefined || rows * this.dIn * this.dOut >= ONNX_MIN_MACS));
    if (!onnx || rows === 0) return this.loops(x, rows);
    const s = await (this.session ??= this.build());
    const out = await s.run({ x: { type: "float32", data: x, dims: [rows, this.dIn] } });
    return out.y!.data as Float32Array;
  }

  private loops(x: Float32Array, rows: number): Float32Array {
    const { W, b, dIn, dOut } = this;
    const out = new Float32Array(rows * dOut);
    const acc = new Float64Array(dOut);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < dOut; j++) acc[j] = b[j]!;
      for (let i = 0; i < dIn; i++) {
        const xi = x[r * dIn + i]!;
        if (xi === 0) continue;
        const row = i * dOut;
        for (let j = 0; j < dOut; j++) acc[j]! += xi * W[row + j]!;
      }
      out.set(acc, r * dOut);
    }
    return out;
  }

  private async build(): Promise<Session> {
    const g = new GraphBuilder({ name: "sae_affine", opset: 13 });
    const x = g.input("x", "float32", ["rows", this.dIn]);
    const W = g.initializer("W", this.W, [this.dIn, this.dOut]);
    const b = g.initializer("b", this.b, [this.dOut]);
    const y = g.op("Add", [g.op("MatMul", [x, W]), b]);
    g.output("y", "float32", ["rows", this.dOut], y);
    return createSession(encodeModel(g.build()));
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) await (await s).release();
  }
}

/** Per-row statistics of a per-row normalisation, to undo it on the way out. */
interface RowNorm {
  /** Multiplier applied to each row on input. */
  scale: Float64Array;
  /** Mean subtracted from each row before scaling (layer_norm), else undefined. */
  mean?: Float64Array;
}

/**
 * Rows x m pre-activations to rows x m latents keeping each row's k largest (ties: lower index),
 * ReLU applied to them: a min-heap of the k best so far, O(m log k) a row.
 */
function topK(pre: Float32Array, rows: number, m: number, k: number): Float32Array {
  const out = new Float32Array(rows * m);
  const hv = new Float64Array(k);
  const hi = new Int32Array(k);
  // a is worse than b: lower value, or equal value at a higher index
  const worse = (a: number, b: number) => hv[a]! < hv[b]! || (hv[a] === hv[b] && hi[a]! > hi[b]!);
  const sift = (start: number) => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < k && worse(l, w)) w = l;
      if (r < k && worse(r, w)) w = r;
      if (w === i) return;
      const tv = hv[i]!;
      const ti = hi[i]!;
      hv[i] = hv[w]!;
      hi[i] = hi[w]!;
      hv[w] = tv;
      hi[w] = ti;
      i = w;
    }
  };
  for (let r = 0; r < rows; r++) {
    const base = r * m;
    for (let j = 0; j < k; j++) {
      const v = pre[base + j]!;
      hv[j] = Number.isNaN(v) ? -Infinity : v;
      hi[j] = j;
    }
    for (let i = (k >> 1) - 1; i >= 0; i--) sift(i);
    for (let j = k; j < m; j++) {
      const v = pre[base + j]!;
      if (v > hv[0]!) {
        hv[0] = v;
        hi[0] = j;
        sift(0);
      }
    }
    for (let q = 0; q < k; q++) if (hv[q]! > 0) out[base + hi[q]!] = hv[q]!;
  }
  return out;
}

let saver: ((sae: Sae, dir: string) => Promise<void>) | undefined;

/** Registers the writer behind {@link Sae.save} (`save.ts` does, when loaded: Node and Deno). */
export function setSaeSaver(f: (sae: Sae, dir: string) => Promise<void>): void {
  saver = f;
}

/**
 * A sparse autoencoder with immutable float32 weights (copied at creation; treat
 * {@link Sae.weights} as read-only). `encode` and `decode` take rows in one flat array.
 *
 * @example
 * ```ts
 * const sae = await loadSae("./my-sae");              // cfg.json + sae_weights.safetensors
 * const z = await sae.encode(x, rows);                // rows x d_sae latents
 * const xHat = await sae.decode(z, rows, { input: x }); // rows x d_in reconstruction
 * ```
 */
export class Sae {
  /** Architecture, widths, normalisation and where the SAE attaches. */
  readonly config: SaeConfig;
  /** The weights (read-only by contract). */
  readonly weights: SaeWeights;
  private readonly compute: SaeCompute;
  private readonly maps: { enc?: Affine; gate?: Affine; mag?: Affine; dec?: Affine } = {};

  private constructor(config: SaeConfig, weights: SaeWeights, options: SaeOptions) {
    this.config = Object.freeze({ ...config });
    this.weights = Object.freeze({ ...weights });
    this.compute = options.compute ?? "auto";
  }

  /**
   * An SAE from a config and weights (copied). A weight the architecture needs that is missing,
   * or whose length does not match d_in and d_sae, is `E_SAE_CONFIG`; so are an unknown
   * architecture or normalisation and a topk `k` outside 1..d_sae.
   */
  static create(config: SaeConfig, weights: SaeWeights, options: SaeOptions = {}): Sae {
    checkConfig(config);
    const compute = options.compute ?? "auto";
    if (!["auto", "js", "onnx"].includes(compute)) throw new TdbError("E_BAD_OPTION", `unknown compute ${JSON.stringify(compute)}`, { value: compute, allowed: ["auto", "js", "onnx"] });
    const copied: Partial<Record<SaeWeightName, Float32Array>> = {};
    for (const name of REQUIRED[config.architecture]) {
      const w = weights[name];
      const shape = weightShape(name, config.dIn, config.dSae);
      const n = shape.reduce((a, b) => a * b, 1);
      if (!(w instanceof Float32Array)) {
        throw new TdbError("E_SAE_CONFIG", `${config.architecture} SAE needs weight ${name} [${shape.join(", ")}] as a Float32Array`, { value: name, allowed: REQUIRED[config.architecture] });
      }
      if (w.length !== n) {
        throw new TdbError("E_SAE_CONFIG", `${name} has ${w.length} values; d_in ${config.dIn}, d_sae ${config.dSae} make it [${shape.join(", ")}] = ${n}`, { value: w.length, allowed: n });
      }
      copied[name] = w.slice();
    }
    return new Sae(config, copied as unknown as SaeWeights, options);
  }

  /** Input width. */
  get dIn(): number {
    return this.config.dIn;
  }

  /** Number of latents. */
  get dSae(): number {
    return this.config.dSae;
  }

  private rowsOf(x: Float32Array, width: number, rows: number | undefined, what: string): number {
    if (!(x instanceof Float32Array)) throw new TdbError("E_BAD_INPUT", `${what} must be a Float32Array`, { value: typeof x, allowed: "Float32Array" });
    const r = rows ?? x.length / width;
    if (!Number.isSafeInteger(r) || r < 0 || r * width !== x.length) {
      throw new TdbError("E_BAD_INPUT", `${what} has ${x.length} values, not ${rows ?? "a whole number of"} rows of ${width}`, {
        value: x.length,
        allowed: rows === undefined ? `a multiple of ${width}` : rows * width,
      });
    }
    return r;
  }

  /** The per-row normalisation of `x` (undefined when the normalisation is not per row). */
  private rowNorm(x: Float32Array, rows: number): RowNorm | undefined {
    const d = this.dIn;
    const norm = this.config.normalizeActivations ?? "none";
    if (norm === "constant_norm_rescale") {
      const scale = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
        scale[r] = Math.sqrt(d) / Math.sqrt(ss);
      }
      return { scale };
    }
    if (norm === "layer_norm") {
      const scale = new Float64Array(rows);
      const mean = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += x[r * d + i]!;
        const mu = s / d;
        let v = 0;
        for (let i = 0; i < d; i++) v += (x[r * d + i]! - mu) ** 2;
        mean[r] = mu;
        scale[r] = 1 / (Math.sqrt(v / (d - 1)) + 1e-5);
      }
      return { scale, mean };
    }
    return undefined;
  }

  /** The encoder's input: normalised, minus b_dec when `applyBDecToInput`. */
  private saeIn(x: Float32Array, rows: number): Float32Array {
    const d = this.dIn;
    const rn = this.rowNorm(x, rows);
    const global = (this.config.normalizeActivations ?? "none") === "expected_average_only_in" ? (this.config.normScalingFactor ?? 1) : 1;
    const bDec = this.config.applyBDecToInput ?? true ? this.weights.b_dec : undefined;
    const out = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const scale = rn ? rn.scale[r]! : global;
      const mu = rn?.mean ? rn.mean[r]! : 0;
      for (let i = 0; i < d; i++) out[r * d + i] = (x[r * d + i]! - mu) * scale - (bDec ? bDec[i]! : 0);
    }
    return out;
  }

  private map(key: "enc" | "gate" | "mag" | "dec"): Affine {
    const w = this.weights;
    const { dIn, dSae } = this;
    if (key === "dec") return (this.maps.dec ??= new Affine(w.W_dec, w.b_dec, dSae, dIn));
    if (key === "enc") return (this.maps.enc ??= new Affine(w.W_enc, w.b_enc!, dIn, dSae));
    if (key === "gate") return (this.maps.gate ??= new Affine(w.W_enc, w.b_gate!, dIn, dSae));
    if (!this.maps.mag) {
      const mag = new Float32Array(dIn * dSae);
      const r = w.r_mag!.map((v) => Math.exp(v));
      for (let i = 0; i < dIn; i++) for (let j = 0; j < dSae; j++) mag[i * dSae + j] = w.W_enc[i * dSae + j]! * r[j]!;
      this.maps.mag = new Affine(mag, w.b_mag!, dIn, dSae);
    }
    return this.maps.mag;
  }

  /**
   * Pre-activations of `rows` input rows (`x`: rows x d_in): `sae_in W_enc + b_enc`, for gated SAEs
   * the magnitude path `sae_in (W_enc ⊙ exp(r_mag)) + b_mag` (SAELens's `hook_sae_acts_pre`).
   * `rows` defaults to `x.length / d_in`.
   */
  async encodePre(x: Float32Array, rows?: number): Promise<Float32Array> {
    const n = this.rowsOf(x, this.dIn, rows, "encode input");
    const sin = this.saeIn(x, n);
    return this.map(this.config.architecture === "gated" ? "mag" : "enc").apply(sin, n, this.compute);
  }

  /**
   * Latents of `rows` input rows (`x`: rows x d_in, flat): rows x d_sae (SAELens's
   * `hook_sae_acts_post`). `rows` defaults to `x.length / d_in`; a length that is not rows x d_in
   * is `E_BAD_INPUT`.
   */
  async encode(x: Float32Array, rows?: number): Promise<Float32Array> {
    const n = this.rowsOf(x, this.dIn, rows, "encode input");
    const sin = this.saeIn(x, n);
    const m = this.dSae;
    const arch = this.config.architecture;
    if (arch === "gated") {
      const [gate, mag] = await Promise.all([this.map("gate").apply(sin, n, this.compute), this.map("mag").apply(sin, n, this.compute)]);
      for (let i = 0; i < mag.length; i++) mag[i] = gate[i]! > 0 && mag[i]! > 0 ? mag[i]! : 0;
      return mag;
    }
    const pre = await this.map("enc").apply(sin, n, this.compute);
    if (arch === "standard") {
      for (let i = 0; i < pre.length; i++) if (!(pre[i]! > 0)) pre[i] = 0;
      return pre;
    }
    if (arch === "jumprelu") {
      const t = this.weights.threshold!;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < m; j++) {
          const v = pre[r * m + j]!;
          if (!(v > t[j]! && v > 0)) pre[r * m + j] = 0;
        }
      }
      return pre;
    }
    // topk: the k largest of each row (ties: lower index first), ReLU on what is kept.
    return topK(pre, n, m, this.config.k!);
  }

  /**
   * Reconstructions of `rows` latent rows (`z`: rows x d_sae, flat): `z W_dec + b_dec`, with the
   * input normalisation undone (SAELens's `decode`). Per-row normalisations need the input rows
   * (`options.input`); without them they are `E_BAD_OPTION`.
   */
  async decode(z: Float32Array, rows?: number, options: DecodeOptions = {}): Promise<Float32Array> {
    const n = this.rowsOf(z, this.dSae, rows, "decode input");
    const out = await this.map("dec").apply(z, n, this.compute);
    const d = this.dIn;
    const norm = this.config.normalizeActivations ?? "none";
    if (norm === "expected_average_only_in") {
      const s = this.config.normScalingFactor ?? 1;
      if (s !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! / s;
    } else if (norm === "constant_norm_rescale" || norm === "layer_norm") {
      if (options.input === undefined) {
        throw new TdbError("E_BAD_OPTION", `decode of an SAE with normalize_activations ${JSON.stringify(norm)} needs the input rows (options.input) to undo the normalisation`, {
          value: norm,
          allowed: "options.input: the rows x d_in the latents came from",
        });
      }
      this.rowsOf(options.input, d, n, "decode options.input");
      const rn = this.rowNorm(options.input, n)!;
      for (let r = 0; r < n; r++) {
        const s = rn.scale[r]!;
        const mu = rn.mean ? rn.mean[r]! : 0;
        for (let i = 0; i < d; i++) out[r * d + i] = out[r * d + i]! / s + mu;
      }
    }
    return out;
  }

  /** Latents and reconstructions of `x` in one call (per-row normalisations undone). */
  async forward(x: Float32Array, rows?: number): Promise<{ latents: Float32Array; reconstruction: Float32Array }> {
    const n = this.rowsOf(x, this.dIn, rows, "forward input");
    const latents = await this.encode(x, n);
    return { latents, reconstruction: await this.decode(latents, n, { input: x }) };
  }

  /**
   * The same SAE with `expected_average_only_in`'s scale folded into the weights (SAELens's
   * `fold_activation_norm_scaling_factor`): W_enc · s, W_dec / s, b_dec / s, normalisation
   * `none`. Returns `this` when there is nothing to fold.
   */
  foldNormScalingFactor(): Sae {
    const s = this.config.normScalingFactor ?? 1;
    if ((this.config.normalizeActivations ?? "none") !== "expected_average_only_in" || s === 1) return this;
    const w = this.weights;
    const { normScalingFactor: _, ...rest } = this.config;
    return Sae.create(
      { ...rest, normalizeActivations: "none" },
      { ...w, W_enc: w.W_enc.map((v) => v * s), W_dec: w.W_dec.map((v) => v / s), b_dec: w.b_dec.map((v) => v / s) },
      { compute: this.compute },
    );
  }

  /**
   * Writes the SAE as a SAELens directory (`cfg.json`, `sae_weights.safetensors`), each file
   * atomically (Node and Deno; the module that writes is loaded on first use, so browser bundles
   * do not include it). See `saveSae`.
   */
  async save(dir: string): Promise<void> {
    if (!saver) {
      // Sources run directly (tests, tsx): load the writer. Built Node entries registered it already.
      const specifier = "./save.js"; // not a literal import: browser bundlers must not follow it
      try {
        await import(/* @vite-ignore */ specifier);
      } catch (cause) {
        throw new TdbError("E_NO_RUNTIME", "Sae.save writes files, which needs Node.js or Deno (tdb-js's Node entry); in a browser use saeFiles(sae)", {
          value: dir,
          allowed: ["Node.js", "Deno"],
          cause,
        });
      }
    }
    await saver!(this, dir);
  }

  /** Releases the onnxruntime sessions (they are rebuilt if the SAE is used again). */
  async dispose(): Promise<void> {
    await Promise.all(Object.values(this.maps).map((m) => m.release()));
  }
}

/**
 * `expected_average_only_in`'s scale factor for activation rows `x` (rows x d_in):
 * sqrt(d_in) / mean row norm, so that scaled rows have E||x|| = sqrt(d_in).
 */
export function estimateNormScalingFactor(x: Float32Array, dIn: number): number {
  const rows = x.length / dIn;
  if (!Number.isSafeInteger(rows) || rows === 0) throw new TdbError("E_BAD_INPUT", `${x.length} values are not rows of ${dIn}`, { value: x.length, allowed: `a positive multiple of ${dIn}` });
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dIn; i++) ss += x[r * dIn + i]! ** 2;
    total += Math.sqrt(ss);
  }
  return Math.sqrt(dIn) / (total / rows);
}
