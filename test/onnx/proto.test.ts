import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  file_onnx,
  FunctionProtoSchema,
  ModelProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType,
  TensorProto_SegmentSchema,
  TensorProtoSchema,
  TrainingInfoProtoSchema,
  TypeProto_MapSchema,
  TypeProto_OptionalSchema,
  TypeProto_SequenceSchema,
  TypeProtoSchema,
  type ModelProto,
} from "onnx-buf";
import { describe, expect, it } from "vitest";
import { cloneStructure } from "../../src/onnx/clone.js";
import { encodedSize, encodeMessage, utf8Length } from "../../src/onnx/encode.js";
import { decodeModel, encodeModel } from "../../src/onnx/proto.js";
import { TdbError } from "../../src/base/errors.js";
import { attr, f32, fvi, graph, i64, mlpModel, model, node, randn } from "./_build.js";

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectIdentical(m: ModelProto): Uint8Array {
  const ours = encodeModel(m);
  const theirs = toBinary(ModelProtoSchema, m);
  expect({ diff: firstDiff(ours, theirs), length: ours.length }).toEqual({ diff: -1, length: theirs.length });
  expect(encodedSize(ModelProtoSchema, m)).toBe(theirs.length);
  return ours;
}

const WEIRD = "naïve ünïcödé 😀 \ud800 lone surrogate \udfff ∑";

function everyAttributeModel(): ModelProto {
  const A = AttributeProto_AttributeType;
  const sub = graph([node("Identity", ["x"], ["sx"])], [], [fvi("sx")], [], "sub");
  const bigTensor = create(TensorProtoSchema, {
    name: "t_all",
    dims: [-1n, 3n, 9007199254740993n],
    dataType: TensorProto_DataType.INT64,
    segment: create(TensorProto_SegmentSchema, { begin: 0n, end: -5n }),
    floatData: [0, -0, 1.5, -3.25, Number.NaN, Infinity, 3.4028234663852886e38],
    int32Data: [-1, 0, 2147483647, -2147483648, 127, 128],
    stringData: [new TextEncoder().encode(WEIRD), new Uint8Array(0)],
    int64Data: [-1n, 0n, 9223372036854775807n, -9223372036854775808n, 300n],
    doubleData: [Math.PI, -0, 1e308],
    uint64Data: [0n, 18446744073709551615n, 4294967296n],
    docString: WEIRD,
    externalData: [create(StringStringEntryProtoSchema, { key: "k", value: "v" })],
    metadataProps: [create(StringStringEntryProtoSchema, { key: "a", value: "" })],
  });
  const sparse = create(SparseTensorProtoSchema, { values: f32("sv", [1, 2]), indices: i64("si", [0, 3]), dims: [4n, -2n] });
  const typeMap = create(TypeProtoSchema, {
    value: {
      case: "mapType",
      value: create(TypeProto_MapSchema, {
        keyType: TensorProto_DataType.INT64,
        valueType: create(TypeProtoSchema, { value: { case: "sequenceType", value: create(TypeProto_SequenceSchema, { elemType: fvi("e", [2, "n"]).type }) } }),
      }),
    },
    denotation: "d",
  });
  const typeOpt = create(TypeProtoSchema, { value: { case: "optionalType", value: create(TypeProto_OptionalSchema, { elemType: fvi("o", []).type }) } });
  const attrs = [
    create(AttributeProtoSchema, { name: "f", type: A.FLOAT, f: -0 }),
    create(AttributeProtoSchema, { name: "f2", type: A.FLOAT, f: 0.1 }),
    create(AttributeProtoSchema, { name: "i", type: A.INT, i: -7n }),
    create(AttributeProtoSchema, { name: "i0", type: A.INT, i: 0n }),
    create(AttributeProtoSchema, { name: "s", type: A.STRING, s: new TextEncoder().encode(WEIRD) }),
    create(AttributeProtoSchema, { name: "t", type: A.TENSOR, t: bigTensor }),
    create(AttributeProtoSchema, { name: "g", type: A.GRAPH, g: sub }),
    create(AttributeProtoSchema, { name: "floats", type: A.FLOATS, floats: [1, -2.5, 0, 1e-45] }),
    create(AttributeProtoSchema, { name: "ints", type: A.INTS, ints: [-1n, 0n, 1n, -9223372036854775808n, 1n << 40n] }),
    create(AttributeProtoSchema, { name: "strings", type: A.STRINGS, strings: [new Uint8Array([1, 2, 3]), new Uint8Array(0)] }),
    create(AttributeProtoSchema, { name: "tensors", type: A.TENSORS, tensors: [f32("a", [1]), i64("b", [-3n, 4n])] }),
    create(AttributeProtoSchema, { name: "graphs", type: A.GRAPHS, graphs: [sub, graph([], [], [], [], "")] }),
    create(AttributeProtoSchema, { name: "sp", type: A.SPARSE_TENSOR, sparseTensor: sparse }),
    create(AttributeProtoSchema, { name: "sps", type: A.SPARSE_TENSORS, sparseTensors: [sparse, sparse] }),
    create(AttributeProtoSchema, { name: "tp", type: A.TYPE_PROTO, tp: typeMap }),
    create(AttributeProtoSchema, { name: "tps", type: A.TYPE_PROTOS, typeProtos: [typeMap, typeOpt] }),
    create(AttributeProtoSchema, { name: "ref", refAttrName: "outer", docString: "", type: A.UNDEFINED }),
  ];
  const g = graph(
    [node("Custom", ["x", "", "w"], ["y", ""], { attribute: attrs, name: WEIRD })],
    [fvi("x", [1, "batch", -1])],
    [fvi("y")],
    [f32("w", randn(5))],
  );
  g.sparseInitializer = [sparse];
  g.docString = "";
  const m = model(g, 18);
  m.opsetImport.push({ ...m.opsetImport[0]!, domain: "com.microsoft", version: 1n });
  m.metadataProps = [create(StringStringEntryProtoSchema, { key: "x", value: WEIRD })];
  m.functions = [create(FunctionProtoSchema, { name: "fn", domain: "local", input: ["a"], output: ["b"], node: [node("Neg", ["a"], ["b"])], attribute: ["alpha"] })];
  m.trainingInfo = [create(TrainingInfoProtoSchema, { initialization: sub, algorithm: sub })];
  m.modelVersion = -1n;
  return m;
}

