/**
 * The README's 30-second example. Run: `npx tsx examples/quickstart.ts`
 */
import { Model } from "../src/index.js";

// No id: tdb:brown-small, a small GPT-2 trained on the Brown corpus that ships with tdb-js
// (offline). Or a local directory, a Hugging Face hub id ("onnx-community/gpt2-ONNX"), tdb:<name>.
const model = await Model.load();

const t = await model.trace("When John and Mary went to the shops, John gave the bag to");
console.log(t.topK(5)); // next-token predictions
console.log(t.logitDiff(" Mary", " John")); // logit difference at the last position
const pattern = t.cache.get("pattern", 0); // = blocks.0.attn.hook_pattern
console.log(pattern.labels, pattern.dims); // [batch, head, query_pos, key_pos]
console.log(pattern.at(0, 1, -1, 0)); // head 1, last query, attention to BOS
await model.dispose();
