/**
 * A decoder wrapped in onnxruntime's `com.microsoft.BeamSearch` generation loop, as
 * onnxruntime's `convert_generation` tool writes GPT-2 (the decoder is the node's `decoder`
 * graph attribute; the outer graph takes the search parameters and returns token sequences).
 * onnxruntime's decoder there takes int32 `input_ids`, `position_ids`, `attention_mask` and
 * `past_N` (`int32Inputs(positionIdsInput(withPastGraph(merged, { layout: "past_N" })))` is
 * that form). Only the structure matters here: tdb-js hooks the decoder inside, and refuses an
 * encoder-decoder loop (`model_type` other than 0) with an error naming it.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema, type ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { makeAttribute } from "../../onnx/builder.js";
import { tensorValueInfo } from "../../onnx/surgery.js";

/** Producer written into the wrapped model, as onnxruntime's tool writes it. */
export const BEAM_SEARCH_PRODUCER = { name: "onnxruntime.transformers", version: "1.30.0" };

/**
 * `decoder` (a plain decoder graph) as the `decoder` attribute of a BeamSearch node. Options:
 * `eosTokenId`; `modelType` (default 0, GPT-2; 1 is T5's encoder-decoder); `sharedInitializers`
 * (default false): keep the weights in the outer graph, read by the decoder as outer-scope
 * names, as onnxruntime does for weights shared between subgraphs.
 *
 * @example
 * ```ts
 * const m = beamSearchWrapped(buildGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0)), { eosTokenId: 511 });
 * ```
 */
export function beamSearchWrapped(decoder: ModelProto, opts: { eosTokenId: number; modelType?: number; sharedInitializers?: boolean }): ModelProto {
  const g = decoder.graph;
  if (!g) throw new TdbError("E_BAD_INPUT", "the decoder has no graph", { value: null });
  const inner = opts.sharedInitializers ? create(GraphProtoSchema, { ...g, initializer: [] }) : g;
  const i32 = (name: string, dims: (number | string)[]) => tensorValueInfo(name, "int32", dims);
  const node = create(NodeProtoSchema, {
    name: "BeamSearch_gpt2",
    opType: "BeamSearch",
    domain: "com.microsoft",
    input: ["input_ids", "max_length", "min_length", "num_beams", "num_return_sequences", "length_penalty", "repetition_penalty"],
    output: ["sequences"],
    attribute: [
      makeAttribute("decoder", { kind: "graph", value: inner }),
      makeAttribute("eos_token_id", opts.eosTokenId),
      makeAttribute("pad_token_id", opts.eosTokenId),
      makeAttribute("model_type", opts.modelType ?? 0),
      makeAttribute("no_repeat_ngram_size", 0),
      makeAttribute("early_stopping", 0),
    ],
  });
  const graph = create(GraphProtoSchema, {
    name: "beam_search",
    node: [node],
    initializer: opts.sharedInitializers ? [...g.initializer] : [],
    input: [
      i32("input_ids", ["batch_size", "sequence_length"]),
      i32("max_length", [1]),
      i32("min_length", [1]),
      i32("num_beams", [1]),
      i32("num_return_sequences", [1]),
      tensorValueInfo("length_penalty", "float32", [1]),
      tensorValueInfo("repetition_penalty", "float32", [1]),
    ],
    output: [i32("sequences", ["batch_size", "num_return_sequences", "max_length"])],
  });
  return create(ModelProtoSchema, {
    irVersion: decoder.irVersion,
    producerName: BEAM_SEARCH_PRODUCER.name,
    producerVersion: BEAM_SEARCH_PRODUCER.version,
    opsetImport: [...decoder.opsetImport, create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n })],
    graph,
  });
}
