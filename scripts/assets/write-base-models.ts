/**
 * Step 1 of `scripts/assets/make-exports.sh`: writes the project's own generated GPT-2 models
 * (the unfused TorchScript-style export of `src/synthetic/`) that onnxruntime's Python
 * transformer optimizer then fuses (`make-exports.py`).
 *
 *   npx tsx scripts/assets/write-base-models.ts <out-dir>
 *
 * For every base in {@link BASES} it writes `<out-dir>/<name>/decoder/` and
 * `<out-dir>/<name>/merged/` (model directories: config.json, tokenizer files, onnx/model.onnx)
 * and `<out-dir>/bases.json`, which the Python step reads (names, shapes, seeds, weight scales).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { gpt2Config, TINY_GPT2, type Gpt2Config } from "../../src/synthetic/config.js";
import type { RandomWeightOptions } from "../../src/synthetic/weights.js";
import { writeGpt2Model } from "../../src/synthetic/write.js";

/** One generated base model: the asset names derive from `name`. */
interface AssetBase {
  name: string;
  config: Gpt2Config;
  seed: number;
  weights: RandomWeightOptions;
  /** Tokenizer size (truncated GPT-2 BPE); equal to `config.vocab_size` here. */
  tokenizerVocabSize: number;
}

/** Larger init than GPT-2's 0.02 (as the tests' `TEST_WEIGHTS`), so attention is far from uniform and fusion bugs show. */
const WEIGHTS: RandomWeightOptions = { std: 0.1, lnNoise: 0.2, biasStd: 0.05 };

/**
 * The bases: TINY_GPT2 (4 heads of 16) and a second shape with 3 heads of 16 and width 48, so that
 * a head-splitting bug that happens to work for a power of two shows.
 */
const BASES: AssetBase[] = [
  { name: "tiny", config: TINY_GPT2, seed: 11, weights: WEIGHTS, tokenizerVocabSize: TINY_GPT2.vocab_size },
  {
    name: "heads3",
    config: gpt2Config({ n_layer: 2, n_head: 3, n_embd: 48, n_inner: 192, n_positions: 32, vocab_size: 300 }),
    seed: 12,
    weights: WEIGHTS,
    tokenizerVocabSize: 300,
  },
];

async function main(): Promise<void> {
  const out = process.argv[2];
  if (!out) throw new Error("usage: npx tsx scripts/assets/write-base-models.ts <out-dir>");
  const root = resolve(out);
  await mkdir(root, { recursive: true });
  for (const b of BASES) {
    for (const variant of ["decoder", "merged"] as const) {
      await writeGpt2Model(join(root, b.name, variant), {
        config: b.config,
        seed: b.seed,
        weights: b.weights,
        variant,
        tokenizer: { vocabSize: b.tokenizerVocabSize },
      });
    }
  }
  await writeFile(join(root, "bases.json"), JSON.stringify(BASES, null, 2) + "\n");
  console.log(`wrote ${BASES.map((b) => b.name).join(", ")} (decoder, merged) to ${root}`);
}

await main();
