/**
 * Trains the sparse autoencoders shipped with `tdb:brown-small` (models/brown-small/saes/): one
 * TopK SAE on the MLP output (`blocks.L.hook_mlp_out`) of every layer, 8x expansion (2,048
 * latents on d_model 256), k = 32, trained on the model's own training split of the Brown corpus
 * and measured on the held-out split. Writes SAELens files and a card (saes/README.md, figures in
 * saes/figures.json).
 *
 *   npx tsx scripts/models/brown-small-saes.ts [--steps N] [--layers 0,1,2,3] [--out DIR]
 *
 * Seeded (data order and initial weights): the same command writes the same files.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Model } from "../../src/model/model.js";
import "../../src/runtime/install-node.js";
import { Sae } from "../../src/sae/sae.js";
import { saveSae } from "../../src/sae/save.js";
import { deadFraction, densityHistogramSvg, explainedVariance, l0, normalizedMse } from "../../src/sae/metrics.js";
import { loadSae } from "../../src/sae/saelens.js";
import { writeAtomic } from "../../src/io/write-atomic.js";
import { trainSae } from "../../src/sae/train.js";
import { prepareBrown } from "../../src/train/brown-data.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const N_CTX = 128;
const D_MODEL = 256;
const D_SAE = 2048;
const K = 32;
const BATCH = 4096;
const SEED = 0;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const steps = Number(arg("--steps") ?? 1000);
const layers = (arg("--layers") ?? "0,1,2,3").split(",").map(Number);
const outDir = resolve(arg("--out") ?? join(ROOT, "models", "brown-small", "saes"));
const lr = Number(arg("--lr") ?? 4e-4);
const fmt = (x: number, d = 3): string => x.toFixed(d);

/** Non-overlapping windows of N_CTX tokens of a `eos d1 eos d2 ...` stream. */
function windows(stream: Uint16Array): number[][] {
  const out: number[][] = [];
  for (let s = 0; s + N_CTX <= stream.length; s += N_CTX) out.push(Array.from(stream.subarray(s, s + N_CTX)));
  return out;
}

/**
 * The hooks' activations at positions 1..N_CTX-1 of every window (position 0 has no context and
 * an outsized norm in small models; SAEs are usually trained without it), one forward pass for
 * all hooks.
 */
async function harvest(model: Model, hooks: readonly string[], rows: number[][]): Promise<Float32Array[]> {
  const per = N_CTX - 1;
  const out = hooks.map(() => new Float32Array(rows.length * per * D_MODEL));
  const chunk = 64;
  for (let r = 0; r < rows.length; r += chunk) {
    const part = rows.slice(r, r + chunk);
    const t = await model.trace(part, { hooks: hooks as never, logits: "last", prependBos: false });
    hooks.forEach((hook, h) => {
      const a = t.cache.get(hook as never);
      for (let b = 0; b < part.length; b++) {
        out[h]!.set(a.data.subarray((b * N_CTX + 1) * D_MODEL, (b + 1) * N_CTX * D_MODEL), (r + b) * per * D_MODEL);
      }
    });
  }
  return out;
}

interface LayerFigures {
  hook: string;
  trainRows: number;
  steps: number;
  seconds: number;
  rowsPerSecond: number;
  heldOut: { rows: number; l0: number; explainedVariance: number; normalizedMse: number; deadFraction: number };
  sizeBytes: number;
}

