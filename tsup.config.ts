import { defineConfig } from "tsup";

// ESM first; CJS for require() users. onnx-buf ships ESM only, so it is bundled into the CJS build.
/** The package's entry points (package.json `exports`): the root API and one per lower layer. */
const ENTRIES = {
  index: "src/index.ts",
  onnx: "src/onnx/index.ts",
  hooks: "src/hooks/index.ts",
  autodiff: "src/autodiff/index.ts",
  synthetic: "src/synthetic/index.ts",
  internals: "src/internals.ts",
};

export default defineConfig([
  {
    entry: { ...ENTRIES, "cli/main": "src/cli/main.ts" },
    format: ["esm", "cjs"],
    // The browser entry's types come from this run too (one TypeScript program for all entries).
    dts: { entry: { ...ENTRIES, "browser/index": "src/browser.ts" } },
    sourcemap: true,
    clean: true,
    target: "node20",
    splitting: true,
    noExternal: ["onnx-buf"],
    // import.meta.url (the CLI version) in the CJS build.
    shims: true,
    // Every Node output installs the Node platform (onnxruntime-node, directories, the disk-cached
    // hub) before anything else runs, whichever entry point was imported.
    inject: ["src/runtime/install-node.ts"],
  },
  {
    // The browser entry (package.json `exports` condition "browser", and `tdb-js/browser`):
    // onnxruntime-web, no Node modules. Dependencies stay external, for the app's bundler.
    entry: { index: "src/browser.ts" },
    outDir: "dist/browser",
    format: ["esm"],
    platform: "browser",
    dts: false,
    sourcemap: true,
    // dist was emptied by the Node build, which starts at the same time.
    clean: false,
    target: "es2022",
    splitting: true,
  },
]);
