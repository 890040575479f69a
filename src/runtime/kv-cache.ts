/**
 * Running a model a few tokens at a time with a key/value cache: the with-past patched graphs
 * (the architecture adapter's with-past variant of the flattened graph, then edit points, hook
 * outputs and last-position logits as for {@link buildPatchedGraph}), their sessions (kept in the
 * model's session pool beside the others, under the same `maxSessions` bound), and the cache
 * itself. Generation with edits (`intervene/generate.ts`) runs on this.
 *
 * @module
 */
import { TensorProto_DataType as DT } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import type { PastGraph } from "../hooks/adapter.js";
import { hookKindOf, type HookName } from "../hooks/names.js";
import { cloneStructure } from "../onnx/clone.js";
import { OnnxGraph } from "../onnx/graph.js";
import type { HostTensor } from "../onnx/tensor.js";
import { Activation } from "../trace/activation.js";
import type { Session } from "../backend/ort.js";
import type { EditFeed } from "./options.js";
import { buildPatchedGraph, LOGIT_POSITIONS_INPUT, type PatchedGraph } from "./patched-graph.js";
import type { ModelRuntime } from "./runtime.js";
import { spreadEditPoints } from "./sessions.js";

/** A with-past patched graph: the patched graph plus its cache inputs and present outputs. */
export interface PastPatchedGraph extends PatchedGraph {
  past: PastGraph;
}

/** What a with-past session must offer: hooks exposed, hooks with an edit point. */
export interface PastRequest {
  hooks: readonly HookName[];
  edits: readonly HookName[];
}

/**
 * The key/value cache of one sequence (batch 1): per block, keys and values of the tokens run
 * so far, `[1, length, n_head, d_head]` (the layout of `hook_k` / `hook_v`).
 */
export class KvCache {
  /** Tokens cached. */
  length = 0;
  /** Per block: keys, then values, `[1, length, n_head, d_head]` row-major. */
  keys: Float32Array[];
  values: Float32Array[];

  /** An empty cache for a model with these dimensions. */
  constructor(
    readonly nLayers: number,
    readonly nHeads: number,
    readonly dHead: number,
  ) {
    this.keys = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.values = Array.from({ length: nLayers }, () => new Float32Array(0));
  }
}

/** What one cached step returns. */
export interface PastStep {
  /** Logits of the step's last token, `[d_vocab]`. */
  logits: Float32Array;
  /** Hooks asked for, over the step's tokens (`key_pos` axes cover the past too). */
  hooks: Map<HookName, Activation>;
}

/** A with-past graph as {@link pastGraphFor} keeps it: the graph, its session key, reusable feeds. */
export interface PastEntry {
  graph: PastPatchedGraph;
  /** Key of its session in the model's session pool. */
  key: string;
  /** Identity edit feeds by step length. */
  identity: Map<number, Map<string, HostTensor>>;
}

/** With-past graphs built per runtime, most recently used last (a few: they are cheap to rebuild). */
const graphs = new WeakMap<ModelRuntime, Map<string, PastEntry>>();
const MAX_GRAPHS = 4;
/** Inputs of an export's own cache (and the merged decoder's branch flag), fed empty by `ModelRuntime.tokenFeeds`. */
const EXPORT_PAST = /^past_key_values\.|^past_\d+$|^use_cache_branch$/;


/**
 * The with-past patched graph for `req` (built, or reused from a recent call).
 * `E_UNSUPPORTED_GRAPH` when the model's adapter cannot build a with-past graph.
 */
