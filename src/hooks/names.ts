/**
 * The hook vocabulary: every hook name tdb-js knows, with the dims of its tensor, in the
 * TransformerLens spelling users already know (`blocks.3.attn.hook_pattern`).
 *
 * One table ({@link HOOK_KINDS}) is the source of the names, their dims and their order.
 *
 * @module
 */
import { TdbError, formatAllowed } from "../base/errors.js";

/** Where a hook lives: once per model, once per block. */
export type HookScope = "model" | "block";

/** A row of the hook table. */
export interface HookKind {
  /** Name within its scope, e.g. `attn.hook_pattern` (per block) or `hook_embed` (model). */
  readonly suffix: string;
  readonly scope: HookScope;
  /** Dim labels, TransformerLens order. */
  readonly dims: readonly string[];
  /** Short alias for `cache.get(alias, layer)`, e.g. `pattern`. */
  readonly alias: string;
  /** Opt-in hooks (large, or computed by extra graph nodes) are left out of "all hooks". */
  readonly optIn?: boolean;
  readonly doc: string;
}

/**
 * Every hook kind, in the order hooks appear in a forward pass (this is also the order of
 * {@link hookNamesFor}).
 */
export const HOOK_KINDS = [
  { suffix: "hook_embed", scope: "model", dims: ["batch", "pos", "d_model"], alias: "embed", doc: "token embeddings" },
  { suffix: "hook_pos_embed", scope: "model", dims: ["batch", "pos", "d_model"], alias: "pos_embed", doc: "position embeddings" },
  { suffix: "hook_resid_pre", scope: "block", dims: ["batch", "pos", "d_model"], alias: "resid_pre", doc: "residual stream into the block" },
  { suffix: "ln1.hook_scale", scope: "block", dims: ["batch", "pos", "1"], alias: "scale1", doc: "ln_1 scale sqrt(var + eps)" },
  { suffix: "attn.hook_q", scope: "block", dims: ["batch", "pos", "head", "d_head"], alias: "q", doc: "queries" },
  { suffix: "attn.hook_k", scope: "block", dims: ["batch", "pos", "head", "d_head"], alias: "k", doc: "keys" },
  { suffix: "attn.hook_v", scope: "block", dims: ["batch", "pos", "head", "d_head"], alias: "v", doc: "values" },
  {
    suffix: "attn.hook_attn_scores",
    scope: "block",
    dims: ["batch", "head", "query_pos", "key_pos"],
    alias: "attn_scores",
    doc: "scaled attention logits after the causal mask and padding bias (masked entries are -3.4e38, not -inf)",
  },
  { suffix: "attn.hook_pattern", scope: "block", dims: ["batch", "head", "query_pos", "key_pos"], alias: "pattern", doc: "attention probabilities" },
  { suffix: "attn.hook_z", scope: "block", dims: ["batch", "pos", "head", "d_head"], alias: "z", doc: "pattern-weighted values" },
  {
    suffix: "attn.hook_result",
    scope: "block",
    dims: ["batch", "pos", "head", "d_model"],
    alias: "result",
    optIn: true,
    doc: "each head's write to the residual stream, z[h] @ W_O[h] (no bias); opt-in: n_head times the memory of attn_out",
  },
  { suffix: "hook_attn_out", scope: "block", dims: ["batch", "pos", "d_model"], alias: "attn_out", doc: "attention output incl. c_proj bias" },
  { suffix: "hook_resid_mid", scope: "block", dims: ["batch", "pos", "d_model"], alias: "resid_mid", doc: "residual after attention" },
  { suffix: "ln2.hook_scale", scope: "block", dims: ["batch", "pos", "1"], alias: "scale2", doc: "ln_2 scale sqrt(var + eps)" },
  { suffix: "mlp.hook_pre", scope: "block", dims: ["batch", "pos", "d_mlp"], alias: "pre", doc: "MLP pre-activations" },
  { suffix: "mlp.hook_post", scope: "block", dims: ["batch", "pos", "d_mlp"], alias: "post", doc: "MLP post-activations (neurons)" },
  { suffix: "hook_mlp_out", scope: "block", dims: ["batch", "pos", "d_model"], alias: "mlp_out", doc: "MLP output incl. c_proj bias" },
  { suffix: "hook_resid_post", scope: "block", dims: ["batch", "pos", "d_model"], alias: "resid_post", doc: "residual stream out of the block" },
  { suffix: "ln_final.hook_scale", scope: "model", dims: ["batch", "pos", "1"], alias: "scale_final", doc: "ln_f scale sqrt(var + eps)" },
] as const satisfies readonly HookKind[];

/** One row of {@link HOOK_KINDS}, with its literal types. */
export type HookKindRow = (typeof HOOK_KINDS)[number];

/** Per-block hook suffixes, e.g. `attn.hook_pattern`. */
export type BlockHookSuffix = Extract<HookKindRow, { scope: "block" }>["suffix"];
/** Model-level hook names, e.g. `hook_embed`. */
export type ModelHookName = Extract<HookKindRow, { scope: "model" }>["suffix"];
/** Every hook name: `hook_embed`, `blocks.3.attn.hook_pattern`, `ln_final.hook_scale`, ... */
export type HookName = ModelHookName | `blocks.${number}.${BlockHookSuffix}`;
/** Aliases accepted by `cache.get(alias, layer)`. */
export type HookAlias = HookKindRow["alias"];

