/**
 * bench/attribute.ts: the full node table vs a plain forward pass.
 *
 * On a generated model with GPT-2-small shapes and a 64-token prompt, times `model.attribute`
 * (one run of the forward + backward graph returning every neuron activation and gradient and
 * every attention probability and gradient, then the table's columns and top-k) against the
 * unpatched forward pass on the same input, interleaved in the same run. Target: <= 4x.
 *
 * Run: npx tsx bench/attribute.ts [--runs 7]
 */
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import { GPT2_SMALL_SHAPES } from "../src/fixtures/config.js";
import { ensureGpt2Model } from "../src/fixtures/write.js";
import { Model } from "../src/model.js";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rssMiB = () => Math.round(process.resourceUsage().maxRSS / 1024);

const dir = join(import.meta.dirname, "out", "gpt2-small-shapes");
await ensureGpt2Model(dir, { config: GPT2_SMALL_SHAPES, seed: 1, tokenizer: "gpt2" });
const model = await Model.load(dir);
const text =
  "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced no evidence that any irregularities took place. The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta for the manner in which the election was conducted.";
const tokens = model.toTokens(text).slice(0, 64);
if (tokens.length !== 64) throw new Error(`prompt has ${tokens.length} tokens, need 64`);
const opts = { target: " Atlanta", distractor: " Fulton", topK: 20 };

let t0 = performance.now();
const first = await model.attribute(tokens, opts);
console.log(`first attribute (builds the forward+backward graph and its session): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(`scored ${first.counts.mlp_neuron} neuron nodes, ${first.counts.attention_head} attention nodes, ${first.counts.token_embedding} embeddings; table rows ${first.nodes.length}`);
await model.forward(tokens);

const tAttr: number[] = [];
const tFwd: number[] = [];
for (let r = 0; r < RUNS; r++) {
  t0 = performance.now();
  await model.forward(tokens);
  tFwd.push(performance.now() - t0);
  t0 = performance.now();
  await model.attribute(tokens, opts);
  tAttr.push(performance.now() - t0);
}
console.log(
  JSON.stringify(
    {
      bench: "attribute",
      shapes: "gpt2-small",
      promptTokens: 64,
      runs: RUNS,
      medianAttributeMs: Math.round(median(tAttr)),
      medianForwardMs: Math.round(median(tFwd)),
      ratio: +(median(tAttr) / median(tFwd)).toFixed(3),
      target: 4,
      peakRssMiB: rssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
