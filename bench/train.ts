/**
 * bench/train.ts: training throughput on the reference configuration: GPT-2 architecture,
 * 4 layers, d_model 256, 4 heads, d_mlp 1024, n_ctx 128, vocab 8192, untied unembedding,
 * batch 16 x 128, AdamW (2 intra-op threads). Target: >= 1,600 tokens/s with < 15% of the step
 * time outside onnxruntime (PyTorch 1.13 eager: 1,560-1,770 tokens/s on the same 2-core machines).
 *
 * Prints:
 * - tokens/s of `train()` over the measured steps (after warm-up steps, whose first runs grow
 *   onnxruntime's memory arena), and the JS share: step time outside `session.run` / step time;
 * - the optimizer update measured both ways on the reference parameters: the JS AdamW loop the
 *   trainer uses (with the global gradient norm) vs the same update as an onnxruntime graph
 *   (inputs weights, gradients, m, v and the step's scalars; outputs the new ones), session run
 *   only (copying the results back into the fed arrays would come on top).
 *
 * Timings on a shared machine are noisy: compare figures from the same run.
 *
 * Run: npx tsx bench/train.ts [--steps 5] [--warmup 2] [--threads 2]
 */
import { performance } from "node:perf_hooks";
import { createSession } from "../src/backend/ort.js";
import { Rng } from "../src/base/random.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/proto.js";
import type { HostTensor } from "../src/onnx/tensor.js";
import { adamwUpdate, clipScale, globalNorm, resolveOptimizer } from "../src/train/adamw.js";
import type { ProgressEvent } from "../src/train/config.js";
import { resolveModel } from "../src/train/graph.js";
import { train } from "../src/train/train.js";
import { flag, median, peakRssMiB } from "./_shared.js";

const STEPS = flag("steps", 5);
const WARMUP = flag("warmup", 2);
const THREADS = flag("threads", 2);
const REFERENCE = { n_layer: 4, n_head: 4, n_embd: 256, n_inner: 1024, n_positions: 128, vocab_size: 8192 };
const BATCH = 16;
const SEQ = 128;

// Random tokens: throughput does not depend on the data.
const rng = new Rng(1);
const tokens = Int32Array.from({ length: (WARMUP + STEPS) * BATCH * SEQ + 1 }, () => rng.int(REFERENCE.vocab_size));

const steps: ProgressEvent[] = [];
let t0 = performance.now();
const r = await train({
  model: { kind: "gpt2", config: REFERENCE },
  data: { train: tokens },
  steps: WARMUP + STEPS,
  batchSize: BATCH,
  seqLen: SEQ,
  threads: THREADS,
  progress: "none",
  onProgress: (e) => {
    if (e.kind === "step") steps.push(e);
  },
});
const total = (performance.now() - t0) / 1000;
const params = resolveModel({ kind: "gpt2", config: REFERENCE }, 0).params;
const nParams = params.reduce((a, p) => a + p.data.length, 0);
const measured = steps.slice(WARMUP);
const stepMs = measured.reduce((a, e) => a + e.stepMs!, 0);
const runMs = measured.reduce((a, e) => a + e.runMs!, 0);
console.log(`reference config: ${(nParams / 1e6).toFixed(2)} M parameters (${((nParams * 4) / 2 ** 20).toFixed(1)} MiB fp32), batch ${BATCH} x ${SEQ}, ${THREADS} threads`);
console.log(`train(): ${WARMUP + STEPS} steps in ${total.toFixed(1)} s including graph building and session creation; loss ${r.losses[0]!.toFixed(3)} -> ${r.loss.toFixed(3)}`);
console.log(`warm-up step times (ms): ${steps.slice(0, WARMUP).map((e) => Math.round(e.stepMs!)).join(", ")}`);
console.log(`measured step times (ms): ${measured.map((e) => Math.round(e.stepMs!)).join(", ")} (median ${Math.round(median(measured.map((e) => e.stepMs!)))})`);
console.log(`tokens/s: ${((measured.length * BATCH * SEQ * 1000) / stepMs).toFixed(0)} (median step: ${((BATCH * SEQ * 1000) / median(measured.map((e) => e.stepMs!))).toFixed(0)}; target >= 1600)`);
console.log(`JS share (step time outside session.run): ${((100 * (stepMs - runMs)) / stepMs).toFixed(1)}% (target < 15%); JS ms per step: ${((stepMs - runMs) / measured.length).toFixed(0)}`);
console.log(`peak RSS: ${peakRssMiB()} MiB`);

