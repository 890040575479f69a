/**
 * Generation with edits held on: each step runs the whole sequence with the edits applied and
 * picks the next token (greedy, or sampled with a temperature and top-k from a seeded
 * generator, so runs are reproducible).
 *
 * @module
 */
import { array, boolean, finiteNumber, object, positiveInt } from "../base/check.js";
import { TdbError } from "../base/errors.js";
import { Rng } from "../base/random.js";
import type { ModelRuntime } from "../runtime/runtime.js";
import { compileEdits } from "./compile.js";
import type { Edit } from "./edits.js";

/** Options of {@link Model.generate}. */
export interface GenerateOptions {
  /**
   * Edits applied at every step. Positions are resolved against the sequence of that step, so
   * `positions: [-1]` follows the newest token; edits without positions cover every token.
   */
  edits?: readonly Edit[];
  /** Tokens to add, an integer >= 0 (0: an empty continuation). Generation also stops at the context length: a prompt that fills it gets an empty continuation. [default: 20] */
  maxNewTokens?: number;
  /** A finite number >= 0; 0 for greedy decoding. [default: 0] */
  temperature?: number;
  /** Sample among the k most likely tokens (with temperature > 0); an integer >= 1. [default: all] */
  topK?: number;
  /** Seed of the sampler. [default: 0] */
  seed?: number;
  /** Stop at the end-of-text token. [default: true] */
  stopAtEos?: boolean;
  /** Prepend BOS to a string prompt. [default: true] */
  prependBos?: boolean;
}

/** A generated continuation. */
export interface Generation {
  /** Prompt and new tokens. */
  tokens: number[];
  /** The new tokens only. */
  newTokens: number[];
  /** The decoded new tokens. */
  completion: string;
}

/** Implementation of {@link Model.generate}. */
export async function generate(model: ModelRuntime, prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<Generation> {
  const max = positiveInt("maxNewTokens", opts.maxNewTokens ?? 20, 0);
  const temperature = finiteNumber("temperature", opts.temperature ?? 0, 0);
  const topK = opts.topK === undefined ? undefined : positiveInt("topK", opts.topK);
  const seed = finiteNumber("seed", opts.seed ?? 0);
  const stopAtEos = boolean("stopAtEos", opts.stopAtEos ?? true);
  const editList = array<Edit>("edits", opts.edits ?? [], "an array of Edit objects", "E_BAD_INPUT");
  editList.forEach((e, i) => object(`edits[${i}]`, e, "an Edit object"));
  if (typeof prompt !== "string" && !Array.isArray(prompt)) {
    throw new TdbError("E_BAD_INPUT", "generate takes a string or one token row", { value: prompt === null ? null : typeof prompt, allowed: "a string or an array of token ids" });
  }
  const tokens = typeof prompt === "string" ? model.toTokens(prompt, { prependBos: opts.prependBos }) : [...prompt];
  // Checks the tokens and the length (E_PROMPT_TOO_LONG beyond the context), even when no step runs.
  model.toBatch([tokens]);
  const start = tokens.length;
  const rng = new Rng(seed);
  const eos = model.config.eosTokenId;
  for (let step = 0; step < max; step++) {
    if (tokens.length >= model.config.nCtx) break;
    const batch = model.toBatch([tokens]);
    const edits = editList.length ? await compileEdits(model, [editList], batch.seqLen) : undefined;
    const t = await model.run(batch, { hooks: [], edits, logitPositions: [[tokens.length - 1]] });
    const logits = t.logitsAt();
    let next: number;
    if (temperature === 0) {
      next = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[next]!) next = i;
    } else {
      const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
      const pool = order.slice(0, topK ?? order.length);
      const m = logits[pool[0]!]!;
      const w = pool.map((i) => Math.exp((logits[i]! - m) / temperature));
      let u = rng.uniform() * w.reduce((a, b) => a + b, 0);
      next = pool[pool.length - 1]!;
      for (let j = 0; j < pool.length; j++) {
        u -= w[j]!;
        if (u <= 0) {
          next = pool[j]!;
          break;
        }
      }
    }
    tokens.push(next);
    if (stopAtEos && next === eos) break;
  }
  const newTokens = tokens.slice(start);
  // A prompt that fills the context (or maxNewTokens 0) gets an empty continuation.
  const completion = newTokens.length === 0 ? "" : model.tokenizer.decode(newTokens, { skip_special_tokens: false });
  return { tokens, newTokens, completion };
}
