/**
 * `tdb trace`: top next tokens and a summary of the activation cache.
 *
 * @module
 */
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import { TdbError } from "../base/errors.js";
import type { Activation } from "../trace/activation.js";
import type { HookName } from "../hooks/names.js";
import type { HookSelector } from "../runtime/options.js";
import { checkSaeFlags, loadSaeFlags, saeAt, topLatents, type LoadedSae, type PositionLatents } from "./sae-flags.js";

/** Parsed arguments of `tdb trace`. */
export interface TraceCommandArgs {
  prompt: string;
  model: string | undefined;
  hooks: string | undefined;
  top: number;
  prependBos: boolean;
  json: boolean;
  /**
   * `--sae` sources: each SAE's hooks (`<hook>.hook_sae_input`, `hook_sae_acts_pre`,
   * `hook_sae_acts_post`, `hook_sae_recons`, `hook_sae_error`) join the cache, and the top
   * latents per position are reported. [default: none]
   */
  saes?: string[];
}

/** Latents shown per position for each `--sae`. */
export const TRACE_TOP_LATENTS = 5;

/** The SAE hook suffixes (SAELens's names), recognised in `--hooks`. */
const SAE_HOOK_RE = /^(.+)\.(hook_sae_[A-Za-z_]+)$/;
const SAE_SUFFIXES = ["hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error"];

/** Summary statistics of one cached tensor, as printed by `tdb trace`. */
export interface TensorSummary {
  name: string;
  dims: number[];
  labels: string[];
  mean: number;
  rms: number;
  min: number;
  max: number;
}

/** Mean, RMS, min and max of an activation (float64 accumulation). */
export function summarize(a: Activation): TensorSummary {
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of a.data) {
    sum += v;
    sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const n = a.data.length || 1;
  return { name: a.name, dims: [...a.dims], labels: [...a.labels], mean: sum / n, rms: Math.sqrt(sq / n), min, max };
}

const round = (x: number) => (Math.abs(x) >= 1e30 ? x : Number(x.toPrecision(6)));

/**
 * Splits `--hooks` names into model hooks and SAE hooks (`<hook>.hook_sae_*`), checking each SAE
 * hook against the loaded SAEs: an unknown suffix is `E_UNKNOWN_HOOK`, a hook no `--sae` reads
 * `E_BAD_OPTION`.
 */
function splitHooks(names: readonly string[], saes: readonly LoadedSae[], nLayers: number): { model: HookName[]; sae: string[] } {
  const out = { model: [] as HookName[], sae: [] as string[] };
  for (const n of names) {
    const m = SAE_HOOK_RE.exec(n);
    if (!m) {
      out.model.push(n as HookName); // checked by trace
      continue;
    }
    if (!SAE_SUFFIXES.includes(m[2]!)) throw new TdbError("E_UNKNOWN_HOOK", `unknown SAE hook ${JSON.stringify(n)}: an SAE's hooks end in ${SAE_SUFFIXES.join(", ")}`, { value: n, allowed: SAE_SUFFIXES.map((s) => `${m[1]}.${s}`) });
    const s = saeAt(saes, m[1]!, nLayers, `--hooks ${n}`);
    out.sae.push(`${s.hook}.${m[2]}`);
  }
  return out;
}