/** A parsed hook name. */
export interface ParsedHook {
  name: HookName;
  kind: HookKind;
  /** Layer for block hooks, undefined for model hooks. */
  layer: number | undefined;
}

const BY_SUFFIX = new Map<string, HookKind>(HOOK_KINDS.map((k) => [k.suffix, k]));
const BY_ALIAS = new Map<string, HookKind>(HOOK_KINDS.map((k) => [k.alias, k]));

/**
 * All hook names of a model with `nLayers` blocks, in forward order.
 *
 * @example
 * ```ts
 * hookNamesFor(2, { optIn: false }).slice(0, 3); // ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre"]
 * ```
 */
export function hookNamesFor(nLayers: number, { optIn = true }: { optIn?: boolean } = {}): HookName[] {
  const names: HookName[] = [];
  const kinds = HOOK_KINDS.filter((k) => optIn || !("optIn" in k && k.optIn));
  for (const k of kinds) if (k.scope === "model" && k.suffix !== "ln_final.hook_scale") names.push(k.suffix as HookName);
  for (let l = 0; l < nLayers; l++) {
    for (const k of kinds) if (k.scope === "block") names.push(`blocks.${l}.${k.suffix}` as HookName);
  }
  names.push("ln_final.hook_scale");
  return names;
}

/**
 * Parses and checks a hook name against a model with `nLayers` blocks.
 * Throws `E_UNKNOWN_HOOK` for names not in the table, `E_LAYER_RANGE` for a bad layer.
 */
export function parseHookName(name: string, nLayers: number): ParsedHook {
  if (typeof name !== "string") {
    throw new TdbError("E_UNKNOWN_HOOK", `a hook name must be a string, got ${name === null ? "null" : typeof name}`, { value: name === null ? null : typeof name, allowed: "a hook name such as blocks.0.hook_resid_pre" });
  }
  const m = /^blocks\.(-?\d+)\.(.+)$/.exec(name);
  if (m) {
    const kind = BY_SUFFIX.get(m[2]!);
    if (!kind || kind.scope !== "block") throw unknownHook(name, nLayers);
    const layer = Number(m[1]);
    checkLayer(layer, nLayers, name);
    return { name: name as HookName, kind, layer };
  }
  const kind = BY_SUFFIX.get(name);
  if (!kind || kind.scope !== "model") throw unknownHook(name, nLayers);
  return { name: name as HookName, kind, layer: undefined };
}

/**
 * Resolves the shorthand `(alias, layer)` to a full name; negative layers count from the end.
 *
 * @example
 * ```ts
 * resolveHookAlias("pattern", -1, 12); // "blocks.11.attn.hook_pattern"
 * ```
 */
export function resolveHookAlias(alias: string, layer: number | undefined, nLayers: number): HookName {
  const kind = BY_ALIAS.get(alias) ?? BY_SUFFIX.get(alias);
  if (!kind) {
    throw new TdbError("E_UNKNOWN_HOOK", `unknown hook alias ${JSON.stringify(alias)}; allowed: ${formatAllowed([...BY_ALIAS.keys()], 40)}`, {
      value: alias,
      allowed: [...BY_ALIAS.keys()],
    });
  }
  if (kind.scope === "model") return kind.suffix as HookName;
  if (layer === undefined) {
    throw new TdbError("E_LAYER_RANGE", `hook alias ${JSON.stringify(alias)} needs a layer in [${-nLayers}, ${nLayers - 1}]`, {
      value: alias,
      allowed: [-nLayers, nLayers - 1],
    });
  }
  const l = layer < 0 ? nLayers + layer : layer;
  checkLayer(l, nLayers, `${alias}@${layer}`, layer);
  return `blocks.${l}.${kind.suffix}` as HookName;
}

function checkLayer(layer: number, nLayers: number, what: string, shown: number = layer): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayers) {
    throw new TdbError("E_LAYER_RANGE", `layer ${shown} out of range in ${what}; the model has layers 0..${nLayers - 1}`, {
      value: shown,
      allowed: [0, nLayers - 1],
    });
  }
}

function unknownHook(name: string, nLayers: number): TdbError {
  const suffixes = HOOK_KINDS.map((k) => (k.scope === "block" ? `blocks.{0..${nLayers - 1}}.${k.suffix}` : k.suffix));
  return new TdbError("E_UNKNOWN_HOOK", `unknown hook ${JSON.stringify(name)}; allowed: ${suffixes.join(", ")}`, {
    value: name,
    allowed: suffixes,
  });
}

/** The hook table row for a name's suffix (no validation of the layer). */
export function hookKindOf(name: string): HookKind | undefined {
  const m = /^blocks\.\d+\.(.+)$/.exec(name);
  return BY_SUFFIX.get(m ? m[1]! : name);
}
