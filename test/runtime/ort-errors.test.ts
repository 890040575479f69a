/**
 * onnxruntime failures reach the user as typed errors: `E_RUNTIME` (with the failing node's name
 * when onnxruntime names it) for a run, `E_ONNX_INVALID` for a graph it cannot load,
 * `E_BAD_INPUT` for a feed that is not a tensor of its dims. Never a raw `Error`.
 */
import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { TdbError, TdbErrorCode } from "../../src/base/errors.js";
import { Model } from "../../src/model/model.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { encodeModel } from "../../src/onnx/proto.js";
import { createSession } from "../../src/backend/ort.js";
import { rejected } from "../helpers/errors.js";
import { makeTestModel } from "../helpers/models.js";


function expectCode(e: TdbError, code: TdbErrorCode): void {
  expect(e.code, e.message).toBe(code);
}

/** x [n] float -> Reshape(x, [3]) -> y, in a node named `/bad/Reshape`. */
function reshapeGraph(): Uint8Array {
  const b = new GraphBuilder();
  b.input("x", "float32", ["n"]);
  const shape = b.initializer("shape", new BigInt64Array([3n]), [1]);
  b.op("Reshape", ["x", shape], { scope: "/bad", output: "y" });
  b.output("y", "float32", [3]);
  return encodeModel(b.build());
}

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

describe("session.run", () => {
  it("a node failing at run time is E_RUNTIME naming the node", async () => {
    const s = await createSession(reshapeGraph());
    cleanup.push(() => s.release());
    // The graph itself works.
    const ok = await s.run({ x: { type: "float32", data: new Float32Array([1, 2, 3]), dims: [3] } });
    expect(Array.from(ok.y!.data as Float32Array)).toEqual([1, 2, 3]);
    const e = await rejected(s.run({ x: { type: "float32", data: new Float32Array(4), dims: [4] } }));
    expectCode(e, "E_RUNTIME");
    expect(e.value).toBe("/bad/Reshape");
    expect(e.message).toMatch(/\/bad\/Reshape/);
    expect(e.message).toMatch(/Reshape/);
    expect(e.cause).toBeInstanceOf(Error);
  });

  it("a feed of the wrong element type is E_RUNTIME too (no node to name)", async () => {
    const s = await createSession(reshapeGraph());
    cleanup.push(() => s.release());
    const e = await rejected(s.run({ x: { type: "int32", data: new Int32Array(3), dims: [3] } }));
    expectCode(e, "E_RUNTIME");
  });

  it("a feed whose data does not fill its dims is E_BAD_INPUT naming the feed", async () => {
    const s = await createSession(reshapeGraph());
    cleanup.push(() => s.release());
    const e = await rejected(s.run({ x: { type: "float32", data: new Float32Array(2), dims: [3] } }));
    expectCode(e, "E_BAD_INPUT");
    expect(e.value).toBe("x");
  });

  it("bytes that are not a graph onnxruntime can load: E_ONNX_INVALID", async () => {
    const e = await rejected(createSession(new Uint8Array([8, 1, 18, 3, 1, 2, 3])));
    expectCode(e, "E_ONNX_INVALID");
  });
});

describe("through Model", () => {
  it("config.json claiming more positions than the graph's position table: E_CONFIG_MISMATCH at load (issue 12; it used to fail at run time)", async () => {
    const tm = await makeTestModel();
    cleanup.push(() => tm.cleanup());
    const dir = `${tm.dir}-longctx`;
    await cp(tm.dir, dir, { recursive: true });
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    const n = tm.arch.n_positions;
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, n_positions: 2 * n, n_ctx: 2 * n }));
    const e = await rejected(Model.load(dir));
    expectCode(e, "E_CONFIG_MISMATCH");
    expect(e.value).toBe(2 * n);
    expect(e.allowed).toBe(n);
    expect(e.message).toContain(String(2 * n));
    expect(e.message).toContain(String(n));
  });
});
