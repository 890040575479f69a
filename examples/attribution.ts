/**
 * Attribution on the default model, tdb:brown-small: Transformer Debugger's node table, tracing upstream
 * from a node, direct logit attribution and the logit lens.
 * Run: `npx tsx examples/attribution.ts`
 */
import { Model } from "../src/index.js";

const model = await Model.load(); // tdb:brown-small
const prompt = "When John and Mary went to the shops, John gave the bag to";
const target = " Mary";
const distractor = " John";

// Why " Mary" rather than " John"? Neurons, attention nodes and token embeddings, ranked.
const table = await model.attribute(prompt, { target, distractor, topK: 5 });
console.log("logit diff", table.loss.toFixed(4));
for (const n of table.nodes.slice(0, 8)) console.log(n.id.padEnd(16), n.totalEffect.toFixed(5), n.directEffect.toFixed(5));

// What drives the top neuron's pre-activation?
const top = table.nodes.find((n) => n.type === "mlp_neuron" && n.layer! > 0);
if (top) {
  const up = await model.traceUpstream(prompt, { type: "mlp_neuron", layer: top.layer!, index: top.index!, position: top.position });
  console.log("upstream of", top.id, up.nodes.slice(0, 3).map((n) => n.id));
}

// Direct logit attribution (sums to the logit difference) and the logit lens.
const dla = await model.directLogitAttribution(prompt, { target, distractor });
console.log("DLA total", dla.total.toFixed(4), "=", dla.logitDiff.toFixed(4));
const lens = await model.logitLens(prompt, { target, distractor });
console.log(lens.map((r) => `${r.hook}: ${r.logitDiff.toFixed(4)}`).join("\n"));
await model.dispose();
