/**
 * Harvesting activation records on a tiny generated model, checked against a brute-force scan
 * written here: every context window (cut by hand from `model.toTokens` of each document) is
 * traced alone with `model.trace`, and the top excerpts, random excerpts (the windows with the
 * smallest `splitHash(doc + "\0" + offset, seed)`, as documented) and statistics are computed
 * from those traces. Also: shards merged in any grouping equal one pass; a harvest stopped by a
 * throwing progress callback and resumed from its checkpoint equals an uninterrupted one;
 * records saved and reloaded are unchanged; bad nodes and options are typed errors.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { splitHash } from "../../src/corpus/document.js";
import type { Model } from "../../src/model/model.js";
import type { HookName } from "../../src/hooks/names.js";
import { TINY_GPT2 } from "../../src/synthetic/config.js";
import { mergeRecords, type HarvestedRecords } from "../../src/explainer/records-data.js";
import { decodeCheckpoint, decodeRecords, encodeCheckpoint, encodeRecords } from "../../src/explainer/records-io.js";
import { memoryFiles } from "../../src/io/files.js";
import type { Sae } from "../../src/sae/sae.js";
import type { ModelRuntime } from "../../src/runtime/runtime.js";
import type { RecordsModel } from "../../src/explainer/records.js";
import { readRecords, readRecordsCheckpoint, writeRecords, fileCheckpointer } from "../../src/explainer/records-node.js";
import { allHeads, allLatents, allNeurons, harvestRecords, neurons, type RecordsCheckpoint, type RecordsSae } from "../../src/explainer/records.js";
import { QUANTILE_LEVELS, nodeKey, type ExplainableNode, type NodeRecords } from "../../src/explainer/types.js";
import { rejected, thrown } from "../helpers/errors.js";
import { useTestModel } from "../helpers/models.js";

let model: Model;
useTestModel({ config: TINY_GPT2, seed: 21 }, (_t, m) => {
  model = m;
});

const DOCS = [
  { id: "a", text: "The quick brown fox jumps over the lazy dog near the river bank, and then it runs home again." },
  { id: "b", text: "   " },
  { id: "c", text: "Sparse autoencoders find features; they read one hook of the model and write it back." },
  { id: "d", text: "Short one." },
  { id: "e", text: "A last document with a few more words so that the stream runs past several windows of tokens." },
  { id: "f", text: "Neurons fire on some tokens and not on others: that is what the records show." },
  { id: "g", text: "Attention heads move information between positions of the context." },
];
const CTX = 8;
const TOPK = 3;
const RANDK = 4;
const SEED = 5;

/** A structural SAE on blocks.0.hook_resid_post: relu(x W + b), fixed pseudo-random weights. */
function testSae(): RecordsSae {
  const dIn = TINY_GPT2.n_embd;
  const dSae = 6;
  const W = Float32Array.from({ length: dIn * dSae }, (_, i) => Math.sin(i * 12.9898) * 0.4);
  const b = Float32Array.from({ length: dSae }, (_, i) => -0.1 * i);
  return {
    config: { hookName: "blocks.0.hook_resid_post", dIn, dSae },
    async encode(x: Float32Array, rows?: number): Promise<Float32Array> {
      const n = rows ?? x.length / dIn;
      const z = new Float32Array(n * dSae);
      for (let r = 0; r < n; r++) {
        for (let k = 0; k < dSae; k++) {
          let s = b[k]!;
          for (let i = 0; i < dIn; i++) s += x[r * dIn + i]! * W[i * dSae + k]!;
          z[r * dSae + k] = Math.max(0, s);
        }
      }
      return z;
    },
  };
}

interface BruteWindow {
  doc: string;
  offset: number;
  ids: number[];
  /** node key -> activation per token. */
  acts: Map<string, number[]>;
  keys: Map<string, number[]>;
}

