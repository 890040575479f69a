/**
 * `Model`: the facade users hold. It owns a {@link ModelRuntime} (config, tokenizer, hook map,
 * sessions) and forwards each capability to the feature module that implements it.
 *
 * @module
 */
import { installDisplay, summarizeModel } from "../base/inspect.js";
import { directLogitAttribution, logitLens, type DlaResult, type LogitDiffOptions, type LogitLensRow } from "../attribution/dla.js";
import { attribute, traceUpstream, type AttributeOptions, type NodeTable, type UpstreamNode, type UpstreamOptions } from "../attribution/node-table.js";
import { headScores, type HeadScores, type HeadScoresOptions } from "../circuits/head-scores.js";
import type { ModelWeights } from "../hooks/adapter.js";
import type { HookName } from "../hooks/names.js";
import { generate, type GenerateOptions, type Generation } from "../intervene/generate.js";
import type { InterventionResult } from "../intervene/result.js";
import { patchingSweep, type SweepOptions, type SweepResult } from "../intervene/sweep.js";
import type { ModelConfig } from "../runtime/config.js";
import type { LoadOptions, ModelInput } from "../runtime/options.js";
import { ModelRuntime } from "../runtime/runtime.js";
import type { Tokenizer } from "../runtime/tokenizer.js";
import type { Activation } from "../trace/activation.js";
import type { Trace } from "../trace/trace.js";
import type { Sae } from "../sae/sae.js";
import { evaluateSae, type EvaluateSaeOptions, type SaeEvaluation } from "./sae-eval.js";
import { explainNeuron, type ExplainNeuronOptions, type NodeExplanation } from "./explain.js";
import type { LlmClient } from "../explainer/llm.js";
import type { ExplainableNode } from "../explainer/types.js";
import { splitExplanations, withExplanations, type WithExplanations } from "./explanations.js";
import { interveneWithLatents, traceWithSaes, type AnyEdit, type SaeInterveneOptions, type SaeTraceOptions } from "./sae-splice.js";

const runtimes = new WeakMap<Model, ModelRuntime>();

/**
 * The {@link ModelRuntime} behind a {@link Model}: for tools that build on tdb-js's internals
 * (patched graphs, sessions, raw runs). Not part of the stable API.
 */
export function runtimeOf(model: Model): ModelRuntime {
  return runtimes.get(model)!;
}

/**
 * A language model with hookable internals.
 *
 * @example
 * ```ts
 * import { Model } from "tdb-js";
 * const model = await Model.load("./models/tiny-gpt2");
 * const t = await model.trace("The quick brown fox");
 * console.log(t.topK(3), t.cache.get("blocks.0.mlp.hook_post").dims);
 * ```
 */
export class Model {
  static {
    installDisplay(Model.prototype, { text: (m) => summarizeModel(m) });
  }

  private readonly rt: ModelRuntime;

  private constructor(rt: ModelRuntime) {
    this.rt = rt;
    runtimes.set(this, rt);
  }

  /**
   * Loads a model from a local directory (`config.json`, `tokenizer.json`,
   * `tokenizer_config.json`, `onnx/model.onnx`), a Hugging Face hub id, a model shipped in the
   * package (`tdb:brown-small`, `tdb:toy-induction`; Node.js and Deno), or the files given in
   * `opts.files`. Without an id: `tdb:brown-small`, offline.
   *
   * @example
   * ```ts
   * const model = await Model.load();                        // tdb:brown-small, shipped
   * const gpt2 = await Model.load("onnx-community/gpt2-ONNX"); // the hub (cached on disk)
   * ```
   */
  static async load(idOrDir?: string, opts: LoadOptions = {}): Promise<Model> {
    return new Model(await ModelRuntime.load(idOrDir, opts));
  }

  /** Model dimensions and the raw config.json. */
  get config(): ModelConfig {
    return this.rt.config;
  }

  /** The transformers.js tokenizer. */
  get tokenizer(): Tokenizer {
    return this.rt.tokenizer;
  }

  /** Hook names this model can cache, in forward order. */
  get hookNames(): HookName[] {
    return this.rt.hookNames;
  }

  /** Hooks this graph does not let tdb-js reach, with the reason (e.g. a fused attention op). */
  get unavailableHooks(): ReadonlyMap<HookName, string> {
    return this.rt.hookMap.unavailable;
  }

  /** Weights in TransformerLens layout (W_Q, W_O, W_in, W_U, ...), read once on first use. */
  get weights(): ModelWeights {
    return this.rt.weights;
  }

