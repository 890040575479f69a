/**
 * bench/memory.ts: peak resident memory of each workload, each in a fresh process.
 *
 * On a generated model with GPT-2-small shapes (bench/_shared.ts), runs each phase in its own
 * child process (`node --import tsx bench/memory.ts --child <phase>`) and reads the child's peak
 * RSS (`process.resourceUsage().maxRSS`) at its end, so phases do not inherit each other's heap:
 *
 * | phase           | what the child does                                                        |
 * |-----------------|----------------------------------------------------------------------------|
 * | load            | `Model.load`                                                               |
 * | trace           | load + `trace` of a 64-token prompt caching every hook (`hooks: "all"`)   |
 * | trace+result    | load + the same trace with the opt-in `attn.hook_result` too (no goal)     |
 * | attribute       | load + `attribute` (full node table: every neuron/attention node scored), 64 tokens |
 * | intervene       | load + 144 single-head zero ablations as one `variants` call, 32 tokens    |
 * | whole           | load + trace + attribute + 144 ablations, one process                      |
 *
 * Prints one table and a JSON summary. Goals (1 GB = 1e9 bytes): trace <= 1.2 GB,
 * whole <= 2 GB; each line says PASS or FAIL (phases without a goal say "-"). Exits 0 whatever
 * the figures, unless `--check` is given: then 1 when a goal fails. A child that crashes exits
 * the benchmark with 2.
 *
 * Run: npx tsx bench/memory.ts [--check] [--only trace,whole]
 * (npm run bench:memory)
 */
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(import.meta.dirname, "..");
const GB = 1e9;

/** A measured phase: what runs in the child, and its goal. */
interface Phase {
  name: string;
  what: string;
  /** Peak RSS goal in bytes; null when the phase has none. */
  goalBytes: number | null;
}

const PHASES: readonly Phase[] = [
  { name: "load", what: "Model.load", goalBytes: null },
  { name: "trace", what: "load + trace, every hook (hooks: \"all\"), 64 tokens", goalBytes: 1.2 * GB },
  { name: "trace+result", what: "load + trace, every hook incl. opt-in attn.hook_result, 64 tokens", goalBytes: null },
  { name: "attribute", what: "load + attribute (full node table), 64 tokens", goalBytes: null },
  { name: "intervene", what: "load + 144 single-head ablations as variants, 32 tokens", goalBytes: null },
  { name: "whole", what: "load + trace + attribute + 144 ablations, one process", goalBytes: 2 * GB },
];

/** What a child reports (one JSON line on stdout). */
interface ChildReport {
  phase: string;
  /** Peak RSS of the whole child, bytes. */
  peakRssBytes: number;
  /** Peak RSS right after Model.load, bytes. */
  peakAfterLoadBytes: number;
  /** process.memoryUsage() at the end, bytes. */
  end: NodeJS.MemoryUsage;
  ms: number;
}

const peakBytes = (): number => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB

async function child(phase: string): Promise<void> {
  // Imported here so that the parent process stays small.
  const { Model } = await import("../src/model/model.js");
  const { zeroHead } = await import("../src/intervene/edits.js");
  const { benchModelDir, englishTokens } = await import("./_shared.js");
  const t0 = performance.now();
  const model = await Model.load(benchModelDir());
  const peakAfterLoadBytes = peakBytes();
  const trace = async (hooks: "all" | (() => boolean)) => {
    const t = await model.trace(englishTokens(model, 64), { hooks });
    if (t.cache.size === 0) throw new Error("the trace cached nothing");
  };
  const attribute = async () => {
    const table = await model.attribute(englishTokens(model, 64), { target: " Atlanta", distractor: " Fulton", topK: 20 });
    if (table.nodes.length === 0) throw new Error("empty node table");
  };
  const intervene = async () => {
    const variants = [];
    for (let l = 0; l < model.config.nLayers; l++) for (let h = 0; h < model.config.nHeads; h++) variants.push([zeroHead(l, h)]);
    const r = await model.intervene(englishTokens(model, 32), [], { variants });
    if (r.kl().length !== variants.length) throw new Error(`${r.kl().length} rows for ${variants.length} variants`);
  };
  switch (phase) {
    case "load":
      break;
    case "trace":
      await trace("all");
      break;
    case "trace+result":
      await trace(() => true);
      break;
    case "attribute":
      await attribute();
      break;
    case "intervene":
      await intervene();
      break;
    case "whole":
      await trace("all");
      await attribute();
      await intervene();
      break;
    default:
      throw new Error(`unknown phase ${phase}; phases: ${PHASES.map((p) => p.name).join(", ")}`);
  }
  const report: ChildReport = { phase, peakRssBytes: peakBytes(), peakAfterLoadBytes, end: process.memoryUsage(), ms: Math.round(performance.now() - t0) };
  await model.dispose();
  console.log(JSON.stringify(report));
}

