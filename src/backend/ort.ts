/**
 * The one module that talks to onnxruntime. Everything else talks to sessions through the small
 * surface below, with {@link HostTensor}s in and out. Which onnxruntime runs them is pluggable:
 * the Node entry registers onnxruntime-node (`ort-node.ts`), the browser entry onnxruntime-web
 * (`ort-web.ts`), with {@link setOrtBackend}; this module imports neither.
 *
 * @module
 */
import type * as ort from "onnxruntime-common";
import { TdbError } from "../base/errors.js";
import type { ElemType, HostTensor } from "../onnx/tensor.js";
import type * as WeightStoreModule from "./weight-store.js";

/** The part of an onnxruntime package's namespace tdb-js uses (onnxruntime-node's or onnxruntime-web's). */
export interface OrtModule {
  /** The tensor class. */
  readonly Tensor: typeof ort.Tensor;
  /** The session class. */
  readonly InferenceSession: typeof ort.InferenceSession;
}

/** An onnxruntime implementation sessions can run on. */
export interface OrtBackend {
  /** Package name, e.g. `onnxruntime-node` (for messages and summaries). */
  readonly name: string;
  /** Devices it can run sessions on. */
  readonly devices: readonly Device[];
  /**
   * The package's namespace for sessions on `device`, imported on first use (no native code or
   * WebAssembly loads before a session).
   */
  readonly load: (device: Device) => Promise<OrtModule>;
  /**
   * Loads the weight store (weights in a memory-mapped file, `weight-store.ts`), where this
   * runtime can read external data from disk (onnxruntime-node); absent elsewhere.
   */
  readonly weightStore?: () => Promise<typeof WeightStoreModule>;
  /**
   * Bytes of memory this process can still take (free memory of the machine, or of its cgroup
   * when that is lower), where the runtime can tell; sizes the default memory budget of batched
   * runs. Absent (or undefined) where it cannot be known, e.g. in a browser.
   */
  readonly availableMemory?: () => number | undefined;
}

let backend: OrtBackend | undefined;

/**
 * Makes `b` the onnxruntime that sessions created from now on run on. The entry points call it
 * (`tdb-js` in Node and Deno: onnxruntime-node; `tdb-js` in a browser bundle: onnxruntime-web).
 */
export function setOrtBackend(b: OrtBackend): void {
  backend = b;
}

/** The onnxruntime registered with {@link setOrtBackend}, if any. */
export function registeredOrtBackend(): OrtBackend | undefined {
  return backend;
}

function nodeLike(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  return typeof g.process?.versions?.node === "string";
}

/**
 * Installs the Node platform (onnxruntime-node, the directory/hub file adapter) when no entry
 * point installed one: for code that imports tdb-js's modules directly under Node or Deno
 * (tests, tools, `tsx` scripts). Each built entry installs its platform itself.
 */
export async function ensureNodePlatform(): Promise<void> {
  if (!nodeLike()) {
    throw new TdbError("E_NO_RUNTIME", "no onnxruntime registered: import tdb-js through its browser entry, or call setOrtBackend", {
      allowed: ["onnxruntime-node", "onnxruntime-web"],
    });
  }
  // Not a literal specifier, so that browser bundlers do not follow it.
  const platform = "../runtime/platform-node.js";
  let mod: { useNodePlatform(override?: boolean): void };
  try {
    mod = (await import(/* @vite-ignore */ platform)) as typeof mod;
  } catch (cause) {
    throw new TdbError("E_NO_RUNTIME", "no onnxruntime registered: import tdb-js through one of its entry points", { cause });
  }
  mod.useNodePlatform(false);
}

/** The registered onnxruntime (under Node and Deno, onnxruntime-node when none was). */
export async function ortBackend(): Promise<OrtBackend> {
  if (!backend) await ensureNodePlatform();
  return backend!;
}


/**
 * Devices tdb-js can run on: `cpu` everywhere (onnxruntime-node's CPU provider, onnxruntime-web's
 * WebAssembly), `webgpu` in browsers with WebGPU (browser entry only).
 */
