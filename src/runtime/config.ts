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
  }
  if (fallback !== undefined) return fallback;
  throw new TdbError("E_BAD_INPUT", `config.json lacks ${keys.join(" / ")}`, { value: Object.keys(raw), allowed: keys });
}

/**
 * Parses a GPT-2-family `config.json`.
 *
 * @example
 * ```ts
 * const cfg = parseConfig({ model_type: "gpt2", n_layer: 2, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 512 });
 * cfg.dHead; // 16
 * ```
 */
export function parseConfig(raw: Record<string, unknown>): ModelConfig {
  const modelType = typeof raw.model_type === "string" ? raw.model_type : "";
  const dModel = num(raw, ["n_embd", "hidden_size", "d_model"]);
  const nHeads = num(raw, ["n_head", "num_attention_heads"]);
  const inner = raw.n_inner;
  return {
    modelType,
    nLayers: num(raw, ["n_layer", "num_hidden_layers"]),
    nHeads,
    dModel,
    dHead: dModel / nHeads,
    dMlp: typeof inner === "number" ? inner : num(raw, ["intermediate_size"], 4 * dModel),
    nCtx: num(raw, ["n_positions", "n_ctx", "max_position_embeddings"]),
    dVocab: num(raw, ["vocab_size"]),
    lnEps: num(raw, ["layer_norm_epsilon", "layer_norm_eps"], 1e-5),
    bosTokenId: typeof raw.bos_token_id === "number" ? raw.bos_token_id : undefined,
    eosTokenId: typeof raw.eos_token_id === "number" ? raw.eos_token_id : undefined,
    raw,
  };
}
