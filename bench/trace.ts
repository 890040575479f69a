/**
 * bench/trace.ts: the cost of caching hooks.
 *
 * On a generated model with GPT-2-small shapes (12 layers, d_model 768, d_mlp 3072, vocab 50257)
 * and a 64-token prompt, compares the median time of `model.trace` against the median time of
 * the unpatched onnxruntime session on the same input, measured in the same run, interleaved,
 * for two hook sets:
 *
 * - the default set (`hooks: "all"`): every hook except the opt-in ones. Target: ratio <= 1.1 (issue 7: no loss of speed from the memory work).
 * - every hook, including the opt-in `blocks.L.attn.hook_result` (per-head writes
 *   [batch, pos, head, d_model], computed by extra graph nodes). Reported, no target.
 *
 * The two sets run one after the other (not interleaved with each other), because a session
 * with the larger set would serve traces of the smaller one.
 *
 * Run: npx tsx bench/trace.ts [--runs 15]
 */
import { performance } from "node:perf_hooks";
import type { HookSelector } from "../src/runtime/options.js";
import { benchModel, englishTokens, flag, median, peakRssMiB } from "./_shared.js";

const RUNS = flag("runs", 15);
const t0 = performance.now();
const { model, dir } = await benchModel();
console.log(`model ready and loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir}), peak RSS ${peakRssMiB()} MiB`);
const tokens = englishTokens(model, 64);
const base = await model.forward(tokens);

interface Row {
  hookSet: string;
  hooks: number;
  medianTraceMs: number;
  medianUnpatchedMs: number;
  ratio: number;
  target: number | null;
  maxLogitDiff: number;
}

async function measure(hookSet: string, hooks: HookSelector, target: number | null): Promise<Row> {
  let s = performance.now();
  const first = await model.trace(tokens, { hooks });
  console.log(`${hookSet}: first trace (builds the patched session) ${((performance.now() - s) / 1000).toFixed(1)} s; ${first.cache.size} hooks cached`);
  let maxLogitDiff = 0;
  for (let i = 0; i < base.data.length; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(base.data[i]! - first.logits.data[i]!));
  const tTrace: number[] = [];
  const tBase: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    s = performance.now();
    await model.forward(tokens);
    tBase.push(performance.now() - s);
    s = performance.now();
    await model.trace(tokens, { hooks });
    tTrace.push(performance.now() - s);
  }
  return {
    hookSet,
    hooks: first.cache.size,
    medianTraceMs: +median(tTrace).toFixed(1),
    medianUnpatchedMs: +median(tBase).toFixed(1),
    ratio: +(median(tTrace) / median(tBase)).toFixed(3),
    target,
    maxLogitDiff,
  };
}

const defaults = await measure("default hooks (all but opt-in hook_result)", "all", 1.1);
const allHooks = await measure("every hook incl. attn.hook_result", () => true, null);
if (allHooks.hooks - defaults.hooks !== model.config.nLayers) {
  throw new Error(`expected the opt-in set to add one hook_result per layer (${model.config.nLayers}); it added ${allHooks.hooks - defaults.hooks}`);
}
console.log(
  JSON.stringify(
    {
      bench: "trace",
      shapes: "gpt2-small",
      promptTokens: 64,
      runs: RUNS,
      ratio: defaults.ratio,
      ratioWithHookResult: allHooks.ratio,
      target: 1.1,
      sets: [defaults, allHooks],
      peakRssMiB: peakRssMiB(),
    },
    null,
    2,
  ),
);
await model.dispose();
