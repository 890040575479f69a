/**
 * Graphs tdb-js cannot run, or cannot run everything on: typed errors at load that name what
 * was found (an encoder-decoder BeamSearch loop, fused ops and the producer from the file; inputs it
 * cannot feed, with their declared types), and typed JSON errors through the CLI (a
 * feature-extraction graph without logits, an encoder-decoder BeamSearch loop). A BeamSearch-wrapped
 * GPT-2 decoder loads: io-forms.test.ts.
 */
import { readFile, writeFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { NodeProtoSchema, TensorProto_DataType, type ModelProto } from "onnx-buf";
import { afterAll, describe, expect, it } from "vitest";
import { Model } from "../../src/model/model.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { tensorValueInfo } from "../../src/onnx/surgery.js";
import { BEAM_SEARCH_PRODUCER, beamSearchWrapped } from "../../src/synthetic/forms/beam-search.js";
import { withoutLogits } from "../../src/synthetic/forms/no-logits.js";
import { withPastGraph } from "../../src/synthetic/forms/with-past.js";
import type { Gpt2GraphVariant } from "../../src/synthetic/gpt2-graph.js";
import { tdb } from "../cli/_run.js";
import { rejected } from "../helpers/errors.js";
import { makeTestModel, type TestModel } from "../helpers/models.js";

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

/** A generated TINY_GPT2 directory whose onnx/model.onnx is `edit` of the generated graph. */
async function edited(edit: (m: ModelProto) => ModelProto, variant: Gpt2GraphVariant = "decoder"): Promise<TestModel> {
  const tm = await makeTestModel({ variant });
  cleanup.push(() => tm.cleanup());
  await writeFile(tm.model, encodeModel(edit(decodeModel(await readFile(tm.model)))));
  return tm;
}

/** Sets the declared element type of graph input `name`. */
function retype(name: string, type: TensorProto_DataType): (m: ModelProto) => ModelProto {
  return (m) => {
    const v = m.graph!.input.find((i) => i.name === name)!;
    if (v.type?.value.case === "tensorType") v.type.value.value.elemType = type;
    return m;
  };
}

describe("graphs that are not a GPT-2 decoder tdb-js can hook", () => {
  it("an encoder-decoder BeamSearch loop: E_UNSUPPORTED_GRAPH naming the loop, its attribute and the producer", async () => {
    const tm = await edited((m) => beamSearchWrapped(m, { eosTokenId: 511, modelType: 1 }));
    const e = await rejected(Model.load(tm.dir));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.value).toBe("BeamSearch");
    expect(e.message).toContain("BeamSearch generation loop");
    expect(e.message).toContain("decoder attribute, model_type 1: an encoder-decoder");
    expect(e.message).toContain(`${BEAM_SEARCH_PRODUCER.name} ${BEAM_SEARCH_PRODUCER.version}`);
    expect(e.message).not.toMatch(/EmbedLayerNormalization\?/);
  });

  it("no block found: the error names the non-standard ops with counts and the producer with its version", async () => {
    const tm = await edited((m) => {
      const g = m.graph!;
      // Everything between the embeddings and the logits replaced by two opaque com.microsoft ops.
      g.node = [
        create(NodeProtoSchema, { name: "emb", opType: "EmbedLayerNormalization", domain: "com.microsoft", input: ["input_ids", "transformer.wte.weight"], output: ["h"] }),
        create(NodeProtoSchema, { name: "body", opType: "GptBody", domain: "com.microsoft", input: ["h"], output: ["h2"] }),
        create(NodeProtoSchema, { name: "body2", opType: "GptBody", domain: "com.microsoft", input: ["h2"], output: ["logits"] }),
      ];
      g.output = g.output.filter((o) => o.name === "logits");
      m.producerName = "pytorch";
      m.producerVersion = "1.6.0";
      return m;
    });
    const e = await rejected(Model.load(tm.dir));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.message).toContain("made by pytorch 1.6.0");
    expect(e.message).toContain("com.microsoft.EmbedLayerNormalization x1");
    expect(e.message).toContain("com.microsoft.GptBody x2");
    expect(e.value).toEqual(["com.microsoft.EmbedLayerNormalization", "com.microsoft.GptBody"]);
  });
});

describe("graph inputs tdb-js cannot feed: E_UNSUPPORTED_GRAPH at load", () => {
  it("a token input of another type names the input, its type and the types allowed", async () => {
    const tm = await edited(retype("input_ids", TensorProto_DataType.FLOAT));
    const e = await rejected(Model.load(tm.dir));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.message).toContain("input_ids");
    expect(e.value).toBe("float32");
    expect(e.allowed).toEqual(["int64", "int32"]);
  });

  it("an unknown input is named, with the inputs tdb-js feeds", async () => {
    const tm = await edited((m) => {
      m.graph!.input.push(tensorValueInfo("token_type_ids", "int64", ["batch_size", "sequence_length"]));
      return m;
    });
    const e = await rejected(Model.load(tm.dir));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.value).toBe("token_type_ids");
    expect(e.allowed).toContain("position_ids");
  });

  it("a past input of rank 3 or of an integer type", async () => {
    const rank3 = await edited((m) => {
      const p = withPastGraph(m);
      const v = p.graph!.input.find((i) => i.name === "past_key_values.0.key")!;
      if (v.type?.value.case === "tensorType") v.type.value.value.shape!.dim.pop();
      return p;
    }, "merged");
    const e = await rejected(Model.load(rank3.dir));
    expect(e.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e.message).toContain("past_key_values.0.key has rank 3");
    const ints = await edited((m) => retype("past_key_values.1.value", TensorProto_DataType.INT32)(withPastGraph(m)), "merged");
    const e2 = await rejected(Model.load(ints.dir));
    expect(e2.code).toBe("E_UNSUPPORTED_GRAPH");
    expect(e2.value).toBe("int32");
    expect(e2.allowed).toEqual(["float32", "float16"]);
  });
});

describe("the CLI turns them into typed JSON errors", () => {
  it("tdb trace and tdb attribute on a graph without logits: E_NO_LOGITS naming its outputs", async () => {
    const tm = await edited(withoutLogits);
    const r = await tdb(["trace", "Hello there", "--model", tm.dir, "--json"]);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { error: { code: string; value: unknown; allowed: unknown; message: string } };
    expect(out.error.code).toBe("E_NO_LOGITS");
    const a = await tdb(["attribute", "Hello there", "--model", tm.dir, "--target", " the", "--distractor", " a", "--json"]);
    expect(a.code, a.stderr).toBe(1);
    const aout = JSON.parse(a.stdout) as { error: { code: string; allowed: unknown; message: string } };
    expect(aout.error.code).toBe("E_NO_LOGITS");
    expect(aout.error.allowed).toContain("last_hidden_state");
  }, 60_000);

  it("tdb trace on an encoder-decoder BeamSearch loop: E_UNSUPPORTED_GRAPH", async () => {
    const tm = await edited((m) => beamSearchWrapped(m, { eosTokenId: 511, modelType: 1 }));
    const r = await tdb(["trace", "Hello", "--model", tm.dir, "--json"]);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { error: { code: string; value: unknown } };
    expect(out.error).toMatchObject({ code: "E_UNSUPPORTED_GRAPH", value: "BeamSearch" });
  }, 60_000);
});
