/**
 * SAELens's file layout: a directory (or a hub repository's subfolder) with `cfg.json` and
 * `sae_weights.safetensors`. Reads both SAELens 5's flat cfg.json (`hook_name`, `hook_layer`,
 * `activation_fn_str`, `activation_fn_kwargs.k`, ...) and SAELens 6's (`k` at the top,
 * hook and model fields under `metadata`); writes the flat form with SAELens 6's `k` for topk, so
 * both read it. Platform-free: files come through a `ModelFiles` adapter; writing to disk is in
 * `save.ts` (Node).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { defaultFiles, type DefaultFilesOptions, type ModelFiles } from "../io/files.js";
import { SAE_ARCHITECTURES, SAE_NORMALIZATIONS, Sae, requiredWeights, weightShape, type SaeConfig, type SaeOptions, type SaeWeightName, type SaeWeights } from "./sae.js";
import { readSafetensors, tensorToFloat32, writeSafetensors, type SafeTensor } from "./safetensors.js";

/** SAELens's config file name. */
export const SAE_CFG_FILENAME = "cfg.json";
/** SAELens's weights file name. */
export const SAE_WEIGHTS_FILENAME = "sae_weights.safetensors";

/** cfg.json keys {@link parseSaeConfig} interprets (others are kept in `extra`). */
const KNOWN_KEYS = new Set([
  "architecture",
  "d_in",
  "d_sae",
  "dtype",
  "k",
  "activation_fn_str",
  "activation_fn",
  "activation_fn_kwargs",
  "apply_b_dec_to_input",
  "normalize_activations",
  "finetuning_scaling_factor",
  "reshape_activations",
  "model_name",
  "hook_name",
  "hook_layer",
  "hook_head_index",
]);

function cfgError(message: string, value: unknown, allowed: unknown, origin?: string): TdbError {
  return new TdbError("E_SAE_CONFIG", `${origin ? `${origin}: ` : ""}${message}`, { value, allowed });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * An {@link SaeConfig} from a parsed SAELens cfg.json. Unknown architectures and normalisations,
 * missing or non-integer widths, a topk without k and SAELens features tdb-js does not run
 * (`finetuning_scaling_factor: true`) are `E_SAE_CONFIG` naming the value and what is allowed.
 */
export function parseSaeConfig(cfg: unknown, origin?: string): SaeConfig {
  if (!isObject(cfg)) throw cfgError("cfg.json is not a JSON object", cfg, "a JSON object", origin);
  const meta = isObject(cfg.metadata) ? cfg.metadata : isObject(cfg.meta) ? cfg.meta : {};
  const field = (k: string): unknown => (cfg[k] !== undefined ? cfg[k] : meta[k]);
  let architecture = cfg.architecture ?? "standard";
  const activation = cfg.activation_fn_str ?? cfg.activation_fn;
  const kwargs = isObject(cfg.activation_fn_kwargs) ? cfg.activation_fn_kwargs : {};
  // SAELens 5 wrote TopK SAEs as architecture "standard" with activation_fn_str "topk".
  if (architecture === "standard" && activation === "topk") architecture = "topk";
  if (typeof architecture !== "string" || !(SAE_ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw cfgError(`unknown SAE architecture ${JSON.stringify(architecture)}`, architecture, SAE_ARCHITECTURES, origin);
  }
  if ((architecture === "standard" || architecture === "jumprelu") && activation !== undefined && activation !== null && activation !== "relu") {
    throw cfgError(`activation_fn_str ${JSON.stringify(activation)} with architecture ${architecture}`, activation, ["relu"], origin);
  }
  for (const key of ["d_in", "d_sae"]) {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) throw cfgError(`${key} must be a positive integer, got ${JSON.stringify(v)}`, v, "a positive integer", origin);
  }
  const norm = cfg.normalize_activations ?? "none";
  if (typeof norm !== "string" || !(SAE_NORMALIZATIONS as readonly string[]).includes(norm)) {
    throw cfgError(`unsupported normalize_activations ${JSON.stringify(norm)}`, norm, SAE_NORMALIZATIONS, origin);
  }
  if (cfg.finetuning_scaling_factor === true) throw cfgError("finetuning_scaling_factor: true is not supported", true, [false], origin);
  const reshape = cfg.reshape_activations ?? "none";
  if (reshape !== "none" && reshape !== "hook_z") throw cfgError(`unsupported reshape_activations ${JSON.stringify(reshape)}`, reshape, ["none", "hook_z"], origin);
  const apply = cfg.apply_b_dec_to_input ?? true;
  if (typeof apply !== "boolean") throw cfgError(`apply_b_dec_to_input must be a boolean, got ${JSON.stringify(apply)}`, apply, [true, false], origin);
  let k: number | undefined;
  if (architecture === "topk") {
    const kv = cfg.k ?? kwargs.k;
    if (typeof kv !== "number" || !Number.isSafeInteger(kv) || kv <= 0 || kv > (cfg.d_sae as number)) {
      throw cfgError(`topk SAE needs k (cfg.k or activation_fn_kwargs.k) in 1..d_sae, got ${JSON.stringify(kv)}`, kv, `1..${String(cfg.d_sae)}`, origin);
    }
    k = kv;
  }
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const int = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? v : undefined);
  const extra: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(cfg)) if (!KNOWN_KEYS.has(key)) extra[key] = v;
  const headIndex = field("hook_head_index");
  return {
    architecture: architecture as SaeConfig["architecture"],
    dIn: cfg.d_in as number,
    dSae: cfg.d_sae as number,
    ...(k === undefined ? {} : { k }),
    applyBDecToInput: apply,
    normalizeActivations: norm as SaeConfig["normalizeActivations"],
    hookName: str(field("hook_name")),
    hookLayer: int(field("hook_layer")),
    hookHeadIndex: headIndex === null ? null : int(headIndex),
    modelName: str(field("model_name")),
    dtype: str(cfg.dtype) ?? "float32",
    extra,
  };
}

