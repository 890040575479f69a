/**
 * The weight store: sessions that memory-map one weight file instead of holding a copy each, a
 * loaded model that drops its decoded bytes, temp files freed at dispose, and the one session
 * bound of `maxSessions`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelProto } from "onnx-buf";
import { Model, runtimeOf } from "../../src/model/model.js";
import type { LoadOptions } from "../../src/runtime/options.js";
import { packedWeightBytes, type SessionPool } from "../../src/runtime/sessions.js";
import { WeightStore } from "../../src/backend/weight-store.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { forEachTensor } from "../../src/onnx/external.js";
import { tensorToProto } from "../../src/onnx/tensor.js";
import { gpt2Config } from "../../src/synthetic/config.js";
import { makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";
import { gpt2Reference } from "../reference/gpt2-forward.js";

/** wte is 1000 x 40 floats (160 kB): above the store's 64 kB threshold; block weights stay inline. */
const CONFIG = gpt2Config({ n_layer: 2, n_head: 2, n_embd: 40, n_positions: 16, vocab_size: 1000 });

const poolOf = (m: Model) => (runtimeOf(m) as unknown as { sessions: SessionPool }).sessions;
/** `weightsDir` is a session-pool option passed through the load options. */
const load = (dir: string, weightsDir: string | false, extra: LoadOptions = {}) => Model.load(dir, { ...extra, weightsDir } as LoadOptions);

let tm: TestModel;
let parent: string;

beforeAll(async () => {
  tm = await makeTestModel({ config: CONFIG });
  parent = mkdtempSync(join(tmpdir(), "tdb-weights-test-"));
});
afterAll(async () => {
  await tm.cleanup();
  rmSync(parent, { recursive: true, force: true });
});

describe("sessions on the weight file", () => {
  let mapped: Model;
  let inMemory: Model;
  beforeAll(async () => {
    mapped = await load(tm.dir, parent);
    inMemory = await load(tm.dir, false);
  });
  afterAll(async () => {
    await mapped.dispose();
    await inMemory.dispose();
  });

  it("writes the large tensors to a file in the given directory, with their bytes", async () => {
    const file = await poolOf(mapped).weightFile();
    expect(file).not.toBeNull();
    expect(dirname(dirname(file!))).toBe(parent);
    expect(await poolOf(inMemory).weightFile()).toBeNull();
    // The generator's own wte must appear in the file, at a 64 kB-aligned offset.
    const wte = tm.weights.get("transformer.wte.weight")!.data;
    const bytes = readFileSync(file!);
    const want = new Uint8Array(wte.buffer, wte.byteOffset, wte.byteLength);
    let found = -1;
    for (let off = 0; off + want.byteLength <= bytes.byteLength; off += 65536) {
      if (Buffer.compare(bytes.subarray(off, off + want.byteLength), want) === 0) found = off;
    }
    expect(found).toBeGreaterThanOrEqual(0);
  });

  it("gives the same logits as in-memory weights, and both match the float64 reference", async () => {
    const rows = [[5, 17, 999, 3, 250, 42, 0, 7]];
    const ref = gpt2Reference(CONFIG, tm.weights, rows).logits.data;
    const a = await mapped.trace(rows, { hooks: ["blocks.1.mlp.hook_post"] });
    const b = await inMemory.trace(rows, { hooks: ["blocks.1.mlp.hook_post"] });
    expect(maxAbsDiff(a.logits.data, ref)).toBeLessThan(1e-4);
    expect(maxAbsDiff(b.logits.data, ref)).toBeLessThan(1e-4);
    expect(maxAbsDiff(a.logits.data, b.logits.data)).toBe(0);
    expect(maxAbsDiff((await mapped.forward(rows)).data, ref)).toBeLessThan(1e-4);
  });

  it("reads detached weights back from the file", () => {
    const wte = tm.weights.get("transformer.wte.weight")!.data;
    expect(maxAbsDiff(runtimeOf(mapped).weights.W_E.data as Float32Array, wte)).toBe(0);
  });
});

