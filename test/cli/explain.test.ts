/**
 * `tdb explain` on a generated model with planted token detectors: offline from a record set
 * written by `writeRecords` (the explanation names the planted token, text and JSON), offline with
 * records harvested from a corpus file; with an LLM against a scripted chat server on loopback
 * (the key from the environment is sent as the bearer token and never appears in stdout or
 * stderr, on success, on a 401 whose body echoes it, and on a 500); typed and usage errors.
 */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseExplainArgs, parseNodeId } from "../../src/cli/explain-command.js";
import { UsageError } from "../../src/cli/usage.js";
import { textFileDocuments } from "../../src/corpus/node.js";
import { explainOffline } from "../../src/explainer/offline.js";
import { writeRecords } from "../../src/explainer/records-node.js";
import { harvestRecords } from "../../src/explainer/records.js";
import { lastUser, simulationTokens, startChatServer, status, text, type ChatServer } from "../helpers/chat-server.js";
import { makePlantedModel, type PlantedModel } from "../helpers/planted-model.js";
import { plantedCorpus } from "./_planted-corpus.js";
import { tdb, type CliRun } from "./_run.js";

const KEY = "sk-cli-SECRET-9f3a7";
let pm: PlantedModel;
let dir: string;
let corpusPath: string;
let recordsDir: string;
let server: ChatServer;

