/**
 * Small graphs for gradient checks: named inputs with random data, an op under test, and the
 * loss sum(y * R) with R a fixed random tensor (so that no symmetry hides a wrong gradient).
 */
import { expect } from "vitest";
import type { ModelProto } from "onnx-buf";
import { gradcheck, type GradcheckOptions, type GradcheckReport } from "../../src/autodiff/gradcheck.js";
import type { GradientSpec } from "../../src/autodiff/backward.js";
import { Rng } from "../../src/base/random.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import type { HostTensor } from "../../src/onnx/tensor.js";

export type Float = "float32" | "float64";

/** Random normal data in the given float type. */
export function randn(n: number, seed: number, type: Float = "float64", mean = 0, std = 1): Float32Array | Float64Array {
  const a = new Rng(seed).fillNormal(new Float64Array(n), mean, std) as Float64Array;
  return type === "float32" ? Float32Array.from(a) : a;
}

export const numel = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** A float tensor of random values. */
export function tensor(dims: number[], seed: number, type: Float = "float64", mean = 0, std = 1): HostTensor {
  return { type, data: randn(numel(dims), seed, type, mean, std), dims };
}

export interface OpCase {
  opset?: number;
  type?: Float;
  /** Graph inputs, fed with random data unless `feeds` says otherwise. */
  inputs: Record<string, number[]>;
  /** Extra feeds (e.g. int64 indices) and overrides of the random data. */
  feeds?: Record<string, HostTensor>;
  /** Extra graph inputs of other element types. */
  otherInputs?: Record<string, { type: "int64" | "bool" | "int32" | "float32" | "float64"; dims: number[] }>;
  /** Builds the op(s) and returns the output to put into the loss. */
  build: (b: GraphBuilder) => string;
  /** Dims of that output (for the weights R of the loss). */
  outDims: number[];
  seed?: number;
  /**
   * Whether the gradcheck's numeric reference is expected to run promoted to float64 (false for
   * float32 cases of ops onnxruntime has no float64 kernel for: Erf, LeakyRelu). [default: true]
   */
  promotes?: boolean;
  /** Wrt values whose gradient is zero by construction (e.g. read only through an empty slice): every probe must be 0. */
  zeroGradient?: readonly string[];
}

/** The model and feeds of a case: loss = ReduceSum(y * R). */
export function opModel(c: OpCase): { model: ModelProto; feeds: Record<string, HostTensor> } {
  const type = c.type ?? "float64";
  const b = new GraphBuilder({ opset: c.opset ?? 13 });
  const feeds: Record<string, HostTensor> = {};
  let seed = c.seed ?? 1;
  for (const [name, dims] of Object.entries(c.inputs)) {
    b.input(name, type, dims);
    feeds[name] = tensor(dims, seed++, type);
  }
  for (const [name, t] of Object.entries(c.otherInputs ?? {})) b.input(name, t.type, t.dims);
  Object.assign(feeds, c.feeds ?? {});
  const y = c.build(b);
  const r = b.initializer("R", randn(numel(c.outDims), 99, type), c.outDims);
  const weighted = b.op("Mul", [y, r], { scope: "/loss" });
  b.output("loss", type, [], b.op("ReduceSum", [weighted], { scope: "/loss", attrs: { keepdims: 0 } }));
  return { model: b.build(), feeds };
}

/**
 * Gradchecks a case w.r.t. `wrt` (default: all float inputs) and expects it within tolerance,
 * with the numeric reference in float64 when promotion is expected (see {@link OpCase.promotes}),
 * and a non-zero gradient at some probed element of every wrt value (so that 0 = 0 cannot pass)
 * except those the case lists as zero by construction.
 */
export async function expectGradOk(c: OpCase, wrt?: string[], opts: GradcheckOptions = {}, spec: Partial<GradientSpec> = {}): Promise<GradcheckReport> {
  const { model, feeds } = opModel(c);
  const names = wrt ?? Object.keys(c.inputs);
  expect(names.length).toBeGreaterThan(0);
  const report = await gradcheck(model, { loss: "loss", wrt: names, ...spec }, feeds, { samples: 24, ...opts });
  const type = c.type ?? "float64";
  const tol = opts.tolerance ?? (type === "float64" ? 1e-6 : 1e-3);
  expect(report.maxRelError, JSON.stringify(report.worst)).toBeLessThan(tol);
  expect(report.ok).toBe(true);
  const promoted = (opts.promote ?? true) && (c.promotes ?? true);
  expect(report.promoted, report.promotionError).toBe(promoted);
  expect(report.referenceType).toBe(promoted ? "float64" : type);
  for (const w of names) {
    const probes = report.probes[w] ?? [];
    expect(probes.length, w).toBeGreaterThan(0);
    if (c.zeroGradient?.includes(w)) {
      expect(probes.every((p) => p.analytic === 0 && p.numeric === 0), `${w}: a probed gradient is not zero`).toBe(true);
    } else {
      expect(
        probes.some((p) => p.analytic !== 0 && p.numeric !== 0),
        `${w}: every probed gradient is zero`,
      ).toBe(true);
    }
  }
  return report;
}

/** Numpy broadcast of static dims. */
export function bcast(...shapes: number[][]): number[] {
  const r = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: r }, (_, i) =>
    Math.max(...shapes.map((s) => (i - (r - s.length) >= 0 ? s[i - (r - s.length)]! : 1))),
  );
}

/** Random data bounded away from 0 (|x| >= lo), for ops with a kink or pole at 0. */
export function awayFromZero(dims: number[], seed: number, type: Float = "float64", lo = 0.2): HostTensor {
  const t = tensor(dims, seed, type);
  const d = t.data as Float64Array;
  for (let i = 0; i < d.length; i++) d[i] = Math.sign(d[i]! || 1) * (lo + Math.abs(d[i]!));
  return t;
}

/** Random positive data (>= lo). */
export function positive(dims: number[], seed: number, type: Float = "float64", lo = 0.3): HostTensor {
  const t = tensor(dims, seed, type);
  const d = t.data as Float64Array;
  for (let i = 0; i < d.length; i++) d[i] = lo + Math.abs(d[i]!);
  return t;
}

/** An int64 tensor. */
export function int64(values: number[], dims: number[] = [values.length]): HostTensor {
  return { type: "int64", data: BigInt64Array.from(values.map((v) => BigInt(v))), dims };
}
