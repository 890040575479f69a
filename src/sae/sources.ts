/**
 * SAE sources as users write them on the command line and in `tdb check` specs: a directory in
 * SAELens's layout, `tdb:<model>/<hook>` (an SAE shipped with a packaged model), a hub id, or a
 * hub id followed by the folder holding the SAE (`owner/repo/blocks.8.hook_resid_pre`, as
 * SAELens's hub repositories keep one SAE per folder).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { Sae } from "./sae.js";
import { loadSae, type LoadSaeOptions } from "./saelens.js";

/** A hub id with a folder after it: `owner/repo/sub/folder`. */
const HUB_FOLDER_RE = /^([A-Za-z0-9][\w.-]*\/[\w.-]+)\/(.+)$/;

/**
 * Loads the SAE a user named by `source` (see the module overview). A source that is neither a
 * directory, `tdb:<model>/<hook>` nor a hub id is `E_MISSING_FILE` (from `loadSae`); an empty one
 * is `E_BAD_INPUT`. `owner/repo/folder` is tried as a directory first, then as the folder
 * `folder` of the hub repository `owner/repo`.
 *
 * @example
 * ```ts
 * await loadSaeSource("tdb:brown-small/blocks.2.hook_mlp_out");
 * await loadSaeSource("./saes/blocks.1.hook_mlp_out");
 * await loadSaeSource("jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre");
 * ```
 */
export async function loadSaeSource(source: string, options: LoadSaeOptions = {}): Promise<Sae> {
  if (typeof source !== "string" || source.trim() === "") {
    throw new TdbError("E_BAD_INPUT", "an SAE source must be a non-empty string", {
      value: source,
      allowed: "a directory, tdb:<model>/<hook>, a hub id, or a hub id followed by a folder",
    });
  }
  try {
    return await loadSae(source, options);
  } catch (e) {
    const m = HUB_FOLDER_RE.exec(source);
    // Not a directory, not an owner/name id: `owner/repo/folder` names a folder of a hub repository.
    const notFound = e instanceof TdbError && e.code === "E_MISSING_FILE" && e.value === source;
    if (!notFound || !m || source.startsWith("tdb:") || options.subfolder !== undefined) throw e;
    return loadSae(m[1]!, { ...options, subfolder: m[2]! });
  }
}
