/**
 * bench/sae.ts: SAE training throughput on the reference configuration: d_in 768, 6,144
 * latents, ReLU + L1 (standard), batch 4,096, Adam. PyTorch 1.13 CPU trains this at about 1,530
 * rows (tokens)/s on the same 2-core machines (2.68 s a step); target >= 1,500.
 *
 * Prints each step's time, rows/s over the steps after warm-up (the first steps grow
 * onnxruntime's memory arena) and the share of step time outside onnxruntime (Adam, the data
 * batch, bookkeeping). Random normal activations: throughput does not depend on the data.
 *
 * Then the same step's forward + loss graph differentiated by `addGradients` (src/autodiff/), one
 * onnxruntime run timed against the hand-written backward graph trainSae uses (median of 3 runs
 * each, same feeds): why the trainer writes the backward pass by hand.
 *
 * Timings on a shared machine are noisy: compare figures from the same run.
 *
 * Run: npx tsx bench/sae.ts [--steps 4] [--warmup 2] [--threads 2]
 */
import { performance } from "node:perf_hooks";
import { addGradients } from "../src/autodiff/index.js";
import { createSession } from "../src/backend/ort.js";
import { Rng } from "../src/base/random.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { OnnxGraph } from "../src/onnx/graph.js";
import { encodeModel } from "../src/onnx/proto.js";
import type { HostTensor } from "../src/onnx/tensor.js";
import { trainSae } from "../src/sae/train.js";
import { buildSaeTrainGraph } from "../src/sae/train-graph.js";
import { flag, median, peakRssMiB } from "./_shared.js";

const STEPS = flag("steps", 4);
const WARMUP = flag("warmup", 2);
const THREADS = flag("threads", 2);
const D_IN = 768;
const D_SAE = 6144;
const BATCH = 4096;

const rng = new Rng(1);
const data = rng.fillNormal(new Float32Array(2 * BATCH * D_IN)) as Float32Array;

const stepEnd: number[] = [];
const ortAt: number[] = [];
const t0 = performance.now();
const r = await trainSae({
  activations: data,
  dIn: D_IN,
  dSae: D_SAE,
  architecture: "standard",
  steps: WARMUP + STEPS,
  batchSize: BATCH,
  lr: 5e-5,
  resample: false,
  threads: THREADS,
  onProgress: (p) => {
    stepEnd.push(p.seconds.total);
    ortAt.push(p.seconds.onnxruntime);
  },
});
const setup = (performance.now() - t0) / 1000 - r.seconds.total;
const times = stepEnd.map((t, i) => t - (i === 0 ? 0 : stepEnd[i - 1]!));
const measured = times.slice(WARMUP);
const wall = stepEnd[stepEnd.length - 1]! - stepEnd[WARMUP - 1]!;
const ort = ortAt[ortAt.length - 1]! - ortAt[WARMUP - 1]!;
const rowsPerSecond = (STEPS * BATCH) / wall;
console.log(`SAE d_in ${D_IN}, ${D_SAE} latents (ReLU + L1), batch ${BATCH}, Adam, ${THREADS} intra-op threads`);
console.log(`setup (weights, graph, session): ${setup.toFixed(2)} s`);
console.log(`step times (s): ${times.map((t) => t.toFixed(3)).join(", ")} (first ${WARMUP} are warm-up)`);
console.log(`rows/s after warm-up: ${rowsPerSecond.toFixed(0)} (median step ${median(measured).toFixed(3)} s; PyTorch 1.13 CPU ~1,530; target >= 1,500)`);
console.log(`share of step time outside onnxruntime: ${((100 * (wall - ort)) / wall).toFixed(1)}%`);
console.log(`peak RSS: ${peakRssMiB()} MiB`);

// Hand-written backward vs addGradients on the same loss (standard SAE, decoder-norm-weighted L1).
function autodiffGraph(): { model: ReturnType<GraphBuilder["build"]>; grads: string[] } {
  const g = new GraphBuilder({ opset: 17 });
  const x = g.input("x", "float32", [BATCH, D_IN]);
  const wEnc = g.input("W_enc", "float32", [D_IN, D_SAE]);
  const bEnc = g.input("b_enc", "float32", [D_SAE]);
  const wDec = g.input("W_dec", "float32", [D_SAE, D_IN]);
  const bDec = g.input("b_dec", "float32", [D_IN]);
  const l1 = g.input("l1", "float32", [1]);
  const ax1 = g.constant("/c", new BigInt64Array([1n]), [1]);
  const f = g.op("Relu", [g.op("Gemm", [g.op("Sub", [x, bDec]), wEnc, bEnc])]);
  const e = g.op("Sub", [g.op("Gemm", [f, wDec, bDec]), x]);
  const rec = g.op("Div", [g.op("ReduceSum", [g.op("Mul", [e, e])], { attrs: { keepdims: 0 } }), g.constant("/c", new Float32Array([BATCH]), [])]);
  const norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [wDec, wDec]), ax1], { attrs: { keepdims: 0 } })]);
  const pen = g.op("Mul", [g.op("ReduceSum", [g.op("Mul", [f, norm])], { attrs: { keepdims: 0 } }), l1]);
  g.output("loss", "float32", [], g.op("Add", [rec, pen]));
  const og = OnnxGraph.fromModel(g.build());
  const { grads } = addGradients(og, { loss: "loss", wrt: ["W_enc", "b_enc", "W_dec", "b_dec"] });
  return { model: og.model, grads: [...grads.values()] };
}

const rngF = new Rng(2);
const feeds: Record<string, HostTensor> = {
  x: { type: "float32", data: data.subarray(0, BATCH * D_IN), dims: [BATCH, D_IN] },
  W_enc: { type: "float32", data: rngF.fillNormal(new Float32Array(D_IN * D_SAE), 0, 0.03) as Float32Array, dims: [D_IN, D_SAE] },
  b_enc: { type: "float32", data: new Float32Array(D_SAE), dims: [D_SAE] },
  W_dec: { type: "float32", data: rngF.fillNormal(new Float32Array(D_SAE * D_IN), 0, 0.03) as Float32Array, dims: [D_SAE, D_IN] },
  b_dec: { type: "float32", data: new Float32Array(D_IN), dims: [D_IN] },
  l1: { type: "float32", data: new Float32Array([5 / BATCH]), dims: [1] },
};
async function timeRuns(model: Uint8Array, fetches: string[]): Promise<number> {
  const s = await createSession(model, { intraOpThreads: THREADS });
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    await s.run(feeds, fetches);
    if (i > 0) times.push((performance.now() - t) / 1000);
  }
  await s.release();
  return median(times);
}
const hand = await timeRuns(encodeModel(buildSaeTrainGraph({ architecture: "standard", batch: BATCH, dIn: D_IN, dSae: D_SAE })), ["g_W_enc", "g_b_enc", "g_W_dec", "g_b_dec"]);
const ad = autodiffGraph();
feeds.l1!.data[0] = 5;
const auto = await timeRuns(encodeModel(ad.model), ad.grads);
console.log(`one step's graph run (median of 3 after one warm-up): hand-written backward ${hand.toFixed(3)} s, addGradients ${auto.toFixed(3)} s`);
