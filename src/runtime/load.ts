/**
 * Loading: config, tokenizer and ONNX graph from a directory, a hub id or any {@link ModelFiles}.
 *
 * @module
 */
import type { ModelProto, NodeProto } from "onnx-buf";
import { logSeverity } from "../backend/ort.js";
import { TdbError, formatAllowed } from "../base/errors.js";
import type { ArchitectureAdapter, HookMap, NormalizeReport } from "../hooks/adapter.js";
import { adapterFor } from "../hooks/registry.js";
import { defaultFiles, readText, type ModelFiles } from "../io/files.js";
import { resolveExternalData } from "../onnx/external.js";
import { OnnxGraph } from "../onnx/graph.js";
import { decodeModel } from "../onnx/proto.js";
import { inlineIfBranch, pruneDeadNodes, removeUnusedInputs } from "../onnx/surgery.js";
import { outerReferences } from "../onnx/walk.js";
import { configKey, parseConfigText, type ModelConfig } from "./config.js";
import { ONNX_FILES, type LoadOptions } from "./options.js";
import { loadTokenizer, type Tokenizer } from "./tokenizer.js";
import { widenFloat16 } from "./float16.js";

async function loadFiles(idOrDir: string, opts: LoadOptions): Promise<ModelFiles> {
  if (opts.files === undefined && (typeof idOrDir !== "string" || idOrDir.trim() === "")) {
    throw new TdbError("E_BAD_INPUT", "Model.load takes a directory, a hub id or opts.files", {
      value: idOrDir === null ? null : typeof idOrDir === "string" ? idOrDir : typeof idOrDir,
      allowed: "a non-empty string (directory or hub id)",
    });
  }
  // The entry point decides: directories and the disk-cached hub (Node), URLs and the hub (browser).
  return opts.files ?? defaultFiles(idOrDir, opts);
}

/**
 * Removes what tracing never uses from a transformers.js decoder: the `If` on
 * `use_cache_branch` (keeping the no-cache branch) and past-key-value inputs.
 */
function flattenDecoder(model: ModelProto): ModelProto {
  const g = OnnxGraph.fromModel(model);
  const ifNode = g.nodes.find((n) => n.opType === "If" && g.inputNames().includes(n.input[0]!));
  if (ifNode) {
    inlineIfBranch(g, ifNode, "else");
    removeUnusedInputs(g);
    pruneDeadNodes(g);
  }
  return g.model;
}


/** Generation loops onnxruntime wraps a decoder in (the decoder is a subgraph attribute). */
const SEARCH_OPS = new Set(["BeamSearch", "GreedySearch", "Sampling", "WhisperBeamSearch"]);

/**
 * What a graph is, for errors about graphs tdb-js cannot read: the producer and its version
 * (from the file), the opset, a generation loop wrapping the decoder, and the non-standard
 * (e.g. `com.microsoft`) ops it contains, with counts.
 */
export function describeGraph(model: ModelProto): { text: string; searchOp?: string; fused: string[] } {
  const g = model.graph;
  const producer = model.producerName ? `${model.producerName}${model.producerVersion ? ` ${model.producerVersion}` : ""}` : "an unnamed producer";
  const opset = model.opsetImport.find((o) => (o.domain ?? "") === "" || o.domain === "ai.onnx")?.version;
  const custom = new Map<string, number>();
  const visit = (nodes: readonly NodeProto[]): void => {
    for (const n of nodes) {
      if (n.domain && n.domain !== "ai.onnx") custom.set(`${n.domain}.${n.opType}`, (custom.get(`${n.domain}.${n.opType}`) ?? 0) + 1);
      for (const a of n.attribute) {
        if (a.g) visit(a.g.node);
        for (const sg of a.graphs) visit(sg.node);
      }
    }
  };
  visit(g?.node ?? []);
  const search = g?.node.find((n) => SEARCH_OPS.has(n.opType));
  const fused = [...custom.keys()];
  const parts = [`made by ${producer}${opset !== undefined ? `, opset ${opset}` : ""}`];
  if (search) {
    const sub = search.attribute.filter((a) => a.g).map((a) => a.name);
    const modelType = search.attribute.find((a) => a.name === "model_type");
    const kind = modelType && Number(modelType.i) !== 0 ? `, model_type ${Number(modelType.i)}: an encoder-decoder` : "";
    parts.push(
      `a ${search.opType} generation loop wraps the model (${search.domain || "ai.onnx"} ${search.opType} node ${JSON.stringify(search.name)}, subgraphs in its ${sub.join(", ") || "?"} attribute${kind}) and tdb-js found no decoder-only GPT-2 in it: export the decoder alone (e.g. optimum's decoder_model.onnx)`,
    );
  }
  if (fused.length > 0) parts.push(`non-standard ops: ${[...custom].map(([k, v]) => `${k} x${v}`).join(", ")}`);
  else parts.push("standard ONNX ops only");
  return { text: parts.join("; "), searchOp: search?.opType, fused };
}

/**
 * A decoder-only model wrapped in an onnxruntime generation loop (`com.microsoft.BeamSearch`,
 * `GreedySearch` or `Sampling` with `model_type` 0, the decoder in its `decoder` graph
 * attribute, as onnxruntime's `convert_generation` writes GPT-2): the decoder as a model of its
 * own, with the outer initializers it reads (shared weights) copied in. Anything else is
 * returned as it is ({@link describeGraph} names it in the error).
 */
