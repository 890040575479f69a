/**
 * `tdb sae train` on a tiny generated model and a small text file: the SAE is written in
 * SAELens's layout with hook and model named, the held-out metrics it prints match a float64
 * computation here (the written SAE applied to the held-out paragraphs' activations), progress goes
 * to stderr, a rerun with --resume continues from the checkpoint, and usage errors exit 2.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHeldOut } from "../../src/corpus/document.js";
import { Model } from "../../src/model/model.js";
import { harvestActivations } from "../../src/sae/harvest.js";
import { loadSae } from "../../src/sae/saelens.js";
import { collectRows } from "../../src/sae/trained.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { tdb } from "./_run.js";

let tm: TestModel;
let corpusPath: string;
const WORDS = ["river", "model", "sparse", "latent", "token", "brown", "quick", "feature", "layer", "head", "stream", "window"];
// 60 paragraphs, ids corpus.txt:0..59; about 10% are held out (isHeldOut, seed 0).
const PARAGRAPHS = Array.from({ length: 60 }, (_, i) => Array.from({ length: 12 + (i % 7) }, (_, j) => WORDS[(i * 5 + j * 3) % WORDS.length]).join(" ") + ".");

beforeAll(async () => {
  tm = await makeTestModel({ seed: 9 });
  corpusPath = join(tm.dir, "corpus.txt");
  await writeFile(corpusPath, PARAGRAPHS.join("\n\n") + "\n");
});
afterAll(async () => {
  await tm?.cleanup();
});

describe("tdb sae train", () => {
  it("trains, writes a SAELens directory naming hook and model, and reports held-out metrics a float64 computation reproduces", async () => {
    const out = join(tm.dir, "sae");
    const ckpt = join(tm.dir, "sae.ckpt");
    const hook = "blocks.1.hook_mlp_out";
    const args = ["sae", "train", "--model", tm.dir, "--hook", hook, "--latents", "32", "--steps", "12", "--batch", "64", "--context", "16", "--corpus", corpusPath, "--out", out, "--checkpoint", ckpt, "--json"];
    const r = await tdb(args);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as Record<string, unknown> & { heldOut: Record<string, number> };
    expect(res).toMatchObject({ schema: "tdb.sae.train/1", hook, architecture: "standard", dIn: 64, dSae: 32, steps: 12, resumedFrom: 0, out, checkpoint: ckpt });
    // Progress: JSON lines on stderr, the last one step 12.
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("{"));
    expect(JSON.parse(lines[lines.length - 1]!)).toMatchObject({ kind: "step", step: 12, steps: 12 });

    const cfg = JSON.parse(await readFile(join(out, "cfg.json"), "utf8")) as Record<string, unknown>;
    expect(cfg).toMatchObject({ hook_name: hook, hook_layer: 1, model_name: tm.dir, d_in: 64, d_sae: 32, context_size: 16 });
    const sae = await loadSae(out);

    // The held-out rows, harvested from the held-out paragraphs, and the metrics in float64.
    const model = await Model.load(tm.dir);
    const held = PARAGRAPHS.map((text, i) => ({ id: `corpus.txt:${i}`, text })).filter((d) => isHeldOut(d.id, { fraction: 0.1, seed: 0 }));
    expect(held.length).toBeGreaterThan(0);
    const { data: x, rows } = await collectRows(harvestActivations(model, held, { hook, contextLength: 16 }), 64);
    await model.dispose();
    expect(res.heldOut.rows).toBe(rows);
    const { W_enc, W_dec, b_enc, b_dec } = sae.weights;
    const S = 32;
    const d = 64;
    let res2 = 0;
    let tot = 0;
    let active = 0;
    const fired = new Uint8Array(S);
    const mean = new Float64Array(d);
    for (let r0 = 0; r0 < rows; r0++) for (let j = 0; j < d; j++) mean[j]! += x[r0 * d + j]! / rows;
    for (let r0 = 0; r0 < rows; r0++) {
      const f = new Float64Array(S);
      for (let i = 0; i < S; i++) {
        let s = b_enc![i]!;
        for (let j = 0; j < d; j++) s += (x[r0 * d + j]! - b_dec[j]!) * W_enc[j * S + i]!;
        f[i] = Math.max(0, s);
        if (f[i]! > 0) {
          active++;
          fired[i] = 1;
        }
      }
      for (let j = 0; j < d; j++) {
        let s = b_dec[j]!;
        for (let i = 0; i < S; i++) s += f[i]! * W_dec[i * d + j]!;
        res2 += (x[r0 * d + j]! - s) ** 2;
        tot += (x[r0 * d + j]! - mean[j]!) ** 2;
      }
    }
    expect(res.heldOut.explainedVariance).toBeCloseTo(1 - res2 / tot, 4);
    expect(res.heldOut.mse).toBeCloseTo(res2 / (rows * d), 6);
    expect(res.heldOut.l0).toBeCloseTo(active / rows, 4);
    expect(res.heldOut.deadFraction).toBeCloseTo(1 - fired.reduce((a, b) => a + b, 0) / S, 10);

    // Resumed from the final checkpoint: nothing left to train, the same SAE again.
    const again = await tdb([...args.slice(0, -1), "--resume", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const res3 = JSON.parse(again.stdout) as { resumedFrom: number; steps: number; heldOut: Record<string, number> };
    expect([res3.resumedFrom, res3.steps]).toEqual([12, 12]);
    expect(res3.heldOut.explainedVariance).toBe(res.heldOut.explainedVariance);
  }, 60_000);

  it("usage errors exit 2 before loading anything; a bad hook is a typed error (exit 1)", async () => {
    for (const args of [
      ["sae", "train", "--latents", "8"],
      ["sae", "train", "--hook", "blocks.0.hook_mlp_out", "--latents", "8", "--architecture", "topk"],
      ["sae", "train", "--hook", "blocks.0.hook_mlp_out", "--latents", "eight"],
      ["sae", "--hook", "blocks.0.hook_mlp_out", "--latents", "8"],
      ["sae", "train", "--hook", "blocks.0.hook_mlp_out", "--latents", "8", "--top", "3"],
    ]) {
      const r = await tdb([...args, "--json"]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe("E_USAGE");
    }
    const bad = await tdb(["sae", "train", "--model", tm.dir, "--hook", "blocks.0.hook_nope", "--latents", "8", "--corpus", corpusPath, "--json"]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).error.code).toBe("E_UNKNOWN_HOOK");
  }, 60_000);
});
