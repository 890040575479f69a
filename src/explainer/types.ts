/**
 * The shared vocabulary of the explainer: which node is explained, and its activation records
 * (top-activating and random dataset excerpts with one activation per token, plus summary
 * statistics). Records are what harvesting writes, what explainers and simulators read, and what
 * scores are computed on.
 *
 * @module
 */

/** An MLP neuron: `blocks.<layer>.mlp.hook_post[..., index]`. */
export interface NeuronNode {
  kind: "mlp_neuron";
  layer: number;
  index: number;
}

/** A latent of the SAE attached at `hook` (TransformerLens hook name, e.g. `blocks.2.hook_mlp_out`). */
export interface SaeLatentNode {
  kind: "sae_latent";
  hook: string;
  index: number;
}

/**
 * An attention head. Its activation at a query position is the largest attention probability
 * from that query to a key other than position 0 (BOS); its records also keep, per excerpt,
 * the key position of that maximum, so token pairs (query, key) can be explained.
 */
export interface HeadNode {
  kind: "attention_head";
  layer: number;
  head: number;
}

/** A node that can be harvested and explained. */
export type ExplainableNode = NeuronNode | SaeLatentNode | HeadNode;

/** Stable string id of a node: `mlp.L.I`, `sae.<hook>.I`, `attn.L.H` (as the attribution table's ids, without position). */
export function nodeKey(node: ExplainableNode): string {
  switch (node.kind) {
    case "mlp_neuron":
      return `mlp.${node.layer}.${node.index}`;
    case "sae_latent":
      return `sae.${node.hook}.${node.index}`;
    case "attention_head":
      return `attn.${node.layer}.${node.head}`;
  }
}

/** One dataset excerpt: tokens (as strings, as the model's tokenizer decodes each id) with the node's activation at each. */
export interface ActivationRecord {
  /** Token strings of the excerpt. */
  tokens: string[];
  /** Token ids (same length as `tokens`). */
  ids: number[];
  /** The node's activation at each token (same length). */
  activations: number[];
  /** Where the excerpt comes from: document id and the token offset of its first token. */
  source?: { doc: string; offset: number };
  /** Attention heads: for each token (query), the key position (index into `tokens`) it attends to most, or -1. */
  keys?: number[];
}

/** Summary statistics of a node's activation over every harvested token. */
export interface ActivationStats {
  /** Tokens seen. */
  count: number;
  /** Largest activation. */
  max: number;
  /** Mean activation. */
  mean: number;
  /** Fraction of tokens with activation > 0. */
  density: number;
  /** Approximate quantiles at {@link QUANTILE_LEVELS}. */
  quantiles: number[];
}

/** Levels of {@link ActivationStats.quantiles}. */
export const QUANTILE_LEVELS: readonly number[] = Object.freeze([0.5, 0.9, 0.99, 0.999]);

/** Everything harvested for one node. */
export interface NodeRecords {
  node: ExplainableNode;
  /** Top-activating excerpts, by peak activation, descending. */
  top: ActivationRecord[];
  /** Uniformly random excerpts (random positions of the corpus). */
  random: ActivationRecord[];
  stats: ActivationStats;
}
