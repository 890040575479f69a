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
import { join } from "node:path";
import { Model } from "../src/model.js";
import { ensureGpt2Model } from "../src/fixtures/write.js";
import { GPT2_SMALL_SHAPES } from "../src/fixtures/config.js";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rssMiB = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);

const dir = join(import.meta.dirname, "out", "gpt2-small-shapes");
let t0 = performance.now();
await ensureGpt2Model(dir, { config: GPT2_SMALL_SHAPES, seed: 1, tokenizer: "gpt2" });
console.log(`model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);

t0 = performance.now();
const model = await Model.load(dir);
console.log(`Model.load: ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${rssMiB()} MiB`);

// 64 tokens of ordinary English (BOS + 63).
const text =
  "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced no evidence that any irregularities took place. The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.";
const tokens = model.toTokens(text).slice(0, 64);
if (tokens.length !== 64) throw new Error(`prompt has ${tokens.length} tokens, need 64`);

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
      peakRssMiB: Number(rssMiB()),
    },
    null,
    2,
  ),
);
await model.dispose();
