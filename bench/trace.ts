/**
 * bench/trace.ts: the cost of caching every hook.
 *
 * On a generated model with GPT-2-small shapes (12 layers, d_model 768, d_mlp 3072, vocab 50257)
 * and a 64-token prompt, compares the median time of `model.trace` with every (non-opt-in) hook
 * cached against the median time of the unpatched onnxruntime session on the same input,
 * measured in the same run, interleaved. Target: ratio <= 1.3.
 *
 * Run: npx tsx bench/trace.ts [--runs 15]
 */
import { performance } from "node:perf_hooks";
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const RUNS = flag("runs", 15);
let t0 = performance.now();
const { model, dir } = await benchModel();
console.log(`model ready and loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir}), peak RSS ${peakRssMiB()} MiB`);
const tokens = englishTokens(model, 64);

t0 = performance.now();
const first = await model.trace(tokens, { hooks: "all" });
console.log(`first trace (builds the patched session): ${((performance.now() - t0) / 1000).toFixed(1)} s; ${first.cache.size} hooks cached`);
const base = await model.forward(tokens);
let maxDiff = 0;
for (let i = 0; i < base.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(base.data[i]! - first.logits.data[i]!));
console.log(`max |logits(patched) - logits(unpatched)| = ${maxDiff}`);

const tTrace: number[] = [];
const tBase: number[] = [];
for (let r = 0; r < RUNS; r++) {
  let s = performance.now();
  await model.forward(tokens);
  tBase.push(performance.now() - s);
  s = performance.now();
  await model.trace(tokens, { hooks: "all" });
  tTrace.push(performance.now() - s);
}
const ratio = median(tTrace) / median(tBase);
console.log(
  JSON.stringify(
    {
      bench: "trace",
      shapes: "gpt2-small",
      promptTokens: 64,
      runs: RUNS,
      hooks: first.cache.size,
      medianTraceMs: +median(tTrace).toFixed(1),
      medianUnpatchedMs: +median(tBase).toFixed(1),
      ratio: +ratio.toFixed(3),
      target: 1.3,
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
