/**
 * Run by test/deno/deno.test.ts under Deno (`deno run -A --unstable-sloppy-imports`): generates
 * the default model into $TDB_HOME (the GPT-2 BPE comes from data bundled in the sources, not
 * from package files), traces a prompt and prints the numbers as one JSON line, plus the
 * console summary Deno shows for the trace.
 */
import { Model, ensureDefaultModel } from "../../src/index.js";

const PROMPT = "When John and Mary went to the shops, John gave the bag to";

const dir = await ensureDefaultModel();
const model = await Model.load(dir);
const t = await model.trace(PROMPT);
const denoInspect = (globalThis as unknown as { Deno: { inspect(v: unknown): string } }).Deno.inspect;
console.log(
  JSON.stringify({
    dir,
    tokens: t.tokens[0],
    logitDiff: t.logitDiff(" Mary", " John"),
    top: t.topK(5).map((x) => [x.token, x.logit]),
    summary: denoInspect(t),
  }),
);
await model.dispose();
