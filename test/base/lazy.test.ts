import { describe, expect, it } from "vitest";
import { lazyRecord, once } from "../../src/base/lazy.js";

describe("lazyRecord", () => {
  it("runs each factory once, on the field's first read, and never for fields not read", () => {
    const calls: string[] = [];
    const r = lazyRecord<{ a: number; b: number[] }>({
      a: () => (calls.push("a"), 1),
      b: () => (calls.push("b"), [2]),
    });
    expect(calls).toEqual([]);
    expect(r.a + r.a).toBe(2);
    expect(calls).toEqual(["a"]);
    expect(r.b).toBe(r.b);
    expect(calls).toEqual(["a", "b"]);
    expect(Object.keys(r)).toEqual(["a", "b"]);
  });

  it("once: the first call's value (and error) decide", () => {
    let n = 0;
    const f = once(() => ++n);
    expect([f(), f(), n]).toEqual([1, 1, 1]);
    let k = 0;
    const g = once(() => {
      k++;
      throw new Error("no");
    });
    expect(g).toThrow("no");
    expect(g).toThrow("no");
    expect(k).toBe(2); // a failed computation is retried, not cached
  });
});
