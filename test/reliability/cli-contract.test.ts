/**
 * The CLI output contract (docs/cli.md, exit codes): under `--json` every outcome (success,
 * usage error = exit 2, typed error = exit 1, internal error = exit 70) prints exactly one JSON
 * object on stdout and nothing else there; no stack trace reaches stderr unless `--debug`.
 * Also: non-finite model outputs are a typed error (E_NON_FINITE) instead of `null` numbers,
 * `Trace.nonFinite` says so in the library, and `ablate` rejects target = distractor like
 * `attribute` does.
 */
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model } from "../../src/model/model.js";
import { OnnxGraph } from "../../src/onnx/graph.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { tdb, type CliRun } from "../cli/_run.js";

let tm: TestModel;
/** The test model with one NaN in a weight (hand-edited initializer). */
let nanDir: string;

beforeAll(async () => {
  tm = await makeTestModel();
  nanDir = `${tm.dir}-nan`;
  await cp(tm.dir, nanDir, { recursive: true });
  const proto = decodeModel(await readFile(tm.model));
  const w = OnnxGraph.fromModel(proto).initializer("transformer.h.0.mlp.c_fc.weight")!;
  // raw little-endian float32 bytes: set the first element to NaN
  const bytes = w.rawData!;
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setFloat32(0, NaN, true);
  await writeFile(join(nanDir, "onnx", "model.onnx"), encodeModel(proto));
});
afterAll(async () => {
  await tm?.cleanup();
  if (nanDir) await rm(nanDir, { recursive: true, force: true });
});

type Outcome = "ok" | "usage" | "typed" | "internal";
const PROMPT = "Hello there friend";

/** Arguments (and environment) that provoke each outcome of each command. */
function caseArgs(command: string, outcome: Outcome): { args: string[]; env: Record<string, string> } {
  const model = () => ["--model", tm.dir];
  const ok: Record<string, string[]> = {
    trace: ["trace", PROMPT, "--top", "3", "--hooks", "hook_embed"],
    ablate: ["ablate", PROMPT, "--head", "1.0", "--top", "3"],
    attribute: ["attribute", PROMPT, "--target", " t", "--distractor", " a", "--top", "3"],
  };
  switch (outcome) {
    case "ok":
      return { args: [...ok[command]!, ...model()], env: {} };
    case "internal":
      return { args: [...ok[command]!, ...model()], env: { TDB_TEST_INTERNAL_ERROR: "1" } };
    case "usage": {
      const usage: Record<string, string[]> = {
        trace: ["trace", PROMPT, "--top", "0"],
        ablate: ["ablate", PROMPT, "--head", "1-3"],
        attribute: ["attribute", PROMPT, "--target", " t"],
      };
      return { args: [...usage[command]!, ...model()], env: {} };
    }
    case "typed": {
      // ablate: a layer the model does not have (found after loading); the others: no model there
      if (command === "ablate") return { args: ["ablate", PROMPT, "--head", "9.0", ...model()], env: {} };
      return { args: [...ok[command]!, "--model", "/nonexistent/tdb-model"], env: {} };
    }
  }
}

const EXIT: Record<Outcome, number> = { ok: 0, usage: 2, typed: 1, internal: 70 };
const ERROR_CODE: Record<Exclude<Outcome, "ok">, Record<string, string>> = {
  usage: { trace: "E_USAGE", ablate: "E_USAGE", attribute: "E_USAGE" },
  typed: { trace: "E_MISSING_FILE", ablate: "E_LAYER_RANGE", attribute: "E_MISSING_FILE" },
  internal: { trace: "E_INTERNAL", ablate: "E_INTERNAL", attribute: "E_INTERNAL" },
};
const SCHEMA: Record<string, string> = { trace: "tdb.trace/1", ablate: "tdb.ablate/1", attribute: "tdb.attribute/1" };

