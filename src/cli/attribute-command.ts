/**
 * `tdb attribute`: the Transformer Debugger node table for "why target rather than distractor?".
 *
 * @module
 */
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import type { AttributionNode } from "../attribution/node-table.js";
import { TdbError } from "../base/errors.js";
import { checkSaeFlags, loadSaeFlags } from "./sae-flags.js";

/** Parsed arguments of `tdb attribute`. */
export interface AttributeCommandArgs {
  prompt: string;
  model: string | undefined;
  target: string;
  distractor: string;
  top: number;
  prependBos: boolean;
  json: boolean;
  /** `--sae` sources (directories, `tdb:<model>/<hook>`, hub ids): their latents join the table. [default: none] */
  saes?: string[];
  /** `--explanations`: where explanations are read from (a directory holding `explanations/`, `tdb:<model>`); shown next to the nodes. [default: none] */
  explanations?: string;
}

/** `--explanations`, loaded (typed errors from loadExplanations: nothing there, a malformed file). */
async function loadExplanationFlag(source: string) {
  const { loadExplanations } = await import("../explainer/explanations.js");
  return loadExplanations(source);
}

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

/**
 * Runs `tdb attribute`; returns the exit code. With `--sae`, the SAEs' latents are nodes of the
 * table (`sae.<hook>.<latent>@<position>`, type `sae_latent`); an empty `--sae` is a usage error,
 * an SAE that cannot load or does not fit its hook a typed error.
 */
export async function runAttribute(args: AttributeCommandArgs): Promise<number> {
  const sources = checkSaeFlags(args.saes ?? []);
  const { Model } = await import("../model/model.js");
  const dir = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(dir);
  try {
    const saes = await loadSaeFlags(sources);
    const explanations = args.explanations === undefined ? undefined : await loadExplanationFlag(args.explanations);
    const t = await model.attribute(args.prompt, {
      target: args.target,
      distractor: args.distractor,
      topK: args.top,
      prependBos: args.prependBos,
      ...(saes.length ? { saes: saes.map((s) => s.sae) } : {}),
      ...(explanations ? { explanations } : {}),
    });
    const numbers = [t.loss, ...t.nodes.flatMap((n) => [n.activation, n.writeMagnitude, n.directEffect, n.totalEffect]), ...t.tokenEffects.map((e) => e.totalEffect)];
    if (!numbers.every(Number.isFinite)) {
      throw new TdbError("E_NON_FINITE", "the model produced NaN or infinite values (a NaN or overflowing weight?): no attribution to report", {
        value: Number.isFinite(t.loss) ? "node effects" : "logit difference",
        allowed: "finite values",
      });
    }
    const row = (n: AttributionNode) => ({
      id: n.id,
      type: n.type,
      layer: n.layer,
      head: n.head,
      index: n.index,
      hook: n.hook,
      position: n.position,
      keyPosition: n.keyPosition,
      token: n.token,
      activation: round(n.activation),
      writeMagnitude: round(n.writeMagnitude),
      directEffect: round(n.directEffect),
      totalEffect: round(n.totalEffect),
      ...(explanations ? { explanation: n.explanation ?? null, explanationScore: n.explanationScore === undefined ? null : round(n.explanationScore) } : {}),
    });
    if (args.json) {
      const out = {
        schema: "tdb.attribute/1",
        model: dir,
        prompt: args.prompt,
        target: args.target,
        distractor: args.distractor,
        tokens: t.tokens,
        logitDiff: round(t.loss),
        counts: t.counts,
        ...(saes.length
          ? {
              saes: saes.map((s) => ({ source: s.source, hook: s.hook, architecture: s.sae.config.architecture, dIn: s.sae.config.dIn, dSae: s.sae.config.dSae })),
              saeTerms: t.saeTerms?.map((x) => ({ hook: x.hook, latents: x.latents, errorEffect: x.errorEffect.map(round), biasEffect: x.biasEffect.map(round) })),
            }
          : {}),
        nodes: t.nodes.map(row),
        tokenEffects: t.tokenEffects.map((e) => ({ ...e, totalEffect: round(e.totalEffect) })),
        topLogits: t.topLogits?.map((x) => ({ token: x.token, str: x.str, logit: round(x.logit) })),
        bottomLogits: t.bottomLogits?.map((x) => ({ token: x.token, str: x.str, logit: round(x.logit) })),
      };
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    console.log(`model: ${dir}`);
    console.log(`logit diff ${JSON.stringify(args.target)} - ${JSON.stringify(args.distractor)} at the last position: ${t.loss.toFixed(4)}`);
    const latents = t.counts.sae_latent === undefined ? "" : `, ${t.counts.sae_latent} SAE latents (${saes.map((s) => `${s.hook}: ${s.sae.config.dSae}`).join(", ")})`;
    console.log(`nodes scored: ${t.counts.mlp_neuron} neurons, ${t.counts.attention_head} attention nodes, ${t.counts.token_embedding} embeddings${latents}\n`);
    // SAE latent ids (sae.<hook>.<latent>@<position>) name the hook and the latent; they are longer than the others.
    const w = Math.max(22, ...t.nodes.map((n) => n.id.length + 2));
    const explained = (n: AttributionNode) => (explanations ? `  ${n.explanation === undefined ? "-" : `${n.explanation.slice(0, 60)} (${n.explanationScore?.toFixed(2) ?? "?"})`}` : "");
    console.log(`${"node".padEnd(w)}${"token".padEnd(14)}${"activation".padStart(12)}${"write".padStart(12)}${"direct".padStart(12)}${"total".padStart(12)}${explanations ? "  explanation (score)" : ""}`);
    for (const n of t.nodes) {
      console.log(
        `${n.id.padEnd(w)}${JSON.stringify(n.token).slice(0, 13).padEnd(14)}${n.activation.toFixed(4).padStart(12)}${n.writeMagnitude.toFixed(4).padStart(12)}${n.directEffect.toFixed(4).padStart(12)}${n.totalEffect.toFixed(4).padStart(12)}${explained(n)}`,
      );
    }
    console.log(`\ntoken effects (sum of total effects): ${t.tokenEffects.map((e) => `${JSON.stringify(e.token)} ${e.totalEffect.toFixed(3)}`).join("  ")}`);
    return 0;
  } finally {
    await model.dispose();
  }
}
