/**
 * `tdb ablate`: zero-ablate heads and neurons, print the top next tokens before and after, the
 * logit difference change and the KL divergence.
 *
 * @module
 */
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import { TdbError } from "../base/errors.js";
import { zeroHead, zeroNeuron, type Edit } from "../intervene/edits.js";
import { UsageError } from "./usage.js";
import { checkSaeFlags, latentSae, loadSaeFlags, parseLatentFlag } from "./sae-flags.js";

/** Parsed arguments of `tdb ablate`. */
export interface AblateCommandArgs {
  prompt: string;
  model: string | undefined;
  heads: string[];
  neurons: string[];
  target: string | undefined;
  distractor: string | undefined;
  top: number;
  prependBos: boolean;
  json: boolean;
  /** `--latent HOOK:INDEX[@POSITION]` values: SAE latents to zero-ablate (each needs an `--sae` reading HOOK). [default: none] */
  latents?: string[];
  /** `--sae` sources the latents belong to. [default: none] */
  saes?: string[];
}

/**
 * Parses `L.H` (head H of layer L) or `L.I@P` (neuron I of layer L at position P) into an edit.
 *
 * @example
 * ```ts
 * parseNodeSpec("1.3", "head");     // zeroHead(1, 3)
 * parseNodeSpec("0.17@5", "neuron"); // zeroNeuron(0, 17, { positions: [5] })
 * ```
 */
export function parseNodeSpec(spec: string, what: "head" | "neuron"): Edit {
  const m = /^(\d+)\.(\d+)(?:@(-?\d+))?$/.exec(spec.trim());
  if (!m) {
    throw new TdbError("E_BAD_OPTION", `--${what} ${JSON.stringify(spec)}: expected LAYER.INDEX or LAYER.INDEX@POSITION, e.g. 1.3 or 0.17@5`, {
      value: spec,
      allowed: "LAYER.INDEX[@POSITION]",
    });
  }
  const [layer, index] = [Number(m[1]), Number(m[2])];
  const where = m[3] === undefined ? {} : { positions: [Number(m[3])] };
  return what === "head" ? zeroHead(layer, index, where) : zeroNeuron(layer, index, where);
}

const round = (x: number) => Number(x.toPrecision(6));

/** {@link parseNodeSpec} for a command-line flag: a malformed spec is a usage error. */
function flagSpec(spec: string, what: "head" | "neuron"): Edit {
  try {
    return parseNodeSpec(spec, what);
  } catch (e) {
    if (e instanceof TdbError && e.code === "E_BAD_OPTION") throw new UsageError(e.message, spec);
    throw e;
  }
}

/**
 * Runs `tdb ablate`; returns the exit code. Malformed `--head`/`--neuron`/`--latent` values,
 * nothing to ablate, `--latent` without `--sae` (or the reverse), and `--target` without
 * `--distractor` (or the reverse) are usage errors, found before the model loads; out-of-range
 * layers, heads, neurons, latents and positions, SAEs that cannot load or do not fit their
 * hook, and a `--latent` hook no `--sae` reads are typed errors. A latent ablation zeroes the
 * latent and keeps the SAE's error term: the hook's value becomes `x - f_i W_dec[i]` (undoing
 * the SAE's input normalisation).
 */
