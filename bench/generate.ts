/**
 * bench/generate.ts: generation speed with edits held on.
 *
 * On a generated GPT-2 of medium shape (6 layers, d_model 512, 8 heads, d_mlp 2048, the real
 * GPT-2 vocabulary of 50257 tokens and tokenizer; ~45 M parameters), written as a
 * transformers.js merged decoder (`use_cache_branch`, so transformers.js runs its cache), and a
 * 16-token English prompt, measures tokens/s of greedy generation of 64 new tokens, in the same
 * run, interleaved:
 *
 * - tdb-js `model.generate` with a steering edit on `blocks.3.hook_resid_pre` (one-token steps
 *   on the key/value cache);
 * - transformers.js's own `generate` on the same model directory, without edits (the baseline);
 * - tdb-js with the same edit and `cache: false` (the whole sequence re-run at every step, the
 *   path generation took before the cache).
 *
 * Prints each median tokens/s and its ratio to transformers.js (target for the cached path:
 * >= 0.8). Before timing, checks that tdb-js without edits generates the same 64 tokens as
 * transformers.js and that both tdb-js paths agree with the edit; exits 1 otherwise.
 *
 * Run: npx tsx bench/generate.ts [--runs 3]
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { AutoModelForCausalLM, Tensor } from "@huggingface/transformers";
import { steer } from "../src/intervene/edits.js";
import { Model } from "../src/model/model.js";
import { gpt2Config } from "../src/synthetic/config.js";
import { ensureGpt2Model } from "../src/synthetic/write.js";
import { englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const RUNS = flag("runs", 3);
const NEW = 64;
const SHAPE = gpt2Config({ n_layer: 6, n_head: 8, n_embd: 512, n_positions: 256, vocab_size: 50257 });

const t0 = performance.now();
const dir = join(import.meta.dirname, "out", "gpt2-medium-merged");
await ensureGpt2Model(dir, { config: SHAPE, seed: 1, tokenizer: "gpt2", variant: "merged" });
const model = await Model.load(dir);
const hf = await AutoModelForCausalLM.from_pretrained(dir, { dtype: "fp32", device: "cpu", local_files_only: true });
console.log(`model ready and loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);

const prompt = englishTokens(model, 16);
let state = 12345;
const direction = Array.from({ length: SHAPE.n_embd }, () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.2);
const edits = [steer("blocks.3.hook_resid_pre", direction, 1)];

async function tdb(cache: boolean, withEdits = true): Promise<number[]> {
  const g = await model.generate(prompt, { edits: withEdits ? edits : [], maxNewTokens: NEW, stopAtEos: false, cache });
  if (g.cached !== cache) throw new Error(`expected cached=${cache}`);
  return g.newTokens;
}

async function transformersJs(): Promise<number[]> {
  const ids = new Tensor("int64", BigInt64Array.from(prompt, (t) => BigInt(t)), [1, prompt.length]);
  const mask = new Tensor("int64", new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
  const out = (await hf.generate({ input_ids: ids, attention_mask: mask, max_new_tokens: NEW, min_new_tokens: NEW, do_sample: false })) as Tensor;
  return Array.from(out.data as BigInt64Array, Number).slice(prompt.length);
}

// Agreement (and warm-up of every path: sessions are built here, not timed).
const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const plain = await tdb(true, false);
const theirs = await transformersJs();
const cachedTokens = await tdb(true);
const fullTokens = await tdb(false);
console.log(`agreement: tdb-js (no edits) vs transformers.js ${same(plain, theirs) ? "same" : "DIFFERENT"} 64 tokens; cached vs full re-run with the edit ${same(cachedTokens, fullTokens) ? "same" : "DIFFERENT"}; the edit changed ${cachedTokens.filter((t, i) => t !== plain[i]).length} of 64 tokens`);

const times = { cached: [] as number[], transformers: [] as number[], full: [] as number[] };
const time = async (f: () => Promise<unknown>): Promise<number> => {
  const s = performance.now();
  await f();
  return (performance.now() - s) / 1000;
};
for (let r = 0; r < RUNS; r++) {
  times.cached.push(await time(() => tdb(true)));
  times.transformers.push(await time(transformersJs));
  times.full.push(await time(() => tdb(false)));
}
const tps = (xs: number[]) => NEW / median(xs);
const base = tps(times.transformers);
const rows = [
  { path: "transformers.js generate, no edits (baseline)", tokensPerS: base, ratio: 1, target: null },
  { path: "tdb-js generate + steering, KV cache", tokensPerS: tps(times.cached), ratio: tps(times.cached) / base, target: 0.8 },
  { path: "tdb-js generate + steering, full re-run (cache: false)", tokensPerS: tps(times.full), ratio: tps(times.full) / base, target: null },
];
console.table(rows.map((r) => ({ ...r, tokensPerS: Number(r.tokensPerS.toFixed(1)), ratio: Number(r.ratio.toFixed(2)) })));
console.log(`runs ${RUNS}, median of each; peak RSS ${peakRssMiB()} MiB`);
await model.dispose();
if (!same(plain, theirs) || !same(cachedTokens, fullTokens)) process.exit(1);