/** A stack frame line as Node prints them ("    at f (file:1:2)"). */
const STACK = /^\s+at .+[:(]/m;

/** stdout holds exactly one JSON object (and nothing else); returns it. */
function oneJsonObject(r: CliRun): Record<string, unknown> {
  const text = r.stdout.trim();
  expect(text.startsWith("{") && text.endsWith("}"), r.stdout).toBe(true);
  const v = JSON.parse(text) as unknown; // throws on anything after the object
  expect(typeof v === "object" && v !== null && !Array.isArray(v)).toBe(true);
  return v as Record<string, unknown>;
}

describe("every outcome of every command keeps the output contract", () => {
  const table: [string, Outcome, boolean][] = [];
  for (const command of ["trace", "ablate", "attribute"]) {
    for (const outcome of ["ok", "usage", "typed", "internal"] as const) {
      for (const json of [true, false]) table.push([command, outcome, json]);
    }
  }
  it.each(table)("%s, %s, --json %s", async (command, outcome, json) => {
    const { args, env } = caseArgs(command, outcome);
    const r = await tdb(json ? [...args, "--json"] : args, env);
    expect(r.code, r.stderr).toBe(EXIT[outcome]);
    expect(r.stderr, "no stack trace without --debug").not.toMatch(STACK);
    if (json) {
      const out = oneJsonObject(r);
      if (outcome === "ok") {
        expect(out.schema).toBe(SCHEMA[command]);
        expect(out.error).toBeUndefined();
      } else {
        const err = out.error as { code: string; message: string };
        expect(err.code).toBe(ERROR_CODE[outcome][command]);
        expect(typeof err.message).toBe("string");
        expect(err.message.length).toBeGreaterThan(0);
      }
    } else if (outcome === "ok") {
      expect(r.stdout).toMatch(/^model: /);
    } else {
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^tdb: /);
      if (outcome === "internal") expect(r.stderr).toMatch(/internal error/);
    }
  });

  it("an error thrown outside main's promise chain keeps the contract (one JSON object, exit 70, no stack)", async () => {
    for (const json of [true, false]) {
      const args = caseArgs("trace", "ok").args;
      const r = await tdb(json ? [...args, "--json"] : args, { TDB_TEST_INTERNAL_ERROR: "uncaught" });
      expect(r.code, r.stderr).toBe(70);
      expect(r.stderr).not.toMatch(STACK);
      if (json) expect((oneJsonObject(r).error as { code: string }).code).toBe("E_INTERNAL");
      else expect(r.stderr).toMatch(/^tdb: internal error/);
    }
  });

  it("--debug shows the stack of an internal error (and is no usage error)", async () => {
    const r = await tdb([...caseArgs("trace", "internal").args, "--debug"], { TDB_TEST_INTERNAL_ERROR: "1" });
    expect(r.code, r.stderr).toBe(70);
    expect(r.stderr).toMatch(STACK);
  });
});

describe("non-finite outputs", () => {
  it("Trace.nonFinite: true for a model with one NaN weight, false for the clean model", async () => {
    const clean = await Model.load(tm.dir);
    const bad = await Model.load(nanDir);
    try {
      const tc = await clean.trace(PROMPT);
      const tb = await bad.trace(PROMPT);
      // independent check of what the flag must say
      expect([...tb.logits.data].some((x) => !Number.isFinite(x))).toBe(true);
      expect([...tc.logits.data].every((x) => Number.isFinite(x))).toBe(true);
      expect(tb.nonFinite).toBe(true);
      expect(tc.nonFinite).toBe(false);
    } finally {
      await clean.dispose();
      await bad.dispose();
    }
  });

  it.each([
    ["trace", ["trace", PROMPT, "--top", "3"]],
    ["ablate", ["ablate", PROMPT, "--head", "1.0", "--target", " t", "--distractor", " a"]],
    ["attribute", ["attribute", PROMPT, "--target", " t", "--distractor", " a", "--top", "3"]],
  ])("%s --json on a NaN model: a typed E_NON_FINITE error, no null numbers", async (_, args) => {
    const r = await tdb([...args, "--model", nanDir, "--json"]);
    expect(r.code, r.stderr).toBe(1);
    const out = oneJsonObject(r);
    expect((out.error as { code: string }).code).toBe("E_NON_FINITE");
    expect(r.stdout).not.toMatch(/null/);
  });
});

describe("ablate target = distractor", () => {
  it("is the typed error attribute gives (E_BAD_INPUT), exit 1", async () => {
    const a = await tdb(["ablate", PROMPT, "--head", "1.0", "--target", " t", "--distractor", " t", "--model", tm.dir, "--json"]);
    const b = await tdb(["attribute", PROMPT, "--target", " t", "--distractor", " t", "--model", tm.dir, "--json"]);
    expect(b.code).toBe(1);
    expect(a.code, a.stderr).toBe(1);
    const ea = oneJsonObject(a).error as { code: string };
    const eb = oneJsonObject(b).error as { code: string };
    expect(ea.code).toBe(eb.code);
    expect(ea.code).toBe("E_BAD_INPUT");
  });
});
