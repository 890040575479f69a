/**
 * The weights of a model, kept once on disk for every session (Node only).
 *
 * onnxruntime-node copies the weights into every session created from model bytes, and the
 * model bytes themselves are a further copy. A {@link WeightStore} writes the large initializers
 * of a model once to a data file in a temporary directory (each at a page-aligned offset) and
 * hands onnxruntime a small model file whose initializers point into it: onnxruntime then
 * memory-maps them instead of copying (measured with onnxruntime-node 1.30 on CPU: a session of a
 * GPT-2-small-shaped model costs the MatMul weights it prepacks, ~0.49 GB, instead of ~1.4 GB).
 * {@link WeightStore.detach} then lets the JS side drop the bytes it decoded: the tensors of the
 * loaded model read their bytes back from the data file when something asks for them.
 *
 * The directory (`tdb-js-weights-<host>-<pid>-*` in the OS temporary directory) is removed by
 * {@link WeightStore.release} (a model's `dispose`) and, for stores still open, when the process
 * exits; directories of processes that died without cleaning up (killed by a signal) are removed
 * by the next store created in the same parent directory on the same host.
 *
 * @module
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { ModelProto, TensorProto } from "onnx-buf";
import { TdbError } from "../base/errors.js";
import { forEachTensor, planExternalData, pointToExternalData, type ExternalSlot } from "../onnx/external.js";
import { encodeModel } from "../onnx/proto.js";

/** Name of the data file inside a store's directory (what the session models' tensors name). */
export const WEIGHTS_FILE = "weights.bin";

/** Options of {@link WeightStore.create}. */
export interface WeightStoreOptions {
  /** Directory to create the store's temporary directory in. [default: `os.tmpdir()`] */
  parentDir?: string;
  /** Initializers with at least this many bytes go to the data file. [default: 65536] */
  sizeThreshold?: number;
  /** Offset alignment in the data file; a multiple of the page size lets onnxruntime map each tensor. [default: 65536] */
  alignment?: number;
}

/** Stores still open, removed at process exit. */
const open = new Set<WeightStore>();
let exitHook = false;

function onExit(): void {
  for (const s of open) s.releaseSync();
}

/** Directory name prefix of this process's stores: `tdb-js-weights-<host>-<pid>-`. */
function dirPrefix(pid: number): string {
  return `tdb-js-weights-${hostname().replace(/[^A-Za-z0-9]/g, "").slice(0, 32)}-${pid}-`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the store directories under `parent` left by processes of this host that died without
 * cleaning up (killed by a signal, for instance: `exit` handlers do not run then).
 */
function sweepStale(parent: string): void {
  const mine = dirPrefix(0).replace(/0-$/, "");
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(mine)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(mine.length))?.[1]);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

/**
 * Runs a full garbage collection, so that buffers the weights were decoded from are returned to
 * the system before sessions allocate theirs. V8 collects large external buffers only when new
 * external allocations push it to, and onnxruntime's allocations are not seen by V8: without
 * this, a dropped 0.5 GB model buffer can outlive every session. Uses `globalThis.gc` when the
 * process runs with `--expose-gc`; otherwise obtains it once through `v8.setFlagsFromString`.
 */
export function collectGarbage(): void {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as () => void;
    } catch {
      return;
    } finally {
      setFlagsFromString("--no-expose-gc");
    }
  }
  gc();
}

/** Tensor bytes at least this large are copied out of a shared buffer by {@link WeightStore.detach}. */
const SHARED_BUFFER_MIN = 1 << 20;

/**
 * Large initializers of one model in a data file, and the session model files that point into it.
 *
 * @example
 * ```ts
 * const store = WeightStore.create(base);
 * store.detach(base);                            // the JS copies of the weights can be collected
 * const path = await store.writeModel(patched);  // a small .onnx next to weights.bin
 * const session = await createSession(path);
 * await store.removeModel(path);                 // onnxruntime has read it
 * await store.release();                         // at dispose
 * ```
 */
export class WeightStore {
  private fd: number | undefined;
  private next = 0;

  private constructor(
    /** The temporary directory holding the data file and session model files. */
    readonly dir: string,
    private readonly slots: Map<TensorProto, ExternalSlot>,
    /** Size of the data file, bytes. */
    readonly bytes: number,
  ) {}

