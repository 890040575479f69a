/**
 * Progress output: a live line redrawn in place on a terminal, JSON lines otherwise (or when
 * asked), nothing in "none" mode, and the callback in every mode.
 */
import { describe, expect, it } from "vitest";
import type { ProgressEvent } from "../../src/train/config.js";
import { formatProgress, ProgressReporter } from "../../src/train/progress.js";

const ev = (step: number, kind: ProgressEvent["kind"] = "step"): ProgressEvent => ({
  kind,
  step,
  steps: 100,
  loss: 3.14159,
  lr: 1e-3,
  gradNorm: 0.5,
  tokensPerSecond: 1234.4,
  etaSeconds: 75,
});

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { out, s: { isTTY, write: (t: string) => out.push(t) } };
}

describe("progress", () => {
  it("the line shows step, loss, tokens/s and ETA", () => {
    expect(formatProgress(ev(7))).toBe("step   7/100  loss 3.1416  lr 1.00e-3  |g| 0.500  1234 tok/s  ETA 1m15s");
    expect(formatProgress({ ...ev(10, "eval"), loss: 2.5 })).toBe("step  10/100  valid loss 2.5000");
  });

  it("a terminal gets one line redrawn in place; evaluations stay above it", () => {
    const { out, s } = sink(true);
    const r = new ProgressReporter("auto", s);
    r.report(ev(1));
    r.report(ev(2)); // within 100 ms of the last draw: skipped
    r.report(ev(10, "eval"));
    r.report(ev(100, "done"));
    expect(out[0]!.startsWith("\r\x1b[Kstep   1/100")).toBe(true);
    expect(out).toHaveLength(3);
    expect(out[1]).toBe("\r\x1b[Kstep  10/100  valid loss 3.1416\n");
    expect(out[2]!.endsWith("\n")).toBe(true);
  });

  it("JSON lines when asked or off a terminal; nothing in none mode; the callback always", () => {
    const a = sink(false);
    const seen: number[] = [];
    const r = new ProgressReporter("json", a.s, (e) => seen.push(e.step));
    r.report(ev(1));
    r.report(ev(2, "eval"));
    expect(a.out.map((l) => JSON.parse(l) as ProgressEvent).map((e) => [e.kind, e.step])).toEqual([["step", 1], ["eval", 2]]);
    const b = sink(false);
    new ProgressReporter("auto", b.s).report(ev(3));
    expect(JSON.parse(b.out[0]!)).toMatchObject({ kind: "step", step: 3, loss: 3.14159 });
    const c = sink(true);
    const quiet = new ProgressReporter("none", c.s, (e) => seen.push(e.step));
    quiet.report(ev(4));
    expect(c.out).toEqual([]);
    expect(seen).toEqual([1, 2, 4]);
  });
});
