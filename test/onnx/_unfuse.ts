/**
 * Helpers of the un-fusing tests: single-op models in the `com.microsoft` domain, and the
 * comparison of a fused model with its un-fused copy, both run by onnxruntime-node (whose CPU
 * kernels for the contrib ops are the independent reference).
 */
import { create } from "@bufbuild/protobuf";
import { OperatorSetIdProtoSchema, type ModelProto } from "onnx-buf";
import { expect } from "vitest";
import { createSession } from "../../src/backend/ort.js";
import type { GraphBuilder } from "../../src/onnx/builder.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { halfToFloat } from "../../src/onnx/half.js";
import { unfuseContribOps, type UnfuseReport } from "../../src/onnx/unfuse/index.js";
import { randn } from "./_build.js";

/** The model of a builder, importing `com.microsoft` opset 1 too. */
export function msModel(b: GraphBuilder): ModelProto {
  const m = b.build();
  m.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }));
  return m;
}

/** Deterministic floats in [-scale, scale) (the xorshift of `_build.ts`, seed spread by a multiplier). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  const out = randn(n, (seed * 2654435761) >>> 0);
  return scale === 1 ? out : out.map((x) => x * scale);
}

/** A float32 feed. */
export const f32 = (data: Float32Array, dims: number[]): HostTensor => ({ type: "float32", data, dims });
/** An int32 feed. */
export const i32 = (data: number[], dims: number[]): HostTensor => ({ type: "int32", data: Int32Array.from(data), dims });

/** Result of {@link compareUnfused}. */
export interface Comparison {
  /** Largest absolute difference over every output and feed set. */
  maxDiff: number;
  /** Per output name, the largest absolute difference. */
  perOutput: Record<string, number>;
  report: UnfuseReport;
  unfused: ModelProto;
}


/** Op types (with domains) of a model's main graph. */
export const opsOf = (m: ModelProto) => m.graph!.node.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType));

/**
 * Runs `model` and its un-fused copy on every feed set (onnxruntime, optimizations off so that
 * it does not fuse the rewritten graph back), checks that the copy has no `com.microsoft` node
 * and the same output names, and returns the largest difference.
 */
export async function compareUnfused(model: ModelProto, feedSets: Record<string, HostTensor>[]): Promise<Comparison> {
  const fusedBytes = encodeModel(model);
  const copy = decodeModel(fusedBytes);
  const g = OnnxGraph.fromModel(copy);
  const report = unfuseContribOps(g, { strict: true });
  expect(g.nodes.filter((n) => n.domain === "com.microsoft")).toEqual([]);
  expect(copy.opsetImport.some((o) => o.domain === "com.microsoft")).toBe(false);
  const fused = await createSession(fusedBytes, { optimizationLevel: "disabled" });
  const plain = await createSession(encodeModel(copy), { optimizationLevel: "disabled" });
  expect([...plain.outputNames]).toEqual([...fused.outputNames]);
  const perOutput: Record<string, number> = {};
  let maxDiff = 0;
  try {
    for (const feeds of feedSets) {
      const a = await fused.run(feeds);
      const b = await plain.run(feeds);
      for (const name of fused.outputNames) {
        const x = a[name]!;
        const y = b[name]!;
        expect(y.dims, name).toEqual(x.dims);
        expect(y.type, name).toBe(x.type);
        let d = 0;
        const num = x.type === "float16" ? (t: HostTensor, i: number) => halfToFloat(Number(t.data[i])) : (t: HostTensor, i: number) => Number(t.data[i]);
        for (let i = 0; i < x.data.length; i++) {
          const u = num(x, i);
          const v = num(y, i);
          if (!Number.isFinite(u) || !Number.isFinite(v)) {
            expect(v, `${name}[${i}]`).toBe(u);
            continue;
          }
          d = Math.max(d, Math.abs(u - v));
        }
        perOutput[name] = Math.max(perOutput[name] ?? 0, d);
        maxDiff = Math.max(maxDiff, d);
      }
    }
  } finally {
    await fused.release();
    await plain.release();
  }
  return { maxDiff, perOutput, report, unfused: copy };
}
