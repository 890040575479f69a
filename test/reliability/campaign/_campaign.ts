/**
 * The bad-input campaign's machinery: a case is one call with bad (or boundary) input and the
 * outcome it must have; running it classifies what really happened, in the campaign's outcome
 * classes, and the table of outcomes is printed at the end of the file's run.
 *
 * Outcome classes (the issue's): `typed` (a TdbError with a stable code, the offending `value` and
 * what is `allowed`), `fine` (a defined result, checked), and the failures: `untyped` (any other
 * error), `incomplete` (a TdbError without value or allowed), `wrong-code`, `silent` (a result
 * where an error was due, or a result that fails its check), `hang` (no answer in time), `crash`
 * (a CLI process killed or exiting outside its documented codes).
 */
import { expect } from "vitest";
import { TdbError, type TdbErrorCode } from "../../../src/base/errors.js";

/** What a case must do. */
export type Expectation =
  | { kind: "typed"; codes: readonly TdbErrorCode[]; noAllowed?: boolean }
  | { kind: "fine"; check: (result: unknown) => void };

/** One campaign case. */
export interface Case {
  /** Entry point, e.g. `trace`, `Model.load`, `cli trace`. */
  entry: string;
  /** What is bad about the input. */
  what: string;
  run: () => unknown;
  expect: Expectation;
}

/** The outcome classes. */
export type Outcome = "typed" | "fine" | "untyped" | "incomplete" | "wrong-code" | "silent" | "hang" | "crash";

/** Outcomes recorded by {@link runCase}, for the summary. */
export const outcomes: { entry: string; what: string; outcome: Outcome; detail: string }[] = [];

/** Seconds a case may take before it counts as a hang. */
export const HANG_SECONDS = 20;

/** A typed-error expectation: one of `codes`. `noAllowed`: the code has no "allowed" to give. */
export function typed(...codes: TdbErrorCode[]): Expectation {
  return { kind: "typed", codes };
}

/** A typed-error expectation for codes where no allowed value exists (e.g. E_DISPOSED). */
export function typedNoAllowed(...codes: TdbErrorCode[]): Expectation {
  return { kind: "typed", codes, noAllowed: true };
}

/** A defined-result expectation, with the check the result must pass. */
export function fine(check: (result: unknown) => void): Expectation {
  return { kind: "fine", check };
}

/** Runs `c`, classifies its outcome, records it and fails the test unless it is typed or fine. */
export async function runCase(c: Case): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<"hang">((done) => {
    timer = setTimeout(() => done("hang"), HANG_SECONDS * 1000);
  });
  let result: unknown;
  let error: unknown;
  let hung = false;
  try {
    const r = await Promise.race([Promise.resolve().then(c.run), hang]);
    if (r === "hang") hung = true;
    else result = r;
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  const { outcome, detail } = hung ? { outcome: "hang" as const, detail: `no answer in ${HANG_SECONDS} s` } : classify(c.expect, result, error);
  outcomes.push({ entry: c.entry, what: c.what, outcome, detail });
  expect(outcome === "typed" || outcome === "fine", `${c.entry} (${c.what}): ${outcome}: ${detail}`).toBe(true);
}

function classify(e: Expectation, result: unknown, error: unknown): { outcome: Outcome; detail: string } {
  if (error !== undefined && !(error instanceof TdbError)) return { outcome: "untyped", detail: String((error as Error)?.stack ?? error).slice(0, 400) };
  if (e.kind === "typed") {
    if (!(error instanceof TdbError)) return { outcome: "silent", detail: `returned ${show(result)} where ${e.codes.join("|")} was due` };
    if (!e.codes.includes(error.code)) return { outcome: "wrong-code", detail: `${error.code} (${error.message}); expected ${e.codes.join("|")}` };
    return completeness(error, e.noAllowed ?? false);
  }
  if (error instanceof TdbError) return { outcome: "wrong-code", detail: `threw ${error.code}: ${error.message}; a result was due` };
  try {
    e.check(result);
  } catch (x) {
    return { outcome: "silent", detail: `result failed its check: ${(x as Error).message}` };
  }
  return { outcome: "fine", detail: "" };
}

/** A typed error must carry the offending value and (unless there is none) what is allowed. */
export function completeness(error: TdbError, noAllowed: boolean): { outcome: Outcome; detail: string } {
  const missing = [error.value === undefined ? "value" : "", !noAllowed && error.allowed === undefined ? "allowed" : ""].filter(Boolean);
  if (missing.length) return { outcome: "incomplete", detail: `${error.code} lacks ${missing.join(" and ")}: ${error.message}` };
  if (!error.message || !error.message.trim()) return { outcome: "incomplete", detail: `${error.code} has no message` };
  return { outcome: "typed", detail: error.code };
}

function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.slice(0, 120);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/** The outcome table: counts by outcome, and by entry point. */
export function summary(title: string): string {
  const by = new Map<Outcome, number>();
  for (const o of outcomes) by.set(o.outcome, (by.get(o.outcome) ?? 0) + 1);
  const entries = new Map<string, number>();
  for (const o of outcomes) entries.set(o.entry, (entries.get(o.entry) ?? 0) + 1);
  const lines = [
    `${title}: ${outcomes.length} cases`,
    ...[...by].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${k.padEnd(11)} ${n}`),
    `  entry points: ${[...entries].map(([k, n]) => `${k} ${n}`).join(", ")}`,
    ...outcomes.filter((o) => o.outcome !== "typed" && o.outcome !== "fine").map((o) => `  FAIL ${o.entry} (${o.what}): ${o.outcome}: ${o.detail}`),
  ];
  return lines.join("\n");
}
