/**
 * Checks {@link addGradients} against finite differences of the loss, with onnxruntime running
 * both: the analytic gradients from one run of the differentiated graph, the numeric ones from
 * runs of the forward graph with one element perturbed at a time.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";
import { cloneStructure } from "../onnx/clone.js";
import { OnnxGraph } from "../onnx/graph.js";
import { encodeModel } from "../onnx/proto.js";
import { exposeValue, insertEditPoint, tensorValueInfo } from "../onnx/surgery.js";
import { numel, tensorFromProto, type HostTensor } from "../onnx/tensor.js";
import { createSession, type OptimizationLevel, type Session } from "../backend/ort.js";
import { addGradients, type GradientSpec } from "./backward.js";
import { promoteFeed, promoteToDouble } from "./promote.js";

/** Options of {@link gradcheck}. Defaults depend on precision: float64 when the loss and the wrt value are float64, else float32. */
export interface GradcheckOptions {
  /** Finite-difference step. Default 1e-3 (float64) / 1e-2 (float32). */
  eps?: number;
  /** max relative error allowed. Default 1e-6 (float64) / 1e-3 (float32). */
  tolerance?: number;
  /** how many elements per wrt tensor to probe (random subset, seeded). Default 12; all when the tensor is smaller. */
  samples?: number;
  /**
   * Flat element indices to probe, per wrt value, instead of a random sample (e.g. the rows of
   * an embedding table that the input uses: elsewhere its gradient is zero). Wrt values not
   * named here are sampled. An index outside the tensor is an `E_INDEX_RANGE` error.
   */
  indices?: Readonly<Record<string, readonly number[]>>;
  /** Seed of the element sampling. Default 0. */
  seed?: number;
  /**
   * Absolute floor of the relative error's denominator, so that gradients at the level of
   * rounding noise do not count as errors. Default 1e-8 (float64) / 1e-5 (float32 with a
   * float64 reference) / 1e-4 (float32 throughout).
   */
  floor?: number;
  /**
   * Floor of the denominator relative to the wrt tensor's largest analytic gradient: elements
   * much smaller than the tensor's scale (e.g. exact zeros, computed as rounding noise) are
   * compared in absolute terms at that scale. Default 1e-4 (float64) / 1e-3 (float32).
   */
  scaleFloor?: number;
  /**
   * Compute the numeric reference in float64: float32 inputs, weights, constants and casts of
   * the probing graph are promoted (float32 values are exact in float64), so that it is not
   * drowned in float32 rounding. Falls back to the graph's own precision when onnxruntime
   * cannot run the promoted graph (e.g. Erf has no float64 kernel). Default true.
   */
  promote?: boolean;
  /** onnxruntime graph optimizations for both sessions. Default "basic". */
  optimizationLevel?: OptimizationLevel;
}

/** Result of {@link gradcheck}. */
export interface GradcheckReport {
  /** Whether every probed element is within tolerance. */
  ok: boolean;
  /** Largest relative error over all probed elements: |a - n| / max(|a|, |n|, floors). */
  maxRelError: number;
  /** The element with the largest relative error (undefined when nothing was probed). */
  worst: { wrt: string; index: number; analytic: number; numeric: number } | undefined;
  /** Largest relative error per wrt value. */
  perWrt: Record<string, number>;
  /** Every probed element per wrt value, in probing order. */
  probes: Record<string, { index: number; analytic: number; numeric: number }[]>;
  /**
   * Whether the numeric reference ran on the float64-promoted copy of the graph (see
   * {@link GradcheckOptions.promote}); false when promotion was not asked for or onnxruntime
   * could not run the promoted graph.
   */
  promoted: boolean;
  /** Element type of the loss in the probing runs: the precision of the numeric reference. */
  referenceType: string;
  /** Why the promoted graph could not run, when promotion was asked for and fell back. */
  promotionError?: string;
}

type FloatTensor = HostTensor<"float32" | "float64">;

function copyFloat(t: HostTensor, what: string): FloatTensor {
  if (t.type === "float32") return { type: "float32", data: Float32Array.from(t.data as Float32Array), dims: [...t.dims] };
  if (t.type === "float64") return { type: "float64", data: Float64Array.from(t.data as Float64Array), dims: [...t.dims] };
  throw new TdbError("E_BAD_OPTION", `gradcheck needs float tensors; ${what} is ${t.type}`, { value: what, allowed: ["float32", "float64"] });
}

function sampleIndices(n: number, k: number, rng: Rng): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < k) picked.add(rng.int(n));
  return [...picked].sort((a, b) => a - b);
}

