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

/** Parsed arguments of `tdb trace`. */
export interface TraceCommandArgs {
  prompt: string;
  model: string | undefined;
  hooks: string | undefined;
  top: number;
  prependBos: boolean;
  json: boolean;
}

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

/** Runs `tdb trace`; returns the exit code. */
export async function runTrace(args: TraceCommandArgs): Promise<number> {
  const { Model } = await import("../model/model.js");
  const dir = args.model ?? DEFAULT_MODEL_ID;
  const model = await Model.load(dir);
  const hooks: HookSelector = args.hooks === undefined || args.hooks === "all" ? "all" : (args.hooks.split(",").map((s) => s.trim()).filter(Boolean) as HookName[]); // checked by trace
  const t = await model.trace(args.prompt, { hooks, prependBos: args.prependBos });
  if (t.nonFinite) {
    await model.dispose();
    throw new TdbError("E_NON_FINITE", "the model produced NaN or infinite logits (a NaN or overflowing weight?): no prediction to report", { value: dir, allowed: "finite logits" });
  }
  const top = t.topK(args.top).map((x) => ({ token: x.token, str: x.str, logit: round(x.logit), prob: round(x.prob) }));
  const cache = [...t.cache].map(([, a]) => summarize(a));
  await model.dispose();
  if (args.json) {
    const out = {
      schema: "tdb.trace/1",
      model: { source: dir, modelType: model.config.modelType, nLayers: model.config.nLayers, nHeads: model.config.nHeads, dModel: model.config.dModel, dVocab: model.config.dVocab },
      prompt: args.prompt,
      prependBos: args.prependBos,
      tokens: t.tokens[0],
      strTokens: t.strTokens[0],
      top,
      cache: cache.map((c) => ({ ...c, mean: round(c.mean), rms: round(c.rms), min: round(c.min), max: round(c.max) })),
    };
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  console.log(`model: ${dir} (${model.config.modelType}, ${model.config.nLayers} layers)`);
  console.log(`tokens: ${t.strTokens[0]!.map((s) => JSON.stringify(s)).join(" ")}`);
  console.log(`\ntop ${args.top} next tokens:`);
  for (const x of top) console.log(`  ${JSON.stringify(x.str).padEnd(16)} id ${String(x.token).padStart(6)}  logit ${x.logit.toFixed(3).padStart(8)}  p ${x.prob.toFixed(4)}`);
  console.log(`\ncache (${cache.length} hooks):`);
  for (const c of cache) {
    console.log(`  ${c.name.padEnd(34)} [${c.labels.map((l, i) => `${l}=${c.dims[i]}`).join(", ")}]  mean ${c.mean.toExponential(2)}  rms ${c.rms.toExponential(2)}`);
  }
  return 0;
}