describe("release", () => {
  it("dispose removes the weight directory; detached tensors then say E_DISPOSED", async () => {
    const m = await load(tm.dir, parent);
    const file = (await poolOf(m).weightFile())!;
    await m.trace([[1, 2, 3]], { hooks: [] });
    expect(existsSync(file)).toBe(true);
    const base = runtimeOf(m).base;
    await m.dispose();
    expect(existsSync(dirname(file))).toBe(false);
    const stored = base.graph!.initializer.find((t) => t.dims.map(Number).join("x") === "1000x40");
    expect(stored).toBeDefined();
    expect(() => stored!.rawData).toThrow(expect.objectContaining({ code: "E_DISPOSED" }));
  });

  it("removes the directories of dead processes of this host, and no others", () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const host = hostname().replace(/[^A-Za-z0-9]/g, "").slice(0, 32);
    const stale = join(parent, `tdb-js-weights-${host}-${dead}-abc123`);
    const live = join(parent, `tdb-js-weights-${host}-${process.pid}-def456`);
    const other = join(parent, `tdb-js-weights-someotherhost-${dead}-ghi789`);
    for (const d of [stale, live, other]) mkdirSync(d);
    const store = WeightStore.create(smallModel().model, { parentDir: parent, sizeThreshold: 1 });
    try {
      expect([existsSync(stale), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
    } finally {
      store.releaseSync();
      rmSync(live, { recursive: true });
      rmSync(other, { recursive: true });
    }
  });
});

/** A model of two initializers decoded from bytes, so that their rawData view one buffer. */
function smallModel(): { model: ModelProto; big: Float32Array; small: Float32Array } {
  const big = Float32Array.from({ length: 300_000 }, (_, i) => Math.sin(i)); // 1.2 MB: the decoded buffer counts as large
  const small = Float32Array.from({ length: 5 }, (_, i) => i + 0.5);
  const m: ModelProto = decodeModel(encodeModel({
    irVersion: 8n,
    opsetImport: [{ domain: "", version: 17n }],
    graph: { name: "g", node: [], initializer: [tensorToProto("big", big, [300_000]), tensorToProto("small", small, [5])], input: [], output: [] },
  } as unknown as ModelProto));
  return { model: m, big, small };
}

describe("WeightStore", () => {
  it("puts each tensor at an aligned offset of the file and points session models there", async () => {
    const { model, big } = smallModel();
    const store = WeightStore.create(model, { parentDir: parent, sizeThreshold: 1000, alignment: 4096 });
    try {
      expect(store.tensors).toBe(1);
      const path = await store.writeModel(model);
      const written = decodeModel(readFileSync(path));
      const t = written.graph!.initializer.find((x) => x.name === "big")!;
      const entry = (k: string) => t.externalData.find((e) => e.key === k)?.value;
      expect(entry("location")).toBe("weights.bin");
      expect(Number(entry("offset")) % 4096).toBe(0);
      expect(Number(entry("length"))).toBe(big.byteLength);
      const file = readFileSync(store.path);
      const at = Number(entry("offset"));
      expect(maxAbsDiff(new Float32Array(file.buffer.slice(file.byteOffset + at, file.byteOffset + at + big.byteLength)), big)).toBe(0);
      expect(written.graph!.initializer.find((x) => x.name === "small")!.rawData.byteLength).toBe(20);
      await store.removeModel(path);
      expect(existsSync(path)).toBe(false);
    } finally {
      await store.release();
    }
  });

  it("detach: stored tensors read from the file, others get their own bytes, assignment wins", async () => {
    const { model, big, small } = smallModel();
    const shared = model.graph!.initializer[0]!.rawData.buffer;
    const store = WeightStore.create(model, { parentDir: parent, sizeThreshold: 1000 });
    try {
      store.detach(model);
      forEachTensor(model, (t) => expect(t.rawData.buffer === shared).toBe(false));
      const [tb, ts] = model.graph!.initializer;
      expect(maxAbsDiff(new Float32Array(tb!.rawData.buffer), big)).toBe(0);
      expect(tb!.rawData === tb!.rawData).toBe(false); // read afresh each time: nothing cached
      expect(new Float32Array(ts!.rawData.slice().buffer)).toEqual(small);
      tb!.rawData = new Uint8Array(8);
      expect(tb!.rawData.byteLength).toBe(8);
    } finally {
      await store.release();
    }
  });
});

describe("maxSessions", () => {
  it("bounds sessions of every kind together", async () => {
    const one = await load(tm.dir, parent, { maxSessions: 1 });
    const two = await load(tm.dir, parent, { maxSessions: 2 });
    try {
      for (const m of [one, two]) {
        await m.trace([[1, 2, 3]], { hooks: ["blocks.0.hook_resid_pre"] });
        await m.forward([[1, 2, 3]]);
      }
      // With one session, the unpatched forward released the patched one.
      expect(await runtimeOf(one).liveSessions()).toEqual([]);
      expect(await runtimeOf(two).liveSessions()).toEqual([["blocks.0.hook_resid_pre"]]);
    } finally {
      await one.dispose();
      await two.dispose();
    }
    await expect(load(tm.dir, parent, { maxSessions: 0 })).rejects.toMatchObject({ code: "E_BAD_OPTION" });
  });

  it("counts the prepacked weight matrices of a graph", async () => {
    const m = await load(tm.dir, false);
    try {
      // Per block c_attn d x 3d, c_proj d x d, c_fc d x 4d, mlp c_proj 4d x d; the unembedding d x V.
      const d = CONFIG.n_embd;
      expect(packedWeightBytes(runtimeOf(m).base)).toBe(4 * (CONFIG.n_layer * 12 * d * d + d * CONFIG.vocab_size));
    } finally {
      await m.dispose();
    }
  });

  it("counts an attribution session (forward + backward) as two", async () => {
    const two = await load(tm.dir, parent, { maxSessions: 2 });
    const three = await load(tm.dir, parent, { maxSessions: 3 });
    try {
      for (const m of [two, three]) {
        await m.trace([[1, 2, 3]], { hooks: ["blocks.0.hook_resid_pre"] });
        await m.attribute([[5, 300, 41, 77]], { target: 100, distractor: 200, topK: 2 });
      }
      expect(await runtimeOf(two).liveSessions()).toEqual([]);
      expect(await runtimeOf(three).liveSessions()).toEqual([["blocks.0.hook_resid_pre"]]);
    } finally {
      await two.dispose();
      await three.dispose();
    }
  });
});