  /** The BOS token id (GPT-2: `<|endoftext|>`). */
  get bosTokenId(): number {
    return this.rt.bosTokenId;
  }

  /**
   * Token ids of a prompt. With `prependBos` (default true, as in TransformerLens) the BOS
   * token comes first.
   *
   * @example
   * ```ts
   * model.toTokens("Hello world", { prependBos: false }); // e.g. [15496, 995] with the GPT-2 vocabulary
   * ```
   */
  toTokens(text: string, opts: { prependBos?: boolean } = {}): number[] {
    return this.rt.toTokens(text, opts);
  }

  /** The string of each token of a prompt or token row. */
  toStrTokens(input: string | readonly number[], opts: { prependBos?: boolean } = {}): string[] {
    return this.rt.toStrTokens(input, opts);
  }

  /** The id of a string that is exactly one token; `E_NOT_SINGLE_TOKEN` otherwise. */
  toSingleToken(s: string): number {
    return this.rt.toSingleToken(s);
  }

  /**
   * Runs the model and caches activations. With `saes`, each SAE's SAELens hooks
   * (`<hook>.hook_sae_input`, `hook_sae_acts_pre`, `hook_sae_acts_post`, `hook_sae_recons`,
   * `hook_sae_error`) join the cache; the outputs are unchanged unless `useErrorTerm: false`
   * splices the reconstructions in.
   *
   * @example
   * ```ts
   * const t = await model.trace(["Hello there", "Hi"], { hooks: ["blocks.0.attn.hook_pattern"] });
   * t.cache.get("pattern", 0).dims; // [2, n_head, 3, 3] (right-padded; BOS prepended)
   * const s = await model.trace("Hello there", { hooks: [], saes: [sae] }); // sae.config.hookName: blocks.1.hook_mlp_out
   * s.cache.get("blocks.1.hook_mlp_out.hook_sae_acts_post").dims; // [1, 3, d_sae]
   * ```
   */
  async trace(input: ModelInput, opts: SaeTraceOptions = {}): Promise<Trace> {
    return opts?.saes === undefined ? this.rt.trace(input, opts) : traceWithSaes(this.rt, input, opts);
  }

  /** Logits [batch, pos, d_vocab] from the unpatched graph (the baseline every trace is checked against). */
  async forward(input: ModelInput, opts: { prependBos?: boolean } = {}): Promise<Activation> {
    return this.rt.forward(input, opts);
  }

  /**
   * Runs a prompt (or batch) with edits held on, beside the clean run: ablations (zero, mean,
   * resample), activation patching, steering, on any editable hook. With `variants`, many edit
   * sets of one prompt run as batched rows.
   *
   * @example
   * ```ts
   * import { zeroHead, zeroNeuron } from "tdb-js";
   * const r = await model.intervene("When John and Mary went to the shops, John gave the bag to", [zeroHead(1, 3)]);
   * r.logitDiffChange(" Mary", " John");
   * // all 144 single-head ablations of GPT-2 small in batched runs:
   * const all = await model.intervene(prompt, [], { variants: heads.map(([l, h]) => [zeroHead(l, h)]) });
   * // SAE latents (output decode(edited latents) + error; one extra pass per SAE hook):
   * await model.intervene(prompt, [zeroLatent(sae, 1234, { positions: [-1] })]);
   * ```
   */
  async intervene(input: ModelInput, edits: readonly AnyEdit[], opts: SaeInterveneOptions = {}): Promise<InterventionResult> {
    return interveneWithLatents(this.rt, input, edits, opts);
  }

  /**
   * Evaluates an SAE at its hook over prompts or token rows: L0, MSE, normalised MSE, explained
   * variance, dead and dense fractions, the feature-density histogram, and cross-entropy loss
   * recovered (clean vs the hook replaced by the reconstruction vs the hook zero-ablated). Rows
   * run in chunks; memory holds one chunk's runs and running sums.
   *
   * @example
   * ```ts
   * const ev = await model.evaluateSae(sae, prompts); // sae.config.hookName names the hook
   * ev.explainedVariance; ev.l0; ev.ceLossRecovered;
   * ```
   */
  async evaluateSae(sae: Sae, input: ModelInput, opts: EvaluateSaeOptions = {}): Promise<SaeEvaluation> {
    return evaluateSae(this.rt, sae, input, opts);
  }

