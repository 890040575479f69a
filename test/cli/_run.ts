/**
 * Runs the `tdb` CLI from source in a child process (as users run it), for CLI tests.
 */
import { execFile } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

/** Exit code and output of one `tdb` run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tdb ...args` with extra environment variables. */
export function tdb(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => done({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}
