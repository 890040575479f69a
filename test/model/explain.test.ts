/**
 * `Model.explainNeuron` end to end: records harvested from a corpus on a model with planted
 * token detectors, explained offline (the planted token named, scored near 1); with an LLM
 * against a scripted chat server on loopback (the explanation it gives, a perfect simulator
 * scores 1); results cached in a store (memory and a directory: the second call sends no request
 * and says `cached`), keyed by explainer and records; bad input typed. Attention heads offline:
 * the shipped tdb:toy-induction's previous-token head (0.0) and induction head (1.0), harvested
 * from text of its task, are named as such.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAiClient } from "../../src/explainer/openai-client.js";
import { explainOffline } from "../../src/explainer/offline.js";
import { harvestRecords } from "../../src/explainer/records.js";
import { OFFLINE_HEAD_EXPLAINER_VERSION } from "../../src/model/explain.js";
import { Model } from "../../src/model/model.js";
import { repeatedTokenSequences } from "../../src/train/tasks/repeated-tokens.js";
import "../../src/io/node-store.js";
import { memoryStore } from "../../src/io/store.js";
import { rejected } from "../helpers/errors.js";
import { lastUser, simulationTokens, startChatServer, text, type ChatServer } from "../helpers/chat-server.js";
import { makePlantedModel, type PlantedModel } from "../helpers/planted-model.js";

let pm: PlantedModel;
let corpus: string[];
let server: ChatServer;
let dir: string;
beforeAll(async () => {
  pm = await makePlantedModel(3);
  // Text in which every planted token occurs, between ordinary tokens of the tiny vocabulary.
  const tok = pm.model.tokenizer;
  const filler = Array.from({ length: 40 }, (_, i) => tok.decode([300 + ((i * 13) % 200)]));
  corpus = Array.from({ length: 24 }, (_, d) => {
    const parts: string[] = [];
    for (let i = 0; i < 30; i++) parts.push(i % 7 === d % 7 ? pm.planted[(d + i) % pm.planted.length]!.token : filler[(d * 5 + i) % filler.length]!);
    return parts.join("");
  });
  server = await startChatServer();
  dir = await mkdtemp(join(tmpdir(), "tdb-explain-"));
}, 60_000);
afterAll(async () => {
  await server?.close();
  await pm?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Model.explainNeuron", () => {
  it("offline, records harvested from a corpus: names the planted token and scores it near 1", async () => {
    for (const p of pm.planted) {
      const e = await pm.model.explainNeuron(p.node, "offline", { corpus, harvest: { contextTokens: 16, topK: 10, randomK: 10 } });
      expect(e.explainer).toBe("offline");
      expect(e.node).toEqual(p.node);
      expect(e.explanation).toContain(JSON.stringify(p.token));
      expect(e.scores.correlation!).toBeGreaterThanOrEqual(0.8);
      expect(e.cached).toBe(false);
      // The same as the explainer on the same records, harvested here independently of explainNeuron.
      const records = (await harvestRecords(pm.model, corpus, { nodes: [p.node], contextTokens: 16, topK: 10, randomK: 10 })).node(p.node);
      expect(e.records).toEqual(records);
      expect(e.explanation).toBe(explainOffline(records).explanation);
      // Simulations on the 0..10 scale, one per token of each validation excerpt.
      for (const s of e.simulated) {
        expect(s.simulated!.length).toBe(s.record.tokens.length);
        expect(s.simulated!.every((v) => v >= 0 && v <= 10)).toBe(true);
      }
    }
  }, 60_000);

  it("with an LLM: the explanation it gives, a perfect simulator scores 1; cached by store and directory", async () => {
    const p = pm.planted[0]!;
    server.fallback = (req) => {
      const toks = simulationTokens(req);
      if (toks) return text(JSON.stringify({ activations: toks.map((t) => (t === p.token ? 10 : 0)) }));
      if (lastUser(req).includes("this neuron activates for")) return text(` the token ${JSON.stringify(p.token)}.`);
      return { kind: "status", status: 400 };
    };
    const llm = openAiClient({ baseURL: server.baseURL, model: "scripted-1", apiKey: "sk-test-KEY-42", env: {} });
    const records = (await harvestRecords(pm.model, corpus, { nodes: [p.node], contextTokens: 16, topK: 10, randomK: 10 })).node(p.node);
    const store = memoryStore();
    const first = await pm.model.explainNeuron(p.node, llm, { records, cache: store });
    expect(first.explainer).toBe("llm");
    expect(first.explanation).toBe(`the token ${JSON.stringify(p.token)}`);
    expect(first.scores.correlation!).toBeGreaterThan(0.99);
    expect(first.llm).toEqual({ provider: "openai-compatible", baseURL: server.baseURL, model: "scripted-1" });
    const sent = server.requests.length;
    const again = await pm.model.explainNeuron(p.node, llm, { records, cache: store });
    expect(server.requests.length).toBe(sent); // from the cache: no request
    expect(again.cached).toBe(true);
    expect({ ...again, cached: false }).toEqual(first);
    expect(store.size).toBe(1);
    expect([...JSON.stringify(first)].join("")).not.toContain("sk-test-KEY-42");
    // The offline explanation of the same records is another entry.
    await pm.model.explainNeuron(p.node, "offline", { records, cache: store });
    expect(store.size).toBe(2);
    // A directory store: one file per entry; a second call is a hit.
    const d = join(dir, "cache");
    await pm.model.explainNeuron(p.node, "offline", { records, cache: d });
    expect((await readdir(d)).length).toBe(1);
    expect((await pm.model.explainNeuron(p.node, "offline", { records, cache: d })).cached).toBe(true);
  }, 60_000);

  it("bad input is typed", async () => {
    const p = pm.planted[0]!;
    expect((await rejected(pm.model.explainNeuron(p.node, "offline"))).code).toBe("E_BAD_OPTION");
    expect((await rejected(pm.model.explainNeuron({ kind: "neuron" } as never, "offline", { corpus }))).code).toBe("E_BAD_OPTION");
    expect((await rejected(pm.model.explainNeuron(p.node, "gpt" as never, { corpus }))).code).toBe("E_BAD_OPTION");
    const records = (await harvestRecords(pm.model, corpus, { nodes: [p.node], contextTokens: 16 })).node(p.node);
    const other = pm.planted[1]!.node;
    const e = await rejected(pm.model.explainNeuron(other, "offline", { records }));
    expect(e.code).toBe("E_BAD_INPUT");
    expect(e.value).toBe(`mlp.${p.node.layer}.${p.node.index}`);
    expect((await rejected(pm.model.explainNeuron({ kind: "mlp_neuron", layer: 9, index: 0 }, "offline", { corpus }))).code).toBe("E_LAYER_RANGE");
  }, 60_000);
});

describe("Model.explainNeuron: attention heads offline", () => {
  let toy: Model;
  let texts: string[];
  beforeAll(async () => {
    toy = await Model.load("tdb:toy-induction");
    // Sequences of the model's task (BOS, filler, a segment, its repeat, filler) as text: its tokenizer splits words.
    const seqs = repeatedTokenSequences({ vocabSize: 63, seqLen: 40, minRepeat: 4, maxRepeat: 19, trigram: 0.8, tableSeed: 1, count: 80, seed: 4343 });
    texts = seqs.map((s) => toy.toStrTokens(s.tokens.slice(1)).join(" "));
  }, 60_000);
  afterAll(async () => {
    await toy?.dispose();
  });

  it("tdb:toy-induction: head 0.0 is a previous-token head, head 1.0 an induction head (records harvested from text)", async () => {
    const harvest = { contextTokens: 39, topK: 20, randomK: 20 };
    const store = memoryStore();
    const prev = await toy.explainNeuron({ kind: "attention_head", layer: 0, head: 0 }, "offline", { corpus: texts, harvest, cache: store });
    const ind = await toy.explainNeuron({ kind: "attention_head", layer: 1, head: 0 }, "offline", { corpus: texts, harvest, cache: store });
    expect(prev.explanation).toMatch(/^attends to the previous token/);
    expect(ind.explanation).toMatch(/^attends to the token after an earlier copy of the current token \(induction\)/);
    for (const e of [prev, ind]) {
      expect(e).toMatchObject({ explainer: "offline", version: OFFLINE_HEAD_EXPLAINER_VERSION, cached: false });
      expect(e.records.top[0]!.keys).toHaveLength(e.records.top[0]!.tokens.length);
      expect(e.simulated.length).toBeGreaterThan(0);
      for (const s of e.simulated) expect(s.simulated!.every((v) => v >= 0 && v <= 10)).toBe(true);
    }
    expect(ind.scores.correlation!).toBeGreaterThanOrEqual(0.8);
    // Cached under the head explainer's version.
    const again = await toy.explainNeuron({ kind: "attention_head", layer: 1, head: 0 }, "offline", { corpus: texts, harvest, cache: store });
    expect(again.cached).toBe(true);
    expect(again.explanation).toBe(ind.explanation);
  }, 120_000);
});
