/**
 * Offline explanations shipped with `tdb:brown-small` (models/brown-small/explanations/): every MLP
 * neuron (and every latent of the shipped SAEs), explained by the offline token-pattern explainer,
 * and every attention head, explained by the offline (query, key) relation explainer, from
 * activation records harvested over the Brown corpus (documents in a seeded order), each with its
 * score (correlation of true and simulated activations on held-out records). Writes `mlp.json`,
 * `sae.json`, `heads.json`, the score distributions in `figures.json` and a card (README.md).
 *
 *   npx tsx scripts/models/brown-small-explanations.ts [--tokens N (default 400,000)] [--no-saes] [--out DIR]
 *   npx tsx scripts/models/brown-small-explanations.ts --heads-only [--tokens N] [--out DIR]
 *
 * `--heads-only` harvests and explains the heads alone and updates `heads.json`, `figures.json`
 * and the card in place, keeping `mlp.json` and `sae.json` (and their figures) as they are.
 *
 * Deterministic: the corpus order, the random excerpts (a seeded hash) and the explainers are.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { splitHash } from "../../src/corpus/document.js";
import { brownCorpus } from "../../src/corpus/node.js";
import { explainOffline } from "../../src/explainer/offline.js";
import { explainHeadOffline, HEAD_PATTERN_KINDS, type HeadPatternKind } from "../../src/explainer/offline-heads.js";
import { allHeads, allLatents, allNeurons, harvestRecords } from "../../src/explainer/records.js";
import { nodeKey, type ExplainableNode } from "../../src/explainer/types.js";
import { Model } from "../../src/model/model.js";
import { OFFLINE_EXPLAINER_VERSION, OFFLINE_HEAD_EXPLAINER_VERSION } from "../../src/model/explain.js";
import "../../src/runtime/install-node.js";
import { loadSae } from "../../src/sae/saelens.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CONTEXT = 64;
const TOP = 20;
const RANDOM = 20;
const SEED = 0;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const tokens = Number(arg("--tokens") ?? 400_000);
const headsOnly = process.argv.includes("--heads-only");
const withSaes = !headsOnly && !process.argv.includes("--no-saes");
const outDir = resolve(arg("--out") ?? join(ROOT, "models", "brown-small", "explanations"));

/** One explained node as shipped. */
interface Entry {
  id: string;
  explanation: string;
  /** Correlation of true and simulated activations on held-out records (top and random, 1:1). */
  score: number;
  r2: number;
  status: string;
  maxActivation: number;
  density: number;
  /** Heads: the relation found (a {@link HeadPatternKind}, or `query` for `pairs` without a pair table: no rule for the key, the strength set by the query token), or null. */
  kind?: HeadPatternKind | "query" | null;
}

interface Distribution {
  nodes: number;
  mean: number;
  median: number;
  p10: number;
  p90: number;
  atLeast: Record<string, number>;
  /** Counts of scores in [0, 0.1), [0.1, 0.2), ..., [0.9, 1]; scores below 0 count in the first bin. */
  tenths: number[];
}

function distribution(scores: number[]): Distribution {
  const s = [...scores].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  const tenths = new Array<number>(10).fill(0);
  for (const x of s) tenths[Math.max(0, Math.min(9, Math.floor(x * 10)))]!++;
  const atLeast: Record<string, number> = {};
  for (const t of [0.2, 0.4, 0.6, 0.8]) atLeast[t.toFixed(1)] = s.filter((x) => x >= t).length / Math.max(1, s.length);
  return { nodes: s.length, mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), median: q(0.5), p10: q(0.1), p90: q(0.9), atLeast, tenths };
}

/** Head figures in figures.json. */
interface HeadFigures {
  version: string;
  tokens: number;
  /** Seconds: the harvest (shared with the neurons unless `--heads-only`) and the head explanations. */
  seconds: { harvest: number; explain: number };
  harvestedWith: "heads only" | "neurons and latents";
  all: Distribution;
  layers: Record<string, Distribution>;
  /** Heads per relation found. */
  kinds: Record<string, number>;
}

interface Figures {
  tokens: number;
  seconds: { harvest: number; explain: number };
  mlp: { all: Distribution; layers: Record<string, Distribution> };
  sae?: { all: Distribution; hooks: Record<string, Distribution> };
  heads?: HeadFigures;
}

