/**
 * Where tdb-js keeps what it generates or downloads (Node.js and Deno).
 *
 * @module
 */
import { homedir } from "node:os";
import { join } from "node:path";

/** tdb-js's cache root: `$TDB_HOME`, else `~/.cache/tdb-js`. */
export function tdbHome(): string {
  return process.env.TDB_HOME ?? join(homedir(), ".cache", "tdb-js");
}
