import { defineConfig } from "tsup";

// ESM first; CJS for require() users. onnx-buf ships ESM only, so it is bundled into the CJS build.
export default defineConfig({
  entry: { index: "src/index.ts", "cli/main": "src/cli/main.ts" },
  format: ["esm", "cjs"],
  dts: { entry: { index: "src/index.ts" } },
  sourcemap: true,
  clean: true,
  target: "node20",
  splitting: true,
  noExternal: ["onnx-buf"],
  // import.meta.url (createRequire in the fixture tokenizer, the CLI version) in the CJS build.
  shims: true,
});
