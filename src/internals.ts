/**
 * `tdb-js/internals`: the machinery under `Model`, for tools that build on tdb-js (new
 * features, custom graphs, benchmarks). Less stable than the root export.
 *
 * - the model runtime ({@link ModelRuntime}, {@link runtimeOf}): token batches, patched graphs,
 *   sessions, raw runs with edit feeds;
 * - file and network adapters, the onnxruntime session wrapper;
 * - the compiled forms of edits and the attribution graph builder.
 *
 * @example
 * ```ts
 * import { runtimeOf } from "tdb-js/internals";
 * const { model: proto } = runtimeOf(model).patchedModel(["blocks.0.mlp.hook_post"]);
 * ```
 *
 * @module
 */
export { runtimeOf } from "./model/model.js";
export { ModelRuntime } from "./runtime/runtime.js";
export { loadModelParts, describeGraph, type ModelParts } from "./runtime/load.js";
export { graphIo, checkGraphInputs, FED_INPUTS, type GraphIo, type DeclaredValue } from "./runtime/io.js";
export { widenFloat16 } from "./runtime/float16.js";
export { ONNX_FILES, type EditFeed, type RunSpec } from "./runtime/options.js";
export { parseConfig } from "./runtime/config.js";
export { padBatch, type TokenBatch } from "./runtime/batch.js";
export { loadTokenizer } from "./runtime/tokenizer.js";
export { buildPatchedGraph, editableValue, labelSize, rowsInput, LOGIT_POSITIONS_INPUT, type PatchSpec, type PatchedGraph, type EditInputs } from "./runtime/patched-graph.js";
export { SessionPool, type SessionPoolOptions, type PatchedRequest, type PatchedSession } from "./runtime/sessions.js";
export { createSession, type SessionOptions, type Session } from "./backend/ort.js";
export { resolvePosition } from "./base/positions.js";
export { formatAllowed } from "./base/errors.js";
export { readText } from "./io/files.js";
export { hubFiles, isHubId, type HubOptions } from "./io/hub.js";
export { compileEdits, editLayer, editTargets } from "./intervene/compile.js";
export { resolveLogitDiff, lossWeights, unembedDirection, residualGradient, type LogitDiffTokens } from "./attribution/loss.js";
export { buildAttributionGraph, LOSS_WEIGHTS_INPUT, TOP_K_INPUT, NEURON_DIRECT_MASK_INPUT, type AttributionGraph, type AttributionLoss } from "./attribution/graph.js";
export type { TokenCodec } from "./trace/trace.js";
export { splitHash, fnv1a32, charCount } from "./corpus/document.js";
export { brownTaggedToText, brownWord, readBrownCatalog, type BrownEntry } from "./corpus/brown.js";
export { textLines, fileBytes } from "./corpus/text.js";
export { fileChunks } from "./io/node-stream.js";
export { PreTokenCounts, trainBpeFromCounts, preTokenize, byteChar, GPT2_PRETOKENIZE } from "./train/bpe.js";
export { unigramLoss, bigramLoss, kneserNeyBigram, type KneserNeyBigram } from "./train/baselines.js";
export { DEFAULT_MODEL_ID } from "./runtime/options.js";
export { defaultBudget, planChunks, rowBytes, MAX_CHUNK_BYTES, FALLBACK_BUDGET_BYTES, DEFAULT_BUDGET_SHARE, type ChunkPlan, type RowBytes } from "./runtime/memory.js";
export { ONNX_MIN_MACS, requiredWeights, weightShape } from "./sae/sae.js";
export { parseSaeConfig, saeConfigJson, SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME } from "./sae/saelens.js";
export { SAFETENSORS_DTYPES, FLOAT_DTYPES, MAX_HEADER_BYTES } from "./sae/safetensors.js";
export { DENSE_THRESHOLD } from "./sae/metrics.js";
export { mapLimit, Semaphore, redact, publicUrl, isItemFailure } from "./explainer/llm.js";
export { parseRetryAfter } from "./explainer/openai-client.js";
export {
  SCALE_MAX,
  HIGHLIGHT,
  normalizeActivations,
  maxActivationOf,
  showToken,
  formatRecord,
  formatHeadRecord,
  nodeLabel,
  explanationLead,
  explanationMessages,
  parseExplanation,
  simulationMessages,
  parseSimulation,
  extractJson,
  expectedValuesFromLogprobs,
  detectionMessages,
  fuzzingMessages,
  highlight,
  parseBinaryList,
  type Parsed,
  type ExpectedValues,
} from "./explainer/prompts.js";
export { checkSimulationMode } from "./explainer/simulate.js";
export { fnv1a64 } from "./explainer/explain-llm.js";
export { tokenKey } from "./explainer/offline.js";
export { windowHash, compareWindows, compareRandom, SUM_SCALE } from "./explainer/records-data.js";
export { encodeCheckpoint, decodeCheckpoint } from "./explainer/records-io.js";
export { SKETCH_BINS, SKETCH_RELATIVE_ERROR } from "./explainer/sketch.js";
