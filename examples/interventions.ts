/**
 * Interventions on the default model, tdb:brown-small: head and neuron ablations, every head ablated in
 * one batched call, steering, and an activation-patching sweep.
 * Run: `npx tsx examples/interventions.ts`
 */
import { Model, steer, zeroHead, zeroNeuron, type Edit } from "../src/index.js";

const model = await Model.load(); // tdb:brown-small
const prompt = "When John and Mary went to the shops, John gave the bag to";

// Ablate head 1.3 and neuron 17 of layer 0 at position 5; compare with the clean run.
const r = await model.intervene(prompt, [zeroHead(1, 3), zeroNeuron(0, 17, { positions: [5] })]);
console.log("logit diff change:", r.logitDiffChange(" Mary", " John")[0], "KL:", r.kl()[0]);

// Every head, one at a time, as one batched call.
const variants: Edit[][] = [];
for (let l = 0; l < model.config.nLayers; l++) for (let h = 0; h < model.config.nHeads; h++) variants.push([zeroHead(l, h)]);
const all = await model.intervene(prompt, [], { variants });
console.log("per-head effect on the logit diff:", all.logitDiffChange(" Mary", " John").map((x) => x.toFixed(4)));

// Steering: add a direction to the residual stream and generate.
const mary = model.toSingleToken(" Mary");
const direction = model.weights.W_E.data.slice(mary * model.config.dModel, (mary + 1) * model.config.dModel); // " Mary"'s embedding
const g = await model.generate("I saw", { edits: [steer("blocks.1.hook_resid_pre", direction, 8)], maxNewTokens: 5 });
console.log("steered completion:", JSON.stringify(g.completion));

// Which residual-stream positions carry the difference between two prompts?
const sweep = await model.patchingSweep(prompt, "When John and Mary went to the shops, Mary gave the bag to", {
  hook: "resid_pre",
  target: " Mary",
  distractor: " John",
});
console.log("patching sweep", sweep.labels, sweep.dims, "clean", sweep.cleanMetric.toFixed(4), "corrupted", sweep.corruptedMetric.toFixed(4));
await model.dispose();
