/**
 * bench/attribute.ts: the full node table vs a forward pass computing the same logits.
 *
 * On a generated model with GPT-2-small shapes and a 64-token prompt, times `model.attribute`
 * (one run of the forward + backward graph returning every neuron activation and gradient and
 * every attention probability and gradient, then the table's columns and top-k) against two
 * forward passes on the same input, interleaved in the same run:
 *
 * - the like-for-like baseline: a patched session with logit selection computing the logits at
 *   the last position only, as the attribution graph does (`RunSpec.logitPositions`, no hooks).
 *   The headline ratio divides by this one. Target: <= 4x.
 * - the unpatched forward, which computes logits at all 64 positions (64 x 768 x 50257 unembed
 *   instead of 1 x ...); its ratio is printed for reference, it flatters the attribution.
 *
 * Run: npx tsx bench/attribute.ts [--runs 7]
 */
import { performance } from "node:perf_hooks";
import { runtimeOf } from "../src/model/model.js";
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const RUNS = flag("runs", 7);
const N = 64;
// Three graphs alternate below (logit-selected forward, full forward, attribution; the last
// counts 2 against maxSessions): keep them all alive so that the timings are compute, not
// session builds (the default bound, 2, would rebuild one every call).
const { model } = await benchModel({ maxSessions: 4 });
const tokens = englishTokens(model, N);
const rt = runtimeOf(model);
const batch = rt.toBatch([tokens]);
const opts = { target: " Atlanta", distractor: " Fulton", topK: 20 };

/** The forward the attribution graph contains: logits at the last position only. */
const forwardLast = () => rt.run(batch, { hooks: [], logitPositions: [[N - 1]] });
const forwardAll = () => model.forward(tokens);

let t0 = performance.now();
const first = await model.attribute(tokens, opts);
console.log(`first attribute (builds the forward+backward graph and its session): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(`scored ${first.counts.mlp_neuron} neuron nodes, ${first.counts.attention_head} attention nodes, ${first.counts.token_embedding} embeddings; table rows ${first.nodes.length}`);

// The baselines compute the same function: the selected logits are the last row of the full ones.
const last = await forwardLast();
const all = await forwardAll();
const V = model.config.dVocab;
if (last.logits.dims.join() !== [1, 1, V].join()) throw new Error(`logit-selected forward returned dims [${last.logits.dims.join(", ")}], expected [1, 1, ${V}]`);
let maxDiff = 0;
for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(last.logits.data[i]! - all.data[(N - 1) * V + i]!));
console.log(`max |logits(last-position forward) - logits(all-position forward)[last]| = ${maxDiff}`);

const tAttr: number[] = [];
const tLast: number[] = [];
const tAll: number[] = [];
for (let r = 0; r < RUNS; r++) {
  t0 = performance.now();
  await forwardLast();
  tLast.push(performance.now() - t0);
  t0 = performance.now();
  await forwardAll();
  tAll.push(performance.now() - t0);
  t0 = performance.now();
  await model.attribute(tokens, opts);
  tAttr.push(performance.now() - t0);
}
console.log(
  JSON.stringify(
    {
      bench: "attribute",
      shapes: "gpt2-small",
      promptTokens: N,
      runs: RUNS,
      medianAttributeMs: Math.round(median(tAttr)),
      medianForwardLastPositionMs: Math.round(median(tLast)),
      medianForwardAllPositionsMs: Math.round(median(tAll)),
      ratio: +(median(tAttr) / median(tLast)).toFixed(3),
      ratioVsAllPositionsForward: +(median(tAttr) / median(tAll)).toFixed(3),
      target: 4,
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
