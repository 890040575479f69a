/**
 * Reading what is static about a node: its attributes, and the values of inputs that are
 * constants (`Constant` nodes and initializers that are not graph inputs).
 *
 * @module
 */
import type { AttributeProto, NodeProto } from "onnx-buf";
import type { OnnxGraph } from "../onnx/graph.js";
import { tensorFromProto, type HostTensor } from "../onnx/tensor.js";

/** The attribute `name` of `node`, if set. */
export function attrOf(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** An INT attribute as a number, or `def` when absent. */
export function intAttr(node: NodeProto, name: string, def: number): number {
  const a = attrOf(node, name);
  return a ? Number(a.i) : def;
}

/** An INTS attribute as numbers, or undefined when absent. */
export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = attrOf(node, name);
  return a ? a.ints.map((x) => Number(x)) : undefined;
}

/**
 * A FLOAT attribute, or `def` when absent, rounded to float32 as ONNX stores it (a message built
 * in memory may still hold the unrounded number; onnxruntime reads the float32).
 */
export function floatAttr(node: NodeProto, name: string, def: number): number {
  const a = attrOf(node, name);
  return Math.fround(a ? a.f : def);
}

/** A STRING attribute decoded as UTF-8, or `def` when absent. */
export function stringAttr(node: NodeProto, name: string, def: string): string {
  const a = attrOf(node, name);
  return a ? new TextDecoder().decode(a.s) : def;
}

/** The tensor a `Constant` node holds, whatever attribute spells it. */
export function constantNodeValue(node: NodeProto): HostTensor | undefined {
  for (const a of node.attribute) {
    switch (a.name) {
      case "value":
        return a.t ? tensorFromProto(a.t) : undefined;
      case "value_float":
        return { type: "float32", data: new Float32Array([a.f]), dims: [] };
      case "value_floats":
        return { type: "float32", data: new Float32Array(a.floats), dims: [a.floats.length] };
      case "value_int":
        return { type: "int64", data: new BigInt64Array([a.i]), dims: [] };
      case "value_ints":
        return { type: "int64", data: new BigInt64Array(a.ints), dims: [a.ints.length] };
    }
  }
  return undefined;
}

/**
 * The value of `name` when it is fixed by the graph: the output of a `Constant` node or an
 * initializer that is not also a graph input (a graph input could be overridden by a feed).
 */
export function constantValue(g: OnnxGraph, name: string): HostTensor | undefined {
  if (!name) return undefined;
  const p = g.producer(name);
  if (p) return p.opType === "Constant" && (p.domain ?? "") === "" ? constantNodeValue(p) : undefined;
  const init = g.initializer(name);
  if (!init || g.graph.input.some((v) => v.name === name)) return undefined;
  return tensorFromProto(init);
}

/** The elements of a constant as JS numbers (int64 converted), or undefined when not constant. */
export function constantNumbers(g: OnnxGraph, name: string): number[] | undefined {
  let t: HostTensor | undefined;
  try {
    t = constantValue(g, name);
  } catch {
    return undefined; // e.g. external data not loaded: treat as not constant
  }
  if (!t) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}
