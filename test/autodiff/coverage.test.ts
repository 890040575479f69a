/**
 * Every registered gradient rule has a gradient check: each op type of `supportedGradientOps()`
 * must be named (as a string literal, outside comments) in a test file of this folder that runs
 * gradchecks (`expectGradOk` or `gradcheck`). A rule added without a case fails here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { registerGradient, supportedGradientOps } from "../../src/autodiff/registry.js";

/** Source text without block and line comments. */
const stripComments = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");

/** The gradcheck test files of this folder, comments stripped. */
function gradcheckSources(): { file: string; text: string }[] {
  const self = basename(import.meta.filename);
  return readdirSync(import.meta.dirname)
    .filter((f) => f.endsWith(".test.ts") && f !== self)
    .map((f) => ({ file: f, text: stripComments(readFileSync(join(import.meta.dirname, f), "utf8")) }))
    .filter((s) => /\b(expectGradOk|gradcheck)\(/.test(s.text));
}

/** Op types of `ops` that no gradcheck test file names. */
function uncovered(ops: readonly string[], sources: readonly { text: string }[]): string[] {
  return ops.filter((op) => !sources.some((s) => new RegExp(`["'\`]${op}["'\`]`).test(s.text)));
}

describe("gradient rule coverage", () => {
  const sources = gradcheckSources();

  it("finds the gradcheck test files", () => {
    expect(sources.map((s) => s.file).sort()).toEqual(expect.arrayContaining(["backward.test.ts", "elementwise.test.ts", "gpt2.test.ts", "matmul.test.ts", "reduce-norm.test.ts", "shape-gather.test.ts"]));
  });

  it("every op type with a gradient rule is exercised by some gradcheck test", () => {
    const ops = supportedGradientOps();
    expect(ops.length).toBeGreaterThan(30);
    expect(uncovered(ops, sources)).toEqual([]);
  });

  it("a rule registered without a gradcheck case is reported", () => {
    const previous = registerGradient("Softsign", ({ dy }) => [dy()]);
    try {
      expect(uncovered(supportedGradientOps(), sources)).toEqual(["Softsign"]);
    } finally {
      registerGradient("Softsign", previous);
    }
    expect(supportedGradientOps()).not.toContain("Softsign");
  });

  it("a name only in a comment does not count", () => {
    expect(uncovered(["Tanh"], [{ text: stripComments('// g.op("Tanh", [x])\n/* "Tanh" */') }])).toEqual(["Tanh"]);
    expect(uncovered(["Tanh"], [{ text: stripComments('g.op("Tanh", [x]) // a case') }])).toEqual([]);
  });
});
