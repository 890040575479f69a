/**
 * The trained model directory: `Model.load` reads it and its logits equal a float64 forward
 * computed from the trained weights (reference blocks, final LayerNorm and the untied
 * unembedding done here); transformers.js's `text-generation` pipeline generates from it (local
 * files only), greedily continuing the sentence it was trained on; `tdb train` writes the same
 * kind of directory from a config file, with JSON progress lines on stderr and one JSON result
 * object on stdout.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { env, pipeline } from "@huggingface/transformers";
import { afterAll, describe, expect, it } from "vitest";
import { memoryFiles } from "../../src/io/files.js";
import { Model } from "../../src/model/model.js";
import { loadTokenizer } from "../../src/runtime/tokenizer.js";
import { gpt2Config } from "../../src/synthetic/config.js";
import { unembedInitializerName } from "../../src/synthetic/gpt2-graph.js";
import { tokenizerFiles } from "../../src/train/export.js";
import { train } from "../../src/train/train.js";
import { tdb } from "../cli/_run.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";

const root = mkdtempSync(join(tmpdir(), "tdb-train-export-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SENTENCE = " the cat sat on the mat and the dog ran to the park.";
const modelConfig = { n_layer: 1, n_head: 2, n_embd: 32, n_inner: 64, n_positions: 32, vocab_size: 512 };

async function encoder(): Promise<(s: string) => number[]> {
  const f = await tokenizerFiles("gpt2", 512, 32);
  const enc = new TextEncoder();
  const t = await loadTokenizer(memoryFiles("tok", { "tokenizer.json": enc.encode(f.tokenizerJson), "tokenizer_config.json": enc.encode(f.tokenizerConfigJson) }));
  return (s) => t.encode(s, { add_special_tokens: false });
}

describe("trained model directory", () => {
  it("Model.load reads it (logits = float64 forward of the trained weights) and transformers.js generates from it", async () => {
    const encode = await encoder();
    const tokens = Int32Array.from(encode(SENTENCE.repeat(120)));
    const dir = join(root, "trained");
    const r = await train({
      model: { kind: "gpt2", config: modelConfig },
      data: { train: tokens },
      steps: 120,
      batchSize: 8,
      optimizer: { lr: 1e-2, warmupSteps: 10 },
      outDir: dir,
      progress: "none",
    });
    expect(r.outDir).toBe(dir);
    for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) expect(existsSync(join(dir, f)), f).toBe(true);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(cfg).toMatchObject({ model_type: "gpt2", n_layer: 1, n_embd: 32, n_positions: 32, vocab_size: 512, eos_token_id: 511 });

    // Model.load, and its logits against a float64 forward of the trained weights.
    const prompt = encode(" the cat sat on the");
    const model = await Model.load(dir);
    const t = await model.trace([prompt], { hooks: [] });
    const c = gpt2Config(modelConfig);
    const ref = gpt2Reference(c, r.weights, [prompt]);
    const resid = ref.cache.get("blocks.0.hook_resid_post")!;
    const U = r.weights.get(unembedInitializerName(c))!; // [d, vocab], untied
    const g = r.weights.get("transformer.ln_f.weight")!.data;
    const bLn = r.weights.get("transformer.ln_f.bias")!.data;
    const d = c.n_embd;
    const V = c.vocab_size;
    let worst = 0;
    for (let p = 0; p < prompt.length; p++) {
      const x = Array.from(resid.data.subarray(p * d, (p + 1) * d));
      const mean = x.reduce((a, v) => a + v, 0) / d;
      const vr = x.reduce((a, v) => a + (v - mean) ** 2, 0) / d;
      const h = x.map((v, i) => ((v - mean) / Math.sqrt(vr + c.layer_norm_epsilon)) * g[i]! + bLn[i]!);
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += h[i]! * U.data[i * V + v]!;
        worst = Math.max(worst, Math.abs(s - t.logits.data[p * V + v]!));
      }
    }
    expect(worst).toBeLessThan(1e-3);
    const next = t.topK(1)[0]!;
    await model.dispose();

    // transformers.js, local files only.
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = root;
    const generator = await pipeline("text-generation", "trained", { dtype: "fp32" });
    const out = (await generator(" the cat sat on the", { max_new_tokens: 6, do_sample: false })) as { generated_text: string }[];
    const text = out[0]!.generated_text;
    expect(text.startsWith(" the cat sat on the")).toBe(true);
    expect(text.length).toBeGreaterThan(" the cat sat on the".length);
    // Greedy: its first new token is the argmax of tdb-js's logits; the model learned the sentence.
    expect(text.slice(" the cat sat on the".length).startsWith(next.str), JSON.stringify(next)).toBe(true);
    expect(text).toContain(" the cat sat on the mat");
    await generator.dispose();
  }, 60_000);

  it("tdb train --config writes the model directory, with JSON progress lines", async () => {
    const dir = join(root, "cli");
    writeFileSync(join(root, "train.txt"), SENTENCE.repeat(40));
    const cfgPath = join(root, "train.json");
    writeFileSync(
      cfgPath,
      // The tokenizer: the files of the directory the first test wrote (copied as they are).
      JSON.stringify({ model: { kind: "gpt2", config: modelConfig }, data: { train: { text: "train.txt" } }, steps: 6, batchSize: 4, checkpoint: "cli.ckpt", outDir: "cli", tokenizer: { dir: "trained" } }),
    );
    const run = await tdb(["train", "--config", cfgPath, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    // Progress: JSON lines on stderr; stdout: exactly one JSON object, the result.
    const lines = run.stderr.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.kind === "step").map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const result = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(result).toMatchObject({ schema: "tdb.train/1", step: 6, outDir: dir, resumed: false });
    expect(existsSync(join(dir, "onnx", "model.onnx"))).toBe(true);
    expect(existsSync(join(root, "cli.ckpt"))).toBe(true);
    expect(readFileSync(join(dir, "tokenizer.json"), "utf8")).toBe(readFileSync(join(root, "trained", "tokenizer.json"), "utf8"));
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).eos_token_id).toBe(511);
    const bad = await tdb(["train", "--json"]);
    expect(bad.code).toBe(2);
  }, 60_000);
});
