/**
 * Catching the TdbError a call must throw, for bad-input tests: the test fails if nothing is
 * thrown or if what is thrown is not a TdbError.
 */
import { expect } from "vitest";
import { TdbError } from "../../src/base/errors.js";

/** The TdbError `f()` throws. */
export function thrown(f: () => unknown): TdbError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a TdbError").toBeInstanceOf(TdbError);
  return err as TdbError;
}

/** The TdbError `p` rejects with. */
export async function rejected(p: Promise<unknown>): Promise<TdbError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, "expected a TdbError").toBeInstanceOf(TdbError);
  return err as TdbError;
}