/** The cfg.json object `save` writes for `config` (SAELens 5 flat keys, plus `k` for topk). */
export function saeConfigJson(config: SaeConfig): Record<string, unknown> {
  const topk = config.architecture === "topk";
  const out: Record<string, unknown> = {
    architecture: config.architecture,
    d_in: config.dIn,
    d_sae: config.dSae,
    dtype: config.dtype ?? "float32",
    model_name: config.modelName ?? null,
    hook_name: config.hookName ?? null,
    hook_layer: config.hookLayer ?? null,
    hook_head_index: config.hookHeadIndex ?? null,
    activation_fn_str: topk ? "topk" : "relu",
    activation_fn_kwargs: topk ? { k: config.k } : {},
    ...(topk ? { k: config.k } : {}),
    apply_b_dec_to_input: config.applyBDecToInput ?? true,
    finetuning_scaling_factor: false,
    normalize_activations: config.normalizeActivations ?? "none",
  };
  for (const [key, v] of Object.entries(config.extra ?? {})) if (!(key in out)) out[key] = v;
  return out;
}

/**
 * The two files of `sae` in SAELens's layout, as bytes (browser-safe; `saveSae` writes them to
 * disk). A stored `expected_average_only_in` scale is folded into the weights first, as SAELens
 * does before saving, so SAELens reads the files as the same function. Deterministic: the same
 * SAE always gives the same bytes.
 */
export function saeFiles(sae: Sae): Record<typeof SAE_CFG_FILENAME | typeof SAE_WEIGHTS_FILENAME, Uint8Array> {
  const s = sae.foldNormScalingFactor();
  const { dIn, dSae, architecture } = s.config;
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const name of requiredWeights(architecture)) tensors[name] = { shape: weightShape(name, dIn, dSae), data: s.weights[name]! };
  return {
    [SAE_CFG_FILENAME]: new TextEncoder().encode(`${JSON.stringify(saeConfigJson(s.config), null, 2)}\n`),
    [SAE_WEIGHTS_FILENAME]: writeSafetensors(tensors),
  } as Record<typeof SAE_CFG_FILENAME | typeof SAE_WEIGHTS_FILENAME, Uint8Array>;
}

/** Options of {@link loadSae}. */
export interface LoadSaeOptions extends SaeOptions, DefaultFilesOptions {
  /** Folder inside the directory or hub repository holding the two files (`blocks.8.hook_resid_pre`). */
  subfolder?: string;
  /** `expected_average_only_in`'s scale, for files whose weights do not have it folded in. */
  normScalingFactor?: number;
}

/** `tdb:<model>/<hook>`: an SAE shipped inside a packaged model's directory. */
const PACKAGED_SAE_RE = /^(tdb:[^/]+)\/(.+)$/;

