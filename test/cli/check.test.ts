/**
 * `tdb check`, run as a child process on the hand-set induction model
 * (test/circuits/_induction-model.ts): a spec of true assertions exits 0, one with a false
 * assertion exits 1 with a JUnit `<failure>`, an invalid spec exits 2. The assertions' truth comes
 * from the float64 reference on the same weights and from the construction (head 1.1 writes
 * nothing: its W_O is zero).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scoreLayerPatterns } from "../../src/circuits/head-scores.js";
import { gpt2Reference, type RefTensor } from "../reference/gpt2-forward.js";
import { makeInductionModel } from "../circuits/_induction-model.js";
import { parseXml } from "../check/_xml.js";
import type { TestModel } from "../helpers/models.js";
import { tdb } from "./_run.js";

let tm: TestModel;
let row: number[];
let refTop: number;
let refInduction10: number;

beforeAll(async () => {
  tm = await makeInductionModel();
  const bos = (JSON.parse(await readFile(tm.config, "utf8")) as { bos_token_id: number }).bos_token_id;
  row = [bos, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4];
  let pattern: RefTensor | undefined;
  const r = gpt2Reference(tm.arch, tm.weights, [row], undefined, {
    onHook: (n, t) => {
      if (n === "blocks.1.attn.hook_pattern") pattern = { data: t.data.slice(), dims: [...t.dims] };
    },
  });
  const V = tm.arch.vocab_size;
  const last = r.logits.data.slice((row.length - 1) * V, row.length * V);
  refTop = last.indexOf(Math.max(...last));
  refInduction10 = scoreLayerPatterns(pattern!, [row], "induction", { queries: "matched" })[0]!;
});
afterAll(async () => {
  await tm?.cleanup();
});

const TRUE_ASSERTIONS = () => `
  - id: induction-head
    description: "head 1.0's induction score (matched rows) > 0.9"
    kind: head_score
    head: "1.0"
    detector: induction
    queries: matched
    input: [[${row.join(", ")}]]
    comparison: ">"
    threshold: 0.9
  - id: predicts-copy
    description: "the model predicts token ${refTop} after the repeated 4"
    kind: top_token
    prompt: [${row.join(", ")}]
    token: ${refTop}
`;

describe("tdb check", () => {
  it("the premises: the reference predicts 5 and head 1.0 is an induction head", () => {
    expect(refTop).toBe(5);
    expect(refInduction10).toBeGreaterThan(0.9);
  });

  it("exits 0 and reports tdb.check/1 when every assertion holds; JUnit without failures", async () => {
    const spec = join(tm.dir, "ok.yaml");
    const junit = join(tm.dir, "ok.xml");
    await writeFile(spec, `prependBos: false\nassertions:${TRUE_ASSERTIONS()}`);
    const r = await tdb(["check", spec, "--model", tm.dir, "--json", "--junit", junit]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { schema: string; passed: boolean; counts: Record<string, number>; assertions: { id: string; passed: boolean; measured: number }[] };
    expect(out.schema).toBe("tdb.check/1");
    expect(out.passed).toBe(true);
    expect(out.counts).toEqual({ total: 2, passed: 2, failed: 0, errors: 0 });
    expect(Math.abs(out.assertions[0]!.measured - refInduction10)).toBeLessThan(1e-5);
    const doc = parseXml(await readFile(junit, "utf8"));
    const cases = doc.children[0]!.children.filter((c) => c.name === "testcase");
    expect(cases.map((c) => c.attrs.name)).toEqual(["induction-head", "predicts-copy"]);
    expect(cases.flatMap((c) => c.children.map((x) => x.name))).not.toContain("failure");
  });

  it("exits 1 when an assertion is false, runs the rest, and writes a JUnit failure", async () => {
    const spec = join(tm.dir, "bad.yaml");
    const junit = join(tm.dir, "bad.xml");
    await writeFile(
      spec,
      `prependBos: false\nassertions:
  - id: inert-head-matters
    description: "zero-ablating head 1.1 lowers the logit difference of 5 over 4 by more than 1"
    kind: ablation
    prompt: [${row.join(", ")}]
    edits: [{ head: "1.1" }]
    target: 5
    distractor: 4
    metric: drop
    comparison: ">"
    threshold: 1
${TRUE_ASSERTIONS()}`,
    );
    const r = await tdb(["check", spec, "--model", tm.dir, "--junit", junit]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL +inert-head-matters: /m);
    expect(r.stdout).toMatch(/^PASS +induction-head: /m);
    expect(r.stdout).toMatch(/^PASS +predicts-copy: /m);
    expect(r.stdout).toContain("FAILED: 2 passed, 1 failed, 0 errors of 3 assertions");
    const cases = parseXml(await readFile(junit, "utf8")).children[0]!.children.filter((c) => c.name === "testcase");
    const failure = cases[0]!.children.find((c) => c.name === "failure");
    expect(failure, "a <failure> element").toBeDefined();
    expect(failure!.attrs.message).toContain("zero-ablating head 1.1 lowers the logit difference");
    expect(failure!.text).toContain("measured: 0");
    expect(cases.slice(1).flatMap((c) => c.children.map((x) => x.name))).not.toContain("failure");
  });

  it("exits 2 on an invalid or missing spec, and on usage errors, before loading a model", async () => {
    const spec = join(tm.dir, "invalid.json");
    await writeFile(spec, JSON.stringify({ assertions: [{ id: "x", description: "d", kind: "head_score", head: "1.0", detector: "induction", comparison: "≥", threshold: 1 }] }));
    const r = await tdb(["check", spec, "--json"]);
    expect(r.code).toBe(2);
    const err = (JSON.parse(r.stdout) as { error: { code: string; value: unknown; allowed: unknown } }).error;
    expect(err).toMatchObject({ code: "E_BAD_SPEC", value: "≥", allowed: [">", ">=", "<", "<="] });
    const missing = await tdb(["check", join(tm.dir, "nope.yaml"), "--json"]);
    expect(missing.code).toBe(2);
    expect((JSON.parse(missing.stdout) as { error: { code: string } }).error.code).toBe("E_FILE_SYSTEM");
    for (const args of [["check"], ["check", "a.yaml", "b.yaml"], ["check", spec, "--top", "3"]]) {
      const u = await tdb([...args, "--json"]);
      expect(u.code, args.join(" ")).toBe(2);
      expect((JSON.parse(u.stdout) as { error: { code: string } }).error.code).toBe("E_USAGE");
    }
  });
});
