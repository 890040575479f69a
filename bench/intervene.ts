/**
 * bench/intervene.ts: batched variants vs one call per variant.
 *
 * On a generated model with GPT-2-small shapes and a 32-token prompt, zero-ablates each of the
 * 144 heads three ways, in the same run (same options: last-position logits):
 *
 * - one `variants` call with shared-prefix batching (the default, `prefixShare: true`: a variant
 *   first edited in block L reuses the clean rows of blocks < L);
 * - one `variants` call without it (`prefixShare: false`: every row runs every block);
 * - 144 sequential `intervene` calls sharing one clean run.
 *
 * Prints the ratio of each batched mode to sequential (target for the default: <= 0.5) and
 * exits 1 when either batched mode's logit differences differ from the sequential ones by more
 * than 1e-4, or when no ablation changed the logit difference at all (the comparison would
 * then prove nothing).
 *
 * Run: npx tsx bench/intervene.ts [--repeats 3]
 */
import { performance } from "node:perf_hooks";
import { zeroHead, type Edit } from "../src/intervene/edits.js";
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const REPEATS = flag("repeats", 3);
const TOLERANCE = 1e-4;
const { model } = await benchModel();
const tokens = englishTokens(model, 32);
const variants: Edit[][] = [];
for (let l = 0; l < 12; l++) for (let h = 0; h < 12; h++) variants.push([zeroHead(l, h)]);
const target = tokens[5]!;
const distractor = tokens[9]!;

const batched = async (prefixShare: boolean): Promise<number[]> =>
  (await model.intervene(tokens, [], { variants, prefixShare })).logitDiffChange(target, distractor);

// Warm up every path (session building is not what we time).
await model.intervene(tokens, [], { variants: variants.slice(0, 2), prefixShare: true });
await model.intervene(tokens, [], { variants: variants.slice(0, 2), prefixShare: false });
await model.intervene(tokens, variants[0]!, { logits: "last" });

const tShared: number[] = [];
const tUnshared: number[] = [];
const tSeq: number[] = [];
let mismatchShared = 0;
let maxAbsChange = 0;
let mismatchUnshared = 0;
const maxAbsDiff = (a: readonly number[], b: readonly number[]): number => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    m = d <= m ? m : Number.isNaN(d) ? Infinity : d;
  }
  return m;
};
for (let r = 0; r < REPEATS; r++) {
  let s = performance.now();
  const shared = await batched(true);
  tShared.push(performance.now() - s);
  s = performance.now();
  const unshared = await batched(false);
  tUnshared.push(performance.now() - s);
  s = performance.now();
  const seq: number[] = [];
  // The clean run is shared, as the batched calls share it.
  const clean = (await model.intervene(tokens, [], { logits: "last" })).clean;
  for (const v of variants) seq.push((await model.intervene(tokens, v, { logits: "last", clean })).logitDiffChange(target, distractor)[0]!);
  tSeq.push(performance.now() - s);
  if (seq.length !== variants.length) throw new Error(`sequential run gave ${seq.length} results for ${variants.length} variants`);
  mismatchShared = Math.max(mismatchShared, maxAbsDiff(shared, seq));
  for (const c of seq) maxAbsChange = Math.max(maxAbsChange, Math.abs(c));
  mismatchUnshared = Math.max(mismatchUnshared, maxAbsDiff(unshared, seq));
}
const agree = mismatchShared <= TOLERANCE && mismatchUnshared <= TOLERANCE;
const ok = agree && maxAbsChange > 0;
console.log(
  JSON.stringify(
    {
      bench: "intervene",
      shapes: "gpt2-small",
      promptTokens: 32,
      variants: variants.length,
      repeats: REPEATS,
      medianBatchedPrefixShareMs: Math.round(median(tShared)),
      medianBatchedNoPrefixShareMs: Math.round(median(tUnshared)),
      medianSequentialMs: Math.round(median(tSeq)),
      ratio: +(median(tShared) / median(tSeq)).toFixed(3),
      ratioNoPrefixShare: +(median(tUnshared) / median(tSeq)).toFixed(3),
      target: 0.5,
      maxLogitDiffMismatchPrefixShare: mismatchShared,
      maxLogitDiffMismatchNoPrefixShare: mismatchUnshared,
      tolerance: TOLERANCE,
      resultsAgree: agree,
      maxAbsLogitDiffChange: maxAbsChange,
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
if (!agree) {
  console.error(`FAIL: batched and sequential logit differences differ by more than ${TOLERANCE} (prefix share ${mismatchShared}, no prefix share ${mismatchUnshared})`);
  process.exit(1);
}
if (!ok) {
  console.error("FAIL: no head ablation changed the logit difference; the comparison is vacuous");
  process.exit(1);
}
