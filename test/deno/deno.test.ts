/**
 * Deno: the examples and the default model run under Deno 2 (the `deno` npm package's binary),
 * on the same sources, with the same numbers as under Node. Skipped, saying so, when no Deno
 * binary is found; with TDB_REQUIRE_DENO set (CI), that fails.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model } from "../../src/model/model.js";
import { ensureDefaultModel } from "../../src/synthetic/default-model.js";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function findDeno(): string | undefined {
  const local = join(root, "node_modules", ".bin", "deno");
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir && existsSync(join(dir, "deno"))) return join(dir, "deno");
  return undefined;
}

const deno = findDeno();
if (!deno) {
  if (process.env.TDB_REQUIRE_DENO) throw new Error("TDB_REQUIRE_DENO is set but no Deno binary was found");
  console.warn("test/deno/deno.test.ts SKIPPED: no Deno binary found (npm ci installs the deno devDependency)");
}

describe.skipIf(!deno)("under Deno", () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "tdb-deno-"));
  });
  afterAll(async () => {
    if (home) await rm(home, { recursive: true, force: true });
  });

  async function denoRun(script: string): Promise<string> {
    try {
      const r = await run(deno!, ["run", "-A", "--unstable-sloppy-imports", script], {
        cwd: root,
        env: { ...process.env, TDB_HOME: home, NO_COLOR: "1" },
        maxBuffer: 16 << 20,
      });
      return r.stdout;
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`deno run ${script} failed:\n${x.stdout ?? ""}${x.stderr ?? ""}\n${x.message}`);
    }
  }

  it("the sources read no package files for the GPT-2 BPE", async () => {
    const files = (await readdir(join(root, "src"), { recursive: true })).filter((f) => f.endsWith(".ts"));
    for (const f of files) {
      const text = await readFile(join(root, "src", f), "utf8");
      expect(text, f).not.toMatch(/(from |import\(|require\(|resolve\()\s*["']gpt-3-encoder/);
    }
  });

  it("generates the default model and traces it with Node's numbers", async () => {
    const out = JSON.parse((await denoRun("test/deno/default-model.ts")).trim().split("\n").pop()!) as {
      dir: string;
      tokens: number[];
      logitDiff: number;
      top: [number, number][];
      summary: string;
    };
    expect(out.dir).toBe(join(home, "models", "tiny-gpt2"));
    // Node reads the model Deno generated, and generates its own: same weights, same numbers.
    const nodeHome = await mkdtemp(join(tmpdir(), "tdb-deno-node-"));
    try {
      for (const dir of [out.dir, await ensureDefaultModel(join(nodeHome, "tiny-gpt2"))]) {
        const model = await Model.load(dir);
        const t = await model.trace("When John and Mary went to the shops, John gave the bag to");
        expect(out.tokens).toEqual(t.tokens[0]);
        expect(Math.abs(out.logitDiff - t.logitDiff(" Mary", " John"))).toBeLessThan(1e-6);
        const top = t.topK(5);
        expect(out.top.map(([id]) => id)).toEqual(top.map((x) => x.token));
        out.top.forEach(([, logit], i) => expect(Math.abs(logit - top[i]!.logit)).toBeLessThan(1e-6));
        await model.dispose();
      }
    } finally {
      await rm(nodeHome, { recursive: true, force: true });
    }
    // Deno's console shows the short summary (Deno.customInspect), not the cache.
    expect(out.summary).toMatch(/^Trace: 1 row × 15 tokens, \d+ cached hooks/);
    expect(out.summary.length).toBeLessThan(1500);
  });

  it.each(["quickstart", "interventions", "attribution"])("runs examples/%s.ts", async (name) => {
    const out = await denoRun(`examples/${name}.ts`);
    expect(out.length).toBeGreaterThan(0);
    expect(out).not.toMatch(/error/i);
  });
});
