/**
 * `tdb-js/hooks`: architecture adapters. The hook table (TransformerLens names and dims), the
 * adapter interface every architecture implements, the adapters tdb-js ships, and the computed
 * hooks they add (LayerNorm scale side chains, per-head results).
 *
 * @example
 * ```ts
 * import { adapterFor } from "tdb-js/hooks";
 * const hooks = adapterFor("gpt2").discover(graph, dims); // HookMap: where each hook lives
 * ```
 *
 * @module
 */
export * from "./names.js";
export type { HookSource, HookMap, LayerWeights, ModelWeights, ArchDims, ArchitectureAdapter, DimMismatch, NormalizeReport, PastGraph } from "./adapter.js";
export { analyzeGpt2Structure, assignGpt2Scopes, type Gpt2Structure, type Gpt2StructureResult, type StructureHints, type AssignResult } from "./gpt2-structure.js";
export { ADAPTERS, adapterFor } from "./registry.js";
export { gpt2Adapter } from "./gpt2.js";
export { findBlockScopes } from "./gpt2-locate.js";
export { addLnScale } from "./ln-scale.js";
export { addPerHeadResult, type WeightLayout } from "./per-head-result.js";
