/**
 * Training and evaluation graphs: a forward graph whose trained initializers become graph
 * inputs, next-token cross-entropy appended as ONNX ops, and (for training) the backward pass
 * from `addGradients` for every parameter.
 *
 * The loss is `-sum(w[b, t] * log_softmax(logits)[b, t, target[b, t]])` with `w` a fed float
 * `[batch, seq]` tensor holding `mask / count` (so the loss is the mean over non-masked targets;
 * the caller computes the count).
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { addGradients } from "../autodiff/backward.js";
import { TdbError } from "../base/errors.js";
import { cloneStructure } from "../onnx/clone.js";
import { GraphEmitter } from "../onnx/emit.js";
import { OnnxGraph } from "../onnx/graph.js";
import { pruneDeadNodes, tensorValueInfo } from "../onnx/surgery.js";
import { tensorFromProto, tensorToProto } from "../onnx/tensor.js";
import { gpt2Config, type Gpt2Config } from "../synthetic/config.js";
import { buildGpt2Graph, unembedInitializerName } from "../synthetic/gpt2-graph.js";
import { randomGpt2Weights } from "../synthetic/weights.js";
import { gpt2HfConfig } from "../synthetic/write.js";
import type { TrainModelSpec } from "./config.js";

/** A trained parameter: its name (the initializer's), dims, current values, and whether it is decayed. */
export interface Param {
  name: string;
  dims: number[];
  data: Float32Array;
  /** AdamW weight decay applies (rank >= 2: matrices and embeddings; not biases or LayerNorm). */
  decay: boolean;
}

/** A model ready to train: the forward graph, its parameters, and how to write it out. */
export interface ResolvedModel {
  /** Forward graph (decoder form) with the initial parameters as initializers. */
  forward: ModelProto;
  /** Parameters in a fixed order. */
  params: Param[];
  /** Logits output name. */
  logits: string;
  /** Whether the graph takes `attention_mask`. */
  attentionMask: boolean;
  vocabSize: number;
  nCtx: number;
  /** The GPT-2 config, for GPT-2 specs. */
  gpt2?: Gpt2Config;
  /** The graph to write out, with `values` in place of the initial parameters. */
  exportGraph(values: ReadonlyMap<string, Float32Array>): ModelProto;
  /** `config.json` contents, given the tokenizer's EOS id. */
  hfConfig?(eos: number): Record<string, unknown>;
}

/** Replaces the named initializers of `model` (in place) by `values`. */
function replaceInitializers(model: ModelProto, values: ReadonlyMap<string, Float32Array>): ModelProto {
  const g = OnnxGraph.fromModel(model);
  const inits = model.graph!.initializer;
  for (let i = 0; i < inits.length; i++) {
    const t = inits[i]!;
    const v = values.get(t.name);
    if (v) inits[i] = tensorToProto(t.name, v, t.dims.map(Number), "float32");
  }
  g.invalidate();
  return model;
}

function floatInitializers(model: ModelProto): { name: string; dims: number[]; data: Float32Array }[] {
  const out: { name: string; dims: number[]; data: Float32Array }[] = [];
  for (const t of model.graph!.initializer) {
    const h = tensorFromProto(t);
    if (h.type !== "float32") continue;
    out.push({ name: t.name, dims: h.dims, data: Float32Array.from(h.data as Float32Array) });
  }
  return out;
}

/**
 * Resolves a model spec: builds the forward graph with the initial weights (GPT-2: seeded random
 * weights unless given; the unembedding `onnx::MatMul_N` is its own, untied parameter) and lists
 * the parameters.
 */
export function resolveModel(spec: TrainModelSpec, seed: number): ResolvedModel {
  if (spec.kind === "gpt2") {
    const cfg = gpt2Config(spec.config);
    const weights = spec.weights ?? randomGpt2Weights(cfg, seed, spec.init);
    const opts = spec.graph ?? {};
    const forward = buildGpt2Graph(cfg, weights, { ...opts, variant: "decoder" });
    const trained = new Set([...weights.keys(), unembedInitializerName(cfg)]);
    const params = floatInitializers(forward)
      .filter((p) => trained.has(p.name))
      .map((p) => {
        // Given weights are trained in place where the graph stores them as they are.
        const w = opts.gemmTransB ? undefined : spec.weights?.get(p.name);
        const data = w && w.data.length === p.data.length && w.dims.join() === p.dims.join() ? w.data : p.data;
        return { ...p, data, decay: p.dims.length >= 2 };
      });
    return {
      forward,
      params,
      logits: "logits",
      attentionMask: true,
      vocabSize: cfg.vocab_size,
      nCtx: cfg.n_positions,
      gpt2: cfg,
      // The merged decoder (with and without past keys/values), as transformers.js exports it.
      exportGraph: (values) => replaceInitializers(buildGpt2Graph(cfg, weights, { ...opts, variant: "merged" }), values),
      hfConfig: (eos) => gpt2HfConfig(cfg, eos, { name: "tdb-js/trained-gpt2", dropout: 0, initializerRange: 0.02, trained: true }),
    };
  }
  if (spec.kind !== "graph") {
    throw new TdbError("E_BAD_OPTION", `unknown model kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`, { value: (spec as { kind?: unknown }).kind, allowed: ["gpt2", "graph"] });
  }
  const forward = cloneStructure(spec.graph);
  const all = floatInitializers(forward);
  const names = spec.params ? new Set(spec.params) : undefined;
  if (names) {
    const have = new Set(all.map((p) => p.name));
    const missing = [...names].filter((n) => !have.has(n));
    if (missing.length > 0) throw new TdbError("E_BAD_OPTION", `params are not float32 initializers of the graph: ${missing.join(", ")}`, { value: missing, allowed: [...have] });
  }
  const params = all.filter((p) => (names ? names.has(p.name) : p.data.length > 1)).map((p) => ({ ...p, decay: p.dims.length >= 2 }));
  const g = OnnxGraph.fromModel(forward);
  const logits = spec.logits ?? "logits";
  if (!g.hasValue(logits)) throw new TdbError("E_BAD_OPTION", `the graph has no value ${logits}`, { value: logits, allowed: g.outputNames() });
  const hf = spec.hfConfig;
  return {
    forward,
    params,
    logits,
    attentionMask: g.inputNames().includes("attention_mask"),
    vocabSize: spec.vocabSize,
    nCtx: spec.nCtx,
    exportGraph: (values) => replaceInitializers(cloneStructure(spec.graph), values),
    hfConfig: hf ? () => hf : undefined,
  };
}

