/**
 * Reverse-mode automatic differentiation of ONNX graphs: {@link addGradients} appends a backward
 * graph made of standard ai.onnx ops to a forward graph, so that one onnxruntime run returns the
 * loss, the activations and the gradients. onnxruntime-node has no training API; this needs none.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { ValueInfoProtoSchema, type NodeProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { OnnxGraph } from "../onnx/graph.js";
import { Emitter } from "./emitter.js";
import { ValueFactsTable } from "./infer.js";
import { gradientPath, isDifferentiable } from "./path.js";
import { gradientRule, NON_DIFFERENTIABLE, supportedGradientOps } from "./registry.js";
import type { GradContext } from "./rule.js";

/** What to differentiate, with respect to what. */
export interface GradientSpec {
  /**
   * Name of a scalar float value in the graph (shape [] or [1]) to differentiate. A loss with
   * more elements is differentiated as the sum of its elements.
   */
  loss: string;
  /** Values whose gradients are wanted: node outputs (activations), graph inputs, or initializers. */
  wrt: readonly string[];
  /** Values treated as constants (no gradient flows through them), e.g. the final LayerNorm scale. */
  stopGradient?: readonly string[];
  /** Prefix of new node/value names. Default "/tdb/grad". */
  prefix?: string;
}

/** The gradients {@link addGradients} added. */
export interface GradientResult {
  /**
   * wrt value name -> name of the graph output holding d(loss)/d(value), same shape as the value.
   * A value the loss does not depend on gets an all-zero gradient output of its shape.
   */
  grads: Map<string, string>;
}

const MIN_OPSET = 13;

function scopeOf(prefix: string, n: NodeProto): string {
  const name = n.name || n.opType;
  return `${prefix}${name.startsWith("/") ? "" : "/"}${name}`;
}

function checkValue(g: OnnxGraph, name: string, role: string): void {
  if (typeof name !== "string" || !g.hasValue(name)) {
    throw new TdbError("E_ONNX_INVALID", `${role} ${JSON.stringify(name)} is not a value of graph ${g.graph.name || "(unnamed)"}`, { value: name });
  }
}

/**
 * Appends the backward graph to `g` (mutating it) and adds the gradients as graph outputs.
 *
 * Differentiates the nodes on a path from some `wrt` value to the loss, in reverse dependency
 * order, with one gradient rule per op type (see {@link supportedGradientOps}); gradients reaching
 * a value along several paths are summed. Forward values are read by name, not recomputed
 * (LayerNormalization recomputes its normalized input). Integer and bool values carry no
 * gradient, nor do ops such as Shape, Equal or Range. Needs ai.onnx opset 13 or later; emitted
 * nodes are valid for the graph's opset.
 *
 * Throws `E_ONNX_INVALID` when the loss, a wrt or a stop-gradient name is not a value of the
 * graph, `E_BAD_OPTION` when the loss or a wrt value is not a float tensor, `E_NO_GRADIENT`
 * when an op on the path has no gradient rule (or a form its rule does not support), and
 * `E_UNSUPPORTED_GRAPH` for opsets before 13.
 *
 * @example
 * ```ts
 * const g = OnnxGraph.fromModel(model);
 * const { grads } = addGradients(g, { loss: "loss", wrt: ["transformer.h.0.mlp.c_fc.weight", "/transformer/h.0/mlp/act/Mul_3_output_0"] });
 * const session = await createSession(encodeModel(g.model));
 * const out = await session.run(feeds, [...grads.values()]);
 * ```
 */
export function addGradients(g: OnnxGraph, spec: GradientSpec): GradientResult {
  const prefix = spec.prefix ?? "/tdb/grad";
  const opset = g.opsetVersion();
  if (opset < MIN_OPSET) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `gradients need ai.onnx opset ${MIN_OPSET} or later; the graph imports opset ${opset}`, {
      value: opset,
      allowed: `>= ${MIN_OPSET}`,
    });
  }
  checkValue(g, spec.loss, "loss");
  for (const w of spec.wrt) checkValue(g, w, "wrt value");
  for (const s of spec.stopGradient ?? []) checkValue(g, s, "stop-gradient value");
  const facts = ValueFactsTable.infer(g);
  for (const [v, role] of [[spec.loss, "loss"], ...spec.wrt.map((w) => [w, "wrt value"])] as const) {
    if (!isDifferentiable(facts, v)) {
      throw new TdbError("E_BAD_OPTION", `${role} ${v} is not a float tensor`, { value: v, allowed: "float32 or float64 values" });
    }
  }
  const wrt = [...new Set(spec.wrt)];
  const stop = new Set(spec.stopGradient ?? []);
  const path = gradientPath(g, facts, spec.loss, wrt, stop);
  const e = new Emitter(g, facts, prefix);

  // Gradient contributions per value, summed on first use.
  const parts = new Map<string, string[]>();
  const contribute = (v: string, grad: string) => {
    const list = parts.get(v);
    if (list) list.push(grad);
    else parts.set(v, [grad]);
  };
  const total = (v: string): string | undefined => {
    const list = parts.get(v);
    if (!list || list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    const sum = e.op("Sum", list);
    parts.set(v, [sum]);
    return sum;
  };

  if (path.reached.has(spec.loss)) {
    e.scope = `${prefix}/seed`;
    contribute(spec.loss, e.onesLike(spec.loss));
  }
  for (const n of path.nodes) {
    e.scope = scopeOf(prefix, n);
    const dys = n.output.map((o) => (o && !stop.has(o) ? total(o) : undefined));
    if (dys.every((d) => d === undefined)) continue;
    const domain = n.domain ?? "";
    const standard = domain === "" || domain === "ai.onnx";
    if (standard && NON_DIFFERENTIABLE.has(n.opType)) continue;
    const rule = standard ? gradientRule(n.opType) : undefined;
    const label = `${standard ? "" : `${domain}::`}${n.opType} (node ${n.name || "(unnamed)"})`;
    const fail = (reason: string): never => {
      throw new TdbError("E_NO_GRADIENT", `cannot differentiate ${label}: ${reason}`, { value: n.opType, allowed: supportedGradientOps() });
    };
    if (!rule) fail(`no gradient rule for ${n.opType} on the path from the wrt values to ${spec.loss}`);
    const needs = (i: number) => {
      const v = n.input[i];
      return !!v && path.reached.has(v) && isDifferentiable(facts, v);
    };
    const zeros = new Map<number, string>();
    const ctx: GradContext = {
      e,
      facts,
      node: n,
      input: (i) => n.input[i] ?? "",
      output: (i) => n.output[i] ?? "",
      needs,
      hasDy: (i) => dys[i] !== undefined,
      dy: (i = 0) => {
        const d = dys[i];
        if (d !== undefined) return d;
        let z = zeros.get(i);
        if (!z) {
          z = e.zerosLike(n.output[i]!);
          zeros.set(i, z);
        }
        return z;
      },
      fail,
    };
    const grads = rule!(ctx);
    grads.forEach((grad, i) => {
      if (grad !== undefined && needs(i)) contribute(n.input[i]!, grad);
    });
  }

  const grads = new Map<string, string>();
  e.scope = `${prefix}/out`;
  for (const w of wrt) {
    const d = total(w) ?? e.zerosLike(w);
    const out = g.uniqueName(`${prefix}/${w.replace(/^\/+/, "")}`);
    e.node("Identity", [d], {}, [out]);
    g.addOutput(create(ValueInfoProtoSchema, { name: out }));
    grads.set(w, out);
  }
  return { grads };
}
