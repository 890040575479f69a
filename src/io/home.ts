/**
 * Where tdb-js keeps what it generates or downloads (Node.js and Deno).
 *
 * @module
 */
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * tdb-js's cache root: `$TDB_HOME`, else `~/.cache/tdb-js`. An empty (or blank) `TDB_HOME`
 * counts as unset, so that `TDB_HOME=` never makes tdb-js write into the current directory.
 */
export function tdbHome(): string {
  const env = process.env.TDB_HOME;
  return env !== undefined && env.trim() !== "" ? env : join(homedir(), ".cache", "tdb-js");
}
