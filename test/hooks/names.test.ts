import { describe, expect, it } from "vitest";
import { TdbError } from "../../src/base/errors.js";
import { hookNamesFor, parseHookName, resolveHookAlias } from "../../src/hooks/names.js";

// Written out by hand from TransformerLens's HookedTransformer (GPT-2 config), in forward order.
const BLOCK = [
  "hook_resid_pre",
  "ln1.hook_scale",
  "attn.hook_q",
  "attn.hook_k",
  "attn.hook_v",
  "attn.hook_attn_scores",
  "attn.hook_pattern",
  "attn.hook_z",
  "attn.hook_result",
  "hook_attn_out",
  "hook_resid_mid",
  "ln2.hook_scale",
  "mlp.hook_pre",
  "mlp.hook_post",
  "hook_mlp_out",
  "hook_resid_post",
];

describe("hook names", () => {
  it("lists every hook of a 2-layer model in forward order", () => {
    const expected = [
      "hook_embed",
      "hook_pos_embed",
      ...BLOCK.map((s) => `blocks.0.${s}`),
      ...BLOCK.map((s) => `blocks.1.${s}`),
      "ln_final.hook_scale",
    ];
    expect(hookNamesFor(2)).toEqual(expected);
    expect(hookNamesFor(2, { optIn: false })).toEqual(expected.filter((n) => !n.endsWith("hook_result")));
  });

  it("parses names and rejects unknown ones with the allowed list", () => {
    expect(parseHookName("blocks.1.attn.hook_pattern", 2)).toMatchObject({ layer: 1 });
    expect(parseHookName("hook_embed", 2).layer).toBeUndefined();
    const bad = (() => {
      try {
        parseHookName("blocks.0.attn.hook_patern", 2);
      } catch (e) {
        return e;
      }
    })();
    expect(bad).toBeInstanceOf(TdbError);
    expect((bad as TdbError).code).toBe("E_UNKNOWN_HOOK");
    expect((bad as TdbError).message).toContain("attn.hook_pattern");
    expect(() => parseHookName("blocks.2.hook_resid_pre", 2)).toThrow(expect.objectContaining({ code: "E_LAYER_RANGE" }));
    expect(() => parseHookName("blocks.-1.hook_resid_pre", 2)).toThrow(expect.objectContaining({ code: "E_LAYER_RANGE" }));
  });

  it("resolves (alias, layer) shorthand with negative layers", () => {
    expect(resolveHookAlias("pattern", -1, 12)).toBe("blocks.11.attn.hook_pattern");
    expect(resolveHookAlias("resid_pre", 0, 12)).toBe("blocks.0.hook_resid_pre");
    expect(resolveHookAlias("embed", undefined, 12)).toBe("hook_embed");
    expect(() => resolveHookAlias("pattern", 12, 12)).toThrow(expect.objectContaining({ code: "E_LAYER_RANGE" }));
    expect(() => resolveHookAlias("pattern", undefined, 12)).toThrow(expect.objectContaining({ code: "E_LAYER_RANGE" }));
    expect(() => resolveHookAlias("nope", 0, 12)).toThrow(expect.objectContaining({ code: "E_UNKNOWN_HOOK" }));
  });
});