function ifModel(): ModelProto {
  const thenG = graph([node("Add", ["x", "one"], ["t_out"])], [], [fvi("t_out")], [f32("one", [1])], "then");
  const elseG = graph([node("Neg", ["x"], ["e_out"])], [], [fvi("e_out")], [], "else");
  return model(
    graph(
      [node("If", ["cond"], ["y"], { attribute: [attr.graph("then_branch", thenG), attr.graph("else_branch", elseG)] })],
      [fvi("cond", [], "bool"), fvi("x", [3])],
      [fvi("y", [3])],
    ),
  );
}

/** A seeded random model: chains of nodes with random attributes and initializers. */
function randomModel(seed: number): ModelProto {
  const r = randn(4096, seed);
  let k = 0;
  const next = () => r[k++ % r.length]!;
  const int = (n: number) => Math.floor(((next() + 1) / 2) * n);
  const nodes = [];
  const inits = [];
  let prev = "x";
  for (let i = 0; i < 5 + int(30); i++) {
    const out = `v${i}_${"é".repeat(int(3))}`;
    const attribute = [];
    for (let j = 0; j < int(4); j++) {
      switch (int(4)) {
        case 0:
          attribute.push(attr.int(`a${j}`, BigInt(int(2 ** 20) - 2 ** 19) * BigInt(int(2 ** 20) + 1)));
          break;
        case 1:
          attribute.push(attr.ints(`a${j}`, Array.from({ length: int(6) }, () => BigInt(int(1000) - 500) << BigInt(int(40)))));
          break;
        case 2:
          attribute.push(attr.float(`a${j}`, next() * 10 ** int(30)));
          break;
        default:
          attribute.push(attr.tensor(`a${j}`, i64(`t${i}_${j}`, Array.from({ length: int(5) }, () => int(1 << 30) - (1 << 29)))));
      }
    }
    if (int(2) === 0) {
      const w = `w${i}`;
      inits.push(f32(w, randn(1 + int(300), seed * 100 + i)));
      nodes.push(node("Add", [prev, w], [out], { attribute }));
    } else nodes.push(node("Relu", [prev], [out], { attribute }));
    prev = out;
  }
  return model(graph(nodes, [fvi("x", ["n"])], [fvi(prev)], inits, `random${seed}`), 7 + int(15));
}