export function pastGraphFor(rt: ModelRuntime, req: PastRequest): PastEntry {
  const edits = spreadEditPoints(req.edits, rt.hookMap, rt.config.nLayers).sort();
  const hooks = [...new Set(req.hooks)];
  const key = `past|${edits.join(",")}|${hooks.join(",")}`;
  let byKey = graphs.get(rt);
  if (!byKey) graphs.set(rt, (byKey = new Map()));
  const hit = byKey.get(key);
  if (hit) {
    byKey.delete(key);
    byKey.set(key, hit);
    return hit;
  }
  const withPast = rt.adapter.withPast;
  if (!withPast) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `the ${rt.adapter.name} adapter cannot build a with-past graph`, { value: rt.adapter.name });
  }
  const g = OnnxGraph.fromModel(cloneStructure(rt.base));
  const past = withPast.call(rt.adapter, g, rt.hookMap, rt.config);
  const patched = buildPatchedGraph(g.model, rt.hookMap, rt.config, { hooks, edits, selectLogits: true });
  const known = new Set(["input_ids", "position_ids", "use_cache_branch", past.maskInput, LOGIT_POSITIONS_INPUT, ...past.layers.flatMap((x) => [x.pastKey, x.pastValue])]);
  const edited = new Set([...patched.edits.values()].flatMap((x) => [x.mul, x.add, ...(x.project ? [x.project.p, x.project.r] : [])]));
  const unknown = patched.model.graph!.input.map((v) => v.name).find((n) => !known.has(n) && !edited.has(n) && !EXPORT_PAST.test(n));
  if (unknown !== undefined) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `graph input ${JSON.stringify(unknown)} is not one tdb-js knows how to feed in a cached step`, {
      value: unknown,
      allowed: ["input_ids", "attention_mask", "position_ids", "past_key_values.*", "past_N", "use_cache_branch"],
    });
  }
  const entry: PastEntry = { graph: { ...patched, past }, key, identity: new Map() };
  byKey.set(key, entry);
  while (byKey.size > MAX_GRAPHS) byKey.delete(byKey.keys().next().value!);
  return entry;
}

function intTensor(type: number | undefined, values: ArrayLike<number>, dims: number[]): HostTensor {
  if (type === DT.INT32) return { type: "int32", data: Int32Array.from(values), dims };
  return { type: "int64", data: BigInt64Array.from(Array.from(values, (v) => BigInt(v))), dims };
}

function inputType(graph: PatchedGraph, name: string): number | undefined {
  const t = graph.model.graph?.input.find((v) => v.name === name)?.type?.value;
  return t?.case === "tensorType" ? t.value.elemType : undefined;
}

/**
 * Runs `tokens` (the next tokens of the sequence `cache` holds) through the with-past graph for
 * `req`, with `edits` (feeds over the step's tokens only, `[1, tokens.length, ...]`, as
 * `compileEdits` makes them for a sequence of that length), and appends their keys/values to
 * `cache`. Positions continue from `cache.length`.
 */