async function main(): Promise<void> {
  const data = await prepareBrown({ vocabSize: 8192, seed: 0 });
  const model = await Model.load("tdb:brown-small");
  const trainRows = windows(data.train);
  const validRows = windows(data.valid);
  console.error(`brown: ${trainRows.length} training windows, ${validRows.length} held-out windows of ${N_CTX} tokens`);
  const tmp = `${outDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const figures: LayerFigures[] = [];
  const hooks = layers.map((l) => `blocks.${l}.hook_mlp_out`);
  let t0 = performance.now();
  const xs = await harvest(model, hooks, trainRows);
  const vs = await harvest(model, hooks, validRows);
  console.error(`harvested ${xs[0]!.length / D_MODEL} training and ${vs[0]!.length / D_MODEL} held-out rows of ${hooks.length} hooks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const [i, layer] of layers.entries()) {
    const hook = hooks[i]!;
    const x = xs[i]!;
    t0 = performance.now();
    const trained = await trainSae({
      activations: x,
      dIn: D_MODEL,
      dSae: D_SAE,
      architecture: "topk",
      k: K,
      steps,
      batchSize: BATCH,
      lr,
      seed: SEED + layer,
      threads: 2,
      onProgress: (p) => {
        if (p.step % 100 === 0 || p.step === p.steps) {
          console.error(`  step ${p.step}/${p.steps} mse ${p.mse.toExponential(3)} l0 ${p.l0.toFixed(1)} dead ${fmt(p.deadFraction)} ${p.rowsPerSecond.toFixed(0)} rows/s`);
        }
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const w = trained.weights;
    const sae = Sae.create(
      { architecture: "topk", dIn: D_MODEL, dSae: D_SAE, k: K, hookName: hook, hookLayer: layer, modelName: "tdb:brown-small", applyBDecToInput: true },
      { W_enc: w.W_enc.data, W_dec: w.W_dec.data, b_enc: w.b_enc.data, b_dec: w.b_dec.data },
    );
    const v = vs[i]!;
    const { latents, reconstruction } = await sae.forward(v);
    const f: LayerFigures = {
      hook,
      trainRows: x.length / D_MODEL,
      steps: trained.steps,
      seconds,
      rowsPerSecond: trained.rowsPerSecond,
      heldOut: {
        rows: v.length / D_MODEL,
        l0: l0(latents, D_SAE),
        explainedVariance: explainedVariance(v, reconstruction, D_MODEL),
        normalizedMse: normalizedMse(v, reconstruction, D_MODEL),
        deadFraction: deadFraction(latents, D_SAE),
      },
      sizeBytes: 4 * (2 * D_MODEL * D_SAE + D_SAE + D_MODEL),
    };
    console.error(`${hook}: held-out L0 ${fmt(f.heldOut.l0, 1)}, explained variance ${fmt(f.heldOut.explainedVariance)}, dead ${fmt(f.heldOut.deadFraction)}`);
    figures.push(f);
    await saveSae(sae, join(tmp, hook));
    await sae.dispose();
    xs[i] = new Float32Array(0); // free the rows
  }
  await model.dispose();
  await writeFile(join(tmp, "figures.json"), `${JSON.stringify({ dSae: D_SAE, k: K, batch: BATCH, lr, steps, layers: figures }, null, 2)}\n`);
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  console.error(`wrote ${outDir}`);
}

/** Per-layer figures of `Model.evaluateSae` on held-out windows, the SAEs loaded from the written files. */
interface EvalFigures {
  hook: string;
  windows: number;
  positions: number;
  l0: number;
  mse: number;
  normalizedMse: number;
  explainedVariance: number;
  deadFraction: number;
  denseFraction: number;
  ce: { clean: number; spliced: number; zeroAblated: number };
  ceLossRecovered: number;
  seconds: number;
}

/**
 * Measures the written SAEs as users load them (`loadSae`) with `Model.evaluateSae` on the first
 * `EVAL_WINDOWS` held-out windows, draws each density histogram, and writes the card.
 */
async function evaluate(): Promise<void> {
  const data = await prepareBrown({ vocabSize: 8192, seed: 0 });
  const validRows = windows(data.valid).slice(0, EVAL_WINDOWS);
  const model = await Model.load("tdb:brown-small");
  const train = JSON.parse(await readFile(join(outDir, "figures.json"), "utf8")) as { dSae: number; k: number; batch: number; lr: number; steps: number; layers: LayerFigures[] };
  const evals: EvalFigures[] = [];
  for (const f of train.layers) {
    const sae = await loadSae(outDir, { subfolder: f.hook });
    const t0 = performance.now();
    const ev = await model.evaluateSae(sae, validRows, { prependBos: false });
    const e: EvalFigures = {
      hook: f.hook,
      windows: ev.rows,
      positions: ev.positions,
      l0: ev.l0,
      mse: ev.mse,
      normalizedMse: ev.normalizedMse,
      explainedVariance: ev.explainedVariance,
      deadFraction: ev.deadFraction,
      denseFraction: ev.denseFraction,
      ce: { clean: ev.ce.clean, spliced: ev.ce.spliced, zeroAblated: ev.ce.zeroAblated },
      ceLossRecovered: ev.ceLossRecovered,
      seconds: (performance.now() - t0) / 1000,
    };
    console.error(`${f.hook}: EV ${fmt(e.explainedVariance)}, L0 ${fmt(e.l0, 1)}, CE recovered ${fmt(e.ceLossRecovered)} (clean ${fmt(e.ce.clean)}, spliced ${fmt(e.ce.spliced)}, zero ${fmt(e.ce.zeroAblated)})`);
    evals.push(e);
    await writeAtomic(join(outDir, `density-${f.hook}.svg`), densityHistogramSvg(ev.histogram, { title: `tdb:brown-small ${f.hook}: log10 latent density` }));
    await sae.dispose();
  }
  await model.dispose();
  await writeAtomic(join(outDir, "figures.json"), `${JSON.stringify({ ...train, evaluation: evals }, null, 2)}\n`);
  await writeAtomic(join(outDir, "README.md"), card(train, evals));
  console.error(`wrote ${join(outDir, "README.md")}`);
}

function card(train: { dSae: number; k: number; batch: number; lr: number; steps: number; layers: LayerFigures[] }, evals: EvalFigures[]): string {
  const rows = evals.map((e, i) => {
    const t = train.layers[i]!;
    return `| \`${e.hook}\` | ${fmt(e.l0, 1)} | ${fmt(e.explainedVariance)} | ${fmt(t.heldOut.explainedVariance)} | ${fmt(e.normalizedMse)} | ${fmt(e.ceLossRecovered)} | ${fmt(e.ce.clean)} / ${fmt(e.ce.spliced)} / ${fmt(e.ce.zeroAblated)} | ${(100 * e.deadFraction).toFixed(1)}% | ${(100 * e.denseFraction).toFixed(1)}% |`;
  });
  const mb = train.layers.reduce((s, l) => s + l.sizeBytes, 0) / 1e6;
  const trainRows = train.layers.map((l) => `${l.hook}: ${(l.seconds / 60).toFixed(1)} min, ${l.rowsPerSecond.toFixed(0)} rows/s`).join("; ");
  return `# Sparse autoencoders for tdb:brown-small

One TopK sparse autoencoder on the MLP output (\`blocks.L.hook_mlp_out\`) of each of the four layers of
\`tdb:brown-small\`, shipped so that SAE latents work offline out of the box:

\`\`\`ts
import { Model, loadSae, zeroLatent } from "tdb-js";
const model = await Model.load("tdb:brown-small");
const sae = await loadSae("tdb:brown-small/blocks.2.hook_mlp_out");
const t = await model.trace("The jury said it did find that many of", { saes: [sae] });
t.cache.get("blocks.2.hook_mlp_out.hook_sae_acts_post"); // [1, pos, ${train.dSae}]
\`\`\`

Each folder holds SAELens files (\`cfg.json\`, \`sae_weights.safetensors\`; SAELens loads them too).
Reproduce them with \`npx tsx scripts/models/brown-small-saes.ts\` (seeded; the figures below are its
output, also in \`figures.json\`; \`--eval-only\` re-measures the shipped files).

## Architecture and training

d_in 256 (d_model), ${train.dSae} latents (8x), TopK with k = ${train.k} (so L0 is ${train.k} by construction), AuxK
for dead latents (k_aux 128, coefficient 1/32), decoder rows kept at unit norm (each row's gradient
component along the row removed before the Adam step, as Gao et al. do), b_dec subtracted from
the input, no input normalisation. ${train.steps} steps of Adam (lr ${train.lr}, 5% warm-up, linear decay over
the last 20%), batches of ${train.batch} activations drawn from a shuffled array of the hook's values
on the model's own training split of the Brown corpus (${train.layers[0]?.trainRows.toLocaleString("en")} positions: non-overlapping windows of
${N_CTX} tokens, position 0 of each window left out), about ${((train.steps * train.batch) / (train.layers[0]?.trainRows ?? 1)).toFixed(1)} epochs. tdb-js's own
trainer (\`trainSae\`) on 2 shared CPU cores: ${trainRows}. ${mb.toFixed(1)} MB in all (float32).

## Figures (held-out split)

\`model.evaluateSae\` on the first ${evals[0]?.windows ?? 0} held-out windows of ${N_CTX} tokens (${evals[0]?.positions.toLocaleString("en") ?? 0} positions), the SAEs loaded
from these files. Explained variance is 1 - normalised MSE (SAELens's definition); "EV (pos >= 1)" is
the same on every held-out window without position 0 (as trained). Cross-entropy loss recovered =
(CE zero-ablated - CE spliced) / (CE zero-ablated - CE clean), the hook replaced by the SAE's
reconstruction (no error term) or by zeros at every position, mean next-token cross-entropy in
nats over all predictions.

| SAE | L0 | explained variance | EV (pos >= 1) | normalised MSE | CE loss recovered | CE clean / spliced / zero-ablated | dead | dense (>10%) |
|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

Zero-ablating the MLP output of layers 1 to 3 costs this model little (a few hundredths of a nat), so
their CE loss recovered has a small denominator: read it with the absolute cost of splicing, CE
spliced - CE clean (${evals.map((e) => `${e.hook.split(".")[1]}: ${(e.ce.spliced - e.ce.clean).toFixed(3)}`).join(", ")} nats).

Latent density histograms: \`density-<hook>.svg\` (log10 of the fraction of positions on which each
latent fires).
`;
}

const EVAL_WINDOWS = Number(arg("--eval-windows") ?? 256);

if (!process.argv.includes("--eval-only")) await main();
await evaluate();