/** Every window of DOCS traced alone; activations of `nodes` computed from the raw hooks. */
async function bruteForce(nodes: readonly ExplainableNode[], sae: RecordsSae): Promise<BruteWindow[]> {
  const out: BruteWindow[] = [];
  const L = TINY_GPT2.n_layer;
  const hooks: HookName[] = [
    ...Array.from({ length: L }, (_, l) => `blocks.${l}.mlp.hook_post`),
    ...Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern`),
    "blocks.0.hook_resid_post",
  ] as HookName[];
  for (const d of DOCS) {
    if (d.text.trim() === "") continue;
    const ids = model.toTokens(d.text, { prependBos: false });
    for (let off = 0; off < ids.length; off += CTX) {
      const w = ids.slice(off, off + CTX);
      const S = w.length + 1;
      const t = await model.trace([[model.bosTokenId, ...w]], { hooks, prependBos: false });
      const resid = t.cache.get("blocks.0.hook_resid_post").data;
      const dIn = sae.config.dIn;
      const z = await sae.encode(resid.slice(dIn), S - 1);
      const acts = new Map<string, number[]>();
      const keys = new Map<string, number[]>();
      for (const node of nodes) {
        const a: number[] = [];
        const k: number[] = [];
        for (let p = 1; p < S; p++) {
          if (node.kind === "mlp_neuron") {
            a.push(t.cache.get(`blocks.${node.layer}.mlp.hook_post`).data[p * TINY_GPT2.n_inner! + node.index]!);
          } else if (node.kind === "sae_latent") {
            a.push(z[(p - 1) * sae.config.dSae + node.index]!);
          } else {
            const A = t.cache.get(`blocks.${node.layer}.attn.hook_pattern`).data;
            let best = -Infinity;
            let arg = -1;
            for (let key = 1; key <= p; key++) {
              const v = A[(node.head * S + p) * S + key]!;
              if (v > best) [best, arg] = [v, key - 1];
            }
            a.push(best);
            k.push(arg);
          }
        }
        acts.set(nodeKey(node), a);
        keys.set(nodeKey(node), k);
      }
      out.push({ doc: d.id, offset: off, ids: w, acts, keys });
    }
  }
  return out;
}

const cmpWin = (a: { doc: string; offset: number }, b: { doc: string; offset: number }): number => (a.doc < b.doc ? -1 : a.doc > b.doc ? 1 : a.offset - b.offset);
const peak = (xs: readonly number[]): number => Math.max(...xs);

function expectClose(actual: readonly number[], expected: readonly number[], tol = 2e-5): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]!), `index ${i}: ${v} vs ${expected[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected[i]!))));
}

/** Every node's records as plain data (for exact comparisons between record sets). */
function plain(r: HarvestedRecords): Record<string, NodeRecords> {
  return Object.fromEntries([...r.records()].map((n) => [nodeKey(n.node), n]));
}

const sae = testSae();
const NODES: ExplainableNode[] = [
  ...neurons(0, [0, 3, 17, 100, 255]),
  // Eleven neurons of layer 1, out of order and with gaps: the harvest's loop takes nodes eight at a time (and the rest one by one).
  ...neurons(1, [1, 2, 64, 7, 130, 131, 132, 133, 250, 9, 40]),
  ...allHeads({ nLayers: 2, nHeads: 4 }, [1]),
  ...allLatents(sae),
];
const OPTS = { nodes: NODES, saes: [sae], contextTokens: CTX, topK: TOPK, randomK: RANDK, seed: SEED, batch: 3 };