export async function runWithPast(
  rt: ModelRuntime,
  cache: KvCache,
  tokens: readonly number[],
  req: PastRequest,
  edits?: ReadonlyMap<HookName, EditFeed>,
): Promise<PastStep> {
  const S = tokens.length;
  const P = cache.length;
  if (S === 0) throw new TdbError("E_EMPTY_PROMPT", "a cached step needs at least one token", { value: 0, allowed: "at least one token" });
  if (P + S > rt.config.nCtx) {
    throw new TdbError("E_PROMPT_TOO_LONG", `${P} cached + ${S} new tokens exceed the model's context of ${rt.config.nCtx}`, { value: P + S, allowed: [1, rt.config.nCtx] });
  }
  rt.toBatch([[...tokens]]); // token ids in the vocabulary
  const entry = pastGraphFor(rt, req);
  const { graph } = entry;
  const { nHeads: H, dHead: dh } = rt.config;
  const feeds: Record<string, HostTensor> = {};
  const exportPast: string[] = [];
  for (const v of graph.model.graph!.input) {
    const name = v.name;
    if (name === "input_ids") feeds[name] = intTensor(inputType(graph, name), tokens, [1, S]);
    else if (name === graph.past.maskInput) feeds[name] = intTensor(inputType(graph, name), new Array<number>(P + S).fill(1), [1, P + S]);
    else if (name === "position_ids") feeds[name] = intTensor(inputType(graph, name), Array.from({ length: S }, (_, i) => i), [1, S]);
    else if (name === LOGIT_POSITIONS_INPUT) feeds[name] = { type: "int64", data: new BigInt64Array([BigInt(S - 1)]), dims: [1, 1, 1] };
    else if (EXPORT_PAST.test(name)) exportPast.push(name);
  }
  // A decoder-with-past export's own cache inputs: empty, as for a full-sequence run (tdb-js's cache is the one that grows).
  if (exportPast.length) Object.assign(feeds, rt.tokenFeeds({ inputNames: exportPast } as unknown as Session, rt.toBatch([[...tokens]])));
  graph.past.layers.forEach((x, l) => {
    feeds[x.pastKey] = { type: "float32", data: cache.keys[l]!, dims: [1, P, H, dh] };
    feeds[x.pastValue] = { type: "float32", data: cache.values[l]!, dims: [1, P, H, dh] };
  });
  let identity = entry.identity.get(S);
  if (!identity) entry.identity.set(S, (identity = new Map()));
  for (const inputs of graph.edits.values()) {
    const fed = inputs.hooks.filter((h) => edits?.has(h));
    if (fed.length > 1) throw new TdbError("E_BAD_INPUT", `${fed.join(" and ")} are one tensor: compose their edits into one feed`, { value: fed });
    const f = fed[0] ? edits!.get(fed[0])! : undefined;
    const names = [inputs.mul, inputs.add, ...(inputs.project ? [inputs.project.p, inputs.project.r] : [])];
    if (!f) {
      for (const n of names) {
        let t = identity.get(n);
        if (!t) {
          const dims = (n === inputs.project?.p ? [1, inputs.project.width, 1] : inputs.shape.map((d) => (d === "batch" ? 1 : d === "seq" ? S : d))) as number[];
          const size = dims.reduce((a, b) => a * b, 1);
          t = { type: "float32", data: new Float32Array(size).fill(n === inputs.mul ? 1 : 0), dims };
          identity.set(n, t);
        }
        feeds[n] = t;
      }
      continue;
    }
    if (f.dims[0] !== 1 || (f.dims[1] !== S && inputs.shape[1] === "seq")) {
      throw new TdbError("E_BAD_INPUT", `edit feed of ${fed[0]} has dims [${f.dims.join(", ")}]; a cached step of ${S} tokens needs [1, ${S}, ...]`, { value: f.dims });
    }
    feeds[inputs.mul] = { type: "float32", data: f.mul, dims: f.dims };
    feeds[inputs.add] = { type: "float32", data: f.add, dims: f.dims };
    if (inputs.project) {
      feeds[inputs.project.p] = { type: "float32", data: f.projP ?? new Float32Array(inputs.project.width), dims: [1, inputs.project.width, 1] };
      feeds[inputs.project.r] = { type: "float32", data: f.projR ?? new Float32Array(f.mul.length), dims: f.dims };
    } else if (f.projP) {
      throw new TdbError("E_BAD_OPTION", `${inputs.hooks.join("/")} cannot take a direction edit (only [batch, pos, width] tensors can)`, { value: inputs.hooks });
    }
  }
  const hookOut = req.hooks.map((h) => graph.outputs.get(h)!);
  const presents = graph.past.layers.flatMap((x) => [x.presentKey, x.presentValue]);
  const fetches = [...new Set(["logits", ...presents, ...hookOut])];
  const out = await rt.withAuxSession(entry.key, () => graph.model, (s) => s.run(feeds, fetches));
  graph.past.layers.forEach((x, l) => {
    cache.keys[l] = out[x.presentKey]!.data as Float32Array;
    cache.values[l] = out[x.presentValue]!.data as Float32Array;
  });
  cache.length = P + S;
  const hooks = new Map<HookName, Activation>();
  req.hooks.forEach((h, i) => {
    const t = out[hookOut[i]!]!;
    if (t.type !== "float32") throw new TdbError("E_UNSUPPORTED_GRAPH", `${h} came back as ${t.type}`, { value: t.type, allowed: ["float32"] });
    const labels = [...hookKindOf(h)!.dims];
    hooks.set(h, new Activation(h, t.data as Float32Array, t.dims, labels.length === t.dims.length ? labels : t.dims.map((_, k) => labels[k] ?? `dim${k}`)));
  });
  const logits = out.logits!;
  if (logits.type !== "float32") throw new TdbError("E_UNSUPPORTED_GRAPH", `logits came back as ${logits.type}`, { value: logits.type, allowed: ["float32"] });
  return { logits: logits.data as Float32Array, hooks };
}
