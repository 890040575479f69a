/**
 * Graphs fused by onnxruntime's own optimizer (test/assets/exports, made by scripts/assets) and
 * un-fused back into standard ops (src/onnx/unfuse): the un-fused nodes are named after the fused
 * op (`GptAttention_0/MatMul`, `SkipLayerNorm_AddBias_1/Add`), outside the block scopes, so the
 * structural pass names them; then every hook is found and equals the float64 reference of the
 * assets' own weights within 1e-4 (float16 files: the weights rounded to float16, as stored; tdb-js
 * runs such graphs in float32).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { normalizeGpt2 } from "../../src/hooks/gpt2-structure.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { unfuseContribOps } from "../../src/onnx/unfuse/index.js";
import { gpt2Config, headDim, type Gpt2Config } from "../../src/synthetic/config.js";
import { floatsToHalfs, halfsToFloats } from "../../src/onnx/half.js";
import { randomGpt2Weights, type RandomWeightOptions } from "../../src/synthetic/weights.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";

const ROOT = join(import.meta.dirname, "..", "assets", "exports");

interface Base {
  name: string;
  config: Gpt2Config;
  seed: number;
  weights: RandomWeightOptions;
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function base(asset: string): Promise<Base> {
  const manifest = JSON.parse(await readFile(join(ROOT, "manifest.json"), "utf8")) as { bases: Base[] };
  const b = manifest.bases.find((x) => asset.startsWith(`${x.name}-`));
  if (!b) throw new Error(`no base for ${asset}`);
  return { ...b, config: gpt2Config(b.config) };
}

const ASSETS = [
  { asset: "tiny-opt", fp16: false },
  { asset: "tiny-fused", fp16: false },
  { asset: "heads3-fused-posids", fp16: false },
  { asset: "heads3-fused-int32", fp16: false },
  { asset: "tiny-fused-fp16-io32", fp16: true },
  { asset: "heads3-fused-fp16", fp16: true },
];

describe.each(ASSETS)("un-fused $asset", ({ asset, fp16 }) => {
  it("the structural pass names the un-fused nodes; every hook equals the reference", async () => {
    const b = await base(asset);
    const c = b.config;
    const proto = decodeModel(await readFile(join(ROOT, asset, "onnx", "model.onnx")));
    const g = OnnxGraph.fromModel(proto);
    const report = unfuseContribOps(g);
    expect(report.unfused.length).toBeGreaterThan(0);
    expect(report.unsupported).toEqual([]);
    // Un-fused nodes sit outside the block scopes: what the scope-based discovery cannot read.
    const outside = g.nodes.filter((n) => ["Add", "MatMul", "ReduceMean"].includes(n.opType) && !/^\/(transformer|lm_head)\//.test(n.name));
    expect(outside.length, outside.map((n) => n.name).join(", ")).toBeGreaterThan(0);
    const dir = await mkdtemp(join(tmpdir(), "tdb-unfused-"));
    dirs.push(dir);
    await cp(join(ROOT, asset), dir, { recursive: true });
    await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(proto));
    // What load's normalize step does (checked here on a copy, for its report).
    const copy = OnnxGraph.fromModel(decodeModel(encodeModel(proto)));
    const dims = { nLayers: c.n_layer, nHeads: c.n_head, dModel: c.n_embd, dHead: headDim(c), dMlp: c.n_inner, nCtx: c.n_positions, dVocab: c.vocab_size, lnEps: c.layer_norm_epsilon };
    const n = normalizeGpt2(copy, dims);
    expect(n.problems).toEqual([]);
    expect(n.changed).toBe(true);
    expect(n.steps[0]).toMatch(new RegExp(`${c.n_layer} blocks \\(0 attention-only\\)`));

    const model = await Model.load(dir);
    try {
      expect(model.hookNames).toHaveLength(2 + 16 * c.n_layer + 1);
      expect([...runtimeOf(model).hookMap.unavailable.keys()]).toEqual([]);
      const rows = [[5, 100, 41, 77, 130, 9, 250, 18, 3, 27]];
      const t = await model.trace(rows, { hooks: () => true });
      const w = randomGpt2Weights(c, b.seed, b.weights);
      const stored = fp16 ? new Map([...w].map(([k, x]) => [k, { ...x, data: halfsToFloats(floatsToHalfs(x.data)) }])) : w;
      const ref = gpt2Reference(c, stored, rows);
      const bad: string[] = [];
      let worst = 0;
      for (const h of runtimeOf(model).selectHooks(() => true)) {
        const a = t.cache.get(h).data;
        const r = ref.cache.get(h)!.data;
        expect(a.length, h).toBe(r.length);
        let m = 0;
        for (let i = 0; i < a.length; i++) if (r[i]! > -1e30) m = Math.max(m, Math.abs(a[i]! - r[i]!));
        worst = Math.max(worst, m);
        if (!(m <= 1e-4)) bad.push(`${h}: ${m}`);
      }
      expect(bad).toEqual([]);
      expect(worst).toBeLessThan(1e-5);
    } finally {
      await model.dispose();
    }
  });
});