describe("encodeModel", () => {
  it("is byte-identical to toBinary on a small MLP", () => {
    expectIdentical(mlpModel());
  });

  it("is byte-identical with every attribute type, negative int64s, packed and unpacked lists, unicode", () => {
    expectIdentical(everyAttributeModel());
  });

  it("is byte-identical with If subgraphs", () => {
    expectIdentical(ifModel());
  });

  it.each(Array.from({ length: 25 }, (_, i) => i + 1))("is byte-identical on random model %i", (seed) => {
    expectIdentical(randomModel(seed));
  });

  it("is byte-identical on decoded models (subarray raw data) and keeps unknown fields", () => {
    const base = toBinary(ModelProtoSchema, everyAttributeModel());
    // Append unknown top-level fields: 100 varint, 101 length-delimited, 102 fixed32, 103 fixed64.
    const extra = new Uint8Array([0xa0, 0x06, 0x96, 0x01, 0xaa, 0x06, 0x02, 0x68, 0x69, 0xb5, 0x06, 1, 2, 3, 4, 0xb9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    const bytes = new Uint8Array([...base, ...extra]);
    const m = decodeModel(bytes);
    expect(m.$unknown?.length).toBe(4);
    const ours = expectIdentical(m);
    expect(firstDiff(ours, bytes)).toBe(-1);
  });

  it("keeps unknown fields of nested messages", () => {
    const m = mlpModel();
    m.graph!.node[1]!.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([5]) }];
    expectIdentical(m);
  });

  it("writes explicitly set default values as toBinary does (proto2 presence)", () => {
    const m = mlpModel();
    m.domain = "";
    m.modelVersion = 0n;
    m.graph!.docString = "";
    const t = m.graph!.initializer[0]!;
    t.dataLocation = 0;
    const bytes = expectIdentical(m);
    expect(bytes.length).toBeGreaterThan(toBinary(ModelProtoSchema, mlpModel()).length);
  });

  it("is byte-identical on a structure clone (spread copies without prototypes)", () => {
    // (protobuf-es clone() rejects the lone surrogates of everyAttributeModel; toBinary does not.)
    expectIdentical(cloneStructure(ifModel()));
    expectIdentical(cloneStructure(randomModel(3)));
    const m = everyAttributeModel();
    expectIdentical({ ...m, graph: { ...m.graph!, node: m.graph!.node.map((n) => ({ ...n })) } });
  });

  it("works on other descriptors (the FileDescriptorProto of onnx.proto)", () => {
    const fd = file_onnx.proto;
    const ours = encodeMessage(FileDescriptorProtoSchema, fd);
    expect(firstDiff(ours, toBinary(FileDescriptorProtoSchema, fd))).toBe(-1);
  });

  it("allocates exactly the output size", () => {
    const bytes = encodeModel(everyAttributeModel());
    expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
  });

  it("counts UTF-8 bytes like TextEncoder", () => {
    for (const s of ["", "abc", WEIRD, "\ud83d", "\ude00x", "€𝄞"]) expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
  });

  it("rejects values toBinary rejects", () => {
    const m = mlpModel();
    m.graph!.node[0]!.attribute.push(create(AttributeProtoSchema, { name: "bad", type: AttributeProto_AttributeType.INT, i: 1n << 64n }));
    expect(() => encodeModel(m)).toThrow(TdbError);
    expect(() => toBinary(ModelProtoSchema, m)).toThrow();
  });
});

describe("decodeModel", () => {
  it("round-trips", () => {
    const m = everyAttributeModel();
    const back = decodeModel(encodeModel(m));
    expect(back.graph?.node[0]?.attribute.map((a) => a.name)).toEqual(m.graph?.node[0]?.attribute.map((a) => a.name));
    expect(back.graph?.node[0]?.attribute.find((a) => a.name === "ints")?.ints).toEqual([-1n, 0n, 1n, -9223372036854775808n, 1n << 40n]);
    expect(encodeModel(back)).toEqual(encodeModel(m));
  });

  it("does not copy raw data: tensors are views into the input bytes", () => {
    const m = mlpModel();
    m.graph!.initializer.push(f32("big", randn(1 << 16)));
    const bytes = encodeModel(m);
    const back = decodeModel(bytes);
    const big = back.graph!.initializer.find((t) => t.name === "big")!;
    expect(big.rawData.buffer).toBe(bytes.buffer);
    expect(big.rawData.byteLength).toBe(4 << 16);
  });

  it.each([
    ["empty", new Uint8Array(0)],
    ["garbage", new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ["text", new TextEncoder().encode("<html>not a model</html>")],
    ["a message without graph", new Uint8Array([0x08, 0x07])],
    ["truncated", encodeModel(mlpModel()).subarray(0, 40)],
  ])("rejects %s bytes with E_ONNX_DECODE", (_label, bytes) => {
    let err: unknown;
    try {
      decodeModel(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdbError);
    expect((err as TdbError).code).toBe("E_ONNX_DECODE");
    expect((err as TdbError).message).toContain(`${bytes.byteLength} bytes`);
  });
});
