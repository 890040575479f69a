/**
 * Building one {@link Trace} from the rows of many (the chunks of a batch run), copying each row
 * straight into preallocated arrays so that the chunks can be dropped as they arrive: peak
 * memory is the result plus one chunk, not the result twice.
 *
 * @module
 */
import { Activation } from "./activation.js";
import { ActivationCache } from "./cache.js";
import { Trace, type TokenCodec } from "./trace.js";
import type { HookName } from "../hooks/names.js";
import { TdbError } from "../base/errors.js";

interface Slot {
  name: string;
  data: Float32Array;
  rowSize: number;
  dims: readonly number[];
  labels: readonly string[];
}

/**
 * Assembles a trace of `rows` rows from rows of other traces (of the same prompt length, hooks
 * and options). Internal: used by chunked `trace` and `intervene` runs.
 */
export class TraceAssembler {
  private logits?: Slot;
  private readonly cache = new Map<HookName, Slot>();
  private readonly tokens: number[][];
  private readonly strTokens: string[][];
  private readonly logitPositions: (readonly number[])[];
  private readonly filled: boolean[];
  private positions?: readonly number[];
  private nLayers = 0;
  private hasLogitPositions = false;

  /** An empty assembly of `rows` rows; `codec` is the model's (for the trace's token helpers). */
  constructor(
    readonly rows: number,
    private readonly codec: TokenCodec,
  ) {
    this.tokens = new Array<number[]>(rows);
    this.strTokens = new Array<string[]>(rows);
    this.logitPositions = new Array<readonly number[]>(rows);
    this.filled = new Array<boolean>(rows).fill(false);
  }

  private slot(a: Activation): Slot {
    const rowSize = a.data.length / a.dims[0]!;
    return { name: a.name, data: new Float32Array(rowSize * this.rows), rowSize, dims: [this.rows, ...a.dims.slice(1)], labels: a.labels };
  }

  private static copy(s: Slot, a: Activation, from: number, to: number): void {
    if (a.dims.slice(1).join() !== s.dims.slice(1).join()) {
      throw new TdbError("E_BAD_INPUT", `cannot assemble ${s.name}: dims ${a.dims.join("x")} vs ${s.dims.join("x")}`, { value: a.dims });
    }
    s.data.set(a.data.subarray(from * s.rowSize, (from + 1) * s.rowSize), to * s.rowSize);
  }

  /** Copies row `from` of `part` into row `to` of the result. */
  copyRow(part: Trace, from: number, to: number): void {
    if (!Number.isInteger(to) || to < 0 || to >= this.rows) {
      throw new TdbError("E_INDEX_RANGE", `row ${to} out of range [0, ${this.rows - 1}]`, { value: to, allowed: [0, this.rows - 1] });
    }
    if (!this.logits) {
      this.logits = this.slot(part.logits);
      for (const [name, a] of part.cache) this.cache.set(name, this.slot(a));
      this.positions = part.positions;
      this.nLayers = part.cache.nLayers;
      this.hasLogitPositions = part.logitPositions !== undefined;
    }
    TraceAssembler.copy(this.logits, part.logits, from, to);
    for (const [name, s] of this.cache) TraceAssembler.copy(s, part.cache.get(name), from, to);
    this.tokens[to] = part.tokens[from]!;
    this.strTokens[to] = part.strTokens[from]!;
    if (part.logitPositions) this.logitPositions[to] = part.logitPositions[from]!;
    this.filled[to] = true;
  }

  /** Copies every row of `part` into consecutive rows starting at `at`. */
  copyAll(part: Trace, at: number): void {
    for (let r = 0; r < part.tokens.length; r++) this.copyRow(part, r, at + r);
  }

  /** The assembled trace; every row must have been filled. */
  finish(): Trace {
    const missing = this.filled.indexOf(false);
    if (!this.logits || missing >= 0) throw new TdbError("E_RUNTIME", `assembled trace is missing row ${missing}`, { value: missing });
    const act = (s: Slot) => new Activation(s.name, s.data, s.dims, s.labels);
    const entries = new Map<HookName, Activation>();
    for (const [name, s] of this.cache) entries.set(name, act(s));
    return new Trace(
      this.tokens,
      this.strTokens,
      act(this.logits),
      new ActivationCache(entries, this.nLayers),
      this.codec,
      this.positions,
      this.hasLogitPositions ? this.logitPositions : undefined,
    );
  }
}
