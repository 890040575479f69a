/**
 * JUnit XML for `tdb check` reports: one test suite, one test case per assertion; a failed
 * assertion has a `<failure>`, one that could not be evaluated an `<error>`. Written atomically
 * (a temporary file renamed over the target), so CI never reads half a report.
 *
 * @module
 */
import { writeAtomic } from "../io/write-atomic.js";
import type { AssertionResult, CheckReport } from "./run.js";

/**
 * `s` escaped for XML text and attribute values: `& < > " '` as entities, characters XML 1.0
 * does not allow (control characters other than tab, newline and carriage return, lone
 * surrogates, U+FFFE/U+FFFF) replaced by U+FFFD.
 *
 * @example
 * ```ts
 * xmlEscape(`a < b & "c"`); // "a &lt; b &amp; &quot;c&quot;"
 * ```
 */
export function xmlEscape(s: string): string {
  return s
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

function testcase(r: AssertionResult, suite: string): string {
  const open = `    <testcase name="${xmlEscape(r.id)}" classname="${xmlEscape(`${suite}.${r.kind}`)}" time="${seconds(r.durationMs)}"`;
  const details = [
    r.description && `description: ${r.description}`,
    `measured: ${r.measured === null ? "none" : r.measured}`,
    r.comparison && `expected: ${r.comparison} ${r.threshold}`,
    r.values && `values: ${JSON.stringify(r.values)}`,
  ]
    .filter(Boolean)
    .join("\n");
  if (r.status === "passed") return `${open}>\n      <system-out>${xmlEscape(r.message)}</system-out>\n    </testcase>`;
  const tag = r.status === "error" ? "error" : "failure";
  const type = r.status === "error" ? r.error!.code : "AssertionFailed";
  return `${open}>\n      <${tag} message="${xmlEscape(r.message)}" type="${xmlEscape(type)}">${xmlEscape(details)}</${tag}>\n    </testcase>`;
}

/**
 * The JUnit XML of a report.
 *
 * @example
 * ```ts
 * await writeFile("check.xml", junitXml(await runCheck("spec.yaml")));
 * ```
 */
export function junitXml(report: CheckReport): string {
  const { total, failed, errors } = report.counts;
  const suite = xmlEscape(report.name);
  const attrs = `tests="${total}" failures="${failed}" errors="${errors}" time="${seconds(report.durationMs)}"`;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="tdb check" ${attrs}>`,
    `  <testsuite name="${suite}" ${attrs} skipped="0">`,
    `    <properties>\n      <property name="model" value="${xmlEscape(report.model)}"/>\n      <property name="schema" value="${report.schema}"/>\n    </properties>`,
    ...report.assertions.map((r) => testcase(r, report.name.replace(/\s+/g, "_"))),
    `  </testsuite>`,
    `</testsuites>`,
    "",
  ].join("\n");
}

/** Writes {@link junitXml} to `path` atomically; an unwritable path is `E_FILE_SYSTEM`. */
export async function writeJUnit(path: string, report: CheckReport): Promise<void> {
  await writeAtomic(path, junitXml(report), "write the JUnit report to");
}
