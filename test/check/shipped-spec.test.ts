/**
 * The shipped example spec (examples/checks/toy-induction.yaml) runs in CI: `tdb check` passes it
 * on tdb:toy-induction (exit 0, JUnit without failures) and fails (exit 1, a JUnit failure) the
 * same spec with one assertion made false. The circuit's figures themselves are checked
 * independently in test/circuits/toy-induction.test.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSpec } from "../../src/check/spec.js";
import { tdb } from "../cli/_run.js";

const SPEC = resolve(import.meta.dirname, "../../examples/checks/toy-induction.yaml");
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-shipped-spec-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("examples/checks/toy-induction.yaml", () => {
  it("passes on tdb:toy-induction: exit 0, every assertion passed, JUnit without failures", async () => {
    const junit = join(dir, "pass.xml");
    const r = await tdb(["check", SPEC, "--json", "--junit", junit]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { schema: string; assertions: { id: string; status: string }[] };
    expect(report.schema).toBe("tdb.check/1");
    expect(report.assertions.length).toBeGreaterThanOrEqual(6);
    expect(report.assertions.filter((x) => x.status !== "passed")).toEqual([]);
    const xml = await readFile(junit, "utf8");
    expect(xml).toContain("<testsuite");
    expect(xml).not.toContain("<failure");
  }, 120_000);

  it("fails when an assertion is false: exit 1 and a JUnit failure for it", async () => {
    // Copying accuracy cannot exceed 1: the assertion is false whatever the model does.
    const text = (await readFile(SPEC, "utf8")).replace(/threshold: 0\.9\b/, "threshold: 1.0");
    expect(text).toContain("threshold: 1.0");
    const spec = join(dir, "false.yaml");
    await writeFile(spec, text);
    const junit = join(dir, "fail.xml");
    const r = await tdb(["check", spec, "--json", "--junit", junit]);
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as { assertions: { id: string; status: string }[] };
    expect(report.assertions.find((x) => x.id === "copies")!.status).toBe("failed");
    expect(report.assertions.filter((x) => x.status === "passed").length).toBe(report.assertions.length - 1);
    expect(await readFile(junit, "utf8")).toMatch(/<testcase[^>]*name="copies"[\s\S]*?<failure/);
  }, 120_000);

  it("group must be node or head", () => {
    expect(() =>
      parseSpec({ assertions: [{ id: "a", description: "d", kind: "attribution", prompts: ["x"], target: 1, distractor: 2, node: "1.0", group: "layer" }] }),
    ).toThrow(/group/);
  });
});
