/**
 * The `tdb trace` command, run as a child process: JSON schema, exit codes, typed errors.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Model, runtimeOf } from "../../src/model/model.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";
import { tdb } from "./_run.js";

let tm: TestModel;
let home: string;
beforeAll(async () => {
  tm = await makeTestModel();
  home = await mkdtemp(join(tmpdir(), "tdb-home-"));
});
afterAll(async () => {
  await tm?.cleanup();
  await rm(home, { recursive: true, force: true });
});

describe("tdb trace", () => {
  it("--json prints the documented schema with the same predictions as the library", async () => {
    const r = await tdb(["trace", "The quick brown fox", "--model", tm.dir, "--json", "--top", "5"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      schema: string;
      model: { nLayers: number; dVocab: number };
      tokens: number[];
      strTokens: string[];
      top: { token: number; str: string; logit: number; prob: number }[];
      cache: { name: string; dims: number[]; labels: string[]; mean: number; rms: number; min: number; max: number }[];
    };
    expect(out.schema).toBe("tdb.trace/1");
    expect(out.model).toMatchObject({ nLayers: 2, dVocab: 512 });
    const model = await Model.load(tm.dir);
    try {
      expect(out.tokens).toEqual(model.toTokens("The quick brown fox"));
      expect(out.strTokens[0]).toBe("<|endoftext|>");
      const t = await model.trace("The quick brown fox", { hooks: [] });
      expect(out.top.map((x) => x.token)).toEqual(t.topK(5).map((x) => x.token));
      expect(out.cache.map((c) => c.name)).toEqual(runtimeOf(model).selectHooks("all"));
    } finally {
      await model.dispose();
    }
    const pattern = out.cache.find((c) => c.name === "blocks.0.attn.hook_pattern")!;
    expect(pattern.labels).toEqual(["batch", "head", "query_pos", "key_pos"]);
    expect(pattern.dims).toEqual([1, 4, out.tokens.length, out.tokens.length]);
    // Each row of the pattern sums to 1, so the mean is 1 / key_pos.
    expect(pattern.mean).toBeCloseTo(1 / out.tokens.length, 5);
  });

  it("--hooks limits the cache; plain output names the top tokens", async () => {
    const r = await tdb(["trace", "Hello", "--model", tm.dir, "--hooks", "blocks.1.mlp.hook_post,hook_embed"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/top 10 next tokens/);
    expect(r.stdout).toMatch(/cache \(2 hooks\)/);
    expect(r.stdout).toMatch(/blocks\.1\.mlp\.hook_post/);
  });

  it("typed errors exit 1, as JSON with --json", async () => {
    const r = await tdb(["trace", "Hello", "--model", tm.dir, "--hooks", "blocks.7.mlp.hook_post", "--json"]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { error: { code: string; allowed: unknown; message: string } };
    expect(out.error.code).toBe("E_LAYER_RANGE");
    expect(out.error.allowed).toEqual([0, 1]);
    const plain = await tdb(["trace", "", "--model", tm.dir]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/E_EMPTY_PROMPT/);
  });

  it("usage errors exit 2; --help exits 0", async () => {
    expect((await tdb(["trace"])).code).toBe(2);
    expect((await tdb(["trace", "x", "--bogus"])).code).toBe(2);
    expect((await tdb(["frobnicate"])).code).toBe(2);
    const help = await tdb(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/tdb trace/);
  });

  it("without --model it uses the shipped default model, tdb:brown-small, offline", async () => {
    const r = await tdb(["trace", "Hi", "--json", "--hooks", "hook_embed"], { TDB_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { model: { source: string; nLayers?: number } };
    expect(out.model.source).toBe("tdb:brown-small");
  });
});

describe("tdb ablate", () => {
  it("--json reports before/after, the logit difference change and KL", async () => {
    const r = await tdb(["ablate", "Hello there friend", "--model", tm.dir, "--head", "1.3", "--neuron", "0.17@-1", "--target", " t", "--distractor", " a", "--json", "--top", "3"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      schema: string;
      ablated: { hook: string; at: Record<string, number[]>; positions: unknown }[];
      before: { token: number }[];
      after: { token: number }[];
      logitDiff: { before: number; after: number; change: number };
      kl: number;
    };
    expect(out.schema).toBe("tdb.ablate/1");
    expect(out.ablated).toEqual([
      { hook: "blocks.1.attn.hook_z", at: { head: [3] }, positions: "all" },
      { hook: "blocks.0.mlp.hook_post", at: { d_mlp: [17] }, positions: [-1] },
    ]);
    expect(out.before).toHaveLength(3);
    expect(out.logitDiff.change).toBeCloseTo(out.logitDiff.after - out.logitDiff.before, 4);
    expect(out.logitDiff.change).not.toBe(0);
    expect(out.kl).toBeGreaterThan(0);
  });

  it("malformed node specs and missing edits are usage errors (exit 2); out-of-range ones typed errors (exit 1)", async () => {
    const bad = await tdb(["ablate", "Hello", "--model", tm.dir, "--head", "1-3", "--json"]);
    expect(bad.code).toBe(2);
    expect((JSON.parse(bad.stdout) as { error: { code: string } }).error.code).toBe("E_USAGE");
    const range = await tdb(["ablate", "Hello", "--model", tm.dir, "--head", "1.9", "--json"]);
    expect(range.code).toBe(1);
    expect((JSON.parse(range.stdout) as { error: { code: string; allowed: unknown } }).error).toMatchObject({ code: "E_INDEX_RANGE", allowed: [0, 3] });
    const none = await tdb(["ablate", "Hello", "--model", tm.dir]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/nothing to ablate/);
  });
});

describe("tdb attribute", () => {
  it("--json prints the node table with the documented fields", async () => {
    const r = await tdb(["attribute", "Hello there friend", "--model", tm.dir, "--target", " t", "--distractor", " a", "--top", "4", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { schema: string; logitDiff: number; nodes: { id: string; type: string; totalEffect: number }[]; counts: Record<string, number> };
    expect(out.schema).toBe("tdb.attribute/1");
    expect(out.nodes.length).toBeGreaterThanOrEqual(4);
    expect(new Set(out.nodes.map((n) => n.type)).size).toBeGreaterThan(1);
    expect(out.counts.mlp_neuron).toBeGreaterThan(0);
    const model = await Model.load(tm.dir);
    try {
      const t = await model.trace("Hello there friend", { hooks: [] });
      expect(out.logitDiff).toBeCloseTo(t.logitDiff(" t", " a"), 4);
    } finally {
      await model.dispose();
    }
  });

  it("needs --target and --distractor (usage error, exit 2); equal tokens are a typed error", async () => {
    expect((await tdb(["attribute", "Hello", "--model", tm.dir, "--target", " t"])).code).toBe(2);
    const same = await tdb(["attribute", "Hello", "--model", tm.dir, "--target", " t", "--distractor", " t", "--json"]);
    expect(same.code).toBe(1);
    expect((JSON.parse(same.stdout) as { error: { code: string } }).error.code).toBe("E_BAD_INPUT");
  });
});
