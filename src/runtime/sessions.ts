/**
 * The onnxruntime sessions a {@link Model} keeps: the unpatched baseline, patched sessions (one
 * per hook set / edit points / logit selection, reused when a live one covers a request), and
 * auxiliary sessions (attribution graphs with a backward pass) by key. Each session holds its
 * own copy of the weights, so at most `maxSessions` patched and `maxSessions` auxiliary sessions
 * stay alive; the least recently used that no run is using are released first.
 *
 * @module
 */
import type { ModelProto } from "onnx-buf";
import type { ModelConfig } from "./config.js";
import type { HookMap } from "../hooks/adapter.js";
import type { HookName } from "../hooks/names.js";
import { encodeModel } from "../onnx/proto.js";
import { buildPatchedGraph, type PatchedGraph } from "./patched-graph.js";
import { createSession, type Device, type OptimizationLevel, type Session } from "./ort.js";

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
  /** Sessions of each kind kept alive. [default: 2] */
  maxSessions?: number;
}

interface Entry<T> {
  value: Promise<T>;
  users: number;
}

/** A least-recently-used set of sessions that never releases one a run is using. */
class Lru<K, T extends { release(): Promise<void> } | { session: Session }> {
  readonly entries = new Map<K, Entry<T>>();
  constructor(private readonly max: number) {}

  async use<R>(key: K, make: () => Promise<T>, fn: (t: T) => Promise<R>): Promise<R> {
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else e = { value: make(), users: 0 };
    this.entries.set(key, e);
    e.users++;
    try {
      return await fn(await e.value);
    } catch (err) {
      if (!(await e.value.then(() => true, () => false))) this.entries.delete(key);
      throw err;
    } finally {
      e.users--;
      await this.trim();
    }
  }

  private async trim(): Promise<void> {
    for (const [k, e] of [...this.entries]) {
      if (this.entries.size <= this.max) return;
      if (e.users > 0) continue;
      this.entries.delete(k);
      await release(await e.value);
    }
  }

  async clear(): Promise<void> {
    for (const e of this.entries.values()) await release(await e.value.catch(() => undefined));
    this.entries.clear();
  }
}

async function release(x: { release(): Promise<void> } | { session: Session } | undefined): Promise<void> {
  if (!x) return;
  await ("session" in x ? x.session.release() : x.release());
}

/** The sessions of one model. */
export class SessionPool {
  private readonly patched: Lru<PatchedRequest, PatchedSession>;
  private readonly aux: Lru<string, Session>;
  private baselineSession: Promise<Session> | undefined;

  /** A pool for the flattened `base` model. */
  constructor(
    private readonly base: ModelProto,
    private readonly hookMap: HookMap,
    private readonly config: ModelConfig,
    private readonly opts: SessionPoolOptions = {},
  ) {
    const max = Math.max(1, opts.maxSessions ?? 2);
    this.patched = new Lru(max);
    this.aux = new Lru(max);
  }

  private create(model: ModelProto): Promise<Session> {
    return createSession(encodeModel(model), { device: this.opts.device, optimizationLevel: this.opts.optimizationLevel });
  }

  /** Runs `fn` on the unpatched session. */
  async withBaseline<R>(fn: (s: Session) => Promise<R>): Promise<R> {
    this.baselineSession ??= this.create(this.base);
    return fn(await this.baselineSession);
  }

  /**
   * Runs `fn` on a patched session that exposes at least `req.hooks` and has edit points on at
   * least `req.edits`, building one when no live session fits. A new session gets edit points on
   * each edited hook in every layer, since edits usually sweep a hook over layers.
   */
  async withPatched<R>(req: PatchedRequest, fn: (s: PatchedSession) => Promise<R>): Promise<R> {
    const fits = (s: PatchedSession) =>
      s.selectLogits === req.selectLogits && s.prefixShare === req.prefixShare && req.hooks.every((h) => s.hooks.has(h)) && req.edits.every((h) => s.editHooks.has(h));
    let key = req;
    for (const [k, e] of this.patched.entries) {
      const s = await e.value.catch(() => undefined);
      if (s && fits(s)) {
        key = k;
        break;
      }
    }
    return this.patched.use(key, () => this.build(req), fn);
  }

  private async build(req: PatchedRequest): Promise<PatchedSession> {
    const edits = new Set<HookName>();
    for (const h of req.edits) {
      const suffix = /^blocks\.\d+\.(.+)$/.exec(h)?.[1];
      if (!suffix) {
        edits.add(h);
        continue;
      }
      for (let l = 0; l < this.config.nLayers; l++) {
        const name = `blocks.${l}.${suffix}` as HookName;
        if (this.hookMap.sources.get(name)?.kind === "tap") edits.add(name);
      }
    }
    const graph = buildPatchedGraph(this.base, this.hookMap, this.config, { hooks: req.hooks, edits: [...edits], selectLogits: req.selectLogits, prefixShare: req.prefixShare });
    const session = await this.create(graph.model);
    const editHooks = new Set([...graph.edits.values()].flatMap((e) => e.hooks));
    return { hooks: new Set(req.hooks), editHooks, selectLogits: req.selectLogits, prefixShare: req.prefixShare, graph, session };
  }

  /** Runs `fn` on the auxiliary session of `key`, building it from `build()` on first use. */
  async withAux<R>(key: string, build: () => ModelProto, fn: (s: Session) => Promise<R>): Promise<R> {
    return this.aux.use(key, () => this.create(build()), fn);
  }

  /** Hook sets of the live patched sessions, most recently used last. */
  async liveHookSets(): Promise<HookName[][]> {
    const out: HookName[][] = [];
    for (const e of this.patched.entries.values()) {
      const s = await e.value.catch(() => undefined);
      if (s) out.push([...s.hooks]);
    }
    return out;
  }

  /** Releases every session. */
  async dispose(): Promise<void> {
    await this.patched.clear();
    await this.aux.clear();
    if (this.baselineSession) await (await this.baselineSession).release();
    this.baselineSession = undefined;
  }
}