describe("harvestRecords against a brute-force scan", () => {
  it("keeps the top excerpts, random excerpts and statistics of every node", async () => {
    const records = await harvestRecords(model, DOCS, OPTS);
    const brute = await bruteForce(NODES, sae);
    const total = brute.reduce((n, w) => n + w.ids.length, 0);
    expect(records.tokens).toBe(total);
    expect(records.nodes.map(nodeKey)).toEqual(NODES.map(nodeKey));
    // Random windows: the RANDK smallest seeded hashes, as documented.
    const byHash = brute
      .map((w) => ({ w, h: splitHash(`${w.doc}\u0000${w.offset}`, SEED) }))
      .sort((a, b) => a.h - b.h || cmpWin(a.w, b.w))
      .slice(0, RANDK)
      .map((x) => x.w);
    for (const node of NODES) {
      const key = nodeKey(node);
      const r = records.node(node);
      expect(r.node).toEqual(node);
      const ranked = [...brute].sort((a, b) => peak(b.acts.get(key)!) - peak(a.acts.get(key)!) || cmpWin(a, b));
      expect(r.top.length).toBe(TOPK);
      r.top.forEach((rec, i) => {
        const w = ranked[i]!;
        expect(rec.source, `${key} top ${i}`).toEqual({ doc: w.doc, offset: w.offset });
        expect(rec.ids).toEqual(w.ids);
        expect(rec.tokens).toEqual(model.toStrTokens(w.ids));
        expectClose(rec.activations, w.acts.get(key)!);
        if (node.kind === "attention_head") expect(rec.keys).toEqual(w.keys.get(key));
        else expect(rec.keys).toBeUndefined();
      });
      // Descending peaks.
      for (let i = 1; i < r.top.length; i++) expect(peak(r.top[i - 1]!.activations)).toBeGreaterThanOrEqual(peak(r.top[i]!.activations));
      expect(r.random.map((x) => x.source)).toEqual(byHash.map((w) => ({ doc: w.doc, offset: w.offset })));
      // Random windows: the same numbers as each window traced alone.
      r.random.forEach((rec, i) => expect(rec.activations).toEqual(byHash[i]!.acts.get(key)!.map(Math.fround)));
      // Statistics.
      const all = brute.flatMap((w) => w.acts.get(key)!);
      expect(r.stats.count).toBe(total);
      expect(r.stats.max).toBeCloseTo(Math.max(...all), 5);
      expect(r.stats.mean).toBeCloseTo(all.reduce((a, b) => a + b, 0) / all.length, 5);
      expect(r.stats.density).toBeCloseTo(all.filter((v) => v > 0).length / all.length, 10);
      const sorted = [...all].sort((a, b) => a - b);
      QUANTILE_LEVELS.forEach((q, i) => {
        const exact = sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
        const got = r.stats.quantiles[i]!;
        const err = Math.abs(got - exact);
        expect(err, `${key} q${q}: ${got} vs ${exact}`).toBeLessThanOrEqual(0.0607 * Math.abs(exact) + 2 ** -20 + 1e-6);
      });
    }
  });

  it("accepts plain strings (ids 0, 1, ...) and stops after a token budget on a window boundary", async () => {
    const texts = DOCS.map((d) => d.text);
    const r = await harvestRecords(model, texts, { ...OPTS, nodes: neurons(0, [3]), tokens: 30 });
    // Windows in corpus order until 30 tokens were reached.
    let n = 0;
    for (const t of texts) {
      if (t.trim() === "") continue;
      const ids = model.toTokens(t, { prependBos: false });
      for (let off = 0; off < ids.length && n < 30; off += CTX) n += Math.min(CTX, ids.length - off);
    }
    expect(r.tokens).toBe(n);
    expect(r.tokens).toBeGreaterThanOrEqual(30);
    for (const rec of r.node("mlp.0.3").top) expect(["0", "2"]).toContain(rec.source!.doc);
  });
});