export const DEVICES = Object.freeze(["cpu", "webgpu"] as const);
/** A device name; see {@link DEVICES}. */
export type Device = (typeof DEVICES)[number];

/** onnxruntime graph optimization levels. */
export type OptimizationLevel = "disabled" | "basic" | "extended" | "all";

/** onnxruntime's own log severities, least to most severe (its `logSeverityLevel` 0..4). */
export const LOG_LEVELS = Object.freeze(["verbose", "info", "warning", "error", "fatal"] as const);
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `level` as onnxruntime's `logSeverityLevel`; undefined is `"fatal"` (onnxruntime prints
 * nothing on stderr for failures tdb-js reports as typed errors anyway). Anything else is
 * `E_BAD_OPTION`.
 */
export function logSeverity(level: LogLevel | undefined): 0 | 1 | 2 | 3 | 4 {
  const i = LOG_LEVELS.indexOf(level ?? "fatal");
  if (i < 0) {
    throw new TdbError("E_BAD_OPTION", `unknown logLevel ${JSON.stringify(level)}; should be one of ${LOG_LEVELS.join(", ")}`, {
      value: level,
      allowed: LOG_LEVELS,
    });
  }
  return i as 0 | 1 | 2 | 3 | 4;
}

/** Options for {@link createSession}. */
export interface SessionOptions {
  /** Execution device. [default: "cpu"] */
  device?: Device;
  /** Graph optimization level. [default: "all"] */
  optimizationLevel?: OptimizationLevel;
  /** Threads for one op; 0 lets onnxruntime choose. [default: 0] */
  intraOpThreads?: number;
  /** Write the optimized graph here (for checking which fusions happened). */
  optimizedModelFilePath?: string;
  /**
   * Let idle intra-op threads spin-wait for work (onnxruntime's default). Faster for one session
   * running back to back; slower when several sessions share the cores. [default: false]
   */
  allowSpinning?: boolean;
  /** onnxruntime's own logging to stderr, from this level up. [default: "fatal"] */
  logLevel?: LogLevel;
}

/** A created inference session with its input and output names. */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the session; `fetches` limits the outputs copied back (all by default). */
  run(feeds: Record<string, HostTensor>, fetches?: readonly string[]): Promise<Record<string, HostTensor>>;
  /** Frees the native session. */
  release(): Promise<void>;
}

const ORT_TYPE: Record<ElemType, ort.Tensor.Type> = {
  float32: "float32",
  float64: "float64",
  float16: "float16",
  int64: "int64",
  int32: "int32",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

/** `t` as a tensor of the onnxruntime instance `o` (each instance checks feeds against its own class). */
function toOrt(t: HostTensor, o: OrtModule): ort.Tensor {
  return new o.Tensor(ORT_TYPE[t.type], t.data as never, t.dims);
}

function fromOrt(t: ort.Tensor): HostTensor {
  const type = t.type as ElemType;
  if (!(type in ORT_TYPE)) {
    throw new TdbError("E_UNSUPPORTED_GRAPH", `onnxruntime returned a tensor of type ${t.type}`, {
      value: t.type,
      allowed: Object.keys(ORT_TYPE),
    });
  }
  return { type, data: t.data as HostTensor["data"], dims: [...t.dims] };
}

/**
 * An onnxruntime run failure as `E_RUNTIME`. onnxruntime names the failing node in its message
 * ("... running Reshape node. Name:'/transformer/Reshape_3' Status Message: ..."): that name is
 * the error's `value` (undefined when the message names none, e.g. a feed of the wrong type).
 */
function runError(cause: unknown): TdbError {
  if (cause instanceof TdbError) return cause;
  const msg = cause instanceof Error ? cause.message : String(cause);
  const m = /running (\S+) node\. Name:'([^']*)'/.exec(msg);
  const where = m ? ` at ${m[1]} node ${m[2]}` : "";
  return new TdbError("E_RUNTIME", `onnxruntime failed${where}: ${msg}`, { value: m?.[2], cause });
}

