/**
 * The one module that imports onnxruntime. Everything else talks to sessions through the small
 * surface below, with {@link HostTensor}s in and out, so that a browser build can swap in
 * onnxruntime-web here and nowhere else.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { TdbError } from "../base/errors.js";
import type { ElemType, HostTensor } from "../onnx/tensor.js";

/** Devices tdb-js can run on. Only `cpu` is available in onnxruntime-node builds without CUDA. */
export const DEVICES = Object.freeze(["cpu"] as const);
/** A device name; see {@link DEVICES}. */
export type Device = (typeof DEVICES)[number];

/** onnxruntime graph optimization levels. */
export type OptimizationLevel = "disabled" | "basic" | "extended" | "all";

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

function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[t.type], t.data as never, t.dims);
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
 * Creates an onnxruntime session from ONNX bytes.
 *
 * @example
 * ```ts
 * const s = await createSession(bytes, { optimizationLevel: "all" });
 * const out = await s.run({ input_ids: { type: "int64", data: ids, dims: [1, ids.length] } });
 * ```
 */
export async function createSession(bytes: Uint8Array, options: SessionOptions = {}): Promise<Session> {
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
    logSeverityLevel: 3,
    // A Model holds several sessions (unpatched, patched per hook set), each with its own
    // intra-op thread pool. Spinning threads of an idle session steal cores from the running
    // one (measured: ~20% slower traces when two sessions alternate on 2 cores).
    extra: { session: { intra_op: { allow_spinning: options.allowSpinning ? "1" : "0" } } },
  };
  if (options.intraOpThreads) so.intraOpNumThreads = options.intraOpThreads;
  if (options.optimizedModelFilePath) so.optimizedModelFilePath = options.optimizedModelFilePath;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, so);
  } catch (cause) {
    throw new TdbError("E_ONNX_INVALID", `onnxruntime could not load the graph: ${(cause as Error).message}`, { cause });
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
        ortFeeds[name] = toOrt(t);
      }
      const missing = session.inputNames.filter((n) => !(n in feeds));
      if (missing.length > 0) {
        throw new TdbError("E_BAD_INPUT", `missing graph inputs: ${missing.join(", ")}`, { value: missing, allowed: session.inputNames });
      }
      const result = fetches ? await session.run(ortFeeds, [...fetches]) : await session.run(ortFeeds);
      const out: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(result)) out[name] = fromOrt(t);
      return out;
    },
    release: () => session.release(),
  };
}
