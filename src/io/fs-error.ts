/**
 * File-system failures as typed errors: one code (`E_FILE_SYSTEM`), the errno and the path the
 * user gave. Shared by the Node file adapters (directories, the hub cache, corpora).
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

const ERRNO_TEXT: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory, expected a file",
  ENOTDIR: "is not a directory (or a path component is a file)",
  ELOOP: "too many levels of symbolic links (a symlink loop)",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EEXIST: "already exists",
  EMFILE: "too many open files",
};

/**
 * A Node `fs` failure on `path` (the path as the user gave it, joined with the file tdb-js
 * wanted) as `E_FILE_SYSTEM`: `value` is `{ path, errno }` (`errno` the error's `code`, e.g.
 * `EACCES`, `EISDIR`, `ELOOP`; `"EUNKNOWN"` when it has none), `cause` the original error.
 *
 * @example
 * ```ts
 * try { await readFile(p) } catch (e) { throw fileSystemError(e, p, "read") }
 * ```
 */
export function fileSystemError(cause: unknown, path: string, action: string): TdbError {
  const errno = (cause as { code?: unknown } | null)?.code;
  const code = typeof errno === "string" ? errno : "EUNKNOWN";
  const why = ERRNO_TEXT[code] ?? (cause instanceof Error ? cause.message : String(cause));
  return new TdbError("E_FILE_SYSTEM", `cannot ${action} ${path}: ${why} (${code})`, {
    value: { path, errno: code },
    allowed: "a readable file or directory (and a writable one for caches)",
    cause,
  });
}