const byLayer = (entries: Entry[], layerOf: (id: string) => string): Record<string, Distribution> => {
  const groups = new Map<string, number[]>();
  for (const e of entries) {
    const k = layerOf(e.id);
    groups.set(k, [...(groups.get(k) ?? []), e.score]);
  }
  return Object.fromEntries([...groups].map(([k, v]) => [k, distribution(v)]));
};

/** Writes `path` atomically (a temporary file renamed over it). */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

async function main(): Promise<void> {
  const model = await Model.load("tdb:brown-small");
  const saes = withSaes ? await Promise.all([0, 1, 2, 3].map((l) => loadSae(`tdb:brown-small/blocks.${l}.hook_mlp_out`))) : [];
  const nodes: ExplainableNode[] = headsOnly ? allHeads(model.config) : [...allNeurons(model.config), ...saes.flatMap((s) => allLatents(s)), ...allHeads(model.config)];
  const t0 = performance.now();
  let last = 0;
  // Documents in a seeded-hash order, so that a token budget samples every genre (catalog order
  // runs genre by genre).
  const docs = [];
  for await (const d of brownCorpus()) docs.push(d);
  docs.sort((a, b) => splitHash(a.id, SEED) - splitHash(b.id, SEED) || (a.id < b.id ? -1 : 1));
  const records = await harvestRecords(model, docs, {
    nodes,
    saes,
    contextTokens: CONTEXT,
    topK: TOP,
    randomK: RANDOM,
    seed: SEED,
    tokens,
    onProgress: (p) => {
      const now = performance.now();
      if (now - last > 10_000) {
        last = now;
        console.error(`  harvest: ${JSON.stringify(p)}`);
      }
    },
  });
  const harvestSeconds = (performance.now() - t0) / 1000;
  console.error(`harvested ${records.tokens} tokens for ${nodes.length} nodes in ${harvestSeconds.toFixed(0)} s`);
  const t1 = performance.now();
  let mlp: Entry[] = [];
  let sae: Entry[] = [];
  const heads: Entry[] = [];
  let headSeconds = 0;
  for (const node of nodes) {
    const r = records.node(node);
    const common = { id: nodeKey(node), maxActivation: r.stats.max, density: r.stats.density };
    if (node.kind === "attention_head") {
      const th = performance.now();
      const e = explainHeadOffline(r);
      headSeconds += (performance.now() - th) / 1000;
      const kind = e.pattern === null ? null : e.pattern.kind === "pairs" && e.pattern.pairs.length === 0 ? ("query" as const) : e.pattern.kind;
      heads.push({ ...common, explanation: e.explanation, score: e.score, r2: e.scores.r2, status: e.status, kind });
      continue;
    }
    const e = explainOffline(r);
    (node.kind === "mlp_neuron" ? mlp : sae).push({ ...common, explanation: e.explanation, score: e.score, r2: e.scores.r2, status: e.status });
  }
  const explainSeconds = (performance.now() - t1) / 1000;
  const kinds: Record<string, number> = Object.fromEntries([...HEAD_PATTERN_KINDS, "query"].map((k) => [k, heads.filter((h) => h.kind === k).length]));
  const unexplained = heads.filter((h) => h.kind === null).length;
  if (unexplained > 0) kinds["none"] = unexplained;
  const headFigures: HeadFigures = {
    version: OFFLINE_HEAD_EXPLAINER_VERSION,
    tokens: records.tokens,
    seconds: { harvest: harvestSeconds, explain: headSeconds },
    harvestedWith: headsOnly ? "heads only" : "neurons and latents",
    all: distribution(heads.map((e) => e.score)),
    layers: byLayer(heads, (id) => id.split(".")[1]!),
    kinds,
  };
  const headMeta = { model: "tdb:brown-small", explainer: OFFLINE_HEAD_EXPLAINER_VERSION, records: { contextTokens: CONTEXT, top: TOP, random: RANDOM, seed: SEED }, tokens: records.tokens };
  if (headsOnly) {
    // Keep the neuron and latent files; update heads.json, the figures and the card in place.
    const figures = JSON.parse(await readFile(join(outDir, "figures.json"), "utf8")) as Figures & Record<string, unknown>;
    figures.heads = headFigures;
    mlp = (JSON.parse(await readFile(join(outDir, "mlp.json"), "utf8")) as { nodes: Entry[] }).nodes;
    sae = await readFile(join(outDir, "sae.json"), "utf8").then(
      (t) => (JSON.parse(t) as { nodes: Entry[] }).nodes,
      () => [],
    );
    await writeAtomic(join(outDir, "heads.json"), `${JSON.stringify({ ...headMeta, nodes: heads })}\n`);
    await writeAtomic(join(outDir, "figures.json"), `${JSON.stringify(figures, null, 2)}\n`);
    await writeAtomic(join(outDir, "README.md"), card(figures, mlp, sae, heads));
  } else {
    const figures = {
      version: OFFLINE_EXPLAINER_VERSION,
      corpus: `Brown: documents in seeded-hash order (seed ${SEED}), the first ${tokens.toLocaleString("en")} tokens`,
      tokens: records.tokens,
      records: { contextTokens: CONTEXT, top: TOP, random: RANDOM, seed: SEED },
      seconds: { harvest: harvestSeconds, explain: explainSeconds - headSeconds },
      mlp: { all: distribution(mlp.map((e) => e.score)), layers: byLayer(mlp, (id) => id.split(".")[1]!) },
      ...(sae.length ? { sae: { all: distribution(sae.map((e) => e.score)), hooks: byLayer(sae, (id) => id.split(".").slice(1, 4).join(".")) } } : {}),
      heads: headFigures,
    };
    const tmp = `${outDir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const meta = { model: "tdb:brown-small", explainer: OFFLINE_EXPLAINER_VERSION, records: figures.records, tokens: records.tokens };
    await writeFile(join(tmp, "mlp.json"), `${JSON.stringify({ ...meta, nodes: mlp })}\n`);
    if (sae.length) await writeFile(join(tmp, "sae.json"), `${JSON.stringify({ ...meta, nodes: sae })}\n`);
    await writeFile(join(tmp, "heads.json"), `${JSON.stringify({ ...headMeta, nodes: heads })}\n`);
    await writeFile(join(tmp, "figures.json"), `${JSON.stringify(figures, null, 2)}\n`);
    await writeFile(join(tmp, "README.md"), card(figures, mlp, sae, heads));
    await rm(outDir, { recursive: true, force: true });
    await rename(tmp, outDir);
  }
  await Promise.all(saes.map((s) => s.dispose()));
  await model.dispose();
  console.error(
    `wrote ${outDir}: heads mean score ${headFigures.all.mean.toFixed(3)} (${JSON.stringify(kinds)}), harvest ${harvestSeconds.toFixed(0)} s, explain ${explainSeconds.toFixed(0)} s`,
  );
}

function row(name: string, d: Distribution): string {
  const pct = (x: number | undefined): string => `${(100 * (x ?? 0)).toFixed(1)}%`;
  return `| ${name} | ${d.nodes} | ${d.mean.toFixed(3)} | ${d.median.toFixed(3)} | ${d.p10.toFixed(3)} | ${d.p90.toFixed(3)} | ${pct(d.atLeast["0.4"])} | ${pct(d.atLeast["0.6"])} | ${pct(d.atLeast["0.8"])} |`;
}

const KIND_TEXT: Record<string, string> = {
  previous: "previous token",
  self: "the token itself",
  first: "the start of the context (the first token after BOS: weak elsewhere means attention to BOS)",
  duplicate: "an earlier copy of the token",
  induction: "induction (the token after an earlier copy)",
  pairs: "token pairs (query token -> key token)",
  query: "no rule for the key, strength set by the query token (and its position)",
  none: "no pattern",
};

function headsSection(h: HeadFigures, heads: Entry[], table: string): string {
  const kinds = Object.entries(h.kinds)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${KIND_TEXT[k] ?? k}: ${n}`)
    .join("; ");
  const when =
    h.harvestedWith === "heads only"
      ? `a harvest of the heads alone over ${h.tokens.toLocaleString("en")} tokens (the same documents, windows and seed), ${(h.seconds.harvest / 60).toFixed(1)} min`
      : "the same harvest as the neurons";
  const list = heads
    .map((e) => `| \`${e.id}\` | ${e.kind ?? "none"} | ${e.score.toFixed(3)} | ${e.explanation.replace(/\|/g, "\\|")} |`)
    .join("\n");
  return `
## Attention heads

Every attention head, explained by the offline head explainer (\`explainHeadOffline\`, ${h.version}): a head's
activation at a query token is its largest attention to a key other than BOS, and its records keep
that key. The explainer tries positional relations between query and key (previous token, the token
itself, the start of the context, an earlier copy of the token, induction: the token after an
earlier copy), each eligible when it gives the recorded key of at least half of the head's strong
attentions; with none eligible, token pairs (query token -> key token) over a base set by the query
token, or that base alone (\`query\` below: no rule for the key). Each simulator predicts the
activation from whether the relation points at a key, the query's position and the (query, key)
tokens; the variant and the relation are chosen by two-fold cross-validation on the training
records, and the result is scored like the neurons (held-out top and random
records, 1:1). Records: ${when}; explaining ${h.seconds.explain.toFixed(1)} s. File: \`heads.json\` (as above, plus the relation found as \`kind\`).
Reproduce: \`npx tsx scripts/models/brown-small-explanations.ts --heads-only\`.

${table}
${row("Attention heads, all", h.all)}
${Object.entries(h.layers)
  .map(([l, d]) => row(`heads of layer ${l}`, d))
  .join("\n")}

Relations found: ${kinds}.

| head | relation | score | explanation |
|---|---|---|---|
${list}
`;
}

