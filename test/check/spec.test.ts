/**
 * `tdb check` spec validation: defaults, and a typed `E_BAD_SPEC` naming the field, the value and
 * what is allowed for each kind of mistake; JSON and YAML text.
 */
import { describe, expect, it } from "vitest";
import { parseSpec, parseSpecText } from "../../src/check/spec.js";
import { thrown, rejected } from "../helpers/errors.js";

const headScore = { id: "ind", description: "1.0 is an induction head", kind: "head_score", head: "1.0", detector: "induction", comparison: ">", threshold: 0.4 };

describe("parseSpec", () => {
  it("fills defaults", () => {
    const s = parseSpec({
      assertions: [
        headScore,
        { id: "ld", description: "d", kind: "logit_diff", prompt: "Hello", target: " Mary", distractor: 17, comparison: ">=", threshold: 0 },
        { id: "top", description: "d", kind: "top_token", prompts: [[1, 2, 3]], token: 5 },
        { id: "abl", description: "d", kind: "ablation", prompts: ["a"], edits: [{ head: "1.0" }, { neuron: "0.3@-1" }], target: "x", distractor: "y", comparison: "<", threshold: -1 },
        { id: "kl", description: "d", kind: "ablation", prompts: ["a"], edits: [{ kind: "scale", hook: "blocks.0.hook_resid_pre", value: 0.5 }], metric: "kl", comparison: ">", threshold: 0 },
        { id: "attr", description: "d", kind: "attribution", prompts: ["a"], target: "x", distractor: "y", node: "1.0" },
      ],
    });
    expect(s.prependBos).toBe(true);
    expect(s.model).toBeUndefined();
    const [hs, ld, top, abl, kl, attr] = s.assertions;
    expect(hs).toMatchObject({ kind: "head_score", comparison: ">", threshold: 0.4, rank: undefined });
    expect(ld).toMatchObject({ prompts: ["Hello"], aggregate: "mean", description: "d" });
    expect(top).toMatchObject({ k: 1, comparison: ">=", threshold: 1 });
    expect(abl).toMatchObject({ metric: "change", aggregate: "mean" });
    expect(kl).toMatchObject({ metric: "kl", target: undefined });
    expect(attr).toMatchObject({ rank: 1, by: "totalEffect", among: undefined });
    // a validated spec validates to itself
    expect(parseSpec(s)).toEqual(s);
  });

  const cases: [string, unknown, string, unknown][] = [
    ["not an object", [1], "spec", "an array"],
    ["no assertions", { assertions: [] }, "spec.assertions", []],
    ["unknown top-level field", { assertions: [headScore], modle: "x" }, "spec.modle", "modle"],
    ["unknown kind", { assertions: [{ ...headScore, kind: "vibes" }] }, "assertions[0].kind", "vibes"],
    ["missing id", { assertions: [{ ...headScore, id: undefined }] }, "assertions[0].id", null],
    ["missing description", { assertions: [{ ...headScore, description: undefined }] }, "assertions[0].description", null],
    ["duplicate id", { assertions: [headScore, headScore] }, "assertions[1].id", "ind"],
    ["bad comparison", { assertions: [{ ...headScore, comparison: "=>" }] }, "assertions[0].comparison", "=>"],
    ["threshold not a number", { assertions: [{ ...headScore, threshold: "0.5" }] }, "assertions[0].threshold", "0.5"],
    ["misspelt field", { assertions: [{ ...headScore, treshold: 1 }] }, "assertions[0].treshold", "treshold"],
    ["bad head", { assertions: [{ ...headScore, head: "1-3" }] }, "assertions[0].head", "1-3"],
    ["bad detector", { assertions: [{ ...headScore, detector: "copying" }] }, "assertions[0].detector", "copying"],
    ["rank and threshold", { assertions: [{ ...headScore, rank: 1 }] }, "assertions[0]", { rank: 1, comparison: ">", threshold: 0.4 }],
    ["bad aggregate", { assertions: [{ id: "a", description: "d", kind: "logit_diff", prompt: "x", target: "a", distractor: "b", comparison: ">", threshold: 0, aggregate: "median" }] }, "assertions[0].aggregate", "median"],
    ["empty prompts", { assertions: [{ id: "a", description: "d", kind: "logit_diff", prompts: [], target: "a", distractor: "b", comparison: ">", threshold: 0 }] }, "assertions[0].prompts", []],
    ["bad token row", { assertions: [{ id: "a", description: "d", kind: "top_token", prompts: [[1, 2.5]], token: 1 }] }, "assertions[0].prompts[0]", [1, 2.5]],
    ["bad edit kind", { assertions: [{ id: "a", description: "d", kind: "ablation", prompt: "x", edits: [{ kind: "patch", hook: "h" }], metric: "kl", comparison: ">", threshold: 0 }] }, "assertions[0].edits[0].kind", "patch"],
    ["bad head shorthand", { assertions: [{ id: "a", description: "d", kind: "ablation", prompt: "x", edits: [{ head: "1" }], metric: "kl", comparison: ">", threshold: 0 }] }, "assertions[0].edits[0].head", "1"],
    ["ablation without target", { assertions: [{ id: "a", description: "d", kind: "ablation", prompt: "x", edits: [{ head: "1.0" }], comparison: ">", threshold: 0 }] }, "assertions[0].target", null],
    ["bad node", { assertions: [{ id: "a", description: "d", kind: "attribution", prompt: "x", target: "a", distractor: "b", node: "head 1.3" }] }, "assertions[0].node", "head 1.3"],
    ["copying drop without edits", { assertions: [{ id: "a", description: "d", kind: "copying", metric: "drop", comparison: "<", threshold: 0.1 }] }, "assertions[0].edits", []],
    ["input mixing strings and rows", { assertions: [{ ...headScore, input: ["a", [1, 2]] }] }, "assertions[0].input", ["a", [1, 2]]],
    ["bad among", { assertions: [{ id: "a", description: "d", kind: "attribution", prompt: "x", target: "a", distractor: "b", node: "1.3", among: ["heads"] }] }, "assertions[0].among[0]", "heads"],
  ];
  for (const [what, doc, path, value] of cases) {
    it(`rejects: ${what}`, () => {
      const e = thrown(() => parseSpec(doc));
      expect(e.code).toBe("E_BAD_SPEC");
      expect(e.message.startsWith(`${path}:`), e.message).toBe(true);
      expect(e.value).toEqual(value);
      expect(e.allowed).toBeDefined();
    });
  }

  it("lists the allowed kinds and comparisons", () => {
    expect(thrown(() => parseSpec({ assertions: [{ ...headScore, kind: "vibes" }] })).allowed).toEqual(["logit_diff", "top_token", "ablation", "attribution", "head_score", "copying"]);
    expect(thrown(() => parseSpec({ assertions: [{ ...headScore, comparison: "==" }] })).allowed).toEqual([">", ">=", "<", "<="]);
  });
});

describe("parseSpecText", () => {
  it("reads YAML and JSON to the same spec", async () => {
    const yaml = `
model: ./model
prependBos: false
assertions:
  - id: ind
    description: "1.0 is an induction head"
    kind: head_score
    head: "1.0"
    detector: induction
    comparison: ">"
    threshold: 0.4
`;
    const a = await parseSpecText(yaml, "yaml");
    const b = await parseSpecText(JSON.stringify({ model: "./model", prependBos: false, assertions: [headScore] }), "json");
    expect(a).toEqual(b);
    expect(a.prependBos).toBe(false);
  });

  it("malformed text is E_BAD_SPEC", async () => {
    expect((await rejected(parseSpecText("{ nope", "json", "x.json"))).code).toBe("E_BAD_SPEC");
    expect((await rejected(parseSpecText("a: [1, 2", "yaml", "x.yaml"))).code).toBe("E_BAD_SPEC");
  });
});
