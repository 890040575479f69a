/**
 * `tdb attribute`: the Transformer Debugger node table for "why target rather than distractor?".
 *
 * @module
 */
import { DEFAULT_MODEL_ID } from "../runtime/options.js";
import type { AttributionNode } from "../attribution/node-table.js";
import { TdbError } from "../base/errors.js";

/** Parsed arguments of `tdb attribute`. */
export interface AttributeCommandArgs {
  prompt: string;
  model: string | undefined;
  target: string;
  distractor: string;
  top: number;
  prependBos: boolean;
  json: boolean;
}

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

/** Runs `tdb attribute`; returns the exit code. */
export async function runAttribute(args: AttributeCommandArgs): Promise<number> {
  const { Model } = await import("../model/model.js");
  const dir = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(dir);
  try {
    const t = await model.attribute(args.prompt, { target: args.target, distractor: args.distractor, topK: args.top, prependBos: args.prependBos });
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
      position: n.position,
      keyPosition: n.keyPosition,
      token: n.token,
      activation: round(n.activation),
      writeMagnitude: round(n.writeMagnitude),
      directEffect: round(n.directEffect),
      totalEffect: round(n.totalEffect),
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
    console.log(`nodes scored: ${t.counts.mlp_neuron} neurons, ${t.counts.attention_head} attention nodes, ${t.counts.token_embedding} embeddings\n`);
    console.log(`${"node".padEnd(22)}${"token".padEnd(14)}${"activation".padStart(12)}${"write".padStart(12)}${"direct".padStart(12)}${"total".padStart(12)}`);
    for (const n of t.nodes) {
      console.log(
        `${n.id.padEnd(22)}${JSON.stringify(n.token).slice(0, 13).padEnd(14)}${n.activation.toFixed(4).padStart(12)}${n.writeMagnitude.toFixed(4).padStart(12)}${n.directEffect.toFixed(4).padStart(12)}${n.totalEffect.toFixed(4).padStart(12)}`,
      );
    }
    console.log(`\ntoken effects (sum of total effects): ${t.tokenEffects.map((e) => `${JSON.stringify(e.token)} ${e.totalEffect.toFixed(3)}`).join("  ")}`);
    return 0;
  } finally {
    await model.dispose();
  }
}
