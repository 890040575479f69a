/**
 * `tokenizer_config.json` of GPT-2-style byte-level BPE tokenizers, shared by the generated GPT-2
 * tokenizer and the BPE trainer. No data: safe for the browser bundle.
 *
 * @module
 */

/**
 * The `tokenizer_config.json` of a GPT-2-style byte-level BPE tokenizer whose only special token,
 * `eosToken` (id `eosId`), serves as BOS, EOS and UNK, as the hub's GPT-2 has it.
 *
 * @example
 * ```ts
 * gpt2TokenizerConfig("<|endoftext|>", 50256).tokenizer_class; // "GPT2Tokenizer"
 * ```
 */
export function gpt2TokenizerConfig(eosToken: string, eosId: number, modelMaxLength = 1024): Record<string, unknown> {
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: {
      [String(eosId)]: { content: eosToken, lstrip: false, normalized: true, rstrip: false, single_word: false, special: true },
    },
    bos_token: eosToken,
    clean_up_tokenization_spaces: false,
    eos_token: eosToken,
    errors: "replace",
    model_max_length: modelMaxLength,
    pad_token: null,
    tokenizer_class: "GPT2Tokenizer",
    unk_token: eosToken,
  };
}