function unwrapSearch(model: ModelProto): ModelProto {
  const g = model.graph;
  const search = g?.node.find((n) => SEARCH_OPS.has(n.opType));
  if (!g || !search || g.node.length !== 1) return model;
  const modelType = search.attribute.find((a) => a.name === "model_type");
  if (modelType && Number(modelType.i) !== 0) return model; // encoder-decoder (T5, Whisper): not a GPT-2 decoder
  const decoder = search.attribute.find((a) => a.name === "decoder")?.g;
  if (!decoder) return model;
  const refs = outerReferences(decoder);
  const shared = g.initializer.filter((t) => refs.has(t.name));
  const unresolved = [...refs].filter((r) => !shared.some((t) => t.name === r));
  if (unresolved.length > 0) return model;
  return { ...model, graph: { ...decoder, initializer: [...decoder.initializer, ...shared] } };
}

/**
 * `E_CONFIG_MISMATCH` when the adapter finds config dims the graph contradicts, naming the
 * config key, both values and the graph fact; `value` and `allowed` are the first mismatch's
 * config and graph values.
 */
function checkConfigAgainstGraph(adapter: ArchitectureAdapter, g: OnnxGraph, config: ModelConfig, configPath: string, onnxPath: string): void {
  const problems = adapter.checkDims(g, config);
  if (problems.length === 0) return;
  const lines = problems.map((p) => `${configKey(config.raw, p.dim)} is ${p.config} but the graph has ${p.graph} (${p.fact})`);
  const first = problems[0]!;
  throw new TdbError("E_CONFIG_MISMATCH", `${configPath} does not match ${onnxPath}: ${lines.join("; ")}`, {
    value: first.config,
    allowed: first.graph,
  });
}

/** What {@link loadModelParts} reads: everything a runtime is made of. */
export interface ModelParts {
  config: ModelConfig;
  tokenizer: Tokenizer;
  adapter: ArchitectureAdapter;
  hookMap: HookMap;
  /** The flattened, unpatched graph (after the adapter's normalisation). */
  base: ModelProto;
  /** What the adapter's normalisation did (un-fused ops, nodes named from the structure) and what it could not do. */
  normalized: NormalizeReport;
}

/**
 * Reads a model directory, hub id or {@link ModelFiles}: config, tokenizer and ONNX graph (with
 * external data), flattens a merged decoder, and lets the config's adapter discover the hooks.
 */
export async function loadModelParts(idOrDir: string, opts: LoadOptions = {}): Promise<ModelParts> {
  const files = await loadFiles(idOrDir, opts);
  const config = parseConfigText(await readText(files, "config.json"), files.origin);
  const adapter = adapterFor(config.modelType);
  const dtype = opts.dtype ?? "fp32";
  const candidates = ONNX_FILES[dtype];
  if (!candidates) {
    throw new TdbError("E_BAD_OPTION", `unsupported dtype ${JSON.stringify(dtype)}; supported: ${Object.keys(ONNX_FILES).join(", ")}`, {
      value: dtype,
      allowed: Object.keys(ONNX_FILES),
    });
  }
  logSeverity(opts.logLevel); // E_BAD_OPTION now rather than at the first session
  const tokenizer = await loadTokenizer(files);
  let bytes: Uint8Array | null = null;
  let onnxPath = "";
  for (const p of candidates) {
    bytes = await files.read(p);
    if (bytes) {
      onnxPath = p;
      break;
    }
  }
  if (!bytes) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has none of ${candidates.join(", ")}`, { value: files.origin, allowed: candidates });
  }
  const decoded = decodeModel(bytes);
  const dir = onnxPath.includes("/") ? onnxPath.slice(0, onnxPath.lastIndexOf("/") + 1) : "";
  await resolveExternalData(decoded, async (location) => {
    const data = await files.read(dir + location);
    if (!data) throw new TdbError("E_MISSING_FILE", `${files.origin} lacks external data file ${dir + location}`, { value: dir + location, allowed: `the data file ${onnxPath}'s tensors name, beside it` });
    return data;
  });
  // A BeamSearch-wrapped GPT-2: hook its decoder.
  const base = flattenDecoder(unwrapSearch(decoded));
  // float16 exports run in float32 (hooks, edits, gradients and analysis weights are float32).
  widenFloat16(base);
  const what = describeGraph(base);
  if (what.searchOp) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `${files.origin}/${onnxPath} is not a ${config.modelType} graph tdb-js can hook: ${what.text}`, {
      value: what.searchOp,
      allowed: "a decoder graph (input_ids -> logits)",
    });
  }
  // The adapter's normalisation (GPT-2: node scopes from the structure of unscoped exports).
  const normalized = adapter.normalize?.(OnnxGraph.fromModel(base), config) ?? { changed: false, steps: [], problems: [] };
  const graph = OnnxGraph.fromModel(base);
  // Before discovery: it (and everything after) loops over n_layer.
  checkConfigAgainstGraph(adapter, graph, config, `${files.origin}/config.json`, `${files.origin}/${onnxPath}`);
  const hookMap = adapter.discover(graph, config);
  const available = [...hookMap.sources.keys()];
  if (!available.some((n) => n.startsWith("blocks."))) {
    const reasons = [...normalized.problems, ...[...hookMap.unavailable.entries()].slice(0, 3).map(([k, v]) => `${k}: ${v}`)];
    throw new TdbError(
      "E_UNSUPPORTED_GRAPH",
      `no hook points found in any block of ${files.origin}/${onnxPath}: not a ${config.modelType} graph the ${adapter.name} adapter understands ` +
        `(${what.text}; hooks still available: ${available.length ? formatAllowed(available) : "none"}; ${reasons.join("; ")})`,
      { value: what.fused.length > 0 ? what.fused : onnxPath, allowed: available },
    );
  }
  return { config, tokenizer, adapter, hookMap, base, normalized };
}