export async function runAblate(args: AblateCommandArgs): Promise<number> {
  const edits = [...args.heads.map((h) => flagSpec(h, "head")), ...args.neurons.map((n) => flagSpec(n, "neuron"))];
  const latentFlags = (args.latents ?? []).map(parseLatentFlag);
  const sources = checkSaeFlags(args.saes ?? []);
  if (edits.length === 0 && latentFlags.length === 0) throw new UsageError("nothing to ablate: pass --head L.H, --neuron L.I[@P] and/or --latent HOOK:I[@P] with --sae");
  if (latentFlags.length > 0 && sources.length === 0) throw new UsageError("--latent needs --sae: the SAE whose latent it is (a directory, tdb:<model>/<hook> or a hub id)", "--latent");
  if (sources.length > 0 && latentFlags.length === 0) throw new UsageError("--sae in ablate names the SAEs of --latent HOOK:I[@P] flags; none given", "--sae");
  if ((args.target === undefined) !== (args.distractor === undefined)) {
    throw new UsageError("--target and --distractor go together", args.target === undefined ? "--distractor" : "--target");
  }
  const { Model, runtimeOf } = await import("../model/model.js");
  const dir = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(dir);
  try {
    const saes = await loadSaeFlags(sources);
    const { zeroLatent } = await import("../sae/latent-edits.js");
    const latentEdits = latentFlags.map((f) => {
      const s = latentSae(saes, f, model.config.nLayers);
      return { flag: f, source: s.source, edit: zeroLatent(s.sae, f.latent, f.position === undefined ? {} : { positions: [f.position] }) };
    });
    if (args.target !== undefined) {
      // target = distractor is the typed error `tdb attribute` gives (E_BAD_INPUT), as are tokens that are not single tokens
      const { resolveLogitDiff } = await import("../attribution/loss.js");
      resolveLogitDiff(runtimeOf(model), args.target, args.distractor!);
    }
    const r = await model.intervene(args.prompt, [...edits, ...latentEdits.map((l) => l.edit)], { prependBos: args.prependBos });
    if (r.clean.nonFinite || r.edited.nonFinite) {
      throw new TdbError("E_NON_FINITE", `the ${r.clean.nonFinite ? "clean" : "ablated"} run produced NaN or infinite logits (a NaN or overflowing weight?): nothing to compare`, {
        value: r.clean.nonFinite ? "clean" : "ablated",
        allowed: "finite logits",
      });
    }
    const [change] = r.topKChanges(args.top);
    const fmt = (t: { token: number; str: string; logit: number; prob: number }) => ({ token: t.token, str: t.str, logit: round(t.logit), prob: round(t.prob) });
    const diff = args.target !== undefined ? r.logitDiffs(args.target, args.distractor!) : undefined;
    const out = {
      schema: "tdb.ablate/1",
      model: dir,
      prompt: args.prompt,
      tokens: r.clean.tokens[0],
      ablated: [
        ...edits.map((e) => ({ hook: e.hook, at: e.at, positions: e.positions ?? ("all" as const) })),
        ...latentEdits.map((l) => ({ hook: l.flag.hook, at: { d_sae: [l.flag.latent] }, positions: l.flag.position === undefined ? ("all" as const) : [l.flag.position], sae: l.source })),
      ],
      before: change!.before.map(fmt),
      after: change!.after.map(fmt),
      logitDiff: diff ? { target: args.target, distractor: args.distractor, before: round(diff.clean[0]!), after: round(diff.edited[0]!), change: round(diff.change[0]!) } : undefined,
      kl: round(r.kl()[0]!),
    };
    if (args.json) {
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    console.log(`model: ${dir}`);
    console.log(`ablated: ${out.ablated.map((a) => `${a.hook} ${JSON.stringify(a.at)} @ ${JSON.stringify(a.positions)}`).join("; ")}`);
    console.log(`\n  ${"before: token, logit, p".padEnd(45)}after`);
    for (let i = 0; i < out.before.length; i++) {
      const b = out.before[i]!;
      const a = out.after[i];
      const cell = (t: { str: string; logit: number; prob: number }) => `${JSON.stringify(t.str).padEnd(16)} ${t.logit.toFixed(3).padStart(8)} p ${t.prob.toExponential(2)}`;
      console.log(`  ${cell(b)}    ${a ? cell(a) : ""}`);
    }
    if (out.logitDiff) {
      const d = out.logitDiff;
      console.log(`\nlogit diff ${JSON.stringify(d.target)} - ${JSON.stringify(d.distractor)}: ${d.before.toFixed(4)} -> ${d.after.toFixed(4)} (change ${d.change.toFixed(4)})`);
    }
    console.log(`KL(clean || ablated) at the last position: ${out.kl.toExponential(3)}`);
    return 0;
  } finally {
    await model.dispose();
  }
}
