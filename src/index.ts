/**
 * tdb-js: look inside transformers.js language models and explain what they do.
 *
 * Start with {@link Model.load} and {@link Model.trace}:
 *
 * ```ts
 * import { Model, ensureDefaultModel } from "tdb-js";
 * const model = await Model.load(await ensureDefaultModel()); // or a directory, or a hub id
 * const t = await model.trace("The quick brown fox");
 * t.topK(5);
 * t.cache.get("pattern", 0).dims; // [1, n_head, pos, pos]
 * ```
 *
 * @module
 */

// Model, traces and the activation cache
export { Model, ONNX_FILES, type EditFeed, type RunSpec, type LoadOptions, type TraceOptions, type HookSelector, type ModelInput, type Dtype } from "./model/model.js";
export { Trace, type TokenLike, type PositionOptions, type TopToken, type TokenCodec } from "./trace/trace.js";
export { ActivationCache } from "./trace/cache.js";
export { Activation } from "./trace/activation.js";
export { parseConfig, type ModelConfig } from "./runtime/config.js";
export { padBatch, type TokenBatch } from "./runtime/batch.js";
export { resolvePosition } from "./base/positions.js";
export { loadTokenizer } from "./runtime/tokenizer.js";
export { ensureDefaultModel, defaultModelDir, DEFAULT_MODEL_SEED, DEFAULT_MODEL_CONFIG } from "./synthetic/default-model.js";

// Interventions
export {
  zeroHead,
  zeroNeuron,
  zeroAttention,
  ablateDirection,
  steer,
  patchFrom,
  meanAblate,
  resampleFrom,
  type Edit,
  type EditKind,
  type EditAxis,
  type EditWhere,
} from "./intervene/edits.js";
export { compileEdits, editLayer, editTargets } from "./intervene/compile.js";
export { type InterveneOptions } from "./intervene/intervene.js";
export { InterventionResult, type TopKChange } from "./intervene/result.js";
export { SweepResult, type SweepOptions, type SweepHook } from "./intervene/sweep.js";
export { type GenerateOptions, type Generation } from "./intervene/generate.js";
export { buildPatchedGraph, editableValue, labelSize, rowsInput, LOGIT_POSITIONS_INPUT, type PatchSpec, type PatchedGraph, type EditInputs } from "./runtime/patched-graph.js";

// Autodiff
export * from "./autodiff/index.js";

// Attribution
export {
  attribute,
  traceUpstream,
  type AttributionNode,
  type NodeTable,
  type NodeType,
  type Column,
  type AttributeOptions,
  type UpstreamNode,
  type UpstreamOptions,
} from "./attribution/node-table.js";
export { directLogitAttribution, logitLens, type DlaComponent, type DlaResult, type LogitDiffOptions, type LogitLensRow } from "./attribution/dla.js";
export { resolveLogitDiff, lossWeights, unembedDirection, residualGradient, type LogitDiffTokens } from "./attribution/loss.js";
export { buildAttributionGraph, LOSS_WEIGHTS_INPUT, TOP_K_INPUT, NEURON_DIRECT_MASK_INPUT, type AttributionGraph, type AttributionLoss } from "./attribution/graph.js";

// Errors
export { TdbError, formatAllowed, type TdbErrorCode, type TdbErrorDetails } from "./base/errors.js";

// Hooks
export {
  HOOK_KINDS,
  hookNamesFor,
  parseHookName,
  resolveHookAlias,
  hookKindOf,
  type HookName,
  type HookKind,
  type HookKindRow,
  type HookScope,
  type HookAlias,
  type BlockHookSuffix,
  type ModelHookName,
  type ParsedHook,
} from "./hooks/names.js";
export type { HookSource, HookMap, LayerWeights, ModelWeights, ArchDims, ArchitectureAdapter } from "./hooks/adapter.js";
export { gpt2Adapter, findBlockScopes } from "./hooks/gpt2.js";
export { addLnScale } from "./hooks/ln-scale.js";
export { addPerHeadResult } from "./hooks/per-head-result.js";

// File and network adapters, runtime
export { memoryFiles, readText, type ModelFiles } from "./io/files.js";
export { directoryFiles } from "./io/node-files.js";
export { hubFiles, isHubId, type HubOptions } from "./io/hub.js";
export { createSession, DEVICES, type Device, type OptimizationLevel, type SessionOptions, type Session } from "./runtime/ort.js";
export { SessionPool, type SessionPoolOptions, type PatchedRequest, type PatchedSession } from "./runtime/sessions.js";

// ONNX layer
export * from "./onnx/tensor.js";
export { decodeModel, encodeModel } from "./onnx/proto.js";
export { encodeMessage, encodedSize } from "./onnx/encode.js";
export { externalizeData, resolveExternalData, forEachTensor, type ExternalDataLoader, type ExternalizeOptions, type Externalized } from "./onnx/external.js";
export { OnnxGraph } from "./onnx/graph.js";
export { cloneStructure } from "./onnx/clone.js";
export {
  addTapOutput,
  exposeValue,
  insertEditPoint,
  inlineIfBranch,
  removeUnusedInputs,
  removeUnusedInitializers,
  pruneDeadNodes,
  tensorValueInfo,
  type TapOptions,
  type EditPointOptions,
  type EditPoint,
} from "./onnx/surgery.js";
export { validateGraph, graphProblems, type ValidateOptions } from "./onnx/validate.js";
export { GraphBuilder, attr, makeAttribute, valueInfo, type Dim, type Attr, type AttrInput, type NodeOptions, type GraphBuilderOptions } from "./onnx/builder.js";

// Fixture generator: GPT-2-architecture models with seeded random weights
export { gpt2Config, headDim, TINY_GPT2, GPT2_SMALL_SHAPES, type Gpt2Config } from "./synthetic/config.js";
export { buildGpt2Graph, unembedInitializerName, causalMaskName, FLOAT32_MIN, type Gpt2GraphVariant, type Gpt2GraphOptions } from "./synthetic/gpt2-graph.js";
export { randomGpt2Weights, gpt2WeightShapes, type Gpt2Weights, type WeightTensor, type RandomWeightOptions } from "./synthetic/weights.js";
export {
  buildGpt2Tokenizer,
  gpt2Vocab,
  readGpt2BpeSource,
  ENDOFTEXT,
  GPT2_VOCAB_SIZE,
  type Gpt2BpeSource,
  type Gpt2TokenizerFiles,
} from "./synthetic/tokenizer.js";
export { writeGpt2Model, ensureGpt2Model, FIXTURE_VERSION, type WriteGpt2Options, type Gpt2ModelPaths } from "./synthetic/write.js";
export { Rng } from "./synthetic/random.js";
