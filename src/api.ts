/**
 * The user-facing API shared by the Node entry (`src/index.ts`) and the browser entry
 * (`src/browser.ts`): everything here runs on every platform. Each entry adds its own extras
 * and installs its platform (onnxruntime and the default file adapter).
 *
 * @module
 */

// Model, traces and the activation cache
export { Model } from "./model/model.js";
export type { LoadOptions, TraceOptions, HookSelector, ModelInput, Dtype } from "./runtime/options.js";
export type { ModelConfig } from "./runtime/config.js";
export type { Tokenizer } from "./runtime/tokenizer.js";
export { Trace, type TokenLike, type PositionOptions, type TopToken } from "./trace/trace.js";
export { ActivationCache } from "./trace/cache.js";
export { Activation } from "./trace/activation.js";

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
  type EditTarget,
  type EditValue,
  type EditAlign,
  type ZeroEdit,
  type ScaleEdit,
  type SetEdit,
  type AddEdit,
  type ProjectEdit,
  type MeanEdit,
  type ResampleEdit,
  type PatchEdit,
} from "./intervene/edits.js";
export type { InterveneOptions } from "./intervene/intervene.js";
export { InterventionResult, type TopKChange } from "./intervene/result.js";
export { SweepResult, type SweepOptions, type SweepHook } from "./intervene/sweep.js";
export type { GenerateOptions, Generation } from "./intervene/generate.js";

// Attribution
export type { AttributionNode, NodeTable, NodeType, NodeCounts, Column, AttributeOptions, UpstreamNode, UpstreamOptions } from "./attribution/node-table.js";
export { LATENT_HOOK_SUFFIXES, type SaeLike, type SaeLikeConfig, type SaeLikeWeights, type SaeTerms } from "./attribution/latents.js";
export type { DlaComponent, DlaResult, LogitDiffOptions, LogitLensRow } from "./attribution/dla.js";

// Head detectors
export {
  HEAD_DETECTORS,
  HeadScores,
  detectionScore,
  detectionPattern,
  previousTokenPattern,
  duplicateTokenPattern,
  inductionPattern,
  repeatedRandomTokens,
  type HeadDetector,
  type HeadScore,
  type HeadScoresOptions,
  type DetectionScoreOptions,
  type ScoredQueries,
} from "./circuits/head-scores.js";
export { copyingPositions, copyingAccuracy } from "./circuits/copying.js";

// Hooks and weights
export {
  HOOK_KINDS,
  hookNamesFor,
  parseHookName,
  type HookName,
  type HookKind,
  type HookKindRow,
  type HookScope,
  type HookAlias,
  type BlockHookSuffix,
  type ModelHookName,
  type ParsedHook,
} from "./hooks/names.js";
export type { LayerWeights, ModelWeights } from "./hooks/adapter.js";
export type { HostTensor, ElemType } from "./onnx/tensor.js";

// Model files and devices
export { memoryFiles, type ModelFiles, type FetchLike } from "./io/files.js";
export { urlFiles, isHubId, type HubOptions, type UrlFilesOptions, type FileCache } from "./io/remote.js";
export { DEVICES, type Device, type OptimizationLevel } from "./backend/ort.js";

// Text corpora (documents from the Brown corpus, text and JSONL bytes) and held-out splits
export { type CorpusDocument, type DocumentSource, type SplitOptions, isHeldOut, heldOutIds, collectDocuments } from "./corpus/document.js";
export { brownDocuments, brownHeldOut, type BrownDocument, type BrownOptions } from "./corpus/brown.js";
export { textDocuments, jsonlDocuments, type ByteChunks, type TextOptions, type JsonlOptions } from "./corpus/text.js";

// Tokenizers and baselines for training (platform-free)
export { trainBpe, BpeTokenizer, type BpeModel, type BpeTrainOptions, type TokenizerFiles } from "./train/bpe.js";
export { ngramBaselines, natsPerTokenToBitsPerChar, type NgramBaselines, type HeldOutLoss } from "./train/baselines.js";

// Sparse autoencoders: evaluation metrics and synthetic ground truth (platform-free)
export {
  mse,
  normalizedMse,
  explainedVariance,
  explainedVarianceLegacy,
  l0,
  featureDensity,
  deadFraction,
  denseFraction,
  densityHistogram,
  densityHistogramSvg,
  maxCosineSimilarities,
  mmcs,
  ceLossRecovered,
  type Matrix,
  type DensityHistogram,
  type DensityHistogramOptions,
  type HistogramSvgOptions,
  type MmcsOptions,
  type CeLosses,
} from "./sae/metrics.js";
export {
  syntheticFeatures,
  type SyntheticOptions,
  type SyntheticFeatures,
  type SyntheticBatch,
  type FeatureFrequencies,
  type FeatureMagnitudes,
  type FeatureCorrelation,
} from "./sae/synthetic.js";

