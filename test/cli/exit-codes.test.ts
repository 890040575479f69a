/**
 * CLI exit codes as docs/cli.md documents them: usage errors (unknown command or flag, a flag
 * the command does not take, a malformed or missing flag value, a missing prompt) exit 2 before
 * any model is loaded; with `--json` they are printed as `{"error": {"code": "E_USAGE", ...}}`.
 * Typed tdb-js errors exit 1.
 */
import { describe, expect, it } from "vitest";
import { tdb } from "./_run.js";

/** A model path that does not exist: a usage error must be found before loading it (else exit 1, E_MISSING_FILE). */
const NO_MODEL = ["--model", "/nonexistent/tdb-model"];

describe("usage errors exit 2, before loading a model", () => {
  const cases: [string, string[]][] = [
    ["no command", []],
    ["unknown command", ["frobnicate"]],
    ["unknown flag", ["trace", "x", "--bogus", ...NO_MODEL]],
    ["missing prompt", ["trace", ...NO_MODEL]],
    ["two prompts", ["trace", "a", "b", ...NO_MODEL]],
    ["bad --top", ["trace", "x", "--top", "0", ...NO_MODEL]],
    ["a flag trace does not take (--head)", ["trace", "x", "--head", "1.3", ...NO_MODEL]],
    ["a flag attribute does not take (--hooks)", ["attribute", "x", "--target", "a", "--distractor", "b", "--hooks", "all", ...NO_MODEL]],
    ["a flag ablate does not take (--hooks)", ["ablate", "x", "--head", "1.3", "--hooks", "all", ...NO_MODEL]],
    ["ablate with nothing to ablate", ["ablate", "x", ...NO_MODEL]],
    ["ablate with a malformed --head", ["ablate", "x", "--head", "1-3", ...NO_MODEL]],
    ["ablate with a malformed --neuron", ["ablate", "x", "--neuron", "0.17@x", ...NO_MODEL]],
    ["ablate with --target but no --distractor", ["ablate", "x", "--head", "1.3", "--target", " a", ...NO_MODEL]],
    ["attribute without --distractor", ["attribute", "x", "--target", " a", ...NO_MODEL]],
  ];
  it.each(cases)("%s", async (_, args) => {
    const r = await tdb(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^tdb: /);
    expect(r.stderr).toMatch(/Usage:/);
  });

  it("with --json: the error as JSON on stdout, code E_USAGE", async () => {
    const r = await tdb(["ablate", "x", "--head", "1-3", "--json", ...NO_MODEL]);
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as { error: { name: string; code: string; message: string; value: unknown } };
    expect(out.error).toMatchObject({ name: "UsageError", code: "E_USAGE", value: "1-3" });
    expect(out.error.message).toMatch(/--head/);
  });
});

describe("other exit codes", () => {
  it("--help and help exit 0", async () => {
    for (const args of [["--help"], ["help"], ["trace", "--help"]]) {
      const r = await tdb(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage:/);
    }
  });

  it("a typed error (missing model directory) exits 1", async () => {
    const r = await tdb(["trace", "x", ...NO_MODEL, "--json"]);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe("E_MISSING_FILE");
  });
});