async function parent(): Promise<void> {
  const check = process.argv.includes("--check");
  const onlyAt = process.argv.indexOf("--only");
  const only = onlyAt > 0 ? new Set(process.argv[onlyAt + 1]!.split(",")) : undefined;
  const phases = PHASES.filter((p) => !only || only.has(p.name));
  if (only && phases.length !== only.size) throw new Error(`--only: unknown phase(s); phases: ${PHASES.map((p) => p.name).join(", ")}`);
  // Generate the model once, here, so that no child pays for (or measures) its generation.
  const { benchModelDir, ensureBenchModel } = await import("./_shared.js");
  await ensureBenchModel();
  console.log(`model: ${benchModelDir()} (GPT-2-small shapes); node ${process.version}; one child process per phase`);
  const rows: (ChildReport & Phase & { verdict: "PASS" | "FAIL" | "-" })[] = [];
  for (const p of phases) {
    const r = spawnSync(process.execPath, ["--import", "tsx", SELF, "--child", p.name], { cwd: ROOT, encoding: "utf8", maxBuffer: 16 << 20 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) {
      console.error(`phase ${p.name} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ""}):\n${r.stderr}`);
      process.exit(2);
    }
    const rep = JSON.parse(line) as ChildReport;
    const verdict = p.goalBytes === null ? "-" : rep.peakRssBytes <= p.goalBytes ? "PASS" : "FAIL";
    rows.push({ ...p, ...rep, verdict });
    console.log(`  ${p.name}: peak ${(rep.peakRssBytes / 2 ** 20).toFixed(0)} MiB (${rep.ms} ms)`);
  }
  const mib = (b: number) => Math.round(b / 2 ** 20);
  const summary = {
    bench: "memory",
    shapes: "gpt2-small",
    node: process.version,
    unit: "bytes (MiB = 2^20 bytes; goals in GB = 1e9 bytes)",
    phases: rows.map((r) => ({
      phase: r.name,
      what: r.what,
      peakRssBytes: r.peakRssBytes,
      peakRssMiB: mib(r.peakRssBytes),
      peakAfterLoadMiB: mib(r.peakAfterLoadBytes),
      goalBytes: r.goalBytes,
      verdict: r.verdict,
      endRssMiB: mib(r.end.rss),
      endHeapUsedMiB: mib(r.end.heapUsed),
      endExternalMiB: mib(r.end.external),
      endArrayBuffersMiB: mib(r.end.arrayBuffers),
      ms: r.ms,
    })),
    pass: rows.every((r) => r.verdict !== "FAIL"),
  };
  console.log(JSON.stringify(summary, null, 2));
  console.log("");
  console.log(`${"phase".padEnd(14)}${"peak RSS".padStart(12)}${"after load".padStart(12)}${"goal".padStart(10)}  verdict  what`);
  for (const r of rows) {
    const goal = r.goalBytes === null ? "-" : `${r.goalBytes / GB} GB`;
    console.log(
      `${r.name.padEnd(14)}${`${mib(r.peakRssBytes)} MiB`.padStart(12)}${`${mib(r.peakAfterLoadBytes)} MiB`.padStart(12)}${goal.padStart(10)}  ${r.verdict.padEnd(7)}  ${r.what}`,
    );
  }
  if (check && !summary.pass) process.exit(1);
}

const childAt = process.argv.indexOf("--child");
if (childAt > 0) await child(process.argv[childAt + 1]!);
else await parent();