// Sparse autoencoders: the model, SAELens files (read from any ModelFiles), safetensors (platform-free)
export {
  Sae,
  SAE_ARCHITECTURES,
  SAE_NORMALIZATIONS,
  estimateNormScalingFactor,
  type SaeConfig,
  type SaeWeights,
  type SaeWeightName,
  type SaeArchitecture,
  type SaeNormalization,
  type SaeOptions,
  type SaeCompute,
  type DecodeOptions,
} from "./sae/sae.js";
export { loadSae, saeFiles, type LoadSaeOptions } from "./sae/saelens.js";
export { loadSaeSource } from "./sae/sources.js";
// Sparse autoencoders in the forward pass: SAE hooks in traces, latent edits, evaluation on a model
export {
  SAE_HOOK_SUFFIXES,
  LATENT_OPS,
  saeHookName,
  spliceSae,
  editLatents,
  editedActivation,
  type SaeHookSuffix,
  type SaeSpliceTensors,
  type LatentOp,
  type LatentChange,
} from "./sae/splice.js";
export { zeroLatent, scaleLatent, setLatent, isLatentEdit, type LatentEdit, type LatentWhere } from "./sae/latent-edits.js";
export type { SaeAttachments, SaeTraceOptions, AnyEdit, SaeInterveneOptions } from "./model/sae-splice.js";
export type { EvaluateSaeOptions, SaeEvaluation } from "./model/sae-eval.js";
export {
  trainSae,
  SAE_TRAIN_ARCHITECTURES,
  type TrainSaeOptions,
  type TrainedSae,
  type TrainedSaeTensor,
  type SaeTrainProgress,
  type SaeTrainArchitecture,
  type SaeActivations,
  type SaeCheckpointOptions,
  type RowSourcePosition,
} from "./sae/train.js";
export {
  harvestActivations,
  contextWindows,
  saeHookWidth,
  type HarvestOptions,
  type HarvestModel,
  type HarvestModelConfig,
  type HarvestTrace,
  type HarvestCache,
  type HarvestActivation,
  type SaeCorpus,
} from "./sae/harvest.js";
export { trainedSaeToSae, evaluateSaeOnRows, collectRows, type TrainedSaeMeta, type SaeRowMetrics } from "./sae/trained.js";
export {
  readSafetensors,
  writeSafetensors,
  tensorToFloat32,
  type SafeTensor,
  type SafetensorsFile,
  type SafetensorsDtype,
  type TensorToWrite,
} from "./sae/safetensors.js";

// Explanations: nodes and records, harvesting, the offline (N2G-style) and LLM explainers, scores
export {
  nodeKey,
  QUANTILE_LEVELS,
  type ExplainableNode,
  type NeuronNode,
  type SaeLatentNode,
  type HeadNode,
  type ActivationRecord,
  type ActivationStats,
  type NodeRecords,
} from "./explainer/types.js";
export {
  harvestRecords,
  allNeurons,
  allHeads,
  allLatents,
  neurons,
  type HarvestRecordsOptions,
  type HarvestProgress,
  type HarvestTimings,
  type RecordsModel,
  type RecordsModelConfig,
  type RecordsActivation,
  type RecordsCache,
  type RecordsTrace,
  type RecordsSae,
  type RecordsCorpus,
  type RecordsCheckpoint,
  type RecordsCheckpointer,
  type CorpusPosition,
} from "./explainer/records.js";
export { HarvestedRecords, mergeRecords, type RecordSettings, type RecordGroup, type RecordGroupKind, type WindowRef, type RandomWindow } from "./explainer/records-data.js";
export { encodeRecords, decodeRecords, RECORDS_FORMAT, RECORDS_VERSION, type DecodeRecordsOptions } from "./explainer/records-io.js";
export { explainOffline, simulateOffline, PatternTrie, OFFLINE_DEFAULTS, type OfflineExplainOptions, type OfflineExplanation, type OfflineStatus, type TokenPattern, type TokenFold } from "./explainer/offline.js";
export {
  explainHeadOffline,
  simulateHead,
  relationKeys,
  HEAD_PATTERN_KINDS,
  OFFLINE_HEAD_DEFAULTS,
  POSITION_BUCKETS,
  type HeadPatternKind,
  type HeadPattern,
  type HeadTokenPair,
  type HeadQueryValue,
  type HeadCandidate,
  type OfflineHeadExplainOptions,
  type OfflineHeadExplanation,
  type OfflineHeadStatus,
} from "./explainer/offline-heads.js";
export { ITEM_FAILURE_CODES, type LlmClient, type LlmIdentity, type ChatMessage, type ChatRequest, type ChatResponse, type TokenLogprob, type TokenAlternative } from "./explainer/llm.js";
export { openAiClient, OpenAiChatClient, DEFAULT_LLM_BASE_URL, type OpenAiClientOptions, type OpenAiClientSettings } from "./explainer/openai-client.js";
export { PROMPT_VERSION } from "./explainer/prompts.js";
export { simulateTokens, SIMULATION_MODES, type SimulationMode, type SimulateOptions, type Simulation } from "./explainer/simulate.js";
export {
  scoreSimulations,
  binaryScore,
  scoreDetection,
  scoreFuzzing,
  type SimulationScore,
  type ScoreDegenerate,
  type BinaryScore,
  type LlmScorerOptions,
  type LlmBinaryScore,
  type ScoredItem,
  type ScorerFailure,
} from "./explainer/scoring.js";
export { explainWithLlm, cacheKey, type ExplainWithLlmOptions, type LlmExplanation, type LlmScorer, type SimulatedRecord, type ExplainFailure, type CacheKeyParts } from "./explainer/explain-llm.js";
export { OFFLINE_EXPLAINER_VERSION, OFFLINE_HEAD_EXPLAINER_VERSION, type ExplainNeuronOptions, type NodeExplanation, type SimulatedExcerpt } from "./model/explain.js";
export { directoryStore, memoryStore, type KeyValueStore } from "./io/store.js";
export { loadExplanations, ExplanationIndex, EXPLANATION_FILES, type StoredExplanation, type LoadExplanationsOptions } from "./explainer/explanations.js";
export type { WithExplanations } from "./model/explanations.js";

// Errors
export { TdbError, type TdbErrorCode, type TdbErrorDetails } from "./base/errors.js";
