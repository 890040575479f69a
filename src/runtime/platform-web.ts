/**
 * The browser platform: onnxruntime-web (WebAssembly) for sessions, URLs and the hub over
 * `fetch` for `Model.load`. The browser entry installs it.
 *
 * @module
 */
import { setDefaultFiles } from "../io/files.js";
import { webDefaultFiles } from "../io/web-files.js";
import { setOrtBackend } from "../backend/ort.js";
import { webOrt } from "../backend/ort-web.js";

/** Makes onnxruntime-web and the URL/hub file adapter the defaults. */
export function useWebPlatform(): void {
  setOrtBackend(webOrt);
  setDefaultFiles(webDefaultFiles);
}
