/**
 * `--sae` and `--latent`, the SAE flags of `tdb trace`, `tdb attribute` and `tdb ablate`: checking
 * their values (usage errors, before any model loads), loading the SAEs, finding the SAE of a
 * hook, and the top latents per position that `tdb trace` prints.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { parseHookName } from "../hooks/names.js";
import type { Sae } from "../sae/sae.js";
import type { Activation } from "../trace/activation.js";
import { UsageError } from "./usage.js";

/** An SAE given with `--sae`: where it came from and the loaded SAE. */
export interface LoadedSae {
  /** The `--sae` value as given. */
  source: string;
  /** The SAE. */
  sae: Sae;
  /** The hook it reads (its cfg.json's `hook_name`), or undefined when it names none. */
  hook: string | undefined;
}

/** A parsed `--latent HOOK:INDEX[@POSITION]`. */
export interface LatentFlag {
  /** The flag value as given. */
  spec: string;
  /** The hook of the SAE whose latent it is. */
  hook: string;
  /** Latent index. */
  latent: number;
  /** Position (negative from the end), or undefined for every position. */
  position?: number;
}

/** Checks the `--sae` values: each a non-empty string (a usage error otherwise). */
export function checkSaeFlags(sources: readonly string[]): string[] {
  for (const s of sources) if (s.trim() === "") throw new UsageError("--sae takes a directory, tdb:<model>/<hook> or a hub id; got an empty value", s);
  return [...sources];
}

/**
 * Parses `--latent HOOK:INDEX[@POSITION]` (`blocks.2.hook_mlp_out:123`, `blocks.2.hook_mlp_out:123@-1`);
 * a malformed value is a usage error. Whether the hook exists and the index is in range depends
 * on the model and the SAE: {@link latentSae} checks those (typed errors).
 */
export function parseLatentFlag(spec: string): LatentFlag {
  const m = /^([A-Za-z_][\w.]*):(\d+)(?:@(-?\d+))?$/.exec(spec.trim());
  if (!m) throw new UsageError(`--latent ${JSON.stringify(spec)}: expected HOOK:INDEX or HOOK:INDEX@POSITION, e.g. blocks.2.hook_mlp_out:123 or blocks.2.hook_mlp_out:123@-1`, spec);
  return { spec, hook: m[1]!, latent: Number(m[2]), ...(m[3] === undefined ? {} : { position: Number(m[3]) }) };
}

/**
 * Loads every `--sae` source, in order (typed errors: `E_MISSING_FILE`, `E_SAFETENSORS`,
 * `E_SAE_CONFIG`, ...). Each SAE attaches at the hook its cfg.json names: one that names none is
 * `E_SAE_CONFIG`; two on one hook are `E_BAD_OPTION`.
 */
export async function loadSaeFlags(sources: readonly string[]): Promise<LoadedSae[]> {
  if (sources.length === 0) return [];
  const { loadSaeSource } = await import("../sae/sources.js");
  const out: LoadedSae[] = [];
  for (const source of sources) {
    const sae = await loadSaeSource(source);
    const hook = sae.config.hookName;
    if (hook === undefined || hook === "") {
      throw new TdbError("E_SAE_CONFIG", `--sae ${source}: its cfg.json names no hook (hook_name); the command attaches an SAE at the hook it names`, {
        value: hook ?? null,
        allowed: "a cfg.json with hook_name, e.g. blocks.2.hook_mlp_out",
      });
    }
    const twin = out.find((s) => s.hook === hook);
    if (twin) throw new TdbError("E_BAD_OPTION", `--sae ${twin.source} and --sae ${source} both read ${hook}; give one SAE per hook`, { value: hook, allowed: "one SAE per hook" });
    out.push({ source, sae, hook });
  }
  return out;
}

/**
 * The loaded SAE that reads `hook` (checked as a hook name of a model with `nLayers` layers:
 * `E_UNKNOWN_HOOK`, `E_LAYER_RANGE`); `E_BAD_OPTION` when no `--sae` reads it, with the hooks
 * that have one as `allowed`.
 */
export function saeAt(saes: readonly LoadedSae[], hook: string, nLayers: number, what: string): LoadedSae {
  const name = parseHookName(hook, nLayers).name;
  const found = saes.find((s) => s.hook === name);
  if (!found) {
    throw new TdbError("E_BAD_OPTION", `${what}: no --sae reads ${name}${saes.length ? ` (the SAEs given read ${saes.map((s) => s.hook ?? "no hook").join(", ")})` : " (no --sae given)"}`, {
      value: name,
      allowed: saes.flatMap((s) => (s.hook === undefined ? [] : [s.hook])),
    });
  }
  return found;
}

/** The SAE of a `--latent` and its index checked against it (`E_INDEX_RANGE` with the SAE's range). */
export function latentSae(saes: readonly LoadedSae[], flag: LatentFlag, nLayers: number): LoadedSae {
  const s = saeAt(saes, flag.hook, nLayers, `--latent ${flag.spec}`);
  const n = s.sae.config.dSae;
  if (flag.latent >= n) {
    throw new TdbError("E_INDEX_RANGE", `--latent ${flag.spec}: latent ${flag.latent} out of range [0, ${n - 1}] (the SAE ${s.source} has ${n} latents)`, { value: flag.latent, allowed: [0, n - 1] });
  }
  return s;
}

/** The largest latents at one position (activation > 0 only). */
export interface PositionLatents {
  position: number;
  token: string;
  /** Number of non-zero latents at the position (L0). */
  l0: number;
  /** Up to k latents, largest activation first. */
  latents: { latent: number; activation: number }[];
}

/**
 * The `k` largest latents at each position of batch row 0 of an `hook_sae_acts_post`
 * activation [batch, pos, d_sae] (ties: the lower index first).
 */
export function topLatents(acts: Activation, tokens: readonly string[], k: number): PositionLatents[] {
  const [, S, m] = acts.dims as [number, number, number];
  const out: PositionLatents[] = [];
  for (let t = 0; t < S; t++) {
    const row = acts.data.subarray(t * m, (t + 1) * m);
    const active: { latent: number; activation: number }[] = [];
    for (let i = 0; i < m; i++) if (row[i]! > 0) active.push({ latent: i, activation: row[i]! });
    active.sort((a, b) => b.activation - a.activation || a.latent - b.latent);
    out.push({ position: t, token: tokens[t] ?? "", l0: active.length, latents: active.slice(0, k) });
  }
  return out;
}
