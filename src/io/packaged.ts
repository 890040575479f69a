/**
 * Models shipped inside the tdb-js package (`tdb:<name>`): the directory `models/<name>/` at the
 * package root, found from this module's own location, so that it works from the source tree
 * (`src/io/`), from the built package (`dist/`, its chunks and `dist/cli/`) and from an installed
 * copy in `node_modules`. Node.js and Deno.
 *
 * @module
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TdbError } from "../base/errors.js";

/** The prefix of packaged model ids: `tdb:toy-induction`. */
export const PACKAGED_PREFIX = "tdb:";

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;

/** True for ids of packaged models (`tdb:<name>`). */
export function isPackagedId(id: string): boolean {
  return typeof id === "string" && id.startsWith(PACKAGED_PREFIX);
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

let root: Promise<string | undefined> | undefined;

/** The tdb-js package root: the nearest directory above this module whose package.json is named `tdb-js`. */
function packageRoot(): Promise<string | undefined> {
  root ??= (async () => {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
      const pkg = join(dir, "package.json");
      if (await isFile(pkg)) {
        try {
          if ((JSON.parse(await readFile(pkg, "utf8")) as { name?: unknown }).name === "tdb-js") return dir;
        } catch {
          // not JSON: keep looking upwards
        }
      }
      const up = dirname(dir);
      if (up === dir) return undefined;
      dir = up;
    }
  })();
  return root;
}

/** Names of the models shipped in this package (directories of `models/` with a config.json). */
export async function packagedModelNames(): Promise<string[]> {
  const r = await packageRoot();
  if (!r) return [];
  try {
    const entries = await readdir(join(r, "models"), { withFileTypes: true });
    const names: string[] = [];
    for (const e of entries) if (e.isDirectory() && (await isFile(join(r, "models", e.name, "config.json")))) names.push(e.name);
    return names.sort();
  } catch {
    return [];
  }
}

/**
 * The directory of packaged model `tdb:<name>`. A malformed name is `E_BAD_INPUT`; a name the
 * package does not ship is `E_MISSING_FILE` listing the ones it does.
 *
 * @example
 * ```ts
 * const dir = await packagedModelDir("tdb:toy-induction"); // .../tdb-js/models/toy-induction
 * ```
 */
export async function packagedModelDir(id: string): Promise<string> {
  const name = id.slice(PACKAGED_PREFIX.length);
  if (!isPackagedId(id) || !NAME_RE.test(name)) {
    throw new TdbError("E_BAD_INPUT", `${JSON.stringify(id)} is not a packaged model id: expected tdb:<name> (lower-case letters, digits, ., _, -)`, {
      value: id,
      allowed: (await packagedModelNames()).map((n) => PACKAGED_PREFIX + n),
    });
  }
  const r = await packageRoot();
  const dir = r ? join(r, "models", name) : undefined;
  if (!dir || !(await isFile(join(dir, "config.json")))) {
    const have = (await packagedModelNames()).map((n) => PACKAGED_PREFIX + n);
    throw new TdbError("E_MISSING_FILE", `tdb-js ships no model ${id}${r ? ` (looked in ${join(r, "models")})` : " (the tdb-js package root was not found)"}; shipped: ${have.join(", ") || "none"}`, {
      value: id,
      allowed: have,
    });
  }
  return dir;
}
