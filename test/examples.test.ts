/**
 * The examples (and so the README's 30-second example) run as written on the default model, tdb:brown-small.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "tdb-examples-"));
});
afterAll(() => rm(home, { recursive: true, force: true }));

it.each((await readdir(join(ROOT, "examples"))).filter((f) => f.endsWith(".ts")))("examples/%s runs", async (file) => {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
    execFile(process.execPath, ["--import", "tsx", join(ROOT, "examples", file)], { cwd: ROOT, env: { ...process.env, TDB_HOME: home } }, (err, stdout, stderr) =>
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    ),
  );
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout.length).toBeGreaterThan(0);
});
