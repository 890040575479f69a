/**
 * The contract between the backward pass and the per-op gradient rules.
 *
 * @module
 */
import type { NodeProto } from "onnx-buf";
import type { Emitter } from "./emitter.js";
import type { ValueFactsTable } from "./infer.js";

/**
 * What a gradient rule sees of the forward node it differentiates.
 */
export interface GradContext {
  /** Writes the gradient nodes (under the node's scope). */
  readonly e: Emitter;
  /** Static facts about forward and backward values (types, dims, small int values). */
  readonly facts: ValueFactsTable;
  /** The forward node. */
  readonly node: NodeProto;
  /** Name of input `i` ("" when the optional input is omitted). */
  input(i: number): string;
  /** Name of output `i`. */
  output(i: number): string;
  /** Whether the gradient of input `i` is wanted (it lies on a path from a `wrt` value). */
  needs(i: number): boolean;
  /** Whether a gradient flows into output `i`. */
  hasDy(i: number): boolean;
  /** The gradient of output `i` (default 0): zeros of its shape when none flows. */
  dy(i?: number): string;
  /** Throws `E_NO_GRADIENT` naming the node, with `reason`. */
  fail(reason: string): never;
}

/**
 * A gradient rule: given the gradients of a node's outputs, emits nodes computing the gradients
 * of its inputs and returns them by input index. An entry may be left undefined where
 * {@link GradContext.needs} is false (or no gradient flows to that input).
 *
 * @example
 * ```ts
 * // d tanh(x) = dy * (1 - y^2)
 * const tanh: GradRule = ({ e, dy, output }) => {
 *   const y = output(0);
 *   return [e.mul(dy(), e.sub(e.scalar(1, e.typeOf(y)), e.mul(y, y)))];
 * };
 * ```
 */
export type GradRule = (ctx: GradContext) => readonly (string | undefined)[];
