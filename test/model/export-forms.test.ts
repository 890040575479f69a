/**
 * Issue 11's acceptance across export forms of the same weights: the generated decoder with module
 * scopes (the transformers 4.x export), the same graph with torch < 1.13's unscoped names, the
 * graph onnxruntime's own transformer optimizer fused (test/assets/exports, `-fused`: Attention,
 * EmbedLayerNormalization, SkipLayerNormalization, FastGelu, stacked `past_N`) and its int32-input
 * version (onnxruntime-genai style). Every form goes through plain `Model.load` (un-fusing and
 * structural naming happen there); every hook equals the float64 reference within 1e-4;
 * interventions and the attribution node table agree across the forms.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { steer, zeroHead, zeroNeuron } from "../../src/intervene/edits.js";
import { Model, runtimeOf } from "../../src/model/model.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { gpt2Config, type Gpt2Config } from "../../src/synthetic/config.js";
import { int32Inputs } from "../../src/synthetic/forms/int32.js";
import { unscopedNames } from "../../src/synthetic/forms/unscoped.js";
import { buildGpt2Graph } from "../../src/synthetic/gpt2-graph.js";
import { randomGpt2Weights, type RandomWeightOptions } from "../../src/synthetic/weights.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";

const ASSETS = join(import.meta.dirname, "..", "assets", "exports");

interface Base {
  name: string;
  config: Gpt2Config;
  seed: number;
  weights: RandomWeightOptions;
}

const FORMS = ["scoped", "unscoped", "ort-fused", "ort-fused-int32", "scoped-int32"] as const;
type Form = (typeof FORMS)[number];

const tmp: string[] = [];
const models = new Map<Form, Model>();
let base: Base;

/** A model dir: the tiny asset's config and tokenizer files with `graph` (or the asset's own graph). */
async function formDir(form: Form): Promise<string> {
  if (form === "ort-fused") return join(ASSETS, "tiny-fused");
  if (form === "ort-fused-int32") return join(ASSETS, "tiny-fused-int32");
  const dir = await mkdtemp(join(tmpdir(), `tdb-form-${form}-`));
  tmp.push(dir);
  await cp(join(ASSETS, "tiny-fused"), dir, { recursive: true });
  const scoped = buildGpt2Graph(base.config, randomGpt2Weights(base.config, base.seed, base.weights));
  const graph = form === "scoped" ? scoped : form === "unscoped" ? unscopedNames(scoped) : int32Inputs(scoped);
  await writeFile(join(dir, "onnx", "model.onnx"), encodeModel(graph));
  return dir;
}

beforeAll(async () => {
  const manifest = JSON.parse(await readFile(join(ASSETS, "manifest.json"), "utf8")) as { bases: Base[] };
  const b = manifest.bases.find((x) => x.name === "tiny")!;
  base = { ...b, config: gpt2Config(b.config) };
  for (const f of FORMS) models.set(f, await Model.load(await formDir(f)));
}, 120_000);

afterAll(async () => {
  for (const m of models.values()) await m.dispose();
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});

const ROWS = [
  [5, 100, 41, 77, 130, 9, 250, 18, 3, 27],
  [12, 7, 300, 44, 2, 91, 17, 66, 8, 400],
];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    // Masked attention scores are a large negative constant whose exact value differs by export.
    if (b[i]! < -1e30 && a[i]! < -1e30) continue;
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

describe.each(FORMS)("form %s", (form) => {
  it("loads with every hook, each equal to the float64 reference within 1e-4", async () => {
    const model = models.get(form)!;
    const c = base.config;
    expect(model.hookNames).toHaveLength(2 + 16 * c.n_layer + 1);
    expect([...runtimeOf(model).hookMap.unavailable.keys()]).toEqual([]);
    const t = await model.trace(ROWS, { hooks: () => true });
    const ref = gpt2Reference(c, randomGpt2Weights(c, base.seed, base.weights), ROWS);
    const bad: string[] = [];
    for (const h of runtimeOf(model).selectHooks(() => true)) {
      const m = maxDiff(t.cache.get(h).data, ref.cache.get(h)!.data);
      if (!(m <= 1e-4)) bad.push(`${h}: ${m}`);
    }
    expect(bad).toEqual([]);
    expect(maxDiff(t.logits.data, ref.logits.data)).toBeLessThan(1e-4);
  });
});

describe("the forms agree", () => {
  it("interventions (head and neuron ablation, steering) give the same logits in every form", async () => {
    const v = Array.from({ length: base.config.n_embd }, (_, i) => Math.sin(i));
    const edits = [zeroHead(0, 1), zeroNeuron(1, [3, 40]), steer("blocks.1.hook_resid_pre", v, 2, { positions: [-1] })];
    const ref = await models.get("scoped")!.intervene(ROWS, edits);
    // The edits change the output, so agreeing is not trivial.
    expect(maxDiff(ref.edited.logits.data, ref.clean.logits.data)).toBeGreaterThan(1e-2);
    for (const f of FORMS.slice(1)) {
      const r = await models.get(f)!.intervene(ROWS, edits);
      expect(maxDiff(r.edited.logits.data, ref.edited.logits.data), f).toBeLessThan(1e-4);
    }
  });

  it("the attribution node table is the same in every form", async () => {
    const opts = { target: 65, distractor: 66, topK: 15 } as const;
    const ref = await models.get("scoped")!.attribute([ROWS[0]!], opts);
    expect(ref.nodes.length).toBeGreaterThan(10);
    const byId = new Map(ref.nodes.map((n) => [n.id, n]));
    for (const f of FORMS.slice(1)) {
      const t = await models.get(f)!.attribute([ROWS[0]!], opts);
      expect(Math.abs(t.loss - ref.loss), f).toBeLessThan(1e-4);
      expect(t.counts, f).toEqual(ref.counts);
      // The strongest nodes are the same nodes with the same numbers (ties at the table's edge may swap).
      for (const n of t.nodes.slice(0, 10)) {
        const r = byId.get(n.id);
        expect(r, `${f}: ${n.id}`).toBeDefined();
        for (const k of ["activation", "writeMagnitude", "directEffect", "totalEffect"] as const) {
          expect(Math.abs(n[k] - r![k]), `${f}: ${n.id} ${k}`).toBeLessThan(1e-4);
        }
      }
    }
  });

  it("the fused file's load report says what was un-fused", async () => {
    const { loadModelParts } = await import("../../src/runtime/load.js");
    const parts = await loadModelParts(join(ASSETS, "tiny-fused"));
    expect(parts.normalized.problems).toEqual([]);
    expect(parts.normalized.steps.join("\n")).toMatch(/un-fused \d+ onnxruntime-fused nodes.*Attention x2/);
    expect(parts.base.graph!.node.some((n) => n.domain === "com.microsoft")).toBe(false);
  });
});
