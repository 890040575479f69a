/**
 * onnxruntime-web as tdb-js's onnxruntime (in browsers and workers). The browser entry
 * registers it. Device `cpu` runs on its WebAssembly build (`onnxruntime-web/wasm`, a 14 MB
 * `.wasm`); device `webgpu` loads its WebGPU build (`onnxruntime-web/webgpu`) on first use.
 *
 * onnxruntime-web fetches its `.wasm` file next to the script that imported it, unless
 * `ortEnv.wasm.wasmPaths` says where (a CDN or a path your server serves
 * `onnxruntime-web/dist/*.wasm` from).
 *
 * @module
 */
import * as ort from "onnxruntime-web/wasm";
import type { OrtBackend, OrtModule } from "./ort.js";

let webgpu: Promise<OrtModule> | undefined;

/** The WebGPU build, with {@link ortEnv}'s WebAssembly settings copied over (it has its own `env`). */
function loadWebGpu(): Promise<OrtModule> {
  webgpu ??= import("onnxruntime-web/webgpu").then((gpu) => {
    gpu.env.wasm.wasmPaths = ort.env.wasm.wasmPaths;
    gpu.env.wasm.numThreads = ort.env.wasm.numThreads;
    gpu.env.logLevel = ort.env.logLevel;
    return gpu;
  });
  return webgpu;
}

/** onnxruntime-web, as an {@link OrtBackend}. */
export const webOrt: OrtBackend = {
  name: "onnxruntime-web",
  devices: ["cpu", "webgpu"],
  load: async (device) => (device === "webgpu" ? loadWebGpu() : ort),
};

/**
 * onnxruntime-web's settings (`wasm.wasmPaths`, `wasm.numThreads`, `logLevel`, ...); set them
 * before the first `Model.load`.
 *
 * @example
 * ```ts
 * import { ortEnv } from "tdb-js";
 * ortEnv.wasm.wasmPaths = "/assets/ort/"; // where ort-wasm-simd-threaded.{mjs,wasm} are served
 * ```
 */
export const ortEnv: typeof ort.env = ort.env;

