/**
 * What an architecture adapter tells the rest of tdb-js: where each hook lives in the ONNX
 * graph, which hooks it could not find (and why), and the weights users analyse.
 *
 * @module
 */
import type { HookName } from "./names.js";
import type { OnnxGraph } from "../onnx/graph.js";
import type { HostTensor } from "../onnx/tensor.js";

/** How a hook's tensor is obtained from the graph. */
export type HookSource =
  /** An existing tensor, exposed through an Identity tap. */
  | {
      kind: "tap";
      value: string;
      /** The tensor has batch size 1 whatever the input batch (position embeddings). */
      broadcastBatch?: boolean;
      /**
       * The value is the output of the last node of a pattern onnxruntime fuses (e.g. the
       * decomposed GELU): expose it through an Identity copy, or the fusion is lost.
       */
      fusionTail?: boolean;
    }
  /** A tensor computed by nodes the adapter adds on request (e.g. per-head results). */
  | {
      kind: "computed";
      /** Adds the nodes computing the hook to `g` and returns the name of the value to expose. */
      build: (g: OnnxGraph) => string;
    };

/** The result of hook discovery on one graph. */
export interface HookMap {
  /** Hooks found, in forward order. */
  readonly sources: ReadonlyMap<HookName, HookSource>;
  /** Hooks the graph does not let us reach, with the reason (e.g. a fused op). */
  readonly unavailable: ReadonlyMap<HookName, string>;
  /** Number of transformer blocks found. */
  readonly nLayers: number;
}

/** Per-layer weights in TransformerLens layout (Float32, row-major). */
export interface LayerWeights {
  /** [n_head, d_model, d_head] */
  W_Q: HostTensor<"float32">;
  W_K: HostTensor<"float32">;
  W_V: HostTensor<"float32">;
  /** [n_head, d_head] */
  b_Q: HostTensor<"float32">;
  b_K: HostTensor<"float32">;
  b_V: HostTensor<"float32">;
  /** [n_head, d_head, d_model] */
  W_O: HostTensor<"float32">;
  /** [d_model] */
  b_O: HostTensor<"float32">;
  /** [d_model, d_mlp] */
  W_in: HostTensor<"float32">;
  /** [d_mlp] */
  b_in: HostTensor<"float32">;
  /** [d_mlp, d_model] */
  W_out: HostTensor<"float32">;
  /** [d_model] */
  b_out: HostTensor<"float32">;
  /** LayerNorm weights and biases [d_model]. */
  ln1_w: HostTensor<"float32">;
  ln1_b: HostTensor<"float32">;
  ln2_w: HostTensor<"float32">;
  ln2_b: HostTensor<"float32">;
}

/** The weights of a whole model in TransformerLens layout. */
export interface ModelWeights {
  /** Token embeddings [d_vocab, d_model]. */
  W_E: HostTensor<"float32">;
  /** Position embeddings [n_ctx, d_model]. */
  W_pos: HostTensor<"float32">;
  /** Unembedding [d_model, d_vocab]. */
  W_U: HostTensor<"float32">;
  /** Unembedding bias [d_vocab] (zeros for GPT-2). */
  b_U: HostTensor<"float32">;
  lnf_w: HostTensor<"float32">;
  lnf_b: HostTensor<"float32">;
  blocks: LayerWeights[];
}

/** Dimensions an adapter needs to know to find hooks by shape. */
export interface ArchDims {
  nLayers: number;
  nHeads: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  nCtx: number;
  dVocab: number;
  /** LayerNorm epsilon. */
  lnEps: number;
}

/** A config.json dimension that disagrees with the graph (see {@link ArchitectureAdapter.checkDims}). */
export interface DimMismatch {
  /** The dimension, in {@link ArchDims} terms. */
  dim: keyof ArchDims;
  /** The value config.json gives. */
  config: number;
  /** The value the graph shows. */
  graph: number;
  /** Which graph fact shows it, for messages (e.g. "rows of the token embedding (wte)"). */
  fact: string;
}

/** What {@link ArchitectureAdapter.normalize} did to a graph. */
export interface NormalizeReport {
  /** Whether the graph was changed. */
  changed: boolean;
  /** What was done or checked, one line per step (e.g. "named 412 nodes from the graph's structure: ..."). */
  steps: string[];
  /** What was not understood, one line each; the graph is left as it was for that step. */
  problems: string[];
}

/** An architecture adapter: a table of patterns plus the code to apply them. */
export interface ArchitectureAdapter {
  /** Short name used in messages, e.g. "GPT-2". */
  readonly name: string;
  /** `model_type` values of config.json this adapter understands. */
  readonly modelTypes: readonly string[];
  /**
   * Checks the config's dims against what the graph shows (blocks, embedding tables, head split,
   * MLP width) and returns the disagreements, empty when none. Must not loop over
   * `dims.nLayers`: load calls it before anything else does, so absurd sizes fail fast.
   */
  checkDims(g: OnnxGraph, dims: ArchDims): DimMismatch[];
  /** Finds hook points in the graph. Never throws for missing hooks: lists them as unavailable. */
  discover(g: OnnxGraph, dims: ArchDims): HookMap;
  /** Reads the analysis weights from the graph initializers. */
  weights(g: OnnxGraph, dims: ArchDims): ModelWeights;
  /**
   * The value holding the final normalisation's scale (LayerNorm: `sqrt(var + eps)`; RMSNorm:
   * `sqrt(mean(x^2) + eps)`), which attribution holds constant; undefined when the graph hides
   * it (a fused normalisation op).
   */
  finalNormScale(g: OnnxGraph, dims: ArchDims): string | undefined;
  /**
   * An initializer that is block `layer`'s W_out exactly as {@link LayerWeights.W_out} lays it
   * out ([d_mlp, d_model], float32), so graphs built on this one can read it instead of a copy;
   * undefined when the graph stores it otherwise (transposed, fused, quantized).
   */
  mlpOutWeight(g: OnnxGraph, layer: number, dims: ArchDims): string | undefined;
  /**
   * Brings `g` (the flattened no-past graph, before {@link checkDims} and discovery) into the form
   * discovery reads, in place: e.g. GPT-2 names the nodes of a graph written without module scopes
   * from its structure. Never throws for a graph it does not understand: the report says why, and
   * discovery then reports the hooks it cannot find. Must not loop over `dims.nLayers`.
   */
  normalize?(g: OnnxGraph, dims: ArchDims): NormalizeReport;
  /**
   * Turns `g` (a copy of the flattened no-past graph) into a with-past graph, in place: key/value
   * caches as inputs, the presents as outputs, positions and the causal mask offset by the past
   * length (see {@link PastGraph}). Absent: generation re-runs the whole sequence at each step.
   */
  withPast?(g: OnnxGraph, hookMap: HookMap, dims: ArchDims): PastGraph;
}

/**
 * What {@link ArchitectureAdapter.withPast} made: per layer, the cache inputs and the present
 * outputs, all `[batch, position, head, d_head]` (the layout of `hook_k` / `hook_v`); the
 * presents hold the past followed by the new tokens. The `attention_mask` input covers past and
 * new tokens (`[batch, past + seq]`); the step's tokens take positions past .. past + seq - 1.
 */
export interface PastGraph {
  layers: { pastKey: string; pastValue: string; presentKey: string; presentValue: string }[];
  /** The mask input over past and new tokens (int64 or int32, 1 = attend). */
  maskInput: string;
}
