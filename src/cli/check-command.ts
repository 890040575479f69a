/**
 * `tdb check <spec>`: runs a spec of interpretability assertions on a model and exits 0 when
 * every assertion holds, 1 when any fails (or cannot be evaluated), 2 when the spec is invalid
 * or unreadable, 70 on an internal error.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** Parsed arguments of `tdb check`. */
export interface CheckCommandArgs {
  spec: string;
  model: string | undefined;
  junit: string | undefined;
  json: boolean;
}

/** Runs `tdb check`; returns the exit code. */
export async function runCheckCommand(args: CheckCommandArgs): Promise<number> {
  const { loadSpec, runCheck } = await import("../check/run.js");
  let spec;
  try {
    spec = await loadSpec(args.spec);
  } catch (e) {
    // The spec itself is wrong or unreadable: exit 2, like a usage error, before any model loads.
    if (!(e instanceof TdbError)) throw e;
    if (args.json) console.log(JSON.stringify({ error: e.toJSON() }, null, 2));
    else console.error(`tdb: ${e.code}: ${e.message}`);
    return 2;
  }
  const mark = { passed: "PASS", failed: "FAIL", error: "ERROR" } as const;
  const report = await runCheck(spec, {
    model: args.model,
    specPath: args.spec,
    onResult: args.json ? undefined : (r) => console.log(`${mark[r.status].padEnd(5)} ${r.id}: ${r.message}`),
  });
  if (args.junit !== undefined) {
    const { writeJUnit } = await import("../check/junit.js");
    await writeJUnit(args.junit, report);
  }
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    const c = report.counts;
    console.log(`\n${report.passed ? "ok" : "FAILED"}: ${c.passed} passed, ${c.failed} failed, ${c.errors} errors of ${c.total} assertions (model ${report.model})`);
  }
  if (report.assertions.some((r) => r.error?.code === "E_INTERNAL")) return 70;
  return report.passed ? 0 : 1;
}