describe("merging, saving and resuming", () => {
  it("merges three shards, in any grouping, into the records of one pass", async () => {
    const one = await harvestRecords(model, DOCS, OPTS);
    const shards = await Promise.all([DOCS.slice(0, 2), DOCS.slice(2, 5), DOCS.slice(5)].map((docs, i) => harvestRecords(model, docs, { ...OPTS, batch: 2 + i })));
    const [a, b, c] = shards as [HarvestedRecords, HarvestedRecords, HarvestedRecords];
    const expected = plain(one);
    expect(plain(mergeRecords(mergeRecords(a, b), c))).toEqual(expected);
    expect(plain(mergeRecords(a, mergeRecords(b, c)))).toEqual(expected);
    expect(plain(mergeRecords(mergeRecords(c, a), b))).toEqual(expected);
    expect(mergeRecords(mergeRecords(a, b), c).tokens).toBe(one.tokens);
  });

  it("refuses to merge record sets of other settings or nodes", async () => {
    const a = await harvestRecords(model, DOCS.slice(0, 2), { ...OPTS, nodes: neurons(0, [1]) });
    const b = await harvestRecords(model, DOCS.slice(0, 2), { ...OPTS, nodes: neurons(0, [1]), topK: 2 });
    const c = await harvestRecords(model, DOCS.slice(0, 2), { ...OPTS, nodes: neurons(0, [2]) });
    let e: unknown;
    try {
      mergeRecords(a, b);
    } catch (x) {
      e = x;
    }
    expect((e as { code: string }).code).toBe("E_BAD_INPUT");
    expect(() => mergeRecords(a, c)).toThrow(/different nodes/);
  });

  it("resumes from the checkpoint of a harvest stopped by its progress callback, to the same records", async () => {
    const full = await harvestRecords(model, DOCS, OPTS);
    let saved: Uint8Array[] | undefined;
    let savedAt = -1;
    await expect(
      harvestRecords(model, DOCS, {
        ...OPTS,
        checkpoint: {
          every: 2,
          save: (cp: RecordsCheckpoint) => {
            saved = encodeCheckpoint(cp);
            savedAt = cp.progress.batches;
          },
        },
        onProgress: (p) => {
          if (p.batches >= 5) throw new Error("stop");
        },
      }),
    ).rejects.toThrow("stop");
    expect(savedAt).toBeGreaterThanOrEqual(2);
    const cp = decodeCheckpoint(new Uint8Array(Buffer.concat(saved!)));
    expect(cp.progress.tokens).toBeLessThan(full.tokens);
    const resumed = await harvestRecords(model, DOCS, { ...OPTS, resume: cp });
    expect(plain(resumed)).toEqual(plain(full));
    expect(resumed.tokens).toBe(full.tokens);
  });

  it("writes checkpoints and records to disk atomically and reads them back", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tdb-records-"));
    try {
      const path = join(dir, "harvest.ckpt");
      expect(await readRecordsCheckpoint(path)).toBeUndefined();
      const nodes = [...neurons(1, [5, 6]), ...allHeads({ nLayers: 2, nHeads: 4 }, [0])];
      const opts = { ...OPTS, nodes, saes: [] };
      await expect(
        harvestRecords(model, DOCS, {
          ...opts,
          checkpoint: fileCheckpointer(path, 1),
          onProgress: (p) => {
            if (p.batches >= 3) throw new Error("killed");
          },
        }),
      ).rejects.toThrow("killed");
      const cp = await readRecordsCheckpoint(path);
      expect(cp?.progress.batches).toBe(3);
      const resumed = await harvestRecords(model, DOCS, { ...opts, resume: cp });
      const full = await harvestRecords(model, DOCS, opts);
      expect(plain(resumed)).toEqual(plain(full));

      await writeRecords(join(dir, "records"), full);
      const back = await readRecords(join(dir, "records"));
      expect(plain(back)).toEqual(plain(full));
      const layer = await readRecords(join(dir, "records"), { groups: ["attn.0"] });
      expect(layer.nodes.map(nodeKey)).toEqual(["attn.0.0", "attn.0.1", "attn.0.2", "attn.0.3"]);
      expect(layer.node("attn.0.2")).toEqual(full.node("attn.0.2"));
      expect((await rejected(readRecords(join(dir, "records"), { groups: ["mlp.7"] }))).code).toBe("E_BAD_INPUT");
      // A merged reload stays mergeable.
      expect(mergeRecords(back, back).node("mlp.1.5").stats.count).toBe(2 * full.tokens);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("bad nodes and options", () => {
  it("are typed errors with the value and what is allowed", async () => {
    const h = (o: object): Promise<unknown> => harvestRecords(model, DOCS, { ...OPTS, ...o });
    let e = await rejected(h({ nodes: neurons(2, [0]) }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_LAYER_RANGE", 2, [0, 1]]);
    e = await rejected(h({ nodes: neurons(0, [256]) }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_INDEX_RANGE", 256, [0, 255]]);
    e = await rejected(h({ nodes: [{ kind: "attention_head", layer: 0, head: 4 }] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_INDEX_RANGE", 4, [0, 3]]);
    e = await rejected(h({ nodes: [{ kind: "sae_latent", hook: "blocks.1.hook_resid_post", index: 0 }] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_UNKNOWN_HOOK", "blocks.1.hook_resid_post", ["blocks.0.hook_resid_post"]]);
    e = await rejected(h({ nodes: [{ kind: "sae_latent", hook: "blocks.0.hook_nonsense", index: 0 }] }));
    expect(e.code).toBe("E_UNKNOWN_HOOK");
    e = await rejected(h({ nodes: [{ kind: "sae_latent", hook: "blocks.0.hook_resid_post", index: 6 }] }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_INDEX_RANGE", 6, [0, 5]]);
    e = await rejected(h({ nodes: [{ kind: "mlp", layer: 0, index: 0 }] }));
    expect([e.code, e.value]).toEqual(["E_BAD_INPUT", "mlp"]);
    e = await rejected(h({ nodes: [] }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(h({ contextTokens: 64 }));
    expect([e.code, e.value, e.allowed]).toEqual(["E_BAD_OPTION", 64, [1, 63]]);
    e = await rejected(h({ topK: 0 }));
    expect(e.code).toBe("E_BAD_OPTION");
    e = await rejected(harvestRecords(model, "just a string" as never, OPTS));
    expect(e.code).toBe("E_BAD_INPUT");
    const cp = await new Promise<RecordsCheckpoint>((resolve, reject) => {
      harvestRecords(model, DOCS, { ...OPTS, checkpoint: { every: 1, save: (c) => resolve(c) } }).catch(reject);
    });
    e = await rejected(h({ topK: 2, resume: cp }));
    expect(e.code).toBe("E_CHECKPOINT_MISMATCH");
    e = await rejected(h({ nodes: neurons(0, [1]), resume: cp }));
    expect(e.code).toBe("E_CHECKPOINT_MISMATCH");
    const small = await harvestRecords(model, DOCS.slice(0, 1), { ...OPTS, nodes: neurons(0, [1]) });
    e = thrown(() => small.node("mlp.1.200"));
    expect([e.code, e.value, e.allowed]).toEqual(["E_BAD_INPUT", "mlp.1.200", ["mlp.0.1"]]);
  });

  it("reports unreadable record files and checkpoints as typed errors", async () => {
    const r = await harvestRecords(model, DOCS.slice(0, 1), { ...OPTS, nodes: neurons(0, [1]) });
    const files = encodeRecords(r);
    expect([...files.keys()].sort()).toEqual(["index.json", "mlp.0.bin"]);
    expect((await decodeRecords(memoryFiles("mem", Object.fromEntries(files)))).node("mlp.0.1")).toEqual(r.node("mlp.0.1"));
    let e = await rejected(decodeRecords(memoryFiles("empty", {})));
    expect(e.code).toBe("E_MISSING_FILE");
    const broken = Object.fromEntries(files);
    broken["mlp.0.bin"] = broken["mlp.0.bin"]!.slice(0, 100);
    e = await rejected(decodeRecords(memoryFiles("broken", broken)));
    expect(e.code).toBe("E_BAD_INPUT");
    e = thrown(() => decodeCheckpoint(new TextEncoder().encode("not a checkpoint at all")));
    expect(e.code).toBe("E_CHECKPOINT");
  });

  it("takes a Model, a ModelRuntime and a Sae structurally (compile-time check)", () => {
    const asModel: RecordsModel[] = [model, null as unknown as ModelRuntime];
    const asSae: RecordsSae = null as unknown as Sae;
    expect(asModel.length + (asSae === null ? 1 : 0)).toBe(3);
  });

  it("lists nodes with allNeurons, allHeads, allLatents", () => {
    const ns = allNeurons({ nLayers: 3, dMlp: 4 }, [0, 2]);
    expect(ns.map(nodeKey)).toEqual(["mlp.0.0", "mlp.0.1", "mlp.0.2", "mlp.0.3", "mlp.2.0", "mlp.2.1", "mlp.2.2", "mlp.2.3"]);
    expect(allNeurons({ nLayers: 2, dMlp: 3 }).length).toBe(6);
    expect(allHeads({ nLayers: 2, nHeads: 2 }).map(nodeKey)).toEqual(["attn.0.0", "attn.0.1", "attn.1.0", "attn.1.1"]);
    expect(allLatents(sae).map(nodeKey)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `sae.blocks.0.hook_resid_post.${i}`));
  });
});
