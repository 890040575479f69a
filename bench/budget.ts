/**
 * bench/budget.ts: does `maxBatchBytes` bound the memory a big batched call adds?
 *
 * On a generated medium model (4 layers, d_model 256, 8 heads, GPT-2 vocabulary of 50,257, so
 * that logits dominate as they do in real models), each case runs in its own child process:
 * load, a one-row warm-up call with the same hooks and edits (so the session exists), then the
 * peak RSS counter is reset (`/proc/self/clear_refs`, Linux) and the big call runs. The growth
 * of peak RSS over the RSS before the call is compared with the budget given.
 *
 * | case              | call                                                                  |
 * |-------------------|-----------------------------------------------------------------------|
 * | trace-500x40      | `trace` of 500 rows x 40 tokens, every hook, full logits              |
 * | trace-500x40-last | the same with `logits: "last"`                                         |
 * | variants-10000    | `intervene` with 10,000 single-head zero ablations of a 12-token prompt |
 * | over-budget       | the 500 x 40 trace with a 64 MiB budget: must fail with E_MEMORY_BUDGET |
 *
 * Prints a table and a JSON summary; exits 1 when a case goes over its budget or does not fail as
 * it should, 2 when a child crashes. Takes a few minutes and up to ~7 GB of memory.
 *
 * Run: npx tsx bench/budget.ts [--only trace-500x40,...]   (npm run bench:budget)
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(import.meta.dirname, "..");
const MODEL_DIR = join(import.meta.dirname, "out", "medium-gpt2-vocab");
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface Case {
  name: string;
  what: string;
  /** maxBatchBytes given to the call. */
  budget: number;
  /** The call must fail with this code instead of running. */
  expectCode?: string;
}

const CASES: readonly Case[] = [
  { name: "trace-500x40", what: "trace 500 x 40, every hook, all logits", budget: 6 * GiB },
  { name: "trace-500x40-last", what: "trace 500 x 40, every hook, last-position logits", budget: 2 * GiB },
  { name: "variants-10000", what: "intervene, 10,000 head ablations, 12 tokens", budget: 3 * GiB },
  { name: "over-budget", what: "trace 500 x 40 with a 64 MiB budget", budget: 64 * MiB, expectCode: "E_MEMORY_BUDGET" },
];

interface ChildReport {
  name: string;
  /** RSS right before the call. */
  beforeBytes: number;
  /** Peak RSS during the call. */
  peakBytes: number;
  /** Bytes of the result's typed arrays. */
  resultBytes: number;
  code?: string;
  ms: number;
}

function vmHwmBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m![1]) * 1024;
}

async function child(name: string): Promise<void> {
  const c = CASES.find((x) => x.name === name)!;
  const { Model } = await import("../src/model/model.js");
  const { zeroHead } = await import("../src/intervene/edits.js");
  const model = await Model.load(MODEL_DIR);
  const rows = (n: number) => Array.from({ length: n }, (_, b) => Array.from({ length: 40 }, (_, s) => ((b * 131 + s * 7) % 50000) + 1));
  const P = [Array.from({ length: 12 }, (_, s) => s * 17 + 5)];
  const variants = (n: number) => Array.from({ length: n }, (_, i) => [zeroHead(i % 4, (i >> 2) % 8)]);
  const logits = name === "trace-500x40-last" ? ("last" as const) : ("all" as const);
  // Warm-up: the same session kinds, one row.
  if (name.startsWith("variants")) await model.intervene(P, [], { variants: variants(2) });
  else await model.trace(rows(1), { logits });
  global.gc?.();
  writeFileSync("/proc/self/clear_refs", "5"); // reset the peak RSS counter
  const beforeBytes = process.memoryUsage.rss();
  const t0 = performance.now();
  let resultBytes = 0;
  let code: string | undefined;
  try {
    if (name.startsWith("variants")) {
      const r = await model.intervene(P, [], { variants: variants(10_000), maxBatchBytes: c.budget });
      resultBytes = r.edited.logits.data.byteLength + r.clean.logits.data.byteLength;
    } else {
      const t = await model.trace(rows(500), { logits, maxBatchBytes: c.budget });
      resultBytes = t.logits.data.byteLength + [...t.cache].reduce((n, [, a]) => n + a.data.byteLength, 0);
    }
  } catch (e) {
    code = (e as { code?: string }).code ?? String(e);
  }
  const report: ChildReport = { name, beforeBytes, peakBytes: vmHwmBytes(), resultBytes, code, ms: Math.round(performance.now() - t0) };
  console.log(JSON.stringify(report));
  await model.dispose();
}

async function parent(): Promise<void> {
  const onlyAt = process.argv.indexOf("--only");
  const only = onlyAt > 0 ? new Set(process.argv[onlyAt + 1]!.split(",")) : undefined;
  const { ensureGpt2Model } = await import("../src/synthetic/write.js");
  const { gpt2Config } = await import("../src/synthetic/config.js");
  await ensureGpt2Model(MODEL_DIR, { config: gpt2Config({ n_layer: 4, n_head: 8, n_embd: 256, n_positions: 128, vocab_size: 50257 }), seed: 7, weights: { std: 0.02 } });
  const out: (ChildReport & { budget: number; verdict: "PASS" | "FAIL" })[] = [];
  for (const c of CASES.filter((x) => !only || only.has(x.name))) {
    const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", SELF, "--child", c.name], { cwd: ROOT, encoding: "utf8", maxBuffer: 16 << 20 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) {
      console.error(`case ${c.name} crashed (exit ${r.status}${r.signal ? `, ${r.signal}` : ""}):\n${r.stderr}`);
      process.exit(2);
    }
    const rep = JSON.parse(line) as ChildReport;
    const grew = rep.peakBytes - rep.beforeBytes;
    const ok = c.expectCode ? rep.code === c.expectCode : rep.code === undefined && grew <= c.budget;
    out.push({ ...rep, budget: c.budget, verdict: ok ? "PASS" : "FAIL" });
    const f = (b: number) => `${Math.round(b / MiB)} MiB`;
    console.log(
      `${c.name.padEnd(18)} budget ${f(c.budget).padStart(9)}  growth ${f(grew).padStart(9)}  result ${f(rep.resultBytes).padStart(9)}  peak RSS ${f(rep.peakBytes).padStart(9)}  ${rep.ms} ms  ${rep.code ?? ""}  ${ok ? "PASS" : "FAIL"}  (${c.what})`,
    );
  }
  console.log(JSON.stringify({ bench: "budget", model: "4 layers, d_model 256, 8 heads, vocab 50257", unit: "bytes", cases: out }, null, 2));
  if (out.some((r) => r.verdict === "FAIL")) process.exit(1);
}

const childAt = process.argv.indexOf("--child");
if (childAt > 0) await child(process.argv[childAt + 1]!);
else await parent();
