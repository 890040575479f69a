/**
 * Reproduces `tdb:toy-induction` (models/toy-induction/): a 2-layer attention-only GPT-2 trained
 * with tdb-js's own trainer on sequences of random tokens whose second half repeats a segment of
 * the first (src/train/tasks/repeated-tokens.ts), then measured (copying accuracy, previous-token
 * and induction scores of every head, single-head zero ablations, the top head of `attribute`)
 * and written with a model card (README.md).
 *
 *   npx tsx scripts/models/toy-induction.ts [--out models/toy-induction] [--steps N]
 *
 * Seeded: the same command writes the same weights (onnxruntime's CPU kernels are
 * deterministic for a fixed thread count; the trainer uses 2 threads).
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { zeroHead } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import "../../src/runtime/install-node.js";
import { copyPositions, repeatedTokenSequences, repeatedTokensData, repeatedTokensTokenizer, type RepeatedSequence } from "../../src/train/tasks/repeated-tokens.js";
import { train } from "../../src/train/train.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Everything that decides the model. */
const SEED = 1;
const N_CTX = 40;
/** BOS + a-z, A-Z, 0-9. */
const VOCAB = 63;
/**
 * One head per layer. With 2 or 4 heads per layer (measured, see the card) layer 1 grows several
 * induction heads that back each other up, so that no single one is necessary.
 */
const ARCH = { n_layer: 2, n_head: 1, n_embd: 64, n_positions: N_CTX, vocab_size: VOCAB, attn_only: true };
const TASK = { vocabSize: VOCAB, seqLen: N_CTX, minRepeat: 4, maxRepeat: 19, trigram: 0.8, tableSeed: SEED };
const TRAIN_SEQUENCES = 16384;
const VALID_SEQUENCES = 512;
const BATCH = 32;
const OPTIMIZER = { lr: 3e-3, warmupSteps: 100, weightDecay: 0.05, minLrRatio: 0.1, clipNorm: 1 };
/** Held-out sequences the card's figures are measured on (a seed the training data never uses). */
const MEASURE = { count: 256, seed: 777 };

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const outDir = resolve(arg("--out") ?? join(ROOT, "models", "toy-induction"));
const steps = Number(arg("--steps") ?? 3000);

/** Copying accuracy: argmax of the logits at each copy position equals the repeated token. */
function copyAccuracy(logits: Float32Array, seqs: RepeatedSequence[], row0 = 0): number {
  let hit = 0;
  let n = 0;
  seqs.forEach((s, r) => {
    for (const p of copyPositions(s)) {
      const o = ((row0 + r) * N_CTX + p) * VOCAB;
      let best = 0;
      for (let t = 1; t < VOCAB; t++) if (logits[o + t]! > logits[o + best]!) best = t;
      if (best === s.tokens[p + 1]) hit++;
      n++;
    }
  });
  return hit / n;
}

interface HeadFigures {
  layer: number;
  head: number;
  /** Mean attention from each position q >= 1 to q - 1. */
  prevToken: number;
  /** Mean attention from each copy position to the token after the earlier occurrence. */
  induction: number;
  /** Copying accuracy with this head zero-ablated. */
  ablatedAccuracy: number;
}

/** Sequences `attribute` is run on. */
const ATTRIBUTE_PROMPTS = 16;

interface Figures {
  accuracy: number;
  heads: HeadFigures[];
  /** Per head, the mean over prompts of the summed estimated total effect of its attention nodes. */
  headEffects: { head: string; mean: number; firstIn: number }[];
}

