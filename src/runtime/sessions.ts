/**
 * The onnxruntime sessions a {@link Model} keeps: the unpatched baseline, patched sessions (one
 * per hook set / edit points / logit selection, reused when a live one covers a request), and
 * auxiliary sessions (attribution graphs with a backward pass) by key, in one least-recently-used
 * set bounded by `maxSessions` over every kind together (see {@link SessionPoolOptions.maxSessions}).
 *
 * Weights: with onnxruntime-node, the model's large initializers are written once to a
 * temporary file that every session memory-maps ({@link WeightStore}), so a session costs what
 * onnxruntime allocates for it (chiefly the prepacked copy of each MatMul weight, ~0.49 GB for
 * GPT-2 small, and its activation arena) rather than a full copy of the model; the loaded
 * model's tensors read their bytes back from that file on demand.
 *
 * @module
 */
import type { ModelProto, TensorProto } from "onnx-buf";
import type { ModelConfig } from "./config.js";
import type { HookMap } from "../hooks/adapter.js";
import type { HookName } from "../hooks/names.js";
import { positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { encodeModel } from "../onnx/proto.js";
import { bytesPerElement, elemTypeOf } from "../onnx/tensor.js";
import { buildPatchedGraph, type PatchedGraph } from "./patched-graph.js";
import { createSession, ortBackend, type Device, type LogLevel, type OptimizationLevel, type Session } from "../backend/ort.js";
import type { WeightStore } from "../backend/weight-store.js";

/**
 * Edit points for `edits`, spread over every block: an edit of `blocks.L.<x>` gets an edit point
 * on `<x>` in every layer where it is a tap, so one patched graph serves edits at any layer (and
 * sweeps over layers reuse it). Names outside blocks are kept as they are.
 */
export function spreadEditPoints(edits: Iterable<HookName>, hookMap: HookMap, nLayers: number): HookName[] {
  const out = new Set<HookName>();
  for (const h of edits) {
    const suffix = /^blocks\.\d+\.(.+)$/.exec(h)?.[1];
    if (!suffix) {
      out.add(h);
      continue;
    }
    for (let l = 0; l < nLayers; l++) {
      const name = `blocks.${l}.${suffix}` as HookName;
      if (hookMap.sources.get(name)?.kind === "tap") out.add(name);
    }
  }
  return [...out];
}

/** What a patched session must offer. */
export interface PatchedRequest {
  hooks: readonly HookName[];
  edits: readonly HookName[];
  selectLogits: boolean;
  prefixShare: boolean;
}

/** A live patched session and what it was built with. */
export interface PatchedSession {
  hooks: ReadonlySet<HookName>;
  /** Hooks with an edit point (unused ones are fed identity). */
  editHooks: ReadonlySet<HookName>;
  selectLogits: boolean;
  prefixShare: boolean;
  graph: PatchedGraph;
  session: Session;
}

/** Session settings. */
export interface SessionPoolOptions {
  device?: Device;
  optimizationLevel?: OptimizationLevel;
  /** onnxruntime's own logging to stderr, from this level up. [default: "fatal"] */
  logLevel?: LogLevel;
  /**
   * Sessions kept alive, of every kind together (unpatched, patched, attribution). A session
   * counts as the number of prepacked copies of the weight matrices it holds (onnxruntime keeps
   * one per session: ~0.5 GB for GPT-2 small): 1 for the unpatched and patched graphs, 2 for an
   * attribution graph with a backward pass (it multiplies by W and W^T). Before a session is
   * built, the least recently used idle ones are released until it fits; a session a call is
   * running on is never released, so calls running at once on different sessions can hold more
   * (one each) until they finish, and a session that counts more than `maxSessions` is built
   * alone. [default: 2]
   */
  maxSessions?: number;
  /**
   * Where sessions get their weights (onnxruntime-node only). A directory (default: the OS
   * temporary directory): the weights are written once to a file in a new temporary directory
   * there, which every session memory-maps, and the loaded model's tensors read their bytes back
   * from it on demand instead of keeping them in memory; the directory is removed at
   * `dispose` (or process exit). `false`: every session gets a copy of the weights from the
   * model bytes, and the loaded model keeps its bytes in memory. [default: the OS temporary directory]
   */
  weightsDir?: string | false;
}

/** What the pool keeps: a session, and for patched sessions what it was built with. */
type Held = { kind: "baseline"; session: Session } | { kind: "aux"; session: Session } | { kind: "patched"; session: Session; patched: PatchedSession };

interface Entry {
  value: Promise<Held>;
  users: number;
  /** How many sessions this one counts as (see {@link weightCopies}). */
  cost: number;
}

/** How to build a missing session: what it will count as, and the build. */
interface Plan {
  cost: number;
  make: () => Promise<Held>;
}

function tensorBytes(t: TensorProto): number {
  let per = 4;
  try {
    per = bytesPerElement(elemTypeOf(t.dataType));
  } catch {
    // an element type tdb-js does not read: count it as float32
  }
  return t.dims.reduce((n, d) => n * Number(d), per);
}

/**
 * Bytes of the constant weight matrices a session of `model` will hold a prepacked copy of:
 * the initializers read as the B operand of a MatMul or Gemm, directly or through a Transpose
 * (onnxruntime folds the Transpose into a new constant and prepacks that too). A graph with a
 * backward pass multiplies by both W and W^T, so it holds two copies.
 */
export function packedWeightBytes(model: ModelProto): number {
  const g = model.graph;
  if (!g) return 0;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const transposed = new Map<string, TensorProto>();
  for (const n of g.node) {
    const t = n.opType === "Transpose" ? inits.get(n.input[0] ?? "") : undefined;
    if (t && n.output[0]) transposed.set(n.output[0], t);
  }
  let bytes = 0;
  for (const n of g.node) {
    if (n.opType !== "MatMul" && n.opType !== "Gemm") continue;
    const b = n.input[1] ?? "";
    const t = inits.get(b) ?? transposed.get(b);
    if (t) bytes += tensorBytes(t);
  }
  return bytes;
}

/**
 * A least-recently-used set of sessions of every kind that never releases one a run is using.
 * Before a session is built, idle ones are released so that the new one makes at most `max`.
 */
class Lru {
  /** Live entries, least recently used first. Keys: "baseline", `aux:<key>`, or a {@link PatchedRequest}. */
  readonly entries = new Map<unknown, Entry>();
  /** Set by {@link Lru.clear}: new uses fail with E_DISPOSED. */
  private closed = false;
  /** Uses in flight; {@link Lru.clear} waits for them before releasing their sessions. */
  private readonly inFlight = new Set<Promise<unknown>>();
  constructor(readonly max: number) {}

  async use<R>(key: unknown, plan: () => Plan, fn: (h: Held) => Promise<R>): Promise<R> {
    if (this.closed) throw new TdbError("E_DISPOSED", "the model was disposed; load it again", { value: "disposed", allowed: "a loaded model (Model.load it again)" });
    const run = this.useOpen(key, plan, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    try {
      return await run;
    } finally {
      this.inFlight.delete(settled);
    }
  }

  private async useOpen<R>(key: unknown, plan: () => Plan, fn: (h: Held) => Promise<R>): Promise<R> {
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else {
      const p = plan();
      await this.trim(this.max - p.cost);
      e = this.entries.get(key); // built by another call meanwhile?
      if (e) this.entries.delete(key);
      else e = { value: p.make(), users: 0, cost: p.cost };
    }
    this.entries.set(key, e);
    e.users++;
    try {
      return await fn(await e.value);
    } catch (err) {
      if (!(await e.value.then(() => true, () => false)) && this.entries.get(key) === e) this.entries.delete(key);
      throw err;
    } finally {
      e.users--;
      await this.trim(this.max);
    }
  }

  /** What the live sessions count as together. */
  get size(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.cost;
    return n;
  }

  /** Releases idle sessions, least recently used first, until the live ones count as at most `n`. */
  private async trim(n: number): Promise<void> {
    const victims: Entry[] = [];
    let size = this.size;
    for (const [k, e] of [...this.entries]) {
      if (size <= n) break;
      if (e.users > 0) continue;
      this.entries.delete(k);
      size -= e.cost;
      victims.push(e);
    }
    for (const e of victims) await release(e.value);
  }

  /** Fails new uses with E_DISPOSED, waits for the uses in flight, then releases every session. */
  async clear(): Promise<void> {
    this.closed = true;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) await release(e.value);
  }
}

async function release(value: Promise<Held>): Promise<void> {
  const h = await value.catch(() => undefined);
  await h?.session.release();
}

/** The sessions of one model. */
export class SessionPool {
  private readonly live: Lru;
  /** The weight store (null: weights in memory), set up from the constructor on. */
  private readonly store: Promise<WeightStore | null>;
  private collected = false;
  /** Why the weights stay in memory although a store was asked for, if they do. */
  storeError: unknown;

  /** A pool for the flattened `base` model. */
  constructor(
    private readonly base: ModelProto,
    private readonly hookMap: HookMap,
    private readonly config: ModelConfig,
    private readonly opts: SessionPoolOptions = {},
  ) {
    this.live = new Lru(positiveInt("maxSessions", opts.maxSessions ?? 2));
    this.store = this.openStore();
  }

  /**
   * Writes the weights to the store and detaches the base model from its bytes (see
   * {@link WeightStore}); null when weights stay in memory (`weightsDir: false`, not
   * onnxruntime-node, or the file could not be written: then {@link SessionPool.storeError}).
   */
  private async openStore(): Promise<WeightStore | null> {
    const dir = this.opts.weightsDir;
    if (dir === false) return null;
    try {
      const backend = await ortBackend();
      if (!backend.weightStore) return null;
      const { WeightStore } = await backend.weightStore();
      const store = WeightStore.create(this.base, { parentDir: dir });
      store.detach(this.base);
      return store;
    } catch (err) {
      this.storeError = err;
      return null;
    }
  }

  /**
   * Resolves once the weights are where sessions will read them from: written to the weight
   * file and dropped from the base model (or kept in memory). Await it before anything reads the
   * base model's weights (`adapter.weights`): views taken earlier pin the whole buffer the model
   * was decoded from (0.67 GB for GPT-2 small) for as long as they live.
   */
  async ready(): Promise<void> {
    await this.store;
  }

  /**
   * The data file sessions map the weights from, once it is written; null when every session
   * gets a copy of the weights instead (see {@link SessionPoolOptions.weightsDir}).
   */
  async weightFile(): Promise<string | null> {
    return (await this.store)?.path ?? null;
  }

  private async create(model: ModelProto): Promise<Session> {
    const opts = { device: this.opts.device, optimizationLevel: this.opts.optimizationLevel, logLevel: this.opts.logLevel };
    const store = await this.store;
    if (!store) return createSession(encodeModel(model), opts);
    if (!this.collected) {
      // The buffer the model was decoded from is garbage now (detached at load), but V8 may
      // keep it until much later: collect it before the first session allocates its weights.
      this.collected = true;
      // (through the backend: a literal import of weight-store.ts would pull node:fs into browser bundles)
      (await (await ortBackend()).weightStore!()).collectGarbage();
    }
    const path = await store.writeModel(model);
    try {
      return await createSession(path, opts);
    } finally {
      await store.removeModel(path);
    }
  }

  /** Runs `fn` on the unpatched session. */
  async withBaseline<R>(fn: (s: Session) => Promise<R>): Promise<R> {
    return this.live.use("baseline", () => ({ cost: 1, make: async () => ({ kind: "baseline", session: await this.create(this.base) }) }), (h) => fn(h.session));
  }

  /**
   * Runs `fn` on a patched session that exposes at least `req.hooks` and has edit points on at
   * least `req.edits`, building one when no live session fits. A new session gets edit points on
   * each edited hook in every layer, since edits usually sweep a hook over layers.
   */
  async withPatched<R>(req: PatchedRequest, fn: (s: PatchedSession) => Promise<R>): Promise<R> {
    const fits = (s: PatchedSession) =>
      s.selectLogits === req.selectLogits && s.prefixShare === req.prefixShare && req.hooks.every((h) => s.hooks.has(h)) && req.edits.every((h) => s.editHooks.has(h));
    let key: unknown = req;
    for (const [k, e] of this.live.entries) {
      const h = await e.value.catch(() => undefined);
      if (h?.kind === "patched" && fits(h.patched)) {
        key = k;
        break;
      }
    }
    return this.live.use(
      key,
      () => ({
        cost: 1,
        make: async () => {
          const patched = await this.build(req);
          return { kind: "patched", session: patched.session, patched };
        },
      }),
      (h) => fn((h as Extract<Held, { kind: "patched" }>).patched),
    );
  }

  private async build(req: PatchedRequest): Promise<PatchedSession> {
    const edits = spreadEditPoints(req.edits, this.hookMap, this.config.nLayers);
    const graph = buildPatchedGraph(this.base, this.hookMap, this.config, { hooks: req.hooks, edits, selectLogits: req.selectLogits, prefixShare: req.prefixShare });
    const session = await this.create(graph.model);
    const editHooks = new Set([...graph.edits.values()].flatMap((e) => e.hooks));
    return { hooks: new Set(req.hooks), editHooks, selectLogits: req.selectLogits, prefixShare: req.prefixShare, graph, session };
  }

  /** Runs `fn` on the auxiliary session of `key`, building it from `build()` on first use. */
  async withAux<R>(key: string, build: () => ModelProto, fn: (s: Session) => Promise<R>): Promise<R> {
    return this.live.use(
      `aux:${key}`,
      () => {
        const model = build();
        return { cost: this.weightCopies(model), make: async () => ({ kind: "aux", session: await this.create(model) }) };
      },
      (h) => fn(h.session),
    );
  }

  private baseBytes: number | undefined;

  /**
   * How many sessions a session of `model` counts as: the prepacked weight copies it will hold,
   * relative to the unpatched model's (rounded, at least 1). Patched graphs count 1; attribution
   * graphs with a backward pass 2.
   */
  private weightCopies(model: ModelProto): number {
    this.baseBytes ??= packedWeightBytes(this.base);
    if (this.baseBytes === 0) return 1;
    return Math.max(1, Math.round(packedWeightBytes(model) / this.baseBytes));
  }

  /** Hook sets of the live patched sessions, most recently used last. */
  async liveHookSets(): Promise<HookName[][]> {
    const out: HookName[][] = [];
    for (const e of this.live.entries.values()) {
      const h = await e.value.catch(() => undefined);
      if (h?.kind === "patched") out.push([...h.patched.hooks]);
    }
    return out;
  }

  /** Releases every session. */
  async dispose(): Promise<void> {
    await this.live.clear();
    await (await this.store)?.release();
  }
}
