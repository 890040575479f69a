/**
 * The browser entry in a real browser: bundles the package's browser entry (esbuild, platform
 * "browser", so any Node module reachable from it fails the build), serves the bundle,
 * onnxruntime-web's wasm and a generated model from 127.0.0.1, and runs load, trace, intervene
 * and attribute in headless Chromium (playwright-core driving the system's Chromium), on
 * onnxruntime-web. The numbers must match the same calls under Node on onnxruntime-node.
 *
 * WebGPU (Chromium's software adapter where there is no GPU) is compared on a trace, within 1e-4;
 * TDB_BROWSER_WEBGPU=full runs the whole scenario on it, TDB_BROWSER_WEBGPU=0 none.
 *
 * Skipped, saying so, when no Chromium binary is found (`apt-get install chromium`, or set
 * TDB_CHROMIUM to a Chrome/Chromium executable); with TDB_REQUIRE_BROWSER set (CI), that fails.
 */
import { existsSync } from "node:fs";
import { readFile, rm, mkdtemp } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as nodeApi from "../../src/index.js";
import { makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";
import type { PageGlobals } from "./page.js";
import { runScenario, type ScenarioResult } from "./scenario.js";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function findChromium(): string | undefined {
  const candidates = [process.env.TDB_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];
  return candidates.find((p): p is string => !!p && existsSync(p));
}

const chromiumPath = findChromium();
if (!chromiumPath) {
  // CI (.ci/run) installs Chromium and sets TDB_REQUIRE_BROWSER, so that there a missing browser fails.
  if (process.env.TDB_REQUIRE_BROWSER) throw new Error("TDB_REQUIRE_BROWSER is set but no Chromium binary was found");
  console.warn("test/browser/browser.test.ts SKIPPED: no Chromium binary found (apt-get install chromium, or set TDB_CHROMIUM)");
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".map": "application/json" };

describe.skipIf(!chromiumPath)("browser entry in headless Chromium", () => {
  let tm: TestModel;
  let out: string;
  let server: Server;
  let base: string;
  let bundleInputs: string[] = [];

  beforeAll(async () => {
    tm = await makeTestModel();
    out = await mkdtemp(join(tmpdir(), "tdb-browser-"));
    const result = await build({
      entryPoints: [join(here, "page.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      outfile: join(out, "page.js"),
      metafile: true,
      logLevel: "silent",
    });
    bundleInputs = Object.keys(result.metafile.inputs);
    const ortDist = dirname(require.resolve("onnxruntime-web"));
    const routes = new Map<string, string>([
      ["/", join(out, "index.html")],
      ["/page.js", join(out, "page.js")],
    ]);
    const html = `<!doctype html><meta charset="utf-8"><title>tdb-js browser test</title><script type="module" src="/page.js"></script>`;
    server = createServer(async (req, res) => {
      const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
      if (process.env.TDB_BROWSER_LOG) console.log(`${Date.now() % 100000} GET ${path}`);
      let file: string | undefined = routes.get(path);
      if (path === "/") {
        res.writeHead(200, { "content-type": "text/html" }).end(html);
        return;
      }
      if (path === "/favicon.ico") {
        res.writeHead(204).end();
        return;
      }
      if (!file && path.startsWith("/model/")) file = join(tm.dir, normalize(path.slice("/model/".length)));
      if (!file && /^\/ort-wasm[\w.-]*\.(wasm|mjs)$/.test(path)) file = join(ortDist, path.slice(1));
      try {
        if (!file || (path.startsWith("/model/") && !file.startsWith(tm.dir))) throw new Error("not found");
        const body = await readFile(file);
        res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
      } catch {
        res.writeHead(404).end("not found");
      }
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  });

  afterAll(async () => {
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    if (out) await rm(out, { recursive: true, force: true });
    await tm?.cleanup();
  });

  it("bundles without Node modules or onnxruntime-node", () => {
    const nodeOnly = bundleInputs.filter((p) => /onnxruntime-node|(^|\/)src\/io\/(node-files|hub|home)\.ts$|synthetic\/(write|default-model)\.ts$/.test(p));
    expect(nodeOnly).toEqual([]);
    expect(bundleInputs.some((p) => p.includes("onnxruntime-web"))).toBe(true);
  });

  it("load, trace, intervene and attribute match onnxruntime-node", async () => {
    const { chromium } = await import("playwright-core");
    const t0 = Date.now();
    // WebGPU: Chromium's software adapter (SwiftShader) where no GPU is present.
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox", "--enable-unsafe-webgpu"] });
    let got: NonNullable<PageGlobals["__tdb"]>;
    try {
      const page = await browser.newPage();
      const logs: string[] = [];
      page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
      const webgpu = process.env.TDB_BROWSER_WEBGPU === "0" ? "?no-webgpu" : process.env.TDB_BROWSER_WEBGPU === "full" ? "?webgpu-full" : "";
      await page.goto(`${base}/${webgpu}`);
      await page.waitForFunction(() => (globalThis as unknown as PageGlobals).__tdb !== undefined || (globalThis as unknown as PageGlobals).__tdbError !== undefined, undefined, { timeout: 90_000 });
      const err = await page.evaluate(() => (globalThis as unknown as PageGlobals).__tdbError);
      expect(err, logs.join("\n")).toBeUndefined();
      got = (await page.evaluate(() => (globalThis as unknown as PageGlobals).__tdb))!;
      if (process.env.TDB_BROWSER_LOG) console.log(logs.join("\n"));
    } finally {
      await browser.close();
    }
    if (process.env.TDB_BROWSER_LOG) console.log(`browser part: ${Date.now() - t0} ms`);
    const want = await runScenario(nodeApi, tm.dir);
    const runs: [ScenarioResult, number][] = [
      [got.url, 1e-5],
      [got.files, 1e-5],
    ];
    // GPU kernels sum in other orders than the CPU's: a looser bound.
    if (got.webgpu) runs.push([got.webgpu, 1e-4]); // trace only, unless TDB_BROWSER_WEBGPU=full
    else console.warn(`test/browser: WebGPU not compared (adapter: ${got.webgpuAdapter})`);
    for (const [web, tol] of runs) {
      if (process.env.TDB_BROWSER_LOG && !Number.isNaN(web.loss)) {
        const att = (c: "totalEffect" | "directEffect") => maxAbsDiff(web.attribution.map((n) => n[c]), want.attribution.map((n) => n[c]));
        console.log(
          `max |web - node|: logits ${maxAbsDiff(web.logits, want.logits)}, pattern ${maxAbsDiff(web.pattern0, want.pattern0)}, ` +
            `resid ${maxAbsDiff(web.residLast, want.residLast)}, ablated ${maxAbsDiff(web.ablatedLogits, want.ablatedLogits)}, ` +
            `total effect ${att("totalEffect")}, direct effect ${att("directEffect")}, loss ${Math.abs(web.loss - want.loss)}`,
        );
      }
      expect(web.nLayer).toBe(want.nLayer);
      expect(web.hookCount).toBe(want.hookCount);
      expect(web.tokens).toEqual(want.tokens);
      expect(maxAbsDiff(web.logits, want.logits)).toBeLessThan(tol);
      expect(maxAbsDiff(web.pattern0, want.pattern0)).toBeLessThan(tol / 10);
      expect(maxAbsDiff(web.residLast, want.residLast)).toBeLessThan(tol);
      if (Number.isNaN(web.loss)) {
        // a trace-only run
        if (process.env.TDB_BROWSER_LOG) console.log(`max |webgpu - node|: logits ${maxAbsDiff(web.logits, want.logits)}, resid ${maxAbsDiff(web.residLast, want.residLast)}`);
        continue;
      }
      expect(maxAbsDiff(web.ablatedLogits, want.ablatedLogits)).toBeLessThan(tol);
      // The ablation changes the logits: the comparison above is not trivially clean vs clean.
      expect(maxAbsDiff(want.ablatedLogits, want.logits)).toBeGreaterThan(1e-3);
      expect(Math.abs(web.logitDiffChange - want.logitDiffChange)).toBeLessThan(tol);
      expect(Math.abs(web.loss - want.loss)).toBeLessThan(tol);
      expect(web.attribution.map((n) => n.id)).toEqual(want.attribution.map((n) => n.id));
      const cols = ["activation", "writeMagnitude", "directEffect", "totalEffect"] as const;
      for (const c of cols) expect(maxAbsDiff(web.attribution.map((n) => n[c]), want.attribution.map((n) => n[c]))).toBeLessThan(tol);
    }
    expect(got.url.origin).toBe("/model/");
  });
});