  /**
   * Explains a node (MLP neuron, SAE latent or attention head) from its activation records: with
   * an LLM (explain, simulate, score: neuron-explainer's method, plus delphi's detection and
   * fuzzing scorers on request), or `"offline"` with the token-pattern explainer that needs no
   * LLM. Records come from `records` or are harvested from `corpus`; results are cached in
   * `cache` (a store or a directory), keyed by model, node, explainer version and LLM.
   *
   * @example
   * ```ts
   * const e = await model.explainNeuron({ kind: "mlp_neuron", layer: 1, index: 7 }, "offline", { corpus: texts });
   * e.explanation; e.scores.correlation;
   * const llm = openAiClient({ model: "gpt-4o-mini" });          // key from OPENAI_API_KEY
   * await model.explainNeuron(node, llm, { records, scorers: ["detection"], cache: ".tdb-cache" });
   * ```
   */
  async explainNeuron(node: ExplainableNode, explainer: LlmClient | "offline", opts: ExplainNeuronOptions = {}): Promise<NodeExplanation> {
    return explainNeuron(this.rt, node, explainer, opts);
  }

  /** What the model was loaded from: its id or directory (or the origin of the files it was given). */
  get source(): string {
    return this.rt.source;
  }

  /**
   * Activation patching sweep: patches each clean activation of a hook (per layer x position,
   * per layer x head, ...) into the corrupted run, one cell per batched variant, and records a
   * metric (default: logit difference target - distractor at the last position).
   *
   * @example
   * ```ts
   * const grid = await model.patchingSweep(cleanPrompt, corruptedPrompt, { hook: "resid_pre", target: " Mary", distractor: " John" });
   * grid.at(3, 5);      // metric with layer 3's resid_pre at position 5 patched from the clean run
   * grid.normalized();  // 1 = clean behaviour restored, 0 = no effect
   * ```
   */
  async patchingSweep(clean: ModelInput, corrupted: ModelInput, opts: SweepOptions): Promise<SweepResult> {
    return patchingSweep(this.rt, clean, corrupted, opts);
  }

  /**
   * Generates a continuation with edits held on at every step (greedy by default).
   *
   * @example
   * ```ts
   * const g = await model.generate("I think that", { edits: [steer("blocks.1.hook_resid_pre", v, 8)], maxNewTokens: 10 });
   * g.completion;
   * ```
   */
  async generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<Generation> {
    return generate(this.rt, prompt, opts);
  }

  /**
   * The Transformer Debugger node table for "why `target` rather than `distractor`?" at the
   * last position: MLP neurons, attention-head nodes and token embeddings (and SAE latents, with
   * `saes`) with activation, write magnitude, direct effect and estimated total effect
   * (activation x gradient). With `explanations` (`loadExplanations("tdb:brown-small")`), rows of
   * explained nodes carry their explanation and its score.
   *
   * @example
   * ```ts
   * const t = await model.attribute("When John and Mary went to the shops, John gave the bag to", { target: " Mary", distractor: " John" });
   * console.table(t.nodes.slice(0, 10));
   * ```
   */
  async attribute(input: ModelInput, opts: AttributeOptions & WithExplanations): Promise<NodeTable> {
    const { explanations, rest } = splitExplanations(opts);
    return withExplanations(await attribute(this.rt, input, rest as AttributeOptions), explanations);
  }

  /** The node table with the loss replaced by one node's pre-activation (see {@link traceUpstream}); `explanations` as in {@link attribute}. */
  async traceUpstream(input: ModelInput, node: UpstreamNode, opts: UpstreamOptions & WithExplanations = {}): Promise<NodeTable> {
    const { explanations, rest } = splitExplanations(opts);
    return withExplanations(await traceUpstream(this.rt, input, node, rest), explanations);
  }

  /** Direct logit attribution of the logit difference to every residual-stream component. */
  async directLogitAttribution(input: ModelInput, opts: LogitDiffOptions): Promise<DlaResult> {
    return directLogitAttribution(this.rt, input, opts);
  }

  /** The logit lens: the logit difference read from each layer's residual stream. */
  async logitLens(input: ModelInput, opts: LogitDiffOptions): Promise<LogitLensRow[]> {
    return logitLens(this.rt, input, opts);
  }

  /**
   * Previous-token, duplicate-token and induction scores of every head, as TransformerLens's
   * head detector defines them (attention mass on the detection pattern), by default on seeded
   * random tokens repeated twice.
   *
   * @example
   * ```ts
   * const s = await model.headScores();
   * s.above("induction", 0.3); // heads scoring above 0.3, highest first
   * ```
   */
  async headScores(opts: HeadScoresOptions = {}): Promise<HeadScores> {
    return headScores(this.rt, opts);
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    await this.rt.dispose();
  }
}