/**
 * Central finite differences of the graph's loss vs the gradients from {@link addGradients},
 * running onnxruntime via `createSession`. Graph inputs and initializers are perturbed directly
 * (initializers become graph inputs of the probing graph); an intermediate activation is made
 * perturbable with an edit point (`value * 1 + delta`, see `insertEditPoint`).
 *
 * The numeric derivative is Richardson-extrapolated from central differences with steps eps and
 * 2 eps (error O(eps^4)), using the steps actually stored after rounding to the tensor's type.
 * The relative error of an element is |a - n| / max(|a|, |n|, floor, scaleFloor * max |a| over the
 * tensor) (see {@link GradcheckOptions}). A gradient whose shape differs from its value's fails
 * with an infinite error (`worst.index` -1).
 *
 * @example
 * ```ts
 * const report = await gradcheck(model, { loss: "loss", wrt: ["W"] }, { x }, { samples: 8 });
 * if (!report.ok) console.log(report.worst);
 * ```
 */
export async function gradcheck(model: ModelProto, spec: GradientSpec, feeds: Record<string, HostTensor>, opts: GradcheckOptions = {}): Promise<GradcheckReport> {
  const level = opts.optimizationLevel ?? "basic";
  const wrt = [...new Set(spec.wrt)];

  // Analytic gradients (and the wrt values, for their shapes): one run of the differentiated graph.
  const am = cloneStructure(model);
  const ag = OnnxGraph.fromModel(am);
  const exposed = new Map(wrt.map((w) => [w, exposeValue(ag, w)]));
  const { grads } = addGradients(ag, spec);
  const analytic: Record<string, FloatTensor> = {};
  const report: GradcheckReport = { ok: true, maxRelError: 0, worst: undefined, perWrt: {}, probes: {}, promoted: false, referenceType: "" };
  const mismatched = new Set<string>();
  const valueDims: Record<string, number[]> = {};
  {
    const s = await createSession(encodeModel(am), { optimizationLevel: level });
    try {
      const out = await s.run(feeds, [...grads.values(), ...exposed.values()]);
      for (const w of wrt) {
        const a = copyFloat(out[grads.get(w)!]!, `the gradient of ${w}`);
        analytic[w] = a;
        const dims = out[exposed.get(w)!]!.dims;
        valueDims[w] = dims;
        if (dims.length !== a.dims.length || dims.some((d, i) => d !== a.dims[i])) {
          // A gradient of the wrong shape fails outright.
          mismatched.add(w);
          report.ok = false;
          report.maxRelError = Infinity;
          report.perWrt[w] = Infinity;
          report.worst = { wrt: w, index: -1, analytic: NaN, numeric: NaN };
        }
      }
    } finally {
      await s.release();
    }
  }

  // The probing graph: every wrt value made a feed.
  const fm = cloneStructure(model);
  const fg = OnnxGraph.fromModel(fm);
  const probe: Record<string, FloatTensor> = {}; // wrt -> the tensor whose elements are perturbed
  const extra: Record<string, HostTensor> = {};
  for (const w of wrt) {
    const a = analytic[w]!;
    const init = fg.initializer(w);
    const isInput = fg.graph.input.some((v) => v.name === w);
    let t: FloatTensor;
    if (isInput && !init) {
      const fed = feeds[w];
      if (!fed) throw new TdbError("E_BAD_INPUT", `no feed for the graph input ${w}`, { value: w });
      t = copyFloat(fed, w);
      extra[w] = t;
    } else if (init) {
      t = copyFloat(tensorFromProto(init), w);
      fg.removeInitializer(w);
      fg.addInput(tensorValueInfo(w, t.type, t.dims));
      extra[w] = t;
    } else {
      // An activation: feed value * 1 + delta, perturbing delta.
      const mul = fg.uniqueName(`/tdb/gradcheck/${w}/mul`);
      const add = fg.uniqueName(`/tdb/gradcheck/${w}/add`);
      insertEditPoint(fg, w, { mulInput: mul, addInput: add, elemType: a.type });
      const dims = valueDims[w]!;
      const n = numel(dims);
      extra[mul] = a.type === "float32" ? { type: "float32", data: new Float32Array([1]), dims: [] } : { type: "float64", data: new Float64Array([1]), dims: [] };
      t = a.type === "float32" ? { type: "float32", data: new Float32Array(n), dims } : { type: "float64", data: new Float64Array(n), dims };
      extra[add] = t;
    }
    probe[w] = t;
  }
  const lossOut = exposeValue(fg, spec.loss);
  const prober = await openProber(fm, lossOut, { ...feeds, ...extra }, probe, opts.promote ?? true, level);
  report.promoted = prober.promoted;
  report.referenceType = prober.lossType;
  if (prober.promotionError !== undefined) report.promotionError = prober.promotionError;
  try {
    const loss = async (): Promise<number> => {
      const out = (await prober.session.run(prober.feeds, [lossOut]))[lossOut]!;
      let s = 0;
      for (const v of out.data as Float32Array | Float64Array) s += v;
      return s;
    };
    const rng = new Rng(opts.seed ?? 0);
    for (const w of wrt) {
      if (mismatched.has(w)) continue;
      const t = prober.probe[w]!;
      const a = analytic[w]!;
      const preciseProbe = t.type === "float64" && prober.lossType === "float64";
      const double = preciseProbe && a.type === "float64";
      const eps = opts.eps ?? (preciseProbe ? 1e-3 : 1e-2);
      let scale = 0;
      for (const v of a.data) scale = Math.max(scale, Math.abs(v));
      const floor = Math.max(opts.floor ?? (double ? 1e-8 : preciseProbe ? 1e-5 : 1e-4), (opts.scaleFloor ?? (double ? 1e-4 : 1e-3)) * scale);
      const tolerance = opts.tolerance ?? (double ? 1e-6 : 1e-3);
      let worst = 0;
      const n = numel(t.dims);
      const given = opts.indices?.[w];
      if (given) {
        const bad = given.find((i) => !Number.isInteger(i) || i < 0 || i >= n);
        if (bad !== undefined) throw new TdbError("E_INDEX_RANGE", `gradcheck index ${bad} of ${w} is outside [0, ${n - 1}]`, { value: bad, allowed: [0, n - 1] });
      }
      const probes: GradcheckReport["probes"][string] = (report.probes[w] = []);
      for (const index of given ?? sampleIndices(n, opts.samples ?? 12, rng)) {
        const x0 = t.data[index]!;
        const at = async (k: number): Promise<[number, number]> => {
          t.data[index] = x0 + k * eps;
          const step = t.data[index]! - x0;
          const f = await loss();
          t.data[index] = x0;
          return [f, step];
        };
        const [fp1, sp1] = await at(1);
        const [fm1, sm1] = await at(-1);
        const [fp2, sp2] = await at(2);
        const [fm2, sm2] = await at(-2);
        const d1 = (fp1 - fm1) / (sp1 - sm1);
        const d2 = (fp2 - fm2) / (sp2 - sm2);
        const numeric = (4 * d1 - d2) / 3;
        const value = a.data[index]!;
        const rel = Math.abs(value - numeric) / Math.max(Math.abs(value), Math.abs(numeric), floor);
        const err = Number.isNaN(rel) ? Infinity : rel;
        probes.push({ index, analytic: value, numeric });
        if (err > worst) worst = err;
        if (err > tolerance) report.ok = false;
        if (report.worst === undefined || err > report.maxRelError) {
          report.maxRelError = err;
          report.worst = { wrt: w, index, analytic: value, numeric };
        }
      }
      report.perWrt[w] = worst;
    }
  } finally {
    await prober.session.release();
  }
  return report;
}

