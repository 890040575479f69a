import { mkdtempSync, rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { TensorProto_DataLocation, type ModelProto } from "onnx-buf";
import { afterAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { externalizeData, forEachTensor, resolveExternalData } from "../../src/onnx/external.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { attr, f32, fvi, graph, model, node, randn } from "./_build.js";

const dir = mkdtempSync(join(tmpdir(), "tdb-external-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** y = If(c, then: x @ Wt, else: x @ We) + bias, with the weights large enough to externalize. */
function weighty(): ModelProto {
  const then = graph([node("MatMul", ["x", "Wt"], ["t"])], [], [fvi("t")], [f32("Wt", randn(64 * 64, 1), [64, 64])], "then");
  const els = graph([node("MatMul", ["x", "We"], ["e"])], [], [fvi("e")], [f32("We", randn(64 * 64, 2), [64, 64])], "else");
  return model(
    graph(
      [
        node("If", ["c"], ["ify"], { attribute: [attr.graph("then_branch", then), attr.graph("else_branch", els)] }),
        node("Add", ["ify", "bias"], ["y0"]),
        node("Mul", ["y0", "small"], ["y"]),
      ],
      [fvi("c", [], "bool"), fvi("x", [2, 64])],
      [fvi("y", [2, 64])],
      [f32("bias", randn(64, 3)), f32("small", [0.5])],
    ),
  );
}

async function run(session: ort.InferenceSession, c: boolean): Promise<Float32Array> {
  const out = await session.run({ c: new ort.Tensor("bool", new Uint8Array([c ? 1 : 0]), []), x: new ort.Tensor("float32", randn(128, 7), [2, 64]) });
  return out.y!.data as Float32Array;
}

describe("external data", () => {
  it("round-trips through files and onnxruntime", async () => {
    const m = weighty();
    const before = encodeModel(m);
    const { model: ext, data } = externalizeData(m, { location: "model.onnx_data", sizeThreshold: 200 });
    // The input model is unchanged.
    expect(encodeModel(m)).toEqual(before);
    const moved: string[] = [];
    forEachTensor(ext, (t) => {
      if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) moved.push(t.name);
    });
    expect(moved.sort()).toEqual(["We", "Wt", "bias"]);
    expect(data.byteLength).toBeGreaterThanOrEqual(2 * 64 * 64 * 4 + 64 * 4);
    const modelPath = join(dir, "model.onnx");
    const small = encodeModel(ext);
    expect(small.byteLength).toBeLessThan(2000);
    await writeFile(modelPath, small);
    await writeFile(join(dir, "model.onnx_data"), data);

    const want = await ort.InferenceSession.create(before);
    const fromFiles = await ort.InferenceSession.create(modelPath);
    for (const c of [true, false]) expect(await run(fromFiles, c)).toEqual(await run(want, c));

    const back = decodeModel(await readFile(modelPath));
    const loads: string[] = [];
    let file: Uint8Array | undefined;
    const n = await resolveExternalData(back, async (location) => {
      loads.push(location);
      file = await readFile(join(dir, location));
      return file;
    });
    expect(n).toBe(3);
    expect(loads).toEqual(["model.onnx_data"]);
    forEachTensor(back, (t) => {
      expect(t.dataLocation).toBe(TensorProto_DataLocation.DEFAULT);
      expect(t.externalData).toEqual([]);
      if (t.name !== "small") expect(t.rawData.buffer).toBe(file!.buffer); // a view, not a copy
    });
    const resolved = await ort.InferenceSession.create(encodeModel(back));
    for (const c of [true, false]) expect(await run(resolved, c)).toEqual(await run(want, c));
  });

  it("aligns tensor offsets", () => {
    const m = model(graph([], [], [], [f32("a", randn(3)), f32("b", randn(5))]));
    const { model: ext, data } = externalizeData(m, { location: "d.bin", sizeThreshold: 1, alignment: 16 });
    const offsets = ext.graph!.initializer.map((t) => t.externalData.find((e) => e.key === "offset")?.value);
    expect(offsets).toEqual(["0", "16"]);
    expect(data.byteLength).toBe(16 + 20);
    expect(ext.graph!.initializer[0]!.rawData.byteLength).toBe(0);
  });

  it.each([
    ["an absolute location", "/etc/passwd", "0", "4"],
    ["a location escaping the directory", "../secret.bin", "0", "4"],
    ["a range past the end of the file", "d.bin", "8", "16"],
    ["a bad offset", "d.bin", "-1", "4"],
  ])("rejects %s", async (_label, location, offset, length) => {
    const m = model(graph([], [], [], [f32("a", [1])]));
    const { model: ext } = externalizeData(m, { location: "d.bin", sizeThreshold: 1 });
    const t = ext.graph!.initializer[0]!;
    t.externalData = t.externalData.map((e) => ({ ...e, value: e.key === "location" ? location : e.key === "offset" ? offset : length }));
    const err = await resolveExternalData(ext, async () => new Uint8Array(16)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_ONNX_INVALID");
  });
});
