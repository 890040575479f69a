/**
 * bench/intervene.ts: batched variants vs one call per variant.
 *
 * On a generated model with GPT-2-small shapes and a 32-token prompt, zero-ablates each of the
 * 144 heads: once as a single `variants` call, and as 144 sequential `intervene` calls, in the
 * same run (same options: last-position logits). Prints the ratio batched / sequential
 * (target <= 0.5) and checks both give the same logit differences.
 *
 * Run: npx tsx bench/intervene.ts [--repeats 3]
 */
import { performance } from "node:perf_hooks";
import { zeroHead, type Edit } from "../src/intervene/edits.js";
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const REPEATS = flag("repeats", 3);
const { model } = await benchModel();
const tokens = englishTokens(model, 32);
const variants: Edit[][] = [];
for (let l = 0; l < 12; l++) for (let h = 0; h < 12; h++) variants.push([zeroHead(l, h)]);
const target = tokens[5]!;
const distractor = tokens[9]!;

// Warm up both paths (session building is not what we time).
await model.intervene(tokens, [], { variants: variants.slice(0, 2) });
await model.intervene(tokens, variants[0]!, { logits: "last" });

const tBatched: number[] = [];
const tSeq: number[] = [];
let maxDiff = 0;
for (let r = 0; r < REPEATS; r++) {
  let s = performance.now();
  const batched = await model.intervene(tokens, [], { variants });
  tBatched.push(performance.now() - s);
  const bd = batched.logitDiffChange(target, distractor);
  s = performance.now();
  const seq: number[] = [];
  // The clean run is shared, as the batched call shares it.
  const clean = (await model.intervene(tokens, [], { logits: "last" })).clean;
  for (const v of variants) seq.push((await model.intervene(tokens, v, { logits: "last", clean })).logitDiffChange(target, distractor)[0]!);
  tSeq.push(performance.now() - s);
  for (let i = 0; i < seq.length; i++) maxDiff = Math.max(maxDiff, Math.abs(seq[i]! - bd[i]!));
}
const ratio = median(tBatched) / median(tSeq);
console.log(
  JSON.stringify(
    {
      bench: "intervene",
      shapes: "gpt2-small",
      promptTokens: 32,
      variants: variants.length,
      repeats: REPEATS,
      medianBatchedMs: Math.round(median(tBatched)),
      medianSequentialMs: Math.round(median(tSeq)),
      ratio: +ratio.toFixed(3),
      target: 0.5,
      maxLogitDiffMismatch: maxDiff,
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
