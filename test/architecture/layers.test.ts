/**
 * The layering of src/: every import (type-only and dynamic ones included) points to a lower
 * layer or stays inside its own folder, and no file imports itself back through a cycle. The
 * table below is the architecture of docs/architecture.md; a new folder must be placed in it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(__dirname, "../../src");

/** Layers, lowest first; a path prefix (relative to src/, longest match wins) names each. */
const LAYERS: readonly (readonly string[])[] = [
  ["base/"],
  ["onnx/"],
  ["backend/"], // onnxruntime (node or web) behind sessions over HostTensors; weights on disk
  ["io/"],
  ["hooks/", "autodiff/", "synthetic/", "corpus/"],
  ["trace/"],
  ["runtime/"],
  ["intervene/", "attribution/", "train/", "circuits/", "sae/", "explainer/"],
  ["model/"],
  ["check/"], // interpretability regression specs, run through the facade
  ["cli/"],
  ["index.ts", "internals.ts", "api.ts", "browser.ts"],
];

function layerOf(file: string): { rank: number; prefix: string } | undefined {
  let best: { rank: number; prefix: string } | undefined;
  LAYERS.forEach((prefixes, rank) => {
    for (const prefix of prefixes) if (file.startsWith(prefix) && prefix.length > (best?.prefix.length ?? -1)) best = { rank, prefix };
  });
  return best;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Relative imports of a file (static, type-only, re-exports and dynamic), as src-relative paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1]!);
  return specs.map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, ".ts"));
}

const files = sourceFiles(SRC).map((f) => relative(SRC, f));
const graph = new Map(files.map((f) => [f, importsOf(join(SRC, f))]));

/** Imports that point up or sideways into another folder of the same layer. */
function badImports(g: ReadonlyMap<string, readonly string[]>): string[] {
  const bad: string[] = [];
  for (const [from, targets] of g) {
    const a = layerOf(from)!;
    for (const to of targets) {
      const b = layerOf(to);
      if (!b) bad.push(`${from} -> ${to} (outside src/)`);
      else if (!(dirname(from) === dirname(to) || b.rank < a.rank || a.prefix === b.prefix)) bad.push(`${from} (${a.prefix}) -> ${to} (${b.prefix})`);
    }
  }
  return bad;
}

/** Every cycle found by a depth-first walk, as "a -> b -> a". */
function findCycles(g: ReadonlyMap<string, readonly string[]>): string[] {
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const t of g.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, "done");
  };
  for (const f of g.keys()) visit(f, []);
  return cycles;
}

describe("src/ layering", () => {
  it("every source file belongs to a layer", () => {
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((f) => !layerOf(f))).toEqual([]);
  });

  it("imports point down, or stay in their folder", () => {
    expect([...graph.values()].flat().length).toBeGreaterThan(100);
    expect(badImports(graph)).toEqual([]);
  });

  it("has no import cycles", () => {
    expect(findCycles(graph)).toEqual([]);
  });

  it("the checks catch an upward import, a sideways import and a cycle", () => {
    const g = new Map([
      ["model/model.ts", ["cli/main.ts", "runtime/runtime.ts"]],
      ["intervene/a.ts", ["attribution/b.ts"]],
      ["runtime/runtime.ts", ["runtime/load.ts"]],
      ["runtime/load.ts", ["runtime/runtime.ts"]],
    ]);
    expect(badImports(g)).toEqual(["model/model.ts (model/) -> cli/main.ts (cli/)", "intervene/a.ts (intervene/) -> attribution/b.ts (attribution/)"]);
    expect(findCycles(g)).toEqual(["runtime/runtime.ts -> runtime/load.ts -> runtime/runtime.ts"]);
    expect(importsOf(join(SRC, "model/model.ts"))).toContain("runtime/runtime.ts");
  });
});