interface Prober {
  session: Session;
  feeds: Record<string, HostTensor>;
  probe: Record<string, FloatTensor>;
  lossType: string;
  promoted: boolean;
  promotionError?: string;
}

/**
 * A session of the probing graph, promoted to float64 when asked and onnxruntime can run it
 * (some ops lack double kernels), with its feeds and the tensors to perturb.
 */
async function openProber(
  model: ModelProto,
  lossOut: string,
  feeds: Record<string, HostTensor>,
  probe: Record<string, FloatTensor>,
  promote: boolean,
  level: OptimizationLevel,
): Promise<Prober> {
  const lossTypeOf = async (p: Pick<Prober, "session" | "feeds">) => (await p.session.run(p.feeds, [lossOut]))[lossOut]!.type;
  let promotionError: string | undefined;
  if (promote) {
    let session: Session | undefined;
    try {
      session = await createSession(encodeModel(promoteToDouble(model)), { optimizationLevel: level });
    } catch (e) {
      if (!(e instanceof TdbError)) throw e;
      promotionError = e.message;
    }
    if (session) {
      const promoted = new Map<HostTensor, HostTensor>();
      const pf: Record<string, HostTensor> = {};
      for (const [k, t] of Object.entries(feeds)) {
        pf[k] = promoteFeed(t);
        promoted.set(t, pf[k]);
      }
      const pp: Record<string, FloatTensor> = {};
      for (const [k, t] of Object.entries(probe)) pp[k] = promoted.get(t) as FloatTensor;
      const p = { session, feeds: pf, probe: pp, promoted: true };
      return { ...p, lossType: await lossTypeOf(p) };
    }
  }
  const p = { session: await createSession(encodeModel(model), { optimizationLevel: level }), feeds, probe, promoted: false, promotionError };
  return { ...p, lossType: await lossTypeOf(p) };
}