  /**
   * Writes the initializers of `model` of at least `sizeThreshold` bytes to a new data file
   * (synchronously, tensor by tensor: no buffer of the whole file is made). `model` is not
   * changed; call {@link WeightStore.detach} to let it drop its bytes.
   */
  static create(model: ModelProto, opts: WeightStoreOptions = {}): WeightStore {
    const plan = planExternalData(model, { sizeThreshold: opts.sizeThreshold ?? 65536, alignment: opts.alignment ?? 65536 });
    const parent = opts.parentDir ?? tmpdir();
    sweepStale(parent);
    const dir = mkdtempSync(join(parent, dirPrefix(process.pid)));
    const store = new WeightStore(dir, plan.slots, plan.size);
    open.add(store);
    if (!exitHook) {
      exitHook = true;
      process.once("exit", onExit);
    }
    try {
      store.fd = openSync(join(dir, WEIGHTS_FILE), "w+");
      for (const [t, { offset }] of plan.slots) {
        const data = t.rawData;
        let done = 0;
        while (done < data.byteLength) done += writeSync(store.fd, data, done, data.byteLength - done, offset + done);
      }
    } catch (cause) {
      store.releaseSync();
      throw new TdbError("E_BAD_OPTION", `cannot write the weight file in ${dir}: ${(cause as Error).message}`, { value: dir, cause });
    }
    return store;
  }

  /** Path of the data file. */
  get path(): string {
    return join(this.dir, WEIGHTS_FILE);
  }

  /** Number of tensors in the data file. */
  get tensors(): number {
    return this.slots.size;
  }

  /** Whether `t` (by identity) has its bytes in the data file. */
  has(t: TensorProto): boolean {
    return this.slots.has(t);
  }

  /** The bytes of stored tensor `t`, read from the data file (a fresh copy). */
  read(t: TensorProto): Uint8Array<ArrayBuffer> {
    const slot = this.slots.get(t);
    if (!slot) throw new TdbError("E_BAD_INPUT", `tensor ${t.name} is not in this weight store`, { value: t.name });
    if (this.fd === undefined) {
      throw new TdbError("E_DISPOSED", `the weights of tensor ${t.name} were released with the model (dispose); load the model again`, { value: t.name });
    }
    const out = new Uint8Array(slot.length);
    let done = 0;
    while (done < slot.length) {
      const n = readSync(this.fd, out, done, slot.length - done, slot.offset + done);
      if (n === 0) throw new TdbError("E_ONNX_INVALID", `weight file ${join(this.dir, WEIGHTS_FILE)} ends inside tensor ${t.name}`, { value: t.name });
      done += n;
    }
    return out;
  }

  /**
   * Lets `model`'s tensors drop their bytes: each stored tensor's `rawData` becomes an accessor
   * that reads the bytes from the data file on every access (so a caller keeping them keeps a
   * copy; nothing is cached here), and other tensors (node attributes included) that view a
   * large shared buffer, such as the bytes of the file the model was decoded from, get a copy of
   * their own bytes. After that the decoded file's buffer is garbage once its other users let go.
   * Assigning `rawData` replaces the accessor with the assigned bytes.
   */
  detach(model: ModelProto): void {
    forEachTensor(model, (t) => {
      if (this.slots.has(t)) {
        Object.defineProperty(t, "rawData", {
          configurable: true,
          enumerable: true,
          get: () => this.read(t),
          set(v: Uint8Array) {
            Object.defineProperty(t, "rawData", { value: v, writable: true, enumerable: true, configurable: true });
          },
        });
        return;
      }
      const own = Object.getOwnPropertyDescriptor(t, "rawData");
      const data = own && "value" in own ? (own.value as Uint8Array | undefined) : undefined;
      if (data && data.buffer.byteLength >= SHARED_BUFFER_MIN && data.buffer.byteLength > data.byteLength) t.rawData = data.slice();
    });
  }

  /**
   * Writes `model` as a session model file in the store's directory, its stored tensors (by
   * identity: graphs built from the loaded model share its initializer objects) pointing into
   * the data file; others stay inline. Returns the file's path; remove it with
   * {@link WeightStore.removeModel} once onnxruntime has read it.
   */
  async writeModel(model: ModelProto): Promise<string> {
    if (this.fd === undefined) throw new TdbError("E_DISPOSED", "the model's weights were released (dispose); load the model again", { value: "disposed", allowed: "a loaded model (Model.load it again)" });
    const path = join(this.dir, `graph-${this.next++}.onnx`);
    await writeFile(path, encodeModel(pointToExternalData(model, WEIGHTS_FILE, this.slots)));
    return path;
  }

  /** Removes a session model file written by {@link WeightStore.writeModel}. */
  async removeModel(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  /**
   * Closes and removes the data file and the directory. Sessions already created keep their
   * mapped weights; new sessions and reads of detached tensors fail with `E_DISPOSED`.
   */
  async release(): Promise<void> {
    this.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** {@link WeightStore.release}, synchronously (for process exit). */
  releaseSync(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private close(): void {
    open.delete(this);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
