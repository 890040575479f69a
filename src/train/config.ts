/**
 * The trainer's public types: what {@link TrainConfig} `train()` takes and what it returns.
 * Stable: other features and scripts (the toy-induction and Brown models) code against them.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import type { Gpt2Config } from "../synthetic/config.js";
import type { Gpt2GraphOptions } from "../synthetic/gpt2-graph.js";
import type { Gpt2Weights, RandomWeightOptions, WeightTensor } from "../synthetic/weights.js";

/** A stream of token ids (one long sequence; documents separated by the caller, e.g. with EOS). */
export type TokenArray = Int32Array | Uint16Array | Uint32Array;

/**
 * Training data: token streams cut into `[batch, seqLen + 1]` windows (inputs are the first
 * `seqLen` tokens of a window, targets the last `seqLen`). Windows do not overlap; their order is
 * a seeded shuffle per epoch.
 */
export interface TrainData {
  /** Training tokens. */
  train: TokenArray;
  /** Held-out tokens for the periodic evaluation (loss only). */
  valid?: TokenArray;
  /**
   * Optional loss mask over `train` (same length): a target token `train[i]` counts in the loss
   * only where `trainMask[i]` is nonzero (e.g. only the repeated half of an induction sequence).
   * Default: every target counts.
   */
  trainMask?: Uint8Array;
  /** Loss mask over `valid`, as {@link TrainData.trainMask}. */
  validMask?: Uint8Array;
}

/**
 * A GPT-2-architecture model built by the project's generator (`buildGpt2Graph`), including
 * the attention-only form (`attn_only: true`). The unembedding is untied (its own weight,
 * initialised as the transpose of `wte`).
 */
export interface Gpt2ModelSpec {
  /** Discriminator. */
  kind: "gpt2";
  /** Hyper-parameters; `n_inner` defaults to 4 n_embd, `layer_norm_epsilon` to 1e-5. */
  config: Omit<Gpt2Config, "n_inner" | "layer_norm_epsilon"> & Partial<Gpt2Config>;
  /**
   * Initial weights (default: `randomGpt2Weights(config, seed, init)`). Their arrays are trained
   * in place (they hold the trained values afterwards), unless `graph.gemmTransB` is set.
   */
  weights?: Gpt2Weights;
  /** Init scales of the random weights. */
  init?: RandomWeightOptions;
  /** Export-form options of the graph (`finalReshape`, `gemmTransB`); the variant is chosen by the trainer. */
  graph?: Omit<Gpt2GraphOptions, "variant">;
}

/**
 * Any forward graph the autodiff can differentiate: inputs `input_ids` (int64 `[batch, seq]`)
 * and optionally `attention_mask` (int64, fed all ones), an output of logits `[batch, seq, vocab]`.
 * The `params` initializers (float32) are trained; the written model is this graph with the
 * trained values in place of the initial ones.
 */
export interface GraphModelSpec {
  /** Discriminator. */
  kind: "graph";
  /** The forward graph with the initial weights as initializers. */
  graph: ModelProto;
  /** Names of the float32 initializers to train. Default: every float32 initializer with more than one element. */
  params?: readonly string[];
  /** Name of the logits output. Default "logits". */
  logits?: string;
  /** Vocabulary size (the logits' last dim). */
  vocabSize: number;
  /** Longest sequence the graph takes (window length). */
  nCtx: number;
  /** `config.json` of the written model directory (needed for `outDir`). */
  hfConfig?: Record<string, unknown>;
}

/** The model to train. */
export type TrainModelSpec = Gpt2ModelSpec | GraphModelSpec;

/**
 * AdamW with decoupled weight decay, linear warm-up then cosine decay, global-norm clipping.
 * Weight decay applies to matrices and embeddings only (parameters of rank >= 2): biases and
 * LayerNorm gains/biases are not decayed (GPT-2/nanoGPT practice).
 */
export interface OptimizerConfig {
  /** Peak learning rate. Default 1e-3. */
  lr?: number;
  /** Learning rate at the end of the cosine decay, as a fraction of `lr`. Default 0.1. */
  minLrRatio?: number;
  /** Warm-up steps (linear from lr/warmup to lr). Default min(100, steps / 10). */
  warmupSteps?: number;
  /** Adam beta1. Default 0.9. */
  beta1?: number;
  /** Adam beta2. Default 0.95. */
  beta2?: number;
  /** Adam epsilon. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (rank >= 2 parameters). Default 0.1. */
  weightDecay?: number;
  /** Clip the global gradient L2 norm to this; 0 or Infinity: no clipping. Default 1. */
  clipNorm?: number;
}

/** Where the tokenizer of the written model comes from. */
export type TokenizerSource =
  /** The built-in GPT-2 byte-level BPE, truncated to the model's vocabulary (`src/synthetic/tokenizer.ts`). */
  | "gpt2"
  /** A directory holding `tokenizer.json` and `tokenizer_config.json` (copied as they are). */
  | { dir: string }
  /** The two files' contents. */
  | { tokenizerJson: string; tokenizerConfigJson: string };

