/**
 * `dispose()` while calls are in flight: each call either resolves with the result a separate,
 * untouched model gives, or rejects with a typed E_DISPOSED, never a raw onnxruntime error
 * ("Session already disposed"); every call after dispose rejects with E_DISPOSED.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { zeroHead } from "../../src/intervene/edits.js";
import { Model } from "../../src/model/model.js";
import { makeTestModel, maxAbsDiff, type TestModel } from "../helpers/models.js";
import { rejected } from "../helpers/errors.js";

const PROMPT = "Hello there friend";
const VARIANTS = [[zeroHead(0, 1)], [zeroHead(1, 2)], [zeroHead(1, 3)]];

let tm: TestModel;
let ref: Model;
/** What each operation gives on an untouched model: a list of numbers to compare. */
const expected = new Map<string, number[]>();

type Op = (m: Model) => Promise<number[]>;
const OPS: Record<string, Op> = {
  trace: async (m) => [...(await m.trace(PROMPT)).logits.data],
  attribute: async (m) => {
    const t = await m.attribute(PROMPT, { target: " t", distractor: " a", topK: 5 });
    return [t.loss, ...t.nodes.map((n) => n.totalEffect)];
  },
  variants: async (m) => (await m.intervene(PROMPT, [], { variants: VARIANTS })).logitDiffs(" t", " a").edited,
};

beforeAll(async () => {
  tm = await makeTestModel();
  ref = await Model.load(tm.dir);
  for (const [name, op] of Object.entries(OPS)) expected.set(name, await op(ref));
});
afterAll(async () => {
  await ref?.dispose();
  await tm?.cleanup();
});

describe("dispose while calls are in flight", () => {
  // 0: dispose in the same tick; the others: once the call has got further (loading sessions, running)
  const delays = [0, 1, 5, 20];
  it.each(Object.keys(OPS))("%s: resolves correctly or rejects with E_DISPOSED; later calls reject with E_DISPOSED", async (name) => {
    const op = OPS[name]!;
    const outcomes: string[] = [];
    for (const delay of delays) {
      const m = await Model.load(tm.dir);
      const p = op(m).then(
        (v) => ({ ok: true as const, v }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const d = m.dispose();
      const r = await p;
      await d;
      if (r.ok) {
        expect(maxAbsDiff(r.v, expected.get(name)!), `${name} after dispose at ${delay} ms`).toBeLessThan(1e-5);
        expect(r.v.length).toBe(expected.get(name)!.length);
        outcomes.push("ok");
      } else {
        expect(r.e, `${name} at ${delay} ms: ${String(r.e)}`).toBeInstanceOf(TdbError);
        expect((r.e as TdbError).code).toBe("E_DISPOSED");
        outcomes.push("E_DISPOSED");
      }
      const again = await rejected(op(m));
      expect(again.code).toBe("E_DISPOSED");
      await m.dispose(); // twice is harmless
    }
    expect(outcomes).toHaveLength(delays.length);
  });

  it("several calls in flight at once, then dispose", async () => {
    const m = await Model.load(tm.dir);
    const ps = Object.entries(OPS).map(([name, op]) =>
      op(m).then(
        (v) => ({ name, ok: true as const, v }),
        (e: unknown) => ({ name, ok: false as const, e }),
      ),
    );
    await new Promise((r) => setTimeout(r, 2));
    await m.dispose();
    for (const r of await Promise.all(ps)) {
      if (r.ok) expect(maxAbsDiff(r.v, expected.get(r.name)!), r.name).toBeLessThan(1e-5);
      else {
        expect(r.e, `${r.name}: ${String(r.e)}`).toBeInstanceOf(TdbError);
        expect((r.e as TdbError).code).toBe("E_DISPOSED");
      }
    }
    expect((await rejected(m.trace(PROMPT))).code).toBe("E_DISPOSED");
  });
});