/**
 * Loads a SAELens SAE: `cfg.json` and `sae_weights.safetensors` from a directory, a hub id (through
 * the registered file adapter, as `Model.load` resolves them) or any {@link ModelFiles}. F32, F16,
 * BF16 and F64 weights are read as float32. A missing file is `E_MISSING_FILE`; a corrupt
 * safetensors file `E_SAFETENSORS`; an unknown architecture, a missing weight or a weight whose
 * shape disagrees with d_in / d_sae `E_SAE_CONFIG`. `tdb:<model>/<hook>` names an SAE shipped with a
 * packaged model (`tdb:brown-small/blocks.2.hook_mlp_out`: its `saes/<hook>` folder).
 *
 * @example
 * ```ts
 * const shipped = await loadSae("tdb:brown-small/blocks.2.hook_mlp_out");
 * const sae = await loadSae("./saes/blocks.2.hook_mlp_out");
 * const z = await sae.encode(activations);
 * ```
 */
export async function loadSae(source: string | ModelFiles, options: LoadSaeOptions = {}): Promise<Sae> {
  let subfolder = options.subfolder;
  if (typeof source === "string") {
    const m = PACKAGED_SAE_RE.exec(source);
    if (m) {
      // `tdb:<model>/<hook>`: an SAE shipped with a packaged model, in its `saes/<hook>` folder.
      source = m[1]!;
      subfolder = `saes/${m[2]!}${subfolder ? `/${subfolder}` : ""}`;
    }
  }
  const files = typeof source === "string" ? await defaultFiles(source, options) : source;
  const prefix = subfolder ? `${subfolder.replace(/\/+$/, "")}/` : "";
  const read = async (name: string): Promise<Uint8Array> => {
    const b = await files.read(prefix + name);
    if (b === null) {
      throw new TdbError("E_MISSING_FILE", `${files.origin}: no ${prefix + name} (a SAELens SAE has ${SAE_CFG_FILENAME} and ${SAE_WEIGHTS_FILENAME})`, {
        value: prefix + name,
        allowed: [prefix + SAE_CFG_FILENAME, prefix + SAE_WEIGHTS_FILENAME],
      });
    }
    return b;
  };
  const cfgPath = `${files.origin}/${prefix}${SAE_CFG_FILENAME}`;
  let cfg: unknown;
  try {
    cfg = JSON.parse(new TextDecoder().decode(await read(SAE_CFG_FILENAME)));
  } catch (e) {
    if (e instanceof TdbError) throw e;
    throw new TdbError("E_SAE_CONFIG", `${cfgPath} is not JSON: ${(e as Error).message}`, { value: cfgPath, allowed: "a JSON object", cause: e });
  }
  let config = parseSaeConfig(cfg, cfgPath);
  if (options.normScalingFactor !== undefined) config = { ...config, normScalingFactor: options.normScalingFactor };
  const weightsPath = `${files.origin}/${prefix}${SAE_WEIGHTS_FILENAME}`;
  const st = readSafetensors(await read(SAE_WEIGHTS_FILENAME), weightsPath);
  const weights: Partial<Record<SaeWeightName, Float32Array>> = {};
  for (const name of requiredWeights(config.architecture)) {
    let t: SafeTensor | undefined = st.tensors.get(name);
    let log = false;
    if (t === undefined && name === "threshold" && st.tensors.has("log_threshold")) {
      t = st.tensors.get("log_threshold");
      log = true;
    }
    const shape = weightShape(name, config.dIn, config.dSae);
    if (t === undefined) {
      throw new TdbError("E_SAE_CONFIG", `${weightsPath} has no tensor ${name} [${shape.join(", ")}], which a ${config.architecture} SAE needs`, {
        value: [...st.tensors.keys()],
        allowed: requiredWeights(config.architecture),
      });
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new TdbError("E_SAE_CONFIG", `${weightsPath}: ${name} is [${t.shape.join(", ")}], but d_in ${config.dIn} and d_sae ${config.dSae} in cfg.json make it [${shape.join(", ")}]`, {
        value: [...t.shape],
        allowed: shape,
      });
    }
    const values = tensorToFloat32(t, name);
    weights[name] = log ? values.map((v) => Math.exp(v)) : values;
  }
  return Sae.create(config, weights as unknown as SaeWeights, options);
}