/** Names of the inputs and outputs of a training or evaluation graph. */
export interface LossGraph {
  /** The graph. */
  model: ModelProto;
  /** The scalar loss output. */
  loss: string;
  /** Parameter name -> gradient output name (training graphs). */
  grads: Map<string, string>;
}

/** The ai.onnx opset of training and evaluation graphs. */
export const TRAIN_OPSET = 17;

/** Fed target ids, int64 `[batch, seq]`. */
export const TARGETS = "tdb_targets";
/** Fed loss weights, float `[batch, seq]`: mask / count. */
export const LOSS_WEIGHTS = "tdb_loss_weights";
/** The loss output. */
export const LOSS = "tdb_loss";
/** The output holding the sum of squares of every gradient element (training graphs). */
export const GRAD_SQUARED_NORM = "tdb_grad_squared_norm";

/**
 * Builds the training graph (`withGradients`) or the evaluation graph of a resolved model for
 * batches of `shape`: parameters become inputs, the loss is appended, outputs are the loss (and
 * the gradients).
 */
export function buildLossGraph(m: ResolvedModel, withGradients: boolean, shape: { batch: number; seq: number }): LossGraph {
  const model = cloneStructure(m.forward);
  // Opset 17 (the forward graph's ops mean the same from 13 to 17) gives the backward pass
  // ScatterND/ScatterElements with reduction "add" for the embedding and target gathers,
  // instead of one-hot matrix products of [batch * seq, vocab].
  for (const o of model.opsetImport) if ((o.domain === "" || o.domain === "ai.onnx") && Number(o.version) < TRAIN_OPSET) o.version = BigInt(TRAIN_OPSET);
  const g = OnnxGraph.fromModel(model);
  // Static batch and sequence dims: every shape in the graph is then known, so that the backward
  // pass sums broadcast gradients over axes fixed in the graph (no shape arithmetic at run time)
  // and onnxruntime folds the export's shape-building nodes.
  model.graph!.input = model.graph!.input.map((v) =>
    v.name === "input_ids" || v.name === "attention_mask" ? tensorValueInfo(v.name, "int64", [shape.batch, shape.seq]) : v,
  );
  for (const p of m.params) {
    g.removeInitializer(p.name);
    g.addInput(tensorValueInfo(p.name, "float32", p.dims));
  }
  g.addInput(tensorValueInfo(TARGETS, "int64", [shape.batch, shape.seq]));
  g.addInput(tensorValueInfo(LOSS_WEIGHTS, "float32", [shape.batch, shape.seq]));
  g.invalidate();
  const e = new GraphEmitter(g, "/tdb/loss");
  const logp = e.op("LogSoftmax", [m.logits], { axis: -1 });
  const picked = e.op("GatherElements", [logp, e.unsqueeze(TARGETS, [-1])], { axis: -1 });
  const weighted = e.op("Mul", [picked, e.unsqueeze(LOSS_WEIGHTS, [-1])]);
  const total = e.reduce("ReduceSum", weighted, [0, 1, 2], false);
  e.node("Neg", [total], {}, [LOSS]);
  // Only the loss (and gradients) leave the graph; nodes feeding nothing else are dropped.
  model.graph!.output = [];
  g.invalidate();
  g.addOutput(tensorValueInfo(LOSS, "float32", []));
  let grads = new Map<string, string>();
  if (withGradients) {
    grads = addGradients(g, { loss: LOSS, wrt: m.params.map((p) => p.name) }).grads;
    // The squared global gradient norm, for clipping (vectorized here instead of a JS pass).
    e.scope = "/tdb/grad_norm";
    const squares = [...grads.values()].map((gr) => e.op("ReduceSumSquare", [gr], { keepdims: 0 }));
    e.node(squares.length === 1 ? "Identity" : "Sum", squares, {}, [GRAD_SQUARED_NORM]);
    g.invalidate();
    g.addOutput(tensorValueInfo(GRAD_SQUARED_NORM, "float32", []));
  }
  g.invalidate();
  pruneDeadNodes(g);
  return { model, loss: LOSS, grads };
}