// Optimizer update: JS loop vs an onnxruntime graph, on the reference parameters.
const o = resolveOptimizer({}, 1000);
const grads = params.map((p) => new Rng(2).normalArray(p.data.length, 0, 1e-3));
const m = params.map((p) => new Float32Array(p.data.length));
const v = params.map((p) => new Float32Array(p.data.length));
const js: number[] = [];
for (let k = 0; k < 5; k++) {
  t0 = performance.now();
  const scale = clipScale(globalNorm(grads), o.clipNorm);
  params.forEach((p, i) => adamwUpdate(p.data, grads[i]!, m[i]!, v[i]!, o, 1e-4, k + 1, scale, p.decay));
  js.push(performance.now() - t0);
}

// The same update as a graph: per parameter p' = p * keep - step * m' / (sqrt(v') * invSqrtBc2 + eps).
const b = new GraphBuilder({ opset: 17 });
const scalar = (name: string) => b.input(name, "float32", []);
const [sc, b1, c1, b2, c2, stepSize, inv, eps, keepDecay] = ["scale", "b1", "c1", "b2", "c2", "stepSize", "invSqrtBc2", "eps", "keep"].map(scalar) as string[];
for (const p of params) {
  const n = p.name;
  b.input(`${n}`, "float32", p.dims);
  b.input(`g.${n}`, "float32", p.dims);
  b.input(`m.${n}`, "float32", p.dims);
  b.input(`v.${n}`, "float32", p.dims);
  const g = b.op("Mul", [`g.${n}`, sc!]);
  const m1 = b.op("Add", [b.op("Mul", [`m.${n}`, b1!]), b.op("Mul", [g, c1!])]);
  const v1 = b.op("Add", [b.op("Mul", [`v.${n}`, b2!]), b.op("Mul", [b.op("Mul", [g, g]), c2!])]);
  const den = b.op("Add", [b.op("Mul", [b.op("Sqrt", [v1]), inv!]), eps!]);
  const kept = p.decay ? b.op("Mul", [n, keepDecay!]) : n;
  const p1 = b.op("Sub", [kept, b.op("Div", [b.op("Mul", [m1, stepSize!]), den])]);
  b.output(`new.${n}`, "float32", p.dims, p1);
  b.output(`newm.${n}`, "float32", p.dims, m1);
  b.output(`newv.${n}`, "float32", p.dims, v1);
}
const s = await createSession(encodeModel(b.build()), { intraOpThreads: THREADS });
const f = (x: number): HostTensor => ({ type: "float32", data: new Float32Array([x]), dims: [] });
const feeds: Record<string, HostTensor> = { scale: f(1), b1: f(o.beta1), c1: f(1 - o.beta1), b2: f(o.beta2), c2: f(1 - o.beta2), stepSize: f(1e-4), invSqrtBc2: f(1), eps: f(o.eps), keep: f(1 - 1e-5) };
params.forEach((p, i) => {
  feeds[p.name] = { type: "float32", data: p.data, dims: p.dims };
  feeds[`g.${p.name}`] = { type: "float32", data: grads[i]!, dims: p.dims };
  feeds[`m.${p.name}`] = { type: "float32", data: m[i]!, dims: p.dims };
  feeds[`v.${p.name}`] = { type: "float32", data: v[i]!, dims: p.dims };
});
const ortMs: number[] = [];
for (let k = 0; k < 5; k++) {
  t0 = performance.now();
  // The global norm still has to be known before the update (its clip factor is an input).
  globalNorm(grads);
  await s.run(feeds);
  ortMs.push(performance.now() - t0);
}
await s.release();
console.log(`optimizer update (global norm + AdamW over ${(nParams / 1e6).toFixed(2)} M parameters), median of 5: JS loop ${median(js).toFixed(1)} ms, onnxruntime graph ${median(ortMs).toFixed(1)} ms (run only)`);
