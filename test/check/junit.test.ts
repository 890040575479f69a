/**
 * JUnit XML of `tdb check` reports: well-formed (checked by the small strict parser in _xml.ts),
 * one test case per assertion, failures and errors as elements, text that needs escaping
 * round-trips, and the file is written atomically.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { junitXml, writeJUnit, xmlEscape } from "../../src/check/junit.js";
import type { AssertionResult, CheckReport } from "../../src/check/run.js";
import { rejected } from "../helpers/errors.js";
import { parseXml } from "./_xml.js";

const NASTY = `quotes " and ' <tag> & ampersand ]]> bell\u0007 lone \uD800 surrogate, é 漢字 😀`;
/** The same after XML's character rules (disallowed characters become U+FFFD). */
const NASTY_XML = NASTY.replace("\u0007", "\uFFFD").replace("\uD800", "\uFFFD");

function result(over: Partial<AssertionResult>): AssertionResult {
  return { id: "a", kind: "logit_diff", description: "d", status: "passed", passed: true, measured: 1.5, comparison: ">", threshold: 1, message: "ok", durationMs: 12, ...over };
}

const REPORT: CheckReport = {
  schema: "tdb.check/1",
  name: "suite <1> & co",
  spec: "spec.yaml",
  model: "/m",
  passed: false,
  counts: { total: 3, passed: 1, failed: 1, errors: 1 },
  durationMs: 1234,
  assertions: [
    result({ id: "pass-1" }),
    result({ id: `fail ${NASTY}`, description: NASTY, status: "failed", passed: false, measured: 0.5, message: `${NASTY}: 0.5, expected > 1`, values: [0.5] }),
    result({ id: "err", status: "error", passed: false, measured: null, message: "could not evaluate: E_LAYER_RANGE: layer 5", error: { code: "E_LAYER_RANGE", message: "layer 5" } }),
  ],
};

describe("junitXml", () => {
  it("is well-formed, with one test case per assertion and escaped text that round-trips", () => {
    const doc = parseXml(junitXml(REPORT));
    expect(doc.name).toBe("testsuites");
    expect(doc.attrs).toMatchObject({ tests: "3", failures: "1", errors: "1", time: "1.234" });
    const suite = doc.children[0]!;
    expect(suite.name).toBe("testsuite");
    expect(suite.attrs.name).toBe("suite <1> & co");
    const cases = suite.children.filter((c) => c.name === "testcase");
    expect(cases.map((c) => c.attrs.name)).toEqual(["pass-1", `fail ${NASTY_XML}`, "err"]);
    expect(cases[0]!.children.map((c) => c.name)).toEqual(["system-out"]);
    const failure = cases[1]!.children[0]!;
    expect(failure.name).toBe("failure");
    expect(failure.attrs.message).toBe(`${NASTY_XML}: 0.5, expected > 1`);
    expect(failure.text).toContain(`description: ${NASTY_XML}`);
    const error = cases[2]!.children[0]!;
    expect(error.name).toBe("error");
    expect(error.attrs.type).toBe("E_LAYER_RANGE");
    expect(cases[0]!.attrs.time).toBe("0.012");
  });

  it("the checker itself rejects unescaped text", () => {
    expect(() => parseXml(`<a b="x < y"/>`)).toThrow();
    expect(() => parseXml(`<a>x & y</a>`)).toThrow();
    expect(() => parseXml(`<a><b></a></b>`)).toThrow();
    expect(() => parseXml(`<a>\u0007</a>`)).toThrow();
    expect(xmlEscape(`<&>"'`)).toBe("&lt;&amp;&gt;&quot;&apos;");
  });
});

describe("writeJUnit", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tdb-junit-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the file atomically (no temporary file left) and replaces an old one", async () => {
    const path = join(dir, "report.xml");
    await writeJUnit(path, { ...REPORT, assertions: [REPORT.assertions[0]!], counts: { total: 1, passed: 1, failed: 0, errors: 0 } });
    await writeJUnit(path, REPORT);
    expect(await readFile(path, "utf8")).toBe(junitXml(REPORT));
    expect(await readdir(dir)).toEqual(["report.xml"]);
  });

  it("an unwritable path is E_FILE_SYSTEM and leaves nothing behind", async () => {
    const e = await rejected(writeJUnit(join(dir, "missing", "report.xml"), REPORT));
    expect(e.code).toBe("E_FILE_SYSTEM");
    expect(await readdir(dir)).toEqual(["report.xml"]);
  });
});