/**
 * Creates an onnxruntime session from ONNX bytes, or from the path of an ONNX file (Node; its
 * external data, named relative to the file, is memory-mapped rather than copied).
 *
 * @example
 * ```ts
 * const s = await createSession(bytes, { optimizationLevel: "all" });
 * const out = await s.run({ input_ids: { type: "int64", data: ids, dims: [1, ids.length] } });
 * ```
 */
export async function createSession(model: Uint8Array | string, options: SessionOptions = {}): Promise<Session> {
  const device = options.device ?? "cpu";
  if (!DEVICES.includes(device)) {
    throw new TdbError("E_BAD_OPTION", `unsupported device ${JSON.stringify(device)}; should be one of ${DEVICES.join(", ")}`, {
      value: device,
      allowed: DEVICES,
    });
  }
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: options.optimizationLevel ?? "all",
    logSeverityLevel: logSeverity(options.logLevel),
    // A Model holds several sessions (unpatched, patched per hook set), each with its own
    // intra-op thread pool. Spinning threads of an idle session steal cores from the running
    // one (measured: ~20% slower traces when two sessions alternate on 2 cores).
    extra: { session: { intra_op: { allow_spinning: options.allowSpinning ? "1" : "0" } } },
  };
  if (options.intraOpThreads) so.intraOpNumThreads = options.intraOpThreads;
  if (options.optimizedModelFilePath) so.optimizedModelFilePath = options.optimizedModelFilePath;
  const b = await ortBackend();
  if (!b.devices.includes(device)) {
    throw new TdbError("E_BAD_OPTION", `device ${JSON.stringify(device)} is not available on ${b.name}; it has ${b.devices.join(", ")}`, {
      value: device,
      allowed: b.devices,
    });
  }
  const runtime = await b.load(device);
  let session: ort.InferenceSession;
  try {
    session = await (typeof model === "string" ? runtime.InferenceSession.create(model, so) : runtime.InferenceSession.create(model, so));
  } catch (cause) {
    const msg = (cause as Error).message;
    // The op onnxruntime does not know (e.g. "com.microsoft:MysteryOp(-1) is not a registered function/op"), else the message.
    const op = /([\w.]*:?\w+)\(-?\d+\) is not a registered function\/op/.exec(msg)?.[1];
    throw new TdbError("E_ONNX_INVALID", `onnxruntime could not load the graph: ${msg}`, {
      cause,
      value: op ?? msg,
      allowed: "a graph of the ops onnxruntime registers (standard ONNX, its com.microsoft contrib ops)",
    });
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, fetches) {
      const known = new Set(session.inputNames);
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) {
        // onnxruntime silently ignores unknown feeds; a typo would otherwise go unnoticed.
        if (!known.has(name)) {
          throw new TdbError("E_BAD_INPUT", `unknown graph input ${JSON.stringify(name)}`, {
            value: name,
            allowed: session.inputNames,
          });
        }
        try {
          ortFeeds[name] = toOrt(t, runtime);
        } catch (cause) {
          throw new TdbError("E_BAD_INPUT", `feed ${JSON.stringify(name)} is not a tensor of dims [${t.dims.join(", ")}]: ${(cause as Error).message}`, {
            value: name,
            cause,
          });
        }
      }
      const missing = session.inputNames.filter((n) => !(n in feeds));
      if (missing.length > 0) {
        throw new TdbError("E_BAD_INPUT", `missing graph inputs: ${missing.join(", ")}`, { value: missing, allowed: session.inputNames });
      }
      let result: Record<string, ort.Tensor>;
      try {
        result = fetches ? await session.run(ortFeeds, [...fetches]) : await session.run(ortFeeds);
      } catch (cause) {
        throw runError(cause);
      }
      const out: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(result)) out[name] = fromOrt(t);
      return out;
    },
    release: () => session.release(),
  };
}
