/**
 * Generation with edits held on: each step runs the whole sequence with the edits applied and
 * picks the next token (greedy, or sampled with a temperature and top-k from a seeded
 * generator, so runs are reproducible).
 *
 * @module
 */
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
  /** Tokens to add. [default: 20] */
  maxNewTokens?: number;
  /** 0 for greedy decoding. [default: 0] */
  temperature?: number;
  /** Sample among the k most likely tokens (with temperature > 0). [default: all] */
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
  const max = opts.maxNewTokens ?? 20;
  const temperature = opts.temperature ?? 0;
  if (!Number.isInteger(max) || max < 0) throw new TdbError("E_BAD_OPTION", `maxNewTokens must be a non-negative integer, got ${max}`, { value: max, allowed: ">= 0" });
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new TdbError("E_BAD_OPTION", `temperature must be >= 0, got ${temperature}`, { value: temperature, allowed: ">= 0" });
  const tokens = typeof prompt === "string" ? model.toTokens(prompt, { prependBos: opts.prependBos }) : [...prompt];
  const start = tokens.length;
  const rng = new Rng(opts.seed ?? 0);
  const eos = model.config.eosTokenId;
  for (let step = 0; step < max; step++) {
    if (tokens.length >= model.config.nCtx) break;
    const batch = model.toBatch([tokens]);
    const edits = opts.edits?.length ? await compileEdits(model, [opts.edits], batch.seqLen) : undefined;
    const t = await model.run(batch, { hooks: [], edits, logitPositions: [[tokens.length - 1]] });
    const logits = t.logitsAt();
    let next: number;
    if (temperature === 0) {
      next = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[next]!) next = i;
    } else {
      const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
      const pool = order.slice(0, opts.topK ?? order.length);
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
    if ((opts.stopAtEos ?? true) && next === eos) break;
  }
  const newTokens = tokens.slice(start);
  return { tokens, newTokens, completion: model.tokenizer.decode(newTokens, { skip_special_tokens: false }) };
}
