/**
 * float16 graphs run in float32: at load, every float16 initializer, constant, `Cast` target and
 * declared input, output and value type becomes float32 (weights widened exactly), so hooks,
 * edit points, attribution (whose backward pass and columns are float32) and the weights read
 * for analyses all see float32. Activations are then computed in float32 from the float16
 * weights: closer to the float32 model than a float16 session would be, at twice the weight memory.
 *
 * @module
 */
import type { AttributeProto, GraphProto, ModelProto, TensorProto, TypeProto } from "onnx-buf";
import { TensorProto_DataType } from "onnx-buf";
import { halfsToFloats } from "../onnx/half.js";
import { tensorFromProto, tensorToProto } from "../onnx/tensor.js";

const F16 = TensorProto_DataType.FLOAT16;
const F32 = TensorProto_DataType.FLOAT;

function widen(t: TensorProto): TensorProto {
  if (t.dataType !== F16) return t;
  const h = tensorFromProto(t);
  const out = tensorToProto(t.name, halfsToFloats(h.data as Uint16Array), h.dims, "float32");
  out.docString = t.docString;
  return out;
}

function retype(t: TypeProto | undefined): boolean {
  if (t?.value.case === "tensorType" && t.value.value.elemType === F16) {
    t.value.value.elemType = F32;
    return true;
  }
  if (t?.value.case === "sequenceType" || t?.value.case === "optionalType") return retype(t.value.value.elemType);
  return false;
}

/** Counts what it changed in one graph and its subgraphs. */
function visit(g: GraphProto): number {
  let changed = 0;
  g.initializer = g.initializer.map((t) => {
    if (t.dataType !== F16) return t;
    changed++;
    return widen(t);
  });
  for (const v of [...g.input, ...g.output, ...g.valueInfo]) if (retype(v.type)) changed++;
  for (const n of g.node) {
    for (const a of n.attribute as AttributeProto[]) {
      if (a.t && a.t.dataType === F16) {
        a.t = widen(a.t);
        changed++;
      }
      if (a.tensors.some((t) => t.dataType === F16)) {
        a.tensors = a.tensors.map(widen);
        changed++;
      }
      // Cast(to), CastLike-free type attributes of the ops that create tensors (EyeLike, Random*: dtype).
      if ((a.name === "to" || a.name === "dtype") && Number(a.i) === F16) {
        a.i = BigInt(F32);
        changed++;
      }
      if (a.g) changed += visit(a.g);
      for (const sg of a.graphs) changed += visit(sg);
    }
  }
  return changed;
}

/**
 * Widens a float16 graph to float32 in place (see the module comment); returns whether anything
 * was float16. The model must own its graph (decoded for this load), since nodes are mutated.
 */
export function widenFloat16(model: ModelProto): boolean {
  return model.graph ? visit(model.graph) > 0 : false;
}
