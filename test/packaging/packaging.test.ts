/**
 * The published package as a consumer sees it: `npm pack` the package (building dist first when
 * it is missing or older than the sources), install the tarball into an empty project (from the
 * npm cache when possible, onnxruntime-node's download skipped), and type-check consumer code
 * against the published types without `skipLibCheck`: a Node consumer (ESM and CJS, root and a
 * subpath export) and a browser consumer (`browser` condition, DOM types, no Node types). Then
 * run the Node consumer's JavaScript once.
 */
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Newest modification time (ms) under `p`. */
async function newest(p: string): Promise<number> {
  const s = await stat(p);
  if (!s.isDirectory()) return s.mtimeMs;
  let m = 0;
  for (const e of await readdir(p)) m = Math.max(m, await newest(join(p, e)));
  return m;
}

async function mtime(p: string): Promise<number> {
  try {
    return (await stat(p)).mtimeMs;
  } catch {
    return 0;
  }
}

/** Runs a command and returns its standard output; on failure the error carries all its output. */
async function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const r = await run(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
    return r.stdout;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}:\n${x.stdout ?? ""}${x.stderr ?? ""}\n${x.message}`);
  }
}

const NODE_CONSUMER = `import { Model, ensureDefaultModel, zeroHead, TdbError, type Activation, type InterventionResult, type NodeTable, type Trace } from "tdb-js";
import type { ModelRuntime } from "tdb-js/internals";

export async function demo(): Promise<{ dims: readonly number[]; first: number; kl: number; loss: number; top: string }> {
  const model: Model = await Model.load(await ensureDefaultModel());
  const t: Trace = await model.trace("The quick brown fox");
  const pattern: Activation = t.cache.get("pattern", 0);
  const nd = pattern.nd(); // ndarray's types reach consumers
  const r: InterventionResult = await model.intervene("The quick brown fox", [zeroHead(0, 1)]);
  const table: NodeTable = await model.attribute("The quick brown fox", { target: " jumps", distractor: " the", topK: 3 });
  await model.dispose();
  return { dims: t.logits.dims, first: nd.get(0, 0, 0, 0), kl: r.kl()[0]!, loss: table.loss, top: t.topK(1)[0]!.str };
}

export function isTdbError(e: unknown): e is TdbError {
  return e instanceof TdbError;
}

export type Runtime = ModelRuntime;
`;

const CJS_CONSUMER = `import tdb = require("tdb-js");
export type Trace = import("tdb-js").Trace;
export const load: typeof tdb.Model.load = (dir, opts) => tdb.Model.load(dir, opts);
`;

const WEB_CONSUMER = `import { Model, fileListFiles, memoryFiles, ortEnv, urlFiles, type ModelFiles, type Trace } from "tdb-js";

ortEnv.wasm.numThreads = 1;

export async function fromPicker(input: HTMLInputElement): Promise<Trace> {
  const files: ModelFiles = input.files ? fileListFiles(input.files) : memoryFiles("empty", {});
  const model = await Model.load("picked", { files });
  return model.trace("Hello");
}

export async function fromUrl(): Promise<number> {
  const model = await Model.load("./models/tiny-gpt2/", { files: urlFiles(new URL("./models/tiny-gpt2/", location.href).href) });
  return (await model.trace("Hello")).logits.dims[2]!;
}
`;

const NODE_TSCONFIG = {
  compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], lib: ["ES2023"] },
  files: ["src/node.ts", "src/cjs.cts"],
};

const WEB_TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "ESNext",
    moduleResolution: "Bundler",
    customConditions: ["browser"],
    strict: true,
    noEmit: true,
    types: [],
    lib: ["ES2023", "DOM", "DOM.Iterable"],
  },
  files: ["web/app.ts"],
};

describe("the packed package", () => {
  let work: string;
  let consumer: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "tdb-pack-"));
    const sources = Math.max(await newest(join(root, "src")), await mtime(join(root, "package.json")), await mtime(join(root, "tsup.config.ts")));
    const built = Math.min(await mtime(join(root, "dist", "index.d.ts")), await mtime(join(root, "dist", "browser", "index.js")));
    if (built < sources) await sh("npm", ["run", "build"], root);
    const packed = JSON.parse(await sh("npm", ["pack", "--json", "--pack-destination", work], root)) as { filename: string }[];
    const tarball = join(work, packed[0]!.filename);
    consumer = join(work, "consumer");
    await mkdir(join(consumer, "src"), { recursive: true });
    await mkdir(join(consumer, "web"), { recursive: true });
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }));
    const ts = JSON.parse(await readFile(join(root, "node_modules", "typescript", "package.json"), "utf8")) as { version: string };
    const nodeTypes = JSON.parse(await readFile(join(root, "node_modules", "@types", "node", "package.json"), "utf8")) as { version: string };
    await sh(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", tarball, `typescript@${ts.version}`, `@types/node@${nodeTypes.version}`],
      consumer,
      { ONNXRUNTIME_NODE_INSTALL: "skip" },
    );
    await writeFile(join(consumer, "src", "node.ts"), NODE_CONSUMER);
    await writeFile(join(consumer, "src", "cjs.cts"), CJS_CONSUMER);
    await writeFile(join(consumer, "web", "app.ts"), WEB_CONSUMER);
    await writeFile(join(consumer, "tsconfig.json"), JSON.stringify(NODE_TSCONFIG, null, 2));
    await writeFile(join(consumer, "tsconfig.web.json"), JSON.stringify(WEB_TSCONFIG, null, 2));
  }, 600_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("type-checks a Node consumer (ESM, CJS, a subpath) without skipLibCheck", async () => {
    const out = await sh(join(consumer, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], consumer).catch((e: Error) => e.message);
    expect(out).toBe("");
  });

  it("type-checks a browser consumer (browser condition, DOM, no Node types) without skipLibCheck", async () => {
    const out = await sh(join(consumer, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.web.json"], consumer).catch((e: Error) => e.message);
    expect(out).toBe("");
  });

  it("runs: the installed package loads the default model and traces", async () => {
    const home = join(work, "home");
    const script = `import("tdb-js").then(async (t) => {
      const m = await t.Model.load(await t.ensureDefaultModel());
      const tr = await m.trace("The quick brown fox");
      console.log(JSON.stringify({ dims: tr.logits.dims, hooks: tr.cache.size }));
      await m.dispose();
    });`;
    const out = await sh(process.execPath, ["--input-type=module", "-e", script], consumer, { TDB_HOME: home });
    const res = JSON.parse(out.trim().split("\n").pop()!) as { dims: number[]; hooks: number };
    expect(res.dims).toEqual([1, 5, 50257]);
    expect(res.hooks).toBeGreaterThan(10);
  });
});
