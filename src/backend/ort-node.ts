/**
 * onnxruntime-node as tdb-js's onnxruntime (native CPU sessions). The Node entry (`tdb-js` under
 * Node and Deno) registers it; nothing reachable from the browser entry imports this file.
 *
 * @module
 */
import { freemem } from "node:os";
import type { OrtBackend } from "./ort.js";

/** onnxruntime-node, as an {@link OrtBackend}: the native addon loads with the first session. */
export const nodeOrt: OrtBackend = {
  name: "onnxruntime-node",
  devices: ["cpu"],
  load: () => import("onnxruntime-node"),
  weightStore: () => import("./weight-store.js"),
  availableMemory: () => {
    // A cgroup limit (containers) can be far below the machine's free memory; Node reports
    // "no limit" as a huge number.
    const limit = process.constrainedMemory?.() ?? 0;
    const inGroup = limit > 0 && limit < 2 ** 52 ? Math.max(0, limit - process.memoryUsage.rss()) : Infinity;
    return Math.min(freemem(), inGroup);
  },
};

