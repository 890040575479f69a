/**
 * Un-fusing real onnxruntime-optimized GPT-2 files (test/assets/exports/, made by onnxruntime's
 * own Python optimizer: scripts/assets/): each is un-fused, both graphs run in onnxruntime-node on
 * the same feeds (batch 2, a left-padded row, empty and non-empty past), and every output
 * (logits, presents) must agree. The fused graph's contrib kernels are the reference.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeModel } from "../../src/onnx/proto.js";
import type { HostTensor } from "../../src/onnx/tensor.js";
import { floatToHalf as float16Bits } from "../../src/onnx/half.js";
import { compareUnfused, opsOf, rand } from "./_unfuse.js";

const DIR = join(import.meta.dirname, "..", "assets", "exports");

interface IoSpec {
  name: string;
  dtype: string;
  dims: (number | string)[];
}
interface AssetSpec {
  name: string;
  file: string;
  inputs: IoSpec[];
  com_microsoft_ops: Record<string, number>;
}

const manifest = existsSync(join(DIR, "manifest.json")) ? (JSON.parse(readFileSync(join(DIR, "manifest.json"), "utf8")) as { assets: AssetSpec[] }) : { assets: [] };
const fused = manifest.assets.filter((a) => Object.keys(a.com_microsoft_ops).length > 0);

/** Feeds: ids below 200, row 1 left-padded by one, positions from P, past_N random (P > 0) or empty. */
function feedsFor(a: AssetSpec, S: number, P: number, seed: number): Record<string, HostTensor> {
  const f: Record<string, HostTensor> = {};
  for (const spec of a.inputs) {
    const int = spec.dtype === "int32" ? (v: number[]) => Int32Array.from(v) : (v: number[]) => BigInt64Array.from(v.map((x) => BigInt(x)));
    const type = spec.dtype === "int32" ? "int32" : "int64";
    if (spec.name === "input_ids") f[spec.name] = { type, data: int(Array.from({ length: 2 * S }, (_, i) => (i * 37 + seed * 11) % 200)), dims: [2, S] } as HostTensor;
    else if (spec.name === "attention_mask") {
      const T = spec.dims.length === 2 && String(spec.dims[1]).includes("past") ? P + S : S;
      f[spec.name] = { type, data: int(Array.from({ length: 2 * T }, (_, i) => (i === T ? 0 : 1))), dims: [2, T] } as HostTensor;
    } else if (spec.name === "position_ids") {
      f[spec.name] = { type, data: int(Array.from({ length: 2 * S }, (_, i) => P + (i % S))), dims: [2, S] } as HostTensor;
    } else if (spec.name.startsWith("past")) {
      const dims = [2, 2, Number(spec.dims[2]), P, Number(spec.dims[4])];
      const n = dims.reduce((x, y) => x * y, 1);
      const values = rand(n, seed + 5, 0.5);
      f[spec.name] = spec.dtype === "float16" ? { type: "float16", data: Uint16Array.from(values, (v) => float16Bits(v)), dims } : { type: "float32", data: values, dims };
    } else throw new Error(`asset ${a.name}: unexpected input ${spec.name}`);
  }
  return f;
}

describe.skipIf(fused.length === 0)("unfuse: onnxruntime-optimized GPT-2 assets", () => {
  it.each(fused.map((a) => [a.name, a] as const))("%s", async (name, a) => {
    const model = decodeModel(readFileSync(join(DIR, a.file)));
    const hasPast = a.inputs.some((i) => i.name.startsWith("past"));
    const sets = [
      feedsFor(a, 5, 0, 1),
      feedsFor(a, 1, 0, 2),
      ...(hasPast ? [feedsFor(a, 3, 4, 3), feedsFor(a, 1, 6, 4)] : []),
    ];
    const r = await compareUnfused(model, sets);
    const fp16 = name.includes("fp16");
    // float16 graphs: the fused kernels accumulate in float32, the un-fused ops round each step to float16
    expect(r.maxDiff, JSON.stringify(r.perOutput)).toBeLessThan(fp16 ? 1e-2 : 1e-4);
    expect(r.report.unsupported).toEqual([]);
    const ops = opsOf(r.unfused);
    expect(ops.filter((o) => o.startsWith("com.microsoft"))).toEqual([]);
    const layerNorms = opsOf(model).filter((o) => o === "LayerNormalization").length;
    expect(r.report.unfused.length).toBe(Object.values(a.com_microsoft_ops).reduce((x, y) => x + y, 0) + layerNorms);
    console.log(`${name}: max |diff| ${r.maxDiff.toExponential(2)} per output ${JSON.stringify(Object.fromEntries(Object.entries(r.perOutput).map(([k, v]) => [k, Number(v.toExponential(2))])))}`);
  });
});