/** Runs `tdb trace`; returns the exit code. */
export async function runTrace(args: TraceCommandArgs): Promise<number> {
  const sources = checkSaeFlags(args.saes ?? []);
  const { Model } = await import("../model/model.js");
  const dir = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(dir);
  let top: { token: number; str: string; logit: number; prob: number }[];
  let cache: TensorSummary[];
  let tokens: number[];
  let strTokens: string[];
  let saeOut: { source: string; hook: string; architecture: string; dIn: number; dSae: number; positions: PositionLatents[] }[] = [];
  try {
    const saes = await loadSaeFlags(sources);
    const names = args.hooks === undefined || args.hooks === "all" ? undefined : args.hooks.split(",").map((s) => s.trim()).filter(Boolean);
    const split = names === undefined ? undefined : splitHooks(names, saes, model.config.nLayers);
    const hooks: HookSelector = split === undefined ? "all" : split.model;
    const t = await model.trace(args.prompt, { hooks, prependBos: args.prependBos, ...(saes.length ? { saes: saes.map((s) => s.sae) } : {}) });
    if (t.nonFinite) {
      throw new TdbError("E_NON_FINITE", "the model produced NaN or infinite logits (a NaN or overflowing weight?): no prediction to report", { value: dir, allowed: "finite logits" });
    }
    top = t.topK(args.top).map((x) => ({ token: x.token, str: x.str, logit: round(x.logit), prob: round(x.prob) }));
    tokens = t.tokens[0]!;
    strTokens = t.strTokens[0]!;
    // With a hook list, the cache shows what was asked for: the SAEs' own hooks are traced for them, not shown.
    const wanted = split === undefined ? undefined : new Set<string>([...split.model, ...split.sae]);
    const shown = [...t.cache].filter(([name]) => wanted === undefined || wanted.has(name));
    cache = shown.map(([, a]) => summarize(a));
    saeOut = saes.map((s) => ({
      source: s.source,
      hook: s.hook!, // loadSaeFlags checked that each SAE names its hook
      architecture: s.sae.config.architecture,
      dIn: s.sae.config.dIn,
      dSae: s.sae.config.dSae,
      positions: topLatents(t.cache.get(`${s.hook}.hook_sae_acts_post`), strTokens, TRACE_TOP_LATENTS),
    }));
  } finally {
    await model.dispose();
  }
  if (args.json) {
    const out = {
      schema: "tdb.trace/1",
      model: { source: dir, modelType: model.config.modelType, nLayers: model.config.nLayers, nHeads: model.config.nHeads, dModel: model.config.dModel, dVocab: model.config.dVocab },
      prompt: args.prompt,
      prependBos: args.prependBos,
      tokens,
      strTokens,
      top,
      cache: cache.map((c) => ({ ...c, mean: round(c.mean), rms: round(c.rms), min: round(c.min), max: round(c.max) })),
      ...(saeOut.length
        ? { saes: saeOut.map((s) => ({ ...s, positions: s.positions.map((p) => ({ ...p, latents: p.latents.map((l) => ({ latent: l.latent, activation: round(l.activation) })) })) })) }
        : {}),
    };
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  console.log(`model: ${dir} (${model.config.modelType}, ${model.config.nLayers} layers)`);
  console.log(`tokens: ${strTokens.map((s) => JSON.stringify(s)).join(" ")}`);
  console.log(`\ntop ${args.top} next tokens:`);
  for (const x of top) console.log(`  ${JSON.stringify(x.str).padEnd(16)} id ${String(x.token).padStart(6)}  logit ${x.logit.toFixed(3).padStart(8)}  p ${x.prob.toFixed(4)}`);
  console.log(`\ncache (${cache.length} hooks):`);
  for (const c of cache) {
    console.log(`  ${c.name.padEnd(Math.max(34, c.name.length))} [${c.labels.map((l, i) => `${l}=${c.dims[i]}`).join(", ")}]  mean ${c.mean.toExponential(2)}  rms ${c.rms.toExponential(2)}`);
  }
  for (const s of saeOut) {
    console.log(`\nSAE ${s.hook} (${s.source}; ${s.architecture}, ${s.dSae} latents): top ${TRACE_TOP_LATENTS} latents per position (latent=activation)`);
    for (const p of s.positions) {
      const list = p.latents.map((l) => `${l.latent}=${l.activation.toFixed(3)}`).join("  ");
      console.log(`  ${String(p.position).padStart(3)} ${JSON.stringify(p.token).slice(0, 15).padEnd(16)} L0 ${String(p.l0).padStart(4)}  ${list}`);
    }
  }
  return 0;
}
