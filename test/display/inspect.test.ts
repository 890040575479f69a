/**
 * Console and notebook summaries: `util.inspect` of a trace, an activation, an intervention
 * result and a node table is a few lines holding the useful facts (checked against numbers
 * computed here from the raw arrays), not the arrays; Deno and Jupyter get the same text.
 */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { DENO_INSPECT, JUPYTER_DISPLAY, summarizeModel } from "../../src/base/inspect.js";
import { zeroHead } from "../../src/intervene/edits.js";
import type { Model } from "../../src/model/model.js";
import { useTestModel } from "../helpers/models.js";

let model: Model;
useTestModel({}, (_t, m) => (model = m));

const PROMPT = "The quick brown fox jumps over the lazy dog";

/** Index of the largest value in `xs[from, to)`, relative to `from`. */
function argmax(xs: Float32Array, from: number, to: number): number {
  let best = from;
  for (let i = from; i < to; i++) if (xs[i]! > xs[best]!) best = i;
  return best - from;
}

describe("summaries", () => {
  it("a trace shows shape, hook count and the top next token, in a few lines", async () => {
    const t = await model.trace(PROMPT);
    const s = inspect(t);
    const [, pos, vocab] = t.logits.dims as [number, number, number];
    const top = argmax(t.logits.data, (pos - 1) * vocab, pos * vocab);
    expect(s.length).toBeLessThan(1500);
    expect(s.split("\n").length).toBeLessThanOrEqual(6);
    expect(s).toContain(`${t.cache.size} cached hooks`);
    expect(s).toContain(`[batch=1, pos=${pos}, d_vocab=${vocab}]`);
    expect(s).toContain(`top 5 next tokens: ${JSON.stringify(model.tokenizer.decode([top]))}`);
    expect(s).toContain(JSON.stringify(t.strTokens[0]![1]));
    const deno = (t as unknown as Record<symbol, () => string>)[DENO_INSPECT]!.call(t);
    expect(deno).toBe(s);
    const bundle = (t as unknown as Record<symbol, () => Record<string, string>>)[JUPYTER_DISPLAY]!.call(t);
    expect(bundle["text/plain"]).toBe(s);
    expect(bundle["text/html"]).toMatch(/^<div>.*<table>/s);
  });

  it("an activation shows name, labelled dims and statistics", async () => {
    const t = await model.trace(PROMPT, { hooks: ["blocks.0.attn.hook_pattern"] });
    const a = t.cache.get("blocks.0.attn.hook_pattern");
    const s = inspect(a);
    expect(s.split("\n")).toHaveLength(1);
    expect(s).toContain(`blocks.0.attn.hook_pattern [batch=1, head=${a.dims[1]}, query_pos=${a.dims[2]}, key_pos=${a.dims[3]}]`);
    // Softmax rows: the first query attends only to itself (1), masked entries are 0.
    expect(s).toContain("min=0 max=1");
    const mean = a.data.reduce((x, y) => x + y, 0) / a.data.length;
    const shown = Number(/mean=(\S+)/.exec(s)![1]);
    expect(Math.abs(shown - mean)).toBeLessThan(1e-3 * Math.abs(mean));
    // Nested inside other objects too (console.log of a list of activations).
    expect(inspect([a])).toContain("Activation blocks.0.attn.hook_pattern");
  });

  it("an intervention result shows KL and the top tokens before and after", async () => {
    const r = await model.intervene(PROMPT, [zeroHead(0, 1)]);
    const s = inspect(r);
    const [, pos, vocab] = r.clean.logits.dims as [number, number, number];
    const lse = (row: Float32Array) => {
      const m = Math.max(...row);
      return m + Math.log(row.reduce((acc, x) => acc + Math.exp(x - m), 0));
    };
    const c = r.clean.logits.data.subarray((pos - 1) * vocab, pos * vocab);
    const e = r.edited.logits.data.subarray((pos - 1) * vocab, pos * vocab);
    const lc = lse(c);
    const le = lse(e);
    let kl = 0;
    for (let i = 0; i < vocab; i++) kl += Math.exp(c[i]! - lc) * (c[i]! - lc - (e[i]! - le));
    const shown = Number(/at the last position: (\S+)/.exec(s)![1]);
    expect(kl).toBeGreaterThan(0);
    expect(Math.abs(shown - kl)).toBeLessThan(0.01 * kl);
    expect(s).toContain("1 edited row vs clean");
    expect(s).toContain(`clean  top 5: ${JSON.stringify(model.tokenizer.decode([argmax(c, 0, vocab)]))}`);
    expect(s.length).toBeLessThan(1200);
  });

  it("a node table shows loss, counts and its top nodes; JSON and equality ignore the summary", async () => {
    const table = await model.attribute(PROMPT, { target: " the", distractor: " a", topK: 5 });
    const s = inspect(table);
    expect(s).toContain(`NodeTable: loss ${String(Number(table.loss.toPrecision(4)))}`);
    const scored = Object.values(table.counts).reduce((a, b) => a + b, 0);
    expect(s).toContain(`${table.nodes.length} nodes kept of ${scored} scored`);
    const best = [...table.nodes].sort((a, b) => Math.abs(b.totalEffect) - Math.abs(a.totalEffect))[0]!;
    expect(s.split("\n")[2]).toContain(best.id);
    expect(s.split("\n").length).toBeLessThanOrEqual(14);
    expect(JSON.parse(JSON.stringify(table))).toEqual({ ...table });
    expect(Object.keys(table)).not.toContain(String(DENO_INSPECT));
  });

  it("a model summary names its architecture and hook count", () => {
    const s = summarizeModel(model, "onnxruntime-node, cpu");
    const c = model.config;
    expect(s).toBe(
      `Model gpt2: ${c.nLayers} layers × ${c.nHeads} heads, d_model ${c.dModel}, d_mlp ${c.dMlp}, vocab ${c.dVocab}, context ${c.nCtx}; ${model.hookNames.length} hooks (onnxruntime-node, cpu)`,
    );
    // util.inspect and Deno's console print the summary, not the runtime's sessions and weights.
    const shown = inspect(model);
    expect(shown).toContain(`Model gpt2: ${c.nLayers} layers × ${c.nHeads} heads`);
    expect(shown.length).toBeLessThan(400);
  });
});
