/**
 * Loading: config, tokenizer and ONNX graph from a directory, a hub id or any {@link ModelFiles}.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import { logSeverity } from "../backend/ort.js";
import { TdbError, formatAllowed } from "../base/errors.js";
import type { ArchitectureAdapter, HookMap } from "../hooks/adapter.js";
import { adapterFor } from "../hooks/registry.js";
import { defaultFiles, readText, type ModelFiles } from "../io/files.js";
import { resolveExternalData } from "../onnx/external.js";
import { OnnxGraph } from "../onnx/graph.js";
import { decodeModel } from "../onnx/proto.js";
import { inlineIfBranch, pruneDeadNodes, removeUnusedInputs } from "../onnx/surgery.js";
import { configKey, parseConfigText, type ModelConfig } from "./config.js";
import { ONNX_FILES, type LoadOptions } from "./options.js";
import { loadTokenizer, type Tokenizer } from "./tokenizer.js";

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
/** The flattened, unpatched graph. */
base: ModelProto;
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
    if (!data) throw new TdbError("E_MISSING_FILE", `${files.origin} lacks external data file ${dir + location}`, { value: dir + location });
    return data;
  });
  const base = flattenDecoder(decoded);
  const graph = OnnxGraph.fromModel(base);
  // Before discovery: it (and everything after) loops over n_layer.
  checkConfigAgainstGraph(adapter, graph, config, `${files.origin}/config.json`, `${files.origin}/${onnxPath}`);
  const hookMap = adapter.discover(graph, config);
  const available = [...hookMap.sources.keys()];
  if (!available.some((n) => n.startsWith("blocks."))) {
    const reasons = [...hookMap.unavailable.entries()].slice(0, 3).map(([k, v]) => `${k}: ${v}`);
    throw new TdbError(
      "E_UNSUPPORTED_GRAPH",
      `no hook points found in any block of ${files.origin}/${onnxPath}: not a ${config.modelType} graph the ${adapter.name} adapter understands ` +
        `(it expects nodes under .../h.N/ scopes as the Hugging Face export writes them; hooks still available: ${available.length ? formatAllowed(available) : "none"}; ${reasons.join("; ")})`,
      { value: onnxPath, allowed: available },
    );
  }
  return { config, tokenizer, adapter, hookMap, base };
}