async function measure(model: Model): Promise<Figures> {
  const seqs = repeatedTokenSequences({ ...TASK, ...MEASURE });
  const rows = seqs.map((s) => s.tokens);
  const hooks = Array.from({ length: ARCH.n_layer }, (_, l) => `blocks.${l}.attn.hook_pattern` as const);
  const t = await model.trace(rows, { hooks });
  const accuracy = copyAccuracy(t.logits.data as Float32Array, seqs);
  const heads: HeadFigures[] = [];
  const H = ARCH.n_head;
  const S = N_CTX;
  for (let l = 0; l < ARCH.n_layer; l++) {
    const A = t.cache.get(`blocks.${l}.attn.hook_pattern`).data;
    for (let h = 0; h < H; h++) {
      let prev = 0;
      let nPrev = 0;
      let ind = 0;
      let nInd = 0;
      seqs.forEach((s, b) => {
        const at = (q: number, k: number) => A[((b * H + h) * S + q) * S + k]!;
        for (let q = 1; q < S; q++) {
          prev += at(q, q - 1);
          nPrev++;
        }
        for (const q of copyPositions(s)) {
          ind += at(q, q - s.length + 1);
          nInd++;
        }
      });
      const r = await model.intervene(rows, [zeroHead(l, h)], { logits: "all" });
      heads.push({ layer: l, head: h, prevToken: prev / nPrev, induction: ind / nInd, ablatedAccuracy: copyAccuracy(r.edited.logits.data as Float32Array, seqs) });
    }
  }
  // attribute on held-out repeated sequences cut at the last copy position: the copied token
  // against the model's runner-up, every attention node kept, summed per head.
  const sums = new Map<string, number>();
  const firsts = new Map<string, number>();
  for (const s of seqs.slice(0, ATTRIBUTE_PROMPTS)) {
    const q = s.repeat + s.length - 2;
    const prompt = s.tokens.slice(0, q + 1);
    const target = s.tokens[q + 1]!;
    const last = (await model.forward([prompt])).data.subarray(q * VOCAB, (q + 1) * VOCAB);
    let runnerUp = target === 1 ? 2 : 1;
    for (let x = 1; x < VOCAB; x++) if (x !== target && last[x]! > last[runnerUp]!) runnerUp = x;
    const table = await model.attribute([prompt], { target, distractor: runnerUp, topK: 100_000, nodeTypes: ["attention_head"] });
    const per = new Map<string, number>();
    for (const n of table.nodes) per.set(`${n.layer}.${n.head}`, (per.get(`${n.layer}.${n.head}`) ?? 0) + n.totalEffect);
    for (const [k, v] of per) sums.set(k, (sums.get(k) ?? 0) + v / ATTRIBUTE_PROMPTS);
    const best = [...per].sort((a, b) => b[1] - a[1])[0]![0];
    firsts.set(best, (firsts.get(best) ?? 0) + 1);
  }
  const headEffects = [...sums].map(([head, mean]) => ({ head, mean, firstIn: firsts.get(head) ?? 0 })).sort((a, b) => b.mean - a.mean);
  return { accuracy, heads, headEffects };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function card(r: Figures, info: { steps: number; seconds: number; trainLoss: number; validLoss: number; tokensPerSecond: number }): string {
  const prevHead = [...r.heads].sort((a, b) => b.prevToken - a.prevToken)[0]!;
  const indHead = [...r.heads].sort((a, b) => b.induction - a.induction)[0]!;
  const rows = r.heads.map((h) => `| ${h.layer}.${h.head} | ${h.prevToken.toFixed(3)} | ${h.induction.toFixed(3)} | ${pct(h.ablatedAccuracy)} |`);
  const effects = r.headEffects.map((e) => `| ${e.head} | ${e.mean.toFixed(3)} | ${e.firstIn} of ${ATTRIBUTE_PROMPTS} |`);
  const chance = 1 / (VOCAB - 1);
  return `# tdb:toy-induction

A 2-layer **attention-only** GPT-2 (no MLPs, no \`ln_2\`; \`tdb_attn_only: true\` in config.json) trained by
tdb-js's own trainer to copy in context: it has a previous-token head in layer 0 and an induction
head in layer 1. Load it with \`Model.load("tdb:toy-induction")\`. Reproduce it with
\`npx tsx scripts/models/toy-induction.ts\` (seeded; every figure below is that script's output).

## Architecture

n_layer ${ARCH.n_layer}, n_head ${ARCH.n_head}, d_model ${ARCH.n_embd} (d_head ${ARCH.n_embd / ARCH.n_head}), n_ctx ${N_CTX}, vocabulary ${VOCAB}
(id 0 = \`<|endoftext|>\` = BOS; ids 1..62 = the words \`a\`..\`z\`, \`A\`..\`Z\`, \`0\`..\`9\`), LayerNorm before
attention and at the end, learned positions, untied unembedding. The tokenizer is word-level over
whitespace: prompts are words separated by spaces (\`"a b c a b"\`).

One head per layer on purpose: in development runs trained the same way with 2 or 4 heads per
layer (not reproduced by the script), layer 1 grew two to four induction heads that back each
other up (zero-ablating any one of them left 34-99% copying accuracy), so no single head was the
induction head.

## Data

\`src/train/tasks/repeated-tokens.ts\`: ${TRAIN_SEQUENCES} training sequences (seed ${SEED}; held-out: ${VALID_SEQUENCES}, seed ${SEED + 1}) of
${N_CTX} tokens: BOS, filler, a segment of k distinct random tokens (k uniform in ${TASK.minRepeat}..${TASK.maxRepeat}, at a
random offset), the same segment again, filler. Filler never uses the segment's tokens; with
probability ${TASK.trigram} a filler token follows a fixed seeded trigram table of the two tokens before it
(table seed ${TASK.tableSeed}), otherwise it is uniform. The loss counts the copy targets (the repeat's 2nd..k-th
tokens) and the filler from position 2 on. In development runs on uniform filler alone, models
copied through layer-0 heads looking 2-4 tokens back rather than through a previous-token head;
the trigram filler rewards knowing exactly the previous token.

## Training

${info.steps} steps of AdamW (lr ${OPTIMIZER.lr}, ${OPTIMIZER.warmupSteps} warm-up steps, cosine to ${+(OPTIMIZER.minLrRatio * OPTIMIZER.lr).toPrecision(3)}, weight decay
${OPTIMIZER.weightDecay}, clip ${OPTIMIZER.clipNorm}), batch ${BATCH} x ${N_CTX} tokens, seed ${SEED}: ${info.seconds.toFixed(0)} s on 2 shared CPU cores
(${info.tokensPerSecond.toFixed(0)} tokens/s). Final training loss ${info.trainLoss.toFixed(3)} nats/token (copy targets and filler);
held-out loss **${info.validLoss.toFixed(3)} nats/token on the copy targets** (uniform guessing: ln ${VOCAB - 1} = ${Math.log(VOCAB - 1).toFixed(3)}).

## Measured structure

On ${MEASURE.count} held-out sequences (seed ${MEASURE.seed}): copying accuracy (argmax at the copy targets) **${pct(r.accuracy)}**
(chance ${pct(chance)}).

| head | previous-token score | induction score | copying accuracy with the head zero-ablated |
|---|---|---|---|
${rows.join("\n")}

Previous-token score: mean attention from position q to q - 1 (q >= 1). Induction score: mean
attention from each copy position to the token after the earlier occurrence of the current token.

- Previous-token head: **${prevHead.layer}.${prevHead.head}** (score ${prevHead.prevToken.toFixed(3)}).
- Induction head: **${indHead.layer}.${indHead.head}** (score ${indHead.induction.toFixed(3)}); zero-ablating it leaves ${pct(indHead.ablatedAccuracy)} copying accuracy.
- Zero-ablating the previous-token head also leaves ${pct(prevHead.ablatedAccuracy)}: the induction head finds the earlier
  occurrence through the previous token the previous-token head wrote at each key (K-composition),
  so the circuit needs both heads.

\`attribute\` on ${ATTRIBUTE_PROMPTS} held-out sequences cut at their last copy position (the copied token against the
model's runner-up), each head's attention nodes' estimated total effects summed:

| head | mean summed total effect | ranked first in |
|---|---|---|
${effects.join("\n")}

These facts are checked by \`test/circuits/toy-induction.test.ts\` on the shipped files.
`;
}

async function main(): Promise<void> {
  const train0 = repeatedTokensData({ ...TASK, count: TRAIN_SEQUENCES, seed: SEED });
  const valid = repeatedTokensData({ ...TASK, count: VALID_SEQUENCES, seed: SEED + 1 });
  const tok = repeatedTokensTokenizer(VOCAB, N_CTX);
  const tmp = `${outDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(dirname(outDir), { recursive: true });
  const t0 = performance.now();
  const result = await train({
    model: { kind: "gpt2", config: ARCH },
    data: { train: train0.tokens, trainMask: train0.lossMask, valid: valid.tokens, validMask: valid.mask },
    steps,
    batchSize: BATCH,
    seqLen: N_CTX,
    optimizer: OPTIMIZER,
    seed: SEED,
    evalInterval: 500,
    outDir: tmp,
    tokenizer: { tokenizerJson: tok.tokenizerJson, tokenizerConfigJson: tok.tokenizerConfigJson },
    progress: "auto",
    threads: 2,
  });
  const seconds = (performance.now() - t0) / 1000;
  const model = await Model.load(tmp);
  let figures;
  try {
    figures = await measure(model);
  } finally {
    await model.dispose();
  }
  const info = { steps, seconds, trainLoss: result.loss, validLoss: result.validLoss ?? NaN, tokensPerSecond: result.tokensPerSecond };
  await writeFile(join(tmp, "README.md"), card(figures, info));
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  console.log(JSON.stringify({ outDir, ...info, evals: result.evals, accuracy: figures.accuracy, headEffects: figures.headEffects, heads: figures.heads }, null, 1));
}

await main();
