/**
 * A cached activation: a Float32Array with dims and dim labels, plus an `ndarray` view.
 *
 * @module
 */
import ndarray from "ndarray";
import { TdbError } from "../base/errors.js";
import { installDisplay, summarizeActivation } from "../base/inspect.js";

/**
 * One tensor from a trace.
 *
 * @example
 * ```ts
 * const pattern = trace.cache.get("pattern", 0);   // dims [batch, head, query_pos, key_pos]
 * pattern.at(0, 2, 5, 4);                           // probability head 2 puts on key 4 from query 5
 * pattern.nd().pick(0, 2, null, null);             // ndarray view of one head's pattern
 * ```
 */
export class Activation {
  static {
    // One line (name, dims, statistics) in consoles and notebooks instead of every value.
    installDisplay(Activation.prototype, { text: summarizeActivation });
  }

  /** Strides of a row-major layout of {@link dims}. */
  readonly strides: readonly number[];

  /** Wraps a row-major tensor; `labels` name the dims (TransformerLens order). */
  constructor(
    /** Hook name, e.g. `blocks.0.attn.hook_pattern`, or `logits`. */
    readonly name: string,
    /** Row-major values. */
    readonly data: Float32Array,
    /** Sizes of each axis. */
    readonly dims: readonly number[],
    /** Axis labels, e.g. `["batch", "pos", "d_model"]`. */
    readonly labels: readonly string[],
  ) {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) {
      throw new TdbError("E_BAD_INPUT", `activation ${name}: ${data.length} values for dims [${dims.join(", ")}]`, { value: data.length, allowed: n });
    }
    const strides: number[] = new Array<number>(dims.length);
    let s = 1;
    for (let i = dims.length - 1; i >= 0; i--) {
      strides[i] = s;
      s *= dims[i]!;
    }
    this.strides = strides;
  }

  /** The value at an index (one integer per axis). */
  at(...index: number[]): number {
    if (index.length !== this.dims.length) {
      throw new TdbError("E_BAD_INPUT", `${this.name}: ${index.length} indices for ${this.dims.length} axes (${this.labels.join(", ")})`, {
        value: index,
        allowed: this.labels,
      });
    }
    const off = this.offsetOf(index);
    return this.data[off]!;
  }

  /** Flat offset of leading indices (negative from the end), checked against the dims. */
  private offsetOf(index: readonly number[]): number {
    let off = 0;
    index.forEach((v, i) => {
      const d = this.dims[i]!;
      const j = v < 0 ? d + v : v;
      if (!Number.isInteger(j) || j < 0 || j >= d) {
        const label = this.labels[i] ?? "";
        throw new TdbError(label.endsWith("pos") ? "E_POSITION_RANGE" : "E_INDEX_RANGE", `${this.name}: index ${v} out of range for axis ${label} of size ${d}`, {
          value: v,
          allowed: [-d, d - 1],
        });
      }
      off += j * this.strides[i]!;
    });
    return off;
  }

  /** An `ndarray` view of the data (no copy). */
  nd(): ndarray.NdArray<Float32Array> {
    return ndarray(this.data, [...this.dims]);
  }

  /** The contiguous slice for the leading indices, e.g. `row(0, 3)` of [batch,pos,d] is one vector. */
  row(...leading: number[]): Float32Array {
    if (leading.length > this.dims.length) {
      throw new TdbError("E_BAD_INPUT", `${this.name}: ${leading.length} indices for ${this.dims.length} axes (${this.labels.join(", ")})`, { value: leading, allowed: this.labels });
    }
    const off = this.offsetOf(leading);
    const len = leading.length === 0 ? this.data.length : this.strides[leading.length - 1]!;
    return this.data.subarray(off, off + len);
  }
}
