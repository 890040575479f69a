/**
 * Child-process script for load.test.ts: loads the model directory argv[2] (LoadOptions from the
 * JSON in argv[3]) and runs the unpatched session on an out-of-range token id, which onnxruntime
 * fails on. Prints the TdbError code on stdout; whatever else lands on stderr is onnxruntime's
 * own logging.
 */
import { Model, runtimeOf } from "../../src/model/model.js";
import { TdbError } from "../../src/base/errors.js";

const [dir, optsJson] = process.argv.slice(2);
const model = await Model.load(dir!, JSON.parse(optsJson ?? "{}"));
try {
  await runtimeOf(model).sessions.withBaseline((s) =>
    s.run({
      input_ids: { type: "int64", data: new BigInt64Array([1_000_000n]), dims: [1, 1] },
      attention_mask: { type: "int64", data: new BigInt64Array([1n]), dims: [1, 1] },
    }),
  );
  process.stdout.write("no error\n");
} catch (e) {
  process.stdout.write(`${e instanceof TdbError ? e.code : String(e)}\n`);
}
await model.dispose();
