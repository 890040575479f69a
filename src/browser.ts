/**
 * tdb-js in the browser: the same API as the Node entry, running on onnxruntime-web
 * (WebAssembly). Bundlers pick this entry for `import ... from "tdb-js"` through the `browser`
 * export condition (Vite, webpack, esbuild with `platform: "browser"`, Rollup's node-resolve
 * with `browser: true`); `tdb-js/browser` names it explicitly.
 *
 * ```ts
 * import { Model } from "tdb-js";
 * // a URL (absolute, or ./ and / relative to the page), a hub id, or files in hand:
 * const model = await Model.load("./models/tiny-gpt2/");
 * const t = await model.trace("The quick brown fox");
 * t.topK(5);
 * ```
 *
 * Model files come from URLs ({@link urlFiles}), the Hugging Face hub (ids `owner/name`),
 * `File`s a user picked ({@link fileListFiles}) or memory ({@link memoryFiles}), passed as
 * `Model.load(name, { files })`. onnxruntime-web loads its `.wasm` from next to the bundle
 * unless {@link ortEnv}`.wasm.wasmPaths` says where.
 *
 * @module
 */
import { useWebPlatform } from "./runtime/platform-web.js";

useWebPlatform();

export * from "./api.js";

// Browser only: picked files, onnxruntime-web's settings
export { fileListFiles, type FileLike } from "./io/web-files.js";
export { ortEnv } from "./backend/ort-web.js";
