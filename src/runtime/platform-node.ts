/**
 * The Node.js (and Deno) platform: onnxruntime-node for sessions, directories and the
 * disk-cached hub for `Model.load`. Every Node entry point installs it; nothing reachable from
 * the browser entry imports this file.
 *
 * @module
 */
import { registeredDefaultFiles, setDefaultFiles } from "../io/files.js";
import { nodeDefaultFiles } from "../io/node-files.js";
import { registeredOrtBackend, setOrtBackend } from "../backend/ort.js";
import { nodeOrt } from "../backend/ort-node.js";

/**
 * Makes onnxruntime-node and the Node file adapter the defaults; with `override` false, only
 * where none is registered yet.
 */
export function useNodePlatform(override = true): void {
  if (override || !registeredOrtBackend()) setOrtBackend(nodeOrt);
  if (override || !registeredDefaultFiles()) setDefaultFiles(nodeDefaultFiles);
}
