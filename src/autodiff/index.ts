/**
 * Reverse-mode autodiff for ONNX graphs (a backward graph of standard ops, run by onnxruntime)
 * and a finite-difference gradient check.
 *
 * @module
 */
export { addGradients, type GradientResult, type GradientSpec } from "./backward.js";
export { gradcheck, type GradcheckOptions, type GradcheckReport } from "./gradcheck.js";
export { registerGradient, supportedGradientOps } from "./registry.js";
export type { GradContext, GradRule } from "./rule.js";
export { Emitter } from "./emitter.js";
export { ValueFactsTable, type SymDim, type ValueFacts } from "./infer.js";
export { promoteToDouble, promoteFeed } from "./promote.js";
