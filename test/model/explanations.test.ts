/**
 * Explanations next to attribution rows: `loadExplanations` reads `explanations/*.json` (hand-written
 * here), `attribute` / `traceUpstream` with `explanations` fill exactly the explained rows, and
 * the explanations shipped with tdb:brown-small cover every MLP neuron, SAE latent and attention head.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExplanationIndex, loadExplanations } from "../../src/explainer/explanations.js";
import type { Model } from "../../src/model/model.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { rejected } from "../helpers/errors.js";
import { useTestModel } from "../helpers/models.js";

let model: Model;
useTestModel({ config: TINY_GPT2, seed: 33 }, (_, m) => (model = m));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-expl-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Explanations of every neuron of layer 0 with an even index: "neuron <i>", score i / 1000; and of every head of layer 0 (heads.json): "head 0.<h>", score h / 100. */
async function writeExplanations(d: string, dMlp: number, nHeads: number): Promise<void> {
  await mkdir(join(d, "explanations"), { recursive: true });
  const nodes = Array.from({ length: dMlp }, (_, i) => i)
    .filter((i) => i % 2 === 0)
    .map((i) => ({ id: `mlp.0.${i}`, explanation: `neuron ${i}`, score: i / 1000 }));
  await writeFile(join(d, "explanations", "mlp.json"), JSON.stringify({ model: "test", nodes }));
  const heads = Array.from({ length: nHeads }, (_, h) => ({ id: `attn.0.${h}`, explanation: `head 0.${h}`, score: h / 100, kind: "previous" }));
  await writeFile(join(d, "explanations", "heads.json"), JSON.stringify({ model: "test", nodes: heads }));
}

describe("explanations in node tables", () => {
  it("attribute and traceUpstream rows carry the explanation of exactly the explained nodes", async () => {
    const d = join(dir, "a");
    await writeExplanations(d, model.config.dMlp, model.config.nHeads);
    const index = await loadExplanations(d);
    expect(index.size).toBe(model.config.dMlp / 2 + model.config.nHeads);
    expect(index.get("mlp.0.4@3")).toEqual({ id: "mlp.0.4", explanation: "neuron 4", score: 0.004 });
    expect(index.get("attn.0.1@5:2")).toEqual({ id: "attn.0.1", explanation: "head 0.1", score: 0.01 });
    const prompt = [model.bosTokenId, 5, 9, 13, 2, 7];
    const opts = { target: 3, distractor: 4, topK: 200 };
    const plain = await model.attribute(prompt, opts);
    const t = await model.attribute(prompt, { ...opts, explanations: index });
    expect(t.nodes.map((n) => n.id)).toEqual(plain.nodes.map((n) => n.id));
    let explained = 0;
    let heads = 0;
    for (const n of t.nodes) {
      const m = /^mlp\.0\.(\d+)@/.exec(n.id);
      const h = /^attn\.0\.(\d+)@\d+:\d+$/.exec(n.id);
      if (m && Number(m[1]) % 2 === 0) {
        explained++;
        expect(n.explanation).toBe(`neuron ${m[1]}`);
        expect(n.explanationScore).toBe(Number(m[1]) / 1000);
      } else if (h) {
        heads++;
        expect(n.explanation).toBe(`head 0.${h[1]}`);
        expect(n.explanationScore).toBe(Number(h[1]) / 100);
      } else {
        expect(n.explanation).toBeUndefined();
      }
    }
    expect(explained).toBeGreaterThan(0);
    expect(heads).toBeGreaterThan(0);
    const up = await model.traceUpstream(prompt, { type: "mlp_neuron", layer: 1, index: 0, position: 5 }, { explanations: index, topK: 200 });
    expect(up.nodes.filter((n) => n.explanation !== undefined).every((n) => /^(mlp\.0\.\d*[02468]@|attn\.0\.\d+@)/.test(n.id))).toBe(true);
  });

  it("bad input is typed", async () => {
    expect((await rejected(loadExplanations(join(dir, "none")))).code).toBe("E_MISSING_FILE");
    const d = join(dir, "bad");
    await mkdir(join(d, "explanations"), { recursive: true });
    await writeFile(join(d, "explanations", "mlp.json"), "{ not json");
    expect((await rejected(loadExplanations(d))).code).toBe("E_BAD_INPUT");
    await writeFile(join(d, "explanations", "mlp.json"), JSON.stringify({ nodes: [{ id: "mlp.0.1", explanation: 3 }] }));
    expect((await rejected(loadExplanations(d))).code).toBe("E_BAD_INPUT");
    const e = await rejected(model.attribute([model.bosTokenId, 5, 9], { target: 3, distractor: 4, explanations: new Map() as never }));
    expect(e.code).toBe("E_BAD_OPTION");
  });

  it("tdb:brown-small ships an explanation for every MLP neuron, SAE latent and attention head", async () => {
    const index = await loadExplanations("tdb:brown-small");
    const ids = new Set(index.entries().map((e) => e.id));
    for (let l = 0; l < 4; l++) {
      for (let i = 0; i < 1024; i++) expect(ids.has(`mlp.${l}.${i}`)).toBe(true);
      for (let i = 0; i < 2048; i++) expect(ids.has(`sae.blocks.${l}.hook_mlp_out.${i}`)).toBe(true);
    }
    for (let l = 0; l < 4; l++) for (let h = 0; h < 4; h++) expect(index.get(`attn.${l}.${h}@9:3`)?.explanation).toMatch(/^(attends|no rule)/);
    expect(index.size).toBe(4 * 1024 + 4 * 2048 + 16);
    for (const e of index.entries()) {
      expect(e.score).toBeGreaterThanOrEqual(-1);
      expect(e.score).toBeLessThanOrEqual(1);
    }
    expect(new ExplanationIndex(index.entries()).size).toBe(index.size);
  });
});
