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
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const RUNS = flag("runs", 7);
const { model } = await benchModel();
const tokens = englishTokens(model, 64);
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
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
