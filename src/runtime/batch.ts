/**
 * Turning prompts into a right-padded token batch, with the checks every entry point shares.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** A tokenized, right-padded batch. */
export interface TokenBatch {
  /** Token ids per row, unpadded. */
  rows: number[][];
  /** Padded length (longest row). */
  seqLen: number;
  /** input_ids, row-major [batch, seqLen]. */
  inputIds: BigInt64Array;
  /** attention_mask, row-major [batch, seqLen]; 1 for real tokens. */
  attentionMask: BigInt64Array;
}

/**
 * Checks and right-pads token rows. Right padding keeps position ids 0..n-1 correct for real
 * tokens, because GPT-2 exports compute positions from the sequence length, not the mask.
 */
export function padBatch(rows: number[][], opts: { nCtx: number; dVocab: number; padId: number }): TokenBatch {
  if (rows.length === 0) throw new TdbError("E_EMPTY_PROMPT", "the batch is empty; pass at least one prompt", { value: [], allowed: "at least one prompt" });
  rows.forEach((r, i) => {
    if (r.length === 0) throw new TdbError("E_EMPTY_PROMPT", `prompt ${i} has no tokens`, { value: i, allowed: "prompts of at least one token" });
    if (r.length > opts.nCtx) {
      throw new TdbError("E_PROMPT_TOO_LONG", `prompt ${i} has ${r.length} tokens; the model's context is ${opts.nCtx}`, {
        value: r.length,
        allowed: [1, opts.nCtx],
      });
    }
    for (const t of r) {
      if (!Number.isInteger(t) || t < 0 || t >= opts.dVocab) {
        throw new TdbError("E_BAD_INPUT", `token id ${t} in prompt ${i} is outside the vocabulary [0, ${opts.dVocab - 1}]`, {
          value: t,
          allowed: [0, opts.dVocab - 1],
        });
      }
    }
  });
  const seqLen = Math.max(...rows.map((r) => r.length));
  const inputIds = new BigInt64Array(rows.length * seqLen).fill(BigInt(opts.padId));
  const attentionMask = new BigInt64Array(rows.length * seqLen);
  rows.forEach((r, b) => {
    r.forEach((t, s) => {
      inputIds[b * seqLen + s] = BigInt(t);
      attentionMask[b * seqLen + s] = 1n;
    });
  });
  return { rows, seqLen, inputIds, attentionMask };
}
