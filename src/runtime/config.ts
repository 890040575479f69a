/**
 * Model dimensions, read from a Hugging Face `config.json`, in TransformerLens terms.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ArchDims } from "../hooks/adapter.js";

/** A model's configuration: the raw `config.json` plus the dims tdb-js uses. */
export interface ModelConfig extends ArchDims {
  /** `model_type` from config.json, e.g. `gpt2`. */
  modelType: string;
  /** LayerNorm epsilon. */
  lnEps: number;
  /** BOS / EOS token ids, when the config names them. */
  bosTokenId: number | undefined;
  eosTokenId: number | undefined;
  /** The parsed config.json, untouched. */
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, keys: string[], fallback?: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    // A key that is there with something else than a number must not fall back silently.
    if (v !== undefined && v !== null) {
      throw new TdbError("E_BAD_INPUT", `config.json: ${k} must be a finite number, got ${JSON.stringify(v)}`, { value: v, allowed: "a finite number" });
    }
  }
  if (fallback !== undefined) return fallback;
  throw new TdbError("E_BAD_INPUT", `config.json lacks ${keys.join(" / ")}`, { value: Object.keys(raw), allowed: keys });
}

/** A positive integer, or `E_BAD_INPUT` naming the key. */
function positiveInt(key: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) {
    throw new TdbError("E_BAD_INPUT", `config.json: ${key} must be a positive integer, got ${v}`, { value: v, allowed: "a positive integer" });
  }
  return v;
}

/** config.json keys of each dimension, in the order they are looked up (Hugging Face spellings). */
export const CONFIG_KEYS: Readonly<Record<keyof ArchDims, readonly string[]>> = {
  nLayers: ["n_layer", "num_hidden_layers"],
  nHeads: ["n_head", "num_attention_heads"],
  dModel: ["n_embd", "hidden_size", "d_model"],
  dHead: ["n_embd", "hidden_size", "d_model"],
  dMlp: ["n_inner", "intermediate_size"],
  nCtx: ["n_positions", "n_ctx", "max_position_embeddings"],
  dVocab: ["vocab_size"],
  lnEps: ["layer_norm_epsilon", "layer_norm_eps"],
};

/** The config.json key a config uses for `dim` (the first spelling when it has none). */
export function configKey(raw: Record<string, unknown>, dim: keyof ArchDims): string {
  const keys = CONFIG_KEYS[dim];
  return keys.find((k) => typeof raw[k] === "number") ?? keys[0]!;
}

/**
 * Parses a GPT-2-family `config.json` and checks that its dims are consistent: sizes are
 * positive integers, `n_head` divides `n_embd`, the LayerNorm epsilon is positive. Anything else
 * is `E_BAD_INPUT` with the offending value.
 *
 * @example
 * ```ts
 * const cfg = parseConfig({ model_type: "gpt2", n_layer: 2, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 512 });
 * cfg.dHead; // 16
 * ```
 */
export function parseConfig(raw: Record<string, unknown>): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TdbError("E_BAD_INPUT", `config.json must hold a JSON object, got ${raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw}`, {
      value: raw,
      allowed: "a JSON object",
    });
  }
  const modelType = typeof raw.model_type === "string" ? raw.model_type : "";
  const int = (dim: keyof ArchDims, fallback?: number) => positiveInt(configKey(raw, dim), num(raw, [...CONFIG_KEYS[dim]], fallback));
  const dModel = int("dModel");
  const nHeads = int("nHeads");
  if (dModel % nHeads !== 0) {
    throw new TdbError("E_BAD_INPUT", `config.json: ${configKey(raw, "nHeads")} (${nHeads}) must divide ${configKey(raw, "dModel")} (${dModel})`, {
      value: nHeads,
      allowed: `a divisor of ${dModel}`,
    });
  }
  const inner = raw.n_inner;
  // n_inner: null means 4 * n_embd, as Hugging Face writes it.
  const dMlp = typeof inner === "number" ? positiveInt("n_inner", inner) : positiveInt("intermediate_size", num(raw, ["intermediate_size"], 4 * dModel));
  const lnEps = num(raw, [...CONFIG_KEYS.lnEps], 1e-5);
  if (!(lnEps > 0)) {
    const k = configKey(raw, "lnEps");
    throw new TdbError("E_BAD_INPUT", `config.json: ${k} must be positive, got ${lnEps}`, { value: lnEps, allowed: "> 0" });
  }
  return {
    modelType,
    nLayers: int("nLayers"),
    nHeads,
    dModel,
    dHead: dModel / nHeads,
    dMlp,
    nCtx: int("nCtx"),
    dVocab: int("dVocab"),
    lnEps,
    bosTokenId: typeof raw.bos_token_id === "number" ? raw.bos_token_id : undefined,
    eosTokenId: typeof raw.eos_token_id === "number" ? raw.eos_token_id : undefined,
    raw,
  };
}

/**
 * Parses the text of `config.json` as read from `origin` (a directory or hub id; `null` when
 * the file does not exist): `E_MISSING_FILE` when it is missing, `E_BAD_INPUT` naming
 * `origin/config.json` when it is not a JSON object (malformed, empty, `null`, an array), and
 * then {@link parseConfig}'s checks.
 *
 * @example
 * ```ts
 * const config = parseConfigText(await readText(files, "config.json"), files.origin);
 * ```
 */
export function parseConfigText(text: string | null, origin: string): ModelConfig {
  const where = `${origin}/config.json`;
  if (text === null) {
    throw new TdbError("E_MISSING_FILE", `${origin} has no config.json`, { value: "config.json", allowed: ["config.json"] });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `${where} is not valid JSON${text.trim() === "" ? " (the file is empty)" : `: ${(cause as Error).message}`}`, {
      value: text.length > 200 ? `${text.slice(0, 200)}…` : text,
      allowed: "a JSON object",
      cause,
    });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TdbError("E_BAD_INPUT", `${where} must hold a JSON object, got ${raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw}`, {
      value: raw,
      allowed: "a JSON object",
    });
  }
  try {
    return parseConfig(raw as Record<string, unknown>);
  } catch (e) {
    if (e instanceof TdbError && e.message.startsWith("config.json")) {
      throw new TdbError(e.code, `${where}${e.message.slice("config.json".length)}`, { value: e.value, allowed: e.allowed });
    }
    throw e;
  }
}
