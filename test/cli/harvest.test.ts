/**
 * `tdb harvest` on a generated model with planted token detectors and a small text corpus file:
 * the record set it writes reloads with `readRecords` and equals `harvestRecords` run here on the
 * same documents; the JSON summary describes it; a checkpoint is written and a resume gives the
 * same records; usage errors exit 2.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { textFileDocuments } from "../../src/corpus/node.js";
import { readRecords } from "../../src/explainer/records-node.js";
import { allNeurons, harvestRecords } from "../../src/explainer/records.js";
import { makePlantedModel, type PlantedModel } from "../helpers/planted-model.js";
import { plantedCorpus } from "./_planted-corpus.js";
import { parseHarvestArgs } from "../../src/cli/harvest-command.js";
import { UsageError } from "../../src/cli/usage.js";
import { tdb } from "./_run.js";

let pm: PlantedModel;
let dir: string;
let corpusPath: string;

beforeAll(async () => {
  pm = await makePlantedModel(3);
  dir = await mkdtemp(join(tmpdir(), "tdb-cli-harvest-"));
  corpusPath = join(dir, "corpus.txt");
  await writeFile(corpusPath, plantedCorpus(pm));
}, 60_000);
afterAll(async () => {
  await pm?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const SETTINGS = ["--context", "16", "--top", "6", "--random", "5"];

async function expected(nodes = allNeurons({ nLayers: pm.model.config.nLayers, dMlp: pm.model.config.dMlp }, [0]), path = corpusPath) {
  return harvestRecords(pm.model, textFileDocuments(path, { split: "paragraph", id: basename(path) }), { nodes, contextTokens: 16, topK: 6, randomK: 5 });
}

describe("tdb harvest", () => {
  it("writes a record set that reloads and equals harvestRecords on the same corpus; JSON summary", async () => {
    const out = join(dir, "records");
    const r = await tdb(["harvest", "--model", pm.tm.dir, "--layers", "0", "--corpus", corpusPath, ...SETTINGS, "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { schema: string; nodes: number; tokens: number; files: string[]; seconds: number; groups: { key: string }[] };
    expect(summary.schema).toBe("tdb.harvest/1");
    expect(summary.nodes).toBe(pm.model.config.dMlp);
    expect(summary.groups.map((g) => g.key)).toEqual(["mlp.0"]);
    expect(summary.seconds).toBeGreaterThan(0);
    expect(summary.files.map((f) => basename(f)).sort()).toEqual((await readdir(out)).sort());
    for (const f of summary.files) expect((await stat(f)).size).toBeGreaterThan(0);
    const got = await readRecords(out);
    const want = await expected();
    expect(summary.tokens).toBe(want.tokens);
    expect(got.settings).toEqual(want.settings);
    expect(got.nodes).toEqual(want.nodes);
    expect([...got.records()]).toEqual([...want.records()]);
    // The planted neurons' top excerpts peak on their tokens.
    for (const p of pm.planted) {
      const top = got.node(p.node).top[0]!;
      expect(top.tokens[top.activations.indexOf(Math.max(...top.activations))]).toBe(p.token);
    }
    // Progress went to stderr as JSON lines (or nothing, when the run took under a second).
    for (const line of r.stderr.split("\n").filter((l) => l.startsWith("{"))) expect(JSON.parse(line).kind).toBe("progress");
  }, 60_000);

  it("--neurons, --checkpoint and --resume: a checkpoint is written and resuming it gives the same records", async () => {
    // Long enough for a checkpoint (every 20 forward passes of 8 windows) before the end.
    const long = join(dir, "long.txt");
    await writeFile(long, plantedCorpus(pm, 140));
    const ckpt = join(dir, "h.ckpt");
    const nodes = pm.planted.map((p) => `${p.node.layer}:${p.node.index}`).join(",");
    const first = await tdb(["harvest", "--model", pm.tm.dir, "--neurons", nodes, "--corpus", long, ...SETTINGS, "--out", join(dir, "a"), "--checkpoint", ckpt]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/harvested 3 nodes/);
    expect((await stat(ckpt)).size).toBeGreaterThan(0);
    const again = await tdb(["harvest", "--model", pm.tm.dir, "--neurons", nodes, "--corpus", long, ...SETTINGS, "--out", join(dir, "b"), "--checkpoint", ckpt, "--resume", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).resumed).toBe(true);
    const want = await expected(pm.planted.map((p) => p.node), long);
    expect([...(await readRecords(join(dir, "a"))).records()]).toEqual([...want.records()]);
    expect([...(await readRecords(join(dir, "b"))).records()]).toEqual([...want.records()]);
  }, 60_000);

  it("usage errors exit 2 before loading anything", async () => {
    const runs = await Promise.all([["harvest", "--layers", "0"], ["harvest", "--out", join(dir, "x"), "--neurons", "0.5"]].map((args) => tdb([...args, "--json"])));
    for (const r of runs) {
      expect(r.code, r.stdout).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe("E_USAGE");
    }
    // The rest in process (the same parser main runs).
    const out = join(dir, "x");
    for (const f of [{ out, layers: "0,a" }, { out, layers: "" }, { out, neurons: "0:5,1" }, { out, resume: true }, { out, top: "0" }, { out, random: "-1" }, { out, tokens: "1e3" }, { out, sae: [""] }]) {
      expect(() => parseHarvestArgs(f), JSON.stringify(f)).toThrow(UsageError);
    }
    expect(parseHarvestArgs({ out, layers: "0, 1", neurons: "0:5,1:17", random: "0" })).toMatchObject({ layers: [0, 1], neurons: [{ layer: 0, index: 5 }, { layer: 1, index: 17 }], random: 0 });
    // A flag of another command.
    const other = await tdb(["harvest", "--out", out, "--offline"]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/^tdb: harvest does not take --offline/);
  }, 60_000);
});