/** How progress is shown: "auto" (a live line on a terminal, else JSON lines), "tty", "json" (one object per line) or "none". */
export type ProgressMode = "auto" | "tty" | "json" | "none";

/** Where progress text goes: a stream with an optional `isTTY` (e.g. `process.stderr`). */
export interface ProgressSink {
  /** Writes text. */
  write(text: string): unknown;
  /** Whether it is a terminal (a live line is drawn only there in "auto" mode). */
  isTTY?: boolean;
}

/** One progress report (also written as a JSON line in `json` mode). */
export interface ProgressEvent {
  /** "step": a training step done; "eval": a held-out evaluation; "checkpoint": one written; "done". */
  kind: "step" | "eval" | "checkpoint" | "done";
  /** Steps done so far. */
  step: number;
  /** Total steps of the run. */
  steps: number;
  /** Training loss of the last step (nats/token), or the held-out loss for "eval". */
  loss: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Global gradient norm before clipping, of the last step. */
  gradNorm: number;
  /** Training tokens per second (target positions), averaged over the steps of this process. */
  tokensPerSecond: number;
  /** Estimated seconds left. */
  etaSeconds: number;
  /** Wall time of this step in ms ("step" events). */
  stepMs?: number;
  /** Time of this step inside onnxruntime's session run, in ms ("step" events). */
  runMs?: number;
  /** Checkpoint path ("checkpoint" events). */
  path?: string;
}

/** Everything `train()` needs. */
export interface TrainConfig {
  /** The model to train. */
  model: TrainModelSpec;
  /** Token streams. */
  data: TrainData;
  /** Optimizer steps in total (a resumed run continues up to this). */
  steps: number;
  /** Sequences per batch. */
  batchSize: number;
  /** Tokens per sequence. Default: the model's context length. */
  seqLen?: number;
  /** Optimizer and schedule. */
  optimizer?: OptimizerConfig;
  /** Seed of the initial weights and the data order. Default 0. */
  seed?: number;
  /** Evaluate on `data.valid` every this many steps (and at the end). Default: 0 (only at the end). */
  evalInterval?: number;
  /** Windows of `valid` per evaluation (in order from its start). Default: all, at most 64 batches. */
  evalBatches?: number;
  /** Checkpoint file (binary); written atomically every `checkpointInterval` steps and at the end. */
  checkpoint?: string;
  /** Steps between checkpoints. Default: 0 (only at the end). */
  checkpointInterval?: number;
  /** Continue from `checkpoint` when it exists (it must match this config). Default false. */
  resume?: boolean;
  /** Write the trained model directory here (config.json, tokenizer files, onnx/model.onnx). */
  outDir?: string;
  /** Tokenizer of the written model. Default "gpt2" (built-in, truncated to the vocabulary). */
  tokenizer?: TokenizerSource;
  /** Progress display. Default "auto": a live line when the sink is a terminal, else JSON lines. */
  progress?: ProgressMode;
  /** Where the progress line or JSON lines go. Default `process.stderr`. */
  progressSink?: ProgressSink;
  /** Called for every progress event. */
  onProgress?: (e: ProgressEvent) => void;
  /** onnxruntime intra-op threads. Default 2. */
  threads?: number;
  /** Stop after this many steps of this process (for tests of resuming); the checkpoint is written. */
  stopAfter?: number;
}

/** What `train()` returns. */
export interface TrainResult {
  /** Steps done in total (including those before a resume). */
  step: number;
  /** Training loss of the last step. */
  loss: number;
  /** Last held-out loss (nats/token), when `data.valid` was given. */
  validLoss?: number;
  /** Losses of every step of this process, in order. */
  losses: number[];
  /** Held-out evaluations of this process. */
  evals: { step: number; loss: number }[];
  /** The trained weights by parameter name. */
  weights: Map<string, WeightTensor>;
  /** Training tokens per second over this process's steps. */
  tokensPerSecond: number;
  /** Share of step time spent outside onnxruntime's session runs (0..1). */
  jsShare: number;
  /** The written model directory, when `outDir` was given. */
  outDir?: string;
  /** Whether training started from a checkpoint. */
  resumed: boolean;
}

/**
 * Signature of `train()` (in `train.ts`; exported from the Node entry `tdb-js`).
 *
 * @example
 * ```ts
 * const r = await train({
 *   model: { kind: "gpt2", config: { n_layer: 2, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 512 } },
 *   data: { train: tokens, valid: heldOut },
 *   steps: 200, batchSize: 8, optimizer: { lr: 3e-3 }, outDir: "./my-model",
 * });
 * ```
 */
export type TrainFunction = (config: TrainConfig) => Promise<TrainResult>;