function card(
  f: {
    tokens: number;
    seconds: { harvest: number; explain: number };
    mlp: { all: Distribution; layers: Record<string, Distribution> };
    sae?: { all: Distribution; hooks: Record<string, Distribution> };
    heads?: HeadFigures;
  },
  mlp: Entry[],
  sae: Entry[],
  heads: Entry[],
): string {
  const best = [...mlp].sort((a, b) => b.score - a.score).slice(0, 5);
  const head = "| nodes | count | mean | median | 10th pct | 90th pct | >= 0.4 | >= 0.6 | >= 0.8 |\n|---|---|---|---|---|---|---|---|---|";
  return `# Offline explanations for tdb:brown-small

Every MLP neuron${sae.length ? " and every latent of the shipped SAEs" : ""}${f.heads ? " (and every attention head, below)" : ""} of \`tdb:brown-small\`, explained without an LLM by
tdb-js's offline token-pattern explainer (\`explainOffline\`, ${OFFLINE_EXPLAINER_VERSION}) and scored the way LLM explanations
are: the explainer's own simulator predicts activations on held-out records (top-activating and random
excerpts, 1:1), and the score is the Pearson correlation with the true activations.

Records: \`harvestRecords\` over ${f.tokens.toLocaleString("en")} tokens of the Brown corpus (its documents in a seeded-hash order, so
that every genre is sampled; the model was trained on 90% of them), windows of ${CONTEXT} tokens after BOS,
the ${TOP} top-activating windows and ${RANDOM} hash-chosen random windows per node. Harvest ${(f.seconds.harvest / 60).toFixed(1)} min,
explaining ${f.seconds.explain.toFixed(0)} s, on 2 shared CPU cores. Reproduce: \`npx tsx scripts/models/brown-small-explanations.ts\`.

Files: \`mlp.json\`${sae.length ? ", `sae.json`" : ""} (per node: id as in the attribution table, explanation, score, R^2, status,
max activation, density), \`figures.json\` (the distributions below, histograms by tenths).

## Score distribution

${head}
${row("MLP neurons, all", f.mlp.all)}
${Object.entries(f.mlp.layers)
  .map(([l, d]) => row(`MLP layer ${l}`, d))
  .join("\n")}
${f.sae ? `${row("SAE latents, all", f.sae.all)}\n${Object.entries(f.sae.hooks)
  .map(([h, d]) => row(h, d))
  .join("\n")}` : ""}

MLP score histogram by tenths (below 0.1 first): ${f.mlp.all.tenths.join(", ")}.${f.sae ? `\nSAE latents: ${f.sae.all.tenths.join(", ")}.` : ""}

Best-explained neurons: ${best.map((e) => `\`${e.id}\` (${e.score.toFixed(3)}): ${e.explanation.slice(0, 80)}`).join("; ")}.
${f.heads ? headsSection(f.heads, heads, head) : ""}`;
}

await main();
