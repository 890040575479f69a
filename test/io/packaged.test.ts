/**
 * Packaged models (`tdb:<name>`): resolved to models/<name>/ at the package root (found from the
 * module's location, here the source tree), with typed errors for malformed and unknown names.
 */
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { isPackagedId, packagedModelDir, packagedModelNames } from "../../src/io/packaged.js";
import { nodeDefaultFiles } from "../../src/io/node-files.js";
import { rejected } from "../helpers/errors.js";

const ROOT = resolve(import.meta.dirname, "../..");

describe("packaged models", () => {
  it("tdb:<name> is models/<name>/ at the package root", async () => {
    expect(await packagedModelDir("tdb:toy-induction")).toBe(join(ROOT, "models", "toy-induction"));
    expect(await packagedModelNames()).toContain("toy-induction");
    expect((await stat(join(ROOT, "models", "toy-induction", "onnx", "model.onnx"))).isFile()).toBe(true);
    expect(isPackagedId("tdb:x")).toBe(true);
    expect(isPackagedId("gpt2/tdb:x")).toBe(false);
  });

  it("the Node default adapter reads its files", async () => {
    const files = await nodeDefaultFiles("tdb:toy-induction");
    expect(files.origin).toBe(join(ROOT, "models", "toy-induction"));
    const cfg = JSON.parse(new TextDecoder().decode((await files.read("config.json"))!)) as Record<string, unknown>;
    expect(cfg.model_type).toBe("gpt2");
  });

  it("a malformed name is E_BAD_INPUT, an unknown one E_MISSING_FILE listing the shipped models", async () => {
    for (const bad of ["tdb:", "tdb:../models", "tdb:Toy Induction"]) {
      const e = await rejected(packagedModelDir(bad));
      expect(e.code, bad).toBe("E_BAD_INPUT");
    }
    const e = await rejected(nodeDefaultFiles("tdb:nope"));
    expect(e.code).toBe("E_MISSING_FILE");
    expect(e.allowed).toContain("tdb:toy-induction");
    expect(e.message).toMatch(/ships no model tdb:nope/);
  });
});
