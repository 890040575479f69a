/**
 * The browser side of the browser test: bundled with esbuild for the browser (the package's
 * browser entry), it runs the scenario on the served model twice (from URLs, and from `File`s)
 * and leaves the results on `window.__tdb` (or the error on `window.__tdbError`).
 */
import * as api from "../../src/browser.js";
import { runScenario, type ScenarioResult } from "./scenario.js";

/** Where the page leaves its results for the test. */
export interface PageGlobals {
  /** Results from URLs and from `File`s (WebAssembly), and on WebGPU when the browser has an adapter. */
  __tdb?: { url: ScenarioResult; files: ScenarioResult; webgpu?: ScenarioResult; webgpuAdapter: string };
  __tdbError?: string;
}
const g = globalThis as unknown as PageGlobals;

const MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"];

async function main(): Promise<void> {
  api.ortEnv.wasm.numThreads = 1;
  const t0 = performance.now();
  const url = await runScenario(api, "/model/");
  console.log(`scenario from URLs: ${Math.round(performance.now() - t0)} ms`);
  const picked = await Promise.all(
    MODEL_FILES.map(async (p) => new File([new Uint8Array(await (await fetch(`/model/${p}`)).arrayBuffer())], p.slice(p.lastIndexOf("/") + 1))),
  );
  const files = await runScenario(api, "picked", api.fileListFiles(picked));
  const page = globalThis as unknown as { location: { href: string }; navigator: { gpu?: { requestAdapter(): Promise<{ info?: { architecture?: string } } | null> } } };
  const gpu = page.navigator.gpu;
  const query = new URL(page.location.href).searchParams;
  const adapter = gpu && !query.has("no-webgpu") ? await gpu.requestAdapter() : null;
  // A software adapter compiles every kernel slowly: the full scenario on WebGPU only when asked.
  const full = query.has("webgpu-full");
  const t1 = performance.now();
  const webgpu = adapter ? await runScenario(api, "/model/", undefined, "webgpu", !full) : undefined;
  console.log(`scenario on WebGPU (${full ? "full" : "trace only"}): ${Math.round(performance.now() - t1)} ms`);
  g.__tdb = { url, files, webgpu, webgpuAdapter: adapter ? (adapter.info?.architecture ?? "yes") : query.has("no-webgpu") ? "not asked for" : "none" };
}

main().catch((e: unknown) => {
  g.__tdbError = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e);
});