beforeAll(async () => {
  pm = await makePlantedModel(3);
  dir = await mkdtemp(join(tmpdir(), "tdb-cli-explain-"));
  corpusPath = join(dir, "corpus.txt");
  await writeFile(corpusPath, plantedCorpus(pm));
  recordsDir = join(dir, "records");
  const docs = textFileDocuments(corpusPath, { split: "paragraph", id: basename(corpusPath) });
  await writeRecords(recordsDir, await harvestRecords(pm.model, docs, { nodes: pm.planted.map((p) => p.node), contextTokens: 16, topK: 8, randomK: 8 }));
  server = await startChatServer();
}, 60_000);
afterAll(async () => {
  await server?.close();
  await pm?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface ExplainJson {
  schema: string;
  explanations: {
    node: string;
    explainer: string;
    llm: { provider: string; model: string; baseURL?: string } | null;
    explanation: string;
    scores: { correlation: number | null; r2: number | null };
    simulated: { set: string; tokens: string[]; activations: number[]; simulated: number[] | null }[];
  }[];
}

const noKey = (r: CliRun): void => {
  expect(r.stdout).not.toContain(KEY);
  expect(r.stderr).not.toContain(KEY);
  expect(r.stdout + r.stderr).not.toContain("SECRET");
};

describe("tdb explain", () => {
  it("--offline --records: names each planted token, scores near 1 (JSON), and prints a table", async () => {
    const [p0, p1, p2] = [pm.planted[0]!, pm.planted[1]!, pm.planted[2]!];
    const [json, textRun] = await Promise.all([
      tdb(["explain", "--model", pm.tm.dir, "--records", recordsDir, "--layer", "0", "--neuron", `${p0.node.index},${p1.node.index}`, "--node", `mlp.0.${p2.node.index}`, "--offline", "--json"]),
      tdb(["explain", "--model", pm.tm.dir, "--records", recordsDir, "--node", `mlp.0.${p0.node.index}`, "--offline"]),
    ]);
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as ExplainJson;
    expect(out.schema).toBe("tdb.explain/1");
    expect(out.explanations.map((e) => e.node)).toEqual(pm.planted.map((p) => `mlp.0.${p.node.index}`));
    out.explanations.forEach((e, i) => {
      const p = pm.planted[i]!;
      expect(e.explainer).toBe("offline");
      expect(e.llm).toBeNull();
      expect(e.explanation).toContain(JSON.stringify(p.token));
      expect(e.scores.correlation!).toBeGreaterThanOrEqual(0.8);
      for (const s of e.simulated) expect(s.simulated!.length).toBe(s.tokens.length);
    });
    expect(textRun.code, textRun.stderr).toBe(0);
    expect(textRun.stdout).toContain(`mlp.0.${p0.node.index}  (offline)`);
    expect(textRun.stdout).toContain(JSON.stringify(p0.token));
    // The peak token of the top excerpt is marked.
    expect(textRun.stdout).toContain(`[[${p0.token}]]`);
  }, 60_000);

  it("--offline harvesting from --corpus: the explanation equals the offline explainer on harvestRecords' records", async () => {
    const p = pm.planted[1]!;
    const cache = join(dir, "cache");
    const r = await tdb(["explain", "--model", pm.tm.dir, "--corpus", corpusPath, "--context", "16", "--top", "8", "--random", "8", "--node", `mlp.0.${p.node.index}`, "--offline", "--cache", cache, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const e = (JSON.parse(r.stdout) as ExplainJson).explanations[0]!;
    const docs = textFileDocuments(corpusPath, { split: "paragraph", id: basename(corpusPath) });
    const records = (await harvestRecords(pm.model, docs, { nodes: [p.node], contextTokens: 16, topK: 8, randomK: 8 })).node(p.node);
    expect(e.explanation).toBe(explainOffline(records).explanation);
    expect((await readdir(cache)).length).toBe(1);
  }, 60_000);

  it("with an LLM on loopback: the key from the environment is sent, never printed", async () => {
    const p = pm.planted[0]!;
    server.fallback = (req) => {
      const toks = simulationTokens(req);
      if (toks) return text(JSON.stringify({ activations: toks.map((t) => (t === p.token ? 10 : 0)) }));
      if (lastUser(req).includes("this neuron activates for")) return text(` the token ${JSON.stringify(p.token)}.`);
      return status(400);
    };
    const args = ["explain", "--model", pm.tm.dir, "--records", recordsDir, "--node", `mlp.0.${p.node.index}`, "--llm-base-url", server.baseURL, "--llm-model", "scripted-1"];
    const [r, t] = await Promise.all([tdb([...args, "--json"], { TDB_LLM_API_KEY: KEY }), tdb(args, { TDB_LLM_API_KEY: "", OPENAI_API_KEY: KEY })]);
    expect(r.code, r.stderr).toBe(0);
    noKey(r);
    const e = (JSON.parse(r.stdout) as ExplainJson).explanations[0]!;
    expect(e.explainer).toBe("llm");
    expect(e.llm).toEqual({ provider: "openai-compatible", baseURL: server.baseURL, model: "scripted-1" });
    expect(e.explanation).toBe(`the token ${JSON.stringify(p.token)}`);
    expect(e.scores.correlation!).toBeGreaterThan(0.99);
    expect(server.requests.length).toBeGreaterThan(2);
    for (const q of server.requests) {
      expect(q.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(q.body?.model).toBe("scripted-1");
    }
    expect(t.code, t.stderr).toBe(0);
    noKey(t);
    expect(t.stdout).toContain("(llm scripted-1)");
    expect(t.stdout).toContain(`the token ${JSON.stringify(p.token)}`);
  }, 60_000);

  it("a 401 whose body echoes the key and a 500: typed errors (exit 1), the key nowhere", async () => {
    const p = pm.planted[0]!;
    const args = ["explain", "--model", pm.tm.dir, "--records", recordsDir, "--node", `mlp.0.${p.node.index}`, "--llm-base-url", server.baseURL, "--llm-model", "scripted-1", "--llm-retries", "0"];
    server.fallback = status(401, {}, { error: { message: `Incorrect API key provided: ${KEY}`, type: "invalid_request_error" } });
    const [auth, authText] = await Promise.all([tdb([...args, "--json"], { TDB_LLM_API_KEY: KEY }), tdb(args, { TDB_LLM_API_KEY: KEY })]);
    for (const r of [auth, authText]) {
      expect(r.code, r.stderr).toBe(1);
      noKey(r);
    }
    expect(JSON.parse(auth.stdout).error.code).toBe("E_LLM_AUTH");
    expect(authText.stderr).toMatch(/^tdb: E_LLM_AUTH/);
    server.fallback = status(500, {}, { error: { message: `upstream failed for key ${KEY}` } });
    const [failed, failedText] = await Promise.all([tdb([...args, "--json", "--debug"], { TDB_LLM_API_KEY: KEY }), tdb(args, { TDB_LLM_API_KEY: KEY })]);
    for (const r of [failed, failedText]) {
      expect(r.code, r.stderr).toBe(1);
      noKey(r);
    }
    expect(JSON.parse(failed.stdout).error.code).toBe("E_LLM_SERVER");
  }, 60_000);

  it("typed and usage errors", async () => {
    const m = ["--model", pm.tm.dir];
    const cases: [string[], number, string][] = [
      [["explain", ...m, "--records", recordsDir, "--node", "mlp.0.1", "--offline"], 1, "E_BAD_INPUT"], // not in the records
      [["explain", ...m, "--records", join(dir, "nope"), "--node", "mlp.0.1", "--offline"], 1, "E_MISSING_FILE"],
      [["explain", ...m, "--records", recordsDir, "--node", "mlp.0.5", "--llm-base-url", "ftp://x", "--llm-model", "m"], 1, "E_LLM_CONFIG"],
      [["explain", ...m, "--node", "mlp.0.5"], 2, "E_USAGE"], // neither --offline nor an LLM
    ];
    const runs = await Promise.all(cases.map(([args]) => tdb([...args, "--json"], { TDB_LLM_MODEL: "", TDB_LLM_API_KEY: KEY })));
    runs.forEach((r, i) => {
      const [args, code, err] = cases[i]!;
      expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(code);
      expect(JSON.parse(r.stdout).error.code, args.join(" ")).toBe(err);
      noKey(r);
    });
    // The rest in process (the parser main runs).
    const env = {};
    const bad = [
      { offline: true }, // no node
      { neuron: ["5"], offline: true }, // no layer
      { layer: "0", offline: true }, // no neuron
      { layer: "0", neuron: ["5,x"], offline: true },
      { node: ["neuron.0.5"], offline: true },
      { node: ["mlp.0"], offline: true },
      { node: ["mlp.0.5"] }, // neither --offline nor an LLM
      { node: ["mlp.0.5"], offline: true, "llm-model": "m" },
      { node: ["mlp.0.5"], offline: true, scorers: "detection" },
      { node: ["mlp.0.5"], "llm-model": "m", scorers: "vibes" },
      { node: ["mlp.0.5"], offline: true, records: recordsDir, tokens: "5" },
      { node: ["mlp.0.5"], offline: true, tokens: "0" },
    ];
    for (const f of bad) expect(() => parseExplainArgs(f, env), JSON.stringify(f)).toThrow(UsageError);
    expect(parseExplainArgs({ node: ["mlp.0.5"] }, { TDB_LLM_MODEL: "m-env" }).llmModel).toBe("m-env");
    const ok = parseExplainArgs({ layer: "1", neuron: ["2,3"], node: ["attn.1.2,sae.blocks.0.hook_mlp_out.7"], "llm-model": "m", scorers: "fuzzing,detection" }, env);
    expect(ok.nodes).toEqual([
      { kind: "mlp_neuron", layer: 1, index: 2 },
      { kind: "mlp_neuron", layer: 1, index: 3 },
      { kind: "attention_head", layer: 1, head: 2 },
      { kind: "sae_latent", hook: "blocks.0.hook_mlp_out", index: 7 },
    ]);
    expect(ok.scorers).toEqual(["fuzzing", "detection"]);
    expect(parseNodeId(" mlp.10.300 ")).toEqual({ kind: "mlp_neuron", layer: 10, index: 300 });
  }, 60_000);
});
