/**
 * Hub loading without a network: a fake hub (fetch serving a generated model directory) checks
 * the URL layout, the disk cache and the offline path; an unreachable host fails fast.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { hubFiles } from "../../src/io/hub.js";
import { Model } from "../../src/model/model.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";

let tm: TestModel;
let cache: string;
beforeAll(async () => {
  tm = await makeTestModel();
  cache = await mkdtemp(join(tmpdir(), "tdb-hub-"));
});
afterAll(async () => {
  await tm?.cleanup();
  await rm(cache, { recursive: true, force: true });
});

describe("hub ids", () => {
  it("downloads through the transformers.js URL layout, caches, then works offline", async () => {
    const urls: string[] = [];
    const fakeHub = async (url: string): Promise<Response> => {
      urls.push(url);
      const m = /^https:\/\/huggingface\.co\/acme\/tiny-gpt2\/resolve\/main\/(.+)$/.exec(url);
      if (!m) return new Response("no", { status: 404 });
      try {
        return new Response(await readFile(join(tm.dir, m[1]!)));
      } catch {
        return new Response("missing", { status: 404 });
      }
    };
    const online = await Model.load("acme/tiny-gpt2", { cacheDir: cache, hub: { fetch: fakeHub } });
    const a = await online.trace("Hello there", { hooks: [] });
    await online.dispose();
    expect(urls).toContain("https://huggingface.co/acme/tiny-gpt2/resolve/main/onnx/model.onnx");
    expect(urls).toContain("https://huggingface.co/acme/tiny-gpt2/resolve/main/tokenizer.json");

    const offline = async (): Promise<Response> => {
      throw new TypeError("fetch failed");
    };
    const cached = await Model.load("acme/tiny-gpt2", { cacheDir: cache, hub: { fetch: offline } });
    const b = await cached.trace("Hello there", { hooks: [] });
    await cached.dispose();
    expect(Array.from(b.logits.data)).toEqual(Array.from(a.logits.data));
  });

  it("offline with nothing cached: E_OFFLINE naming the model, no hang", async () => {
    const offline = async (): Promise<Response> => {
      throw new TypeError("getaddrinfo ENOTFOUND huggingface.co");
    };
    const err = await Model.load("acme/other-model", { cacheDir: cache, hub: { fetch: offline } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_OFFLINE");
    expect((err as TdbError).message).toMatch(/acme\/other-model.*local model directory/);
  });

  it("a host that never answers fails within the timeout", async () => {
    const hang = (_url: string, init?: RequestInit): Promise<Response> =>
      new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason as Error)));
    const files = hubFiles("acme/x", { cacheDir: cache, timeoutMs: 300, fetch: hang });
    const t0 = Date.now();
    const err = await files.read("config.json").catch((e: unknown) => e);
    expect((err as TdbError).code).toBe("E_OFFLINE");
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
