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
 * The root export is what users need. The layers underneath have their own entry points:
 * `tdb-js/onnx` (protobuf I/O, graph IR, surgery), `tdb-js/hooks` (architecture adapters),
 * `tdb-js/autodiff` (reverse-mode autodiff over ONNX graphs), `tdb-js/synthetic` (generated
 * GPT-2 models) and `tdb-js/internals` (the model runtime under {@link Model}).
 *
 * This is the Node.js and Deno entry (onnxruntime-node, directories, a disk-cached hub). Bundlers
 * targeting browsers pick `tdb-js`'s browser entry instead, with the same API on onnxruntime-web.
 *
 * @module
 */
import { useNodePlatform } from "./runtime/platform-node.js";

useNodePlatform();

export * from "./api.js";

// Node and Deno only: the generated default model on disk, directories, the disk-cached hub
export { ensureDefaultModel, defaultModelDir } from "./synthetic/default-model.js";
export { directoryFiles } from "./io/node-files.js";
export { hubFiles } from "./io/hub.js";
export { brownCorpus, brownCorpusFiles, brownCorpusDir, textFileDocuments, jsonlFileDocuments } from "./corpus/node.js";

// Interpretability regression checks (`tdb check`): specs read from files, reports, JUnit XML
export { runCheck, loadSpec, CHECK_SCHEMA, type CheckReport, type CheckOptions, type AssertionResult, type AssertionStatus } from "./check/run.js";
export { junitXml, writeJUnit } from "./check/junit.js";
export {
  parseSpec,
  type CheckSpec,
  type Assertion,
  type AssertionCommon,
  type Threshold,
  type AssertionKind,
  type LogitDiffAssertion,
  type TopTokenAssertion,
  type AblationAssertion,
  type AblationMetric,
  type AttributionAssertion,
  type HeadScoreAssertion,
  type CopyingAssertion,
  type Comparison,
  type Aggregate,
  type EditSpec,
  type PromptSpec,
  type TokenSpec,
} from "./check/spec.js";

// Sparse autoencoders written to disk in SAELens's layout (Node: files)
export { saveSae } from "./sae/save.js";
export { readSaeCheckpoint, writeSaeCheckpoint, saeRunHash, type SaeCheckpointState, type SaeCheckpointArray } from "./sae/checkpoint.js";
export { writeRecords, readRecords, writeRecordsCheckpoint, readRecordsCheckpoint, fileCheckpointer } from "./explainer/records-node.js";

// Key-value stores in a directory (explanation caches); importing registers `directoryStore`
export { nodeDirectoryStore } from "./io/node-store.js";

// Training (Node: checkpoints and model directories go to disk)
export { train } from "./train/train.js";
export { prepareBrown, type PrepareBrownOptions, type PreparedBrown } from "./train/brown-data.js";
export type {
  TrainConfig,
  TrainResult,
  TrainData,
  TokenArray,
  TrainModelSpec,
  Gpt2ModelSpec,
  GraphModelSpec,
  OptimizerConfig,
  TokenizerSource,
  ProgressMode,
  ProgressEvent,
  ProgressSink,
} from "./train/config.js";
