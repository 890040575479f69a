/**
 * The platform file adapters without a browser: which URL the browser adapter fetches for hub
 * ids and URLs, picked `File`s by relative path or name, the Node adapter's choice between a
 * directory and a hub id, and the errors for what is neither.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { nodeDefaultFiles } from "../../src/io/node-files.js";
import { fileListFiles, webDefaultFiles } from "../../src/io/web-files.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tdb-files-"));
  await writeFile(join(dir, "config.json"), "{}");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fetch that records URLs and serves `body` for them. */
function recorder(body = "ok") {
  const urls: string[] = [];
  const fetch = async (url: string) => {
    urls.push(url);
    return url.endsWith("/missing.json") ? new Response("no", { status: 404 }) : new Response(body);
  };
  return { urls, fetch };
}

const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe("browser adapter", () => {
  it("fetches hub ids from the hub and URLs from themselves", async () => {
    const r = recorder("{}");
    const hub = await webDefaultFiles("acme/tiny-gpt2", { revision: "v2", hub: { fetch: r.fetch } });
    expect(hub.origin).toBe("hub:acme/tiny-gpt2@v2");
    expect(text(await hub.read("onnx/model.onnx"))).toBe("{}");
    const url = await webDefaultFiles("https://models.example/gpt2", { hub: { fetch: r.fetch } });
    await url.read("config.json");
    expect(await url.read("missing.json")).toBeNull();
    expect(r.urls).toEqual([
      "https://huggingface.co/acme/tiny-gpt2/resolve/v2/onnx/model.onnx",
      "https://models.example/gpt2/config.json",
      "https://models.example/gpt2/missing.json",
    ]);
  });

  it("rejects what is neither a URL nor a hub id, and page-relative URLs without a page", async () => {
    for (const bad of ["not a model", "./models/x/"]) {
      const err = await webDefaultFiles(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TdbError);
      expect((err as TdbError).code).toBe("E_MISSING_FILE");
      expect((err as TdbError).value).toBe(bad);
    }
  });

  it("reads picked files by path under the picked folder, or by name", async () => {
    const file = (name: string, body: string, rel = "") => ({ name, webkitRelativePath: rel, arrayBuffer: async () => new TextEncoder().encode(body).buffer });
    const folder = fileListFiles([file("model.onnx", "A", "gpt2/onnx/model.onnx"), file("config.json", "B", "gpt2/config.json")]);
    expect(text(await folder.read("onnx/model.onnx"))).toBe("A");
    expect(text(await folder.read("config.json"))).toBe("B");
    const loose = fileListFiles([file("model.onnx", "C"), file("tokenizer.json", "D")]);
    expect(text(await loose.read("onnx/model.onnx"))).toBe("C");
    expect(text(await loose.read("tokenizer.json"))).toBe("D");
    expect(await loose.read("config.json")).toBeNull();
  });
});

describe("Node adapter", () => {
  it("reads an existing directory, sends hub ids to the hub, rejects the rest", async () => {
    const local = await nodeDefaultFiles(dir);
    expect(local.origin).toBe(dir);
    expect(text(await local.read("config.json"))).toBe("{}");
    expect(await local.read("nope/config.json")).toBeNull();
    const r = recorder("{}");
    const hub = await nodeDefaultFiles("acme/other", { cacheDir: join(dir, "cache"), hub: { fetch: r.fetch } });
    expect(text(await hub.read("config.json"))).toBe("{}");
    expect(text(await hub.read("config.json"))).toBe("{}"); // second read from the disk cache
    expect(r.urls).toEqual(["https://huggingface.co/acme/other/resolve/main/config.json"]);
    const err = await nodeDefaultFiles(join(dir, "does-not-exist")).catch((e: unknown) => e);
    expect((err as TdbError).code).toBe("E_MISSING_FILE");
  });
});
