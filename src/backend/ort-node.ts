/**
 * onnxruntime-node as tdb-js's onnxruntime (native CPU sessions). The Node entry (`tdb-js` under
 * Node and Deno) registers it; nothing reachable from the browser entry imports this file.
 *
 * @module
 */
import type { OrtBackend } from "./ort.js";

/** onnxruntime-node, as an {@link OrtBackend}: the native addon loads with the first session. */
export const nodeOrt: OrtBackend = {
  name: "onnxruntime-node",
  devices: ["cpu"],
  load: () => import("onnxruntime-node"),
  weightStore: () => import("./weight-store.js"),
};

