/**
 * `tdb-js/synthetic`: GPT-2-architecture models with seeded random weights, written node for
 * node as the Hugging Face export writes them (decoder and merged variants), with the real GPT-2
 * BPE tokenizer; the default model; a seeded RNG. What tests, benchmarks and offline demos run on.
 *
 * @example
 * ```ts
 * import { writeGpt2Model, gpt2Config } from "tdb-js/synthetic";
 * await writeGpt2Model("./tiny", { config: gpt2Config({ n_layer: 2, n_head: 4, n_embd: 64 }), seed: 1 });
 * ```
 *
 * @module
 */
export { gpt2Config, headDim, TINY_GPT2, GPT2_SMALL_SHAPES, type Gpt2Config } from "./config.js";
export { buildGpt2Graph, unembedInitializerName, causalMaskName, FLOAT32_MIN, UNEMBED_BIAS, type Gpt2GraphVariant, type Gpt2GraphOptions, type Gpt2FinalReshape } from "./gpt2-graph.js";
export { randomGpt2Weights, gpt2WeightShapes, type Gpt2Weights, type WeightTensor, type RandomWeightOptions } from "./weights.js";
export { buildGpt2Tokenizer, gpt2Vocab, readGpt2BpeSource, ENDOFTEXT, GPT2_VOCAB_SIZE, type Gpt2BpeSource, type Gpt2TokenizerFiles } from "./tokenizer.js";
export { writeGpt2Model, ensureGpt2Model, FIXTURE_VERSION, type WriteGpt2Options, type Gpt2ModelPaths } from "./write.js";
export { ensureDefaultModel, defaultModelDir, DEFAULT_MODEL_SEED, DEFAULT_MODEL_CONFIG } from "./default-model.js";
export { Rng } from "../base/random.js";
export { int32Inputs, INT32_TOKEN_INPUTS } from "./forms/int32.js";
export { positionIdsInput } from "./forms/position-ids.js";
export { withPastGraph, type PastLayout } from "./forms/with-past.js";
export { withoutLogits, LAST_HIDDEN_STATE } from "./forms/no-logits.js";
export { float16Graph } from "./forms/float16.js";
export { unscopedNames, type UnscopedOptions } from "./forms/unscoped.js";
export { legacyGpt2Graph, type LegacyOptions, type LegacyMaskStyle } from "./forms/legacy.js";
export { beamSearchWrapped, BEAM_SEARCH_PRODUCER } from "./forms/beam-search.js";
