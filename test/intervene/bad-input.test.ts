/**
 * Bad edits get typed errors naming what is allowed: unknown hooks, out-of-range heads,
 * neurons, positions and rows, vectors of the wrong width, mismatched patching lengths, NaN.
 */
import { describe, expect, it } from "vitest";
import { TdbError, type TdbErrorCode } from "../../src/base/errors.js";
import { patchFrom, resampleFrom, steer, zeroHead, zeroNeuron, type Edit } from "../../src/intervene/edits.js";
import type { HookName } from "../../src/hooks/names.js";
import type { Model } from "../../src/model/model.js";
import { useTestModel, maxAbsDiff } from "../helpers/models.js";

let model: Model;
useTestModel({}, (_tm, m) => {
  model = m;
});

const P = [3, 14, 15, 92, 65];

async function fails(edits: Edit[], code: TdbErrorCode, mentions: RegExp, opts = {}): Promise<TdbError> {
  const err = await model.intervene([P], edits, opts).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TdbError);
  expect((err as TdbError).code).toBe(code);
  expect((err as TdbError).message).toMatch(mentions);
  return err as TdbError;
}

describe("bad edits", () => {
  it("a hook that does not exist", async () => {
    await fails([{ hook: "blocks.0.attn.hook_zz" as HookName, kind: "zero" }], "E_UNKNOWN_HOOK", /hook_z/);
    await fails([{ hook: "blocks.5.attn.hook_z", kind: "zero" }], "E_LAYER_RANGE", /0\.\.1/);
    await fails([{ hook: "blocks.0.ln1.hook_scale", kind: "zero" }], "E_HOOK_UNAVAILABLE", /not on the forward path/);
    await fails([{ hook: "blocks.0.hook_resid_pre", kind: "frobnicate" as never }], "E_BAD_OPTION", /zero, scale, set/);
  });

  it("head, neuron, position and row out of range", async () => {
    const e = await fails([zeroHead(0, 4)], "E_INDEX_RANGE", /head 4 out of range \[0, 3\]/);
    expect(e.allowed).toEqual([0, 3]);
    await fails([zeroNeuron(1, 256)], "E_INDEX_RANGE", /d_mlp 256 out of range \[0, 255\]/);
    const p = await fails([zeroNeuron(1, 3, { positions: [5] })], "E_POSITION_RANGE", /position 5 out of range \[-5, 4\]/);
    expect(p.allowed).toEqual([-5, 4]);
    await fails([zeroNeuron(1, 3, { rows: [1] })], "E_INDEX_RANGE", /row 1 out of range \[0, 0\]/);
    await fails([{ hook: "blocks.0.mlp.hook_post", kind: "zero", at: { head: 1 } }], "E_BAD_OPTION", /no axis head/);
  });

  it("a vector of the wrong width", async () => {
    const e = await fails([steer("blocks.1.hook_resid_pre", new Array(63).fill(1))], "E_BAD_INPUT", /width 63.*d_model\) has 64/);
    expect(e.allowed).toBe(64);
  });

  it("NaN and infinite values", async () => {
    await fails([steer("blocks.1.hook_resid_pre", [NaN, ...new Array(63).fill(0)])], "E_BAD_INPUT", /non-finite/);
    await fails([steer("blocks.1.hook_resid_pre", new Array(64).fill(1), Infinity)], "E_BAD_INPUT", /non-finite/);
    await fails([{ hook: "blocks.1.hook_resid_pre", kind: "set", value: NaN }], "E_BAD_INPUT", /non-finite/);
  });

  it("mismatched prompt lengths for patching: an error, or an explicit alignment", async () => {
    const longer = await model.trace([[9, ...P]], { hooks: ["blocks.1.hook_resid_pre"] });
    await fails([patchFrom("blocks.1.hook_resid_pre", longer)], "E_BAD_INPUT", /6 positions.*5; pass align/);
    const r = await model.intervene([P], [patchFrom("blocks.1.hook_resid_pre", longer, { align: "end" })], { hooks: ["blocks.1.hook_resid_pre"] });
    // Aligned at the end, edited position p holds the source's position p + 1.
    const got = r.edited.cache.get("resid_pre", 1);
    const src = longer.cache.get("resid_pre", 1);
    for (let p = 0; p < P.length; p++) expect(maxAbsDiff(got.row(0, p), src.row(0, p + 1))).toBe(0);
    const start = await fails([patchFrom("blocks.1.hook_resid_pre", await model.trace([P.slice(0, 3)], { hooks: ["blocks.1.hook_resid_pre"] }), { align: "start" })], "E_POSITION_RANGE", /position 3 has no source/);
    expect(start.allowed).toEqual([0, 2]);
    await fails([resampleFrom("blocks.0.attn.hook_pattern", [[1, 2, 3]])], "E_BAD_INPUT", /same length/);
  });

  it("sources of the wrong kind", async () => {
    await fails([{ hook: "blocks.0.hook_resid_pre", kind: "patch", source: "a prompt" } as unknown as Edit], "E_BAD_OPTION", /needs a source Trace/);
    const t = await model.trace([P], { hooks: ["blocks.0.hook_resid_pre"] });
    await fails([{ hook: "blocks.0.hook_resid_pre", kind: "resample", source: t } as unknown as Edit], "E_BAD_OPTION", /use kind "patch"/);
    await fails([patchFrom("blocks.1.hook_resid_pre", t)], "E_NOT_CACHED", /blocks\.1\.hook_resid_pre/);
    await fails([{ hook: "blocks.0.hook_resid_pre", kind: "set" } as unknown as Edit], "E_BAD_OPTION", /needs a value/);
  });

  it("variants: one prompt, no rows", async () => {
    const err = await model.intervene([P, P], [], { variants: [[zeroHead(0, 1)]] }).catch((e: unknown) => e);
    expect((err as TdbError).code).toBe("E_BAD_INPUT");
    await fails([], "E_BAD_OPTION", /rows inside a variant/, { variants: [[zeroHead(0, 1, { rows: [0] })]] });
  });
});
