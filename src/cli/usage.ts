/**
 * Usage errors of the `tdb` command line: bad commands, flags and flag values. They exit 2
 * (typed tdb-js errors exit 1), and print the usage text.
 *
 * @module
 */

/** A usage error: an unknown command or flag, a flag the command does not take, a malformed or missing value. */
export class UsageError extends Error {
  /** Stable code of every usage error, as printed with `--json`. */
  readonly code = "E_USAGE";
  /** The offending argument, when there is one. */
  readonly value: unknown;

  /** `value` is the offending argument, if any. */
  constructor(message: string, value?: unknown) {
    super(message);
    this.name = "UsageError";
    this.value = value;
  }

  /** The JSON form printed with `--json`. */
  toJSON(): { name: string; code: "E_USAGE"; message: string; value?: unknown } {
    return { name: this.name, code: this.code, message: this.message, value: this.value };
  }
}
