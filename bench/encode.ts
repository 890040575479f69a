/**
 * bench/encode.ts: peak memory of encoding a large ONNX model.
 *
 * Builds a model of 150 float32 initializers (random values, ~500 MB in all, a few Add nodes)
 * and encodes it with tdb-js `encodeModel` (one exact-size allocation) and with protobuf-es
 * `toBinary`, each in a fresh child process, and reports the peak RSS of each process before
 * and after encoding, the time, and a checksum of the bytes (the two must agree).
 *
 * Run: npx tsx bench/encode.ts [--mb 500] [--tensors 150]
 */
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema, type ModelProto } from "onnx-buf";
import { encodeModel } from "../src/onnx/proto.js";
import { tensorToProto } from "../src/onnx/tensor.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MB = arg("mb", 500);
const TENSORS = arg("tensors", 150);
const peakMiB = () => process.resourceUsage().maxRSS / 1024;

function buildModel(): ModelProto {
  const per = Math.floor((MB * 1e6) / TENSORS / 4);
  let s = 0x9e3779b9;
  const initializer = [];
  const node = [];
  for (let k = 0; k < TENSORS; k++) {
    const bits = new Uint32Array(per);
    for (let i = 0; i < per; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      bits[i] = (s & 0x807fffff) | 0x3f000000; // finite floats in ±[0.5, 2)
    }
    initializer.push(tensorToProto(`w${k}`, new Float32Array(bits.buffer), [per]));
    node.push(create(NodeProtoSchema, { opType: "Identity", name: `n${k}`, input: [`w${k}`], output: [`o${k}`] }));
  }
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { version: 13n })],
    graph: create(GraphProtoSchema, { name: "big", node, initializer }),
  });
}

function checksum(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i += 4093) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return `${b.length}:${h.toString(16)}`;
}

function child(mode: string): void {
  const model = buildModel();
  const built = peakMiB();
  const t0 = performance.now();
  const bytes = mode === "tdb" ? encodeModel(model) : toBinary(ModelProtoSchema, model);
  const ms = performance.now() - t0;
  const after = peakMiB();
  console.log(JSON.stringify({ mode, builtPeakMiB: Math.round(built), encodePeakMiB: Math.round(after), extraMiB: Math.round(after - built), ms: Math.round(ms), bytes: checksum(bytes) }));
}

const childIdx = process.argv.indexOf("--child");
if (childIdx > 0) {
  child(process.argv[childIdx + 1]!);
} else {
  const self = fileURLToPath(import.meta.url);
  console.log(`model: ${TENSORS} float32 initializers, ${MB} MB; node ${process.version}`);
  const rows = [];
  for (const mode of ["tdb", "toBinary"]) {
    const r = spawnSync(process.execPath, [...process.execArgv, self, "--child", mode, "--mb", String(MB), "--tensors", String(TENSORS)], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) {
      console.error(r.stderr);
      process.exit(1);
    }
    const row = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
    rows.push(row);
  }
  console.table(rows);
  if (rows[0]!.bytes !== rows[1]!.bytes) {
    console.error("checksums differ!");
    process.exit(1);
  }
}
