/**
 * Tokenizer loading from any {@link ModelFiles} source: tdb-js's own byte-level BPE for GPT-2
 * family files, transformers.js for everything else.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { readText, type ModelFiles } from "../io/files.js";
import { ByteLevelBpeTokenizer } from "./bpe-tokenizer.js";

/**
 * What tdb-js uses of a tokenizer; a transformers.js tokenizer (what `loadTokenizer`
 * returns) has all of it and more. tdb-js's published types name this interface rather than
 * transformers.js's classes, whose declaration files do not type-check without `skipLibCheck`.
 */
export interface Tokenizer {
  /** Token ids of `text`. */
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  /** Text of token ids. */
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  /** The BOS token id, when the tokenizer has one. */
  readonly bos_token_id?: number | null;
}

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;

async function readJson(files: ModelFiles, name: string): Promise<Record<string, unknown>> {
  const text = await readText(files, name);
  if (text === null) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has no ${name}; a tokenizer needs ${TOKENIZER_FILES.join(" and ")}`, {
      value: name,
      allowed: TOKENIZER_FILES,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    const why = text.trim() === "" ? " (the file is empty)" : `: ${(cause as Error).message}`;
    throw new TdbError("E_BAD_INPUT", `${files.origin}/${name} is not valid JSON${why}`, { value: name, allowed: "a JSON object", cause });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    const got = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : typeof parsed;
    throw new TdbError("E_BAD_INPUT", `${files.origin}/${name} must hold a JSON object, got ${got}`, { value: name, allowed: "a JSON object" });
  }
  return parsed as Record<string, unknown>;
}

/**
 * Which implementation a tokenizer from {@link loadTokenizer} is: `"tdb-bpe"`, tdb-js's own
 * byte-level BPE (GPT-2 family, built without importing transformers.js), or
 * `"transformers.js"`, the transformers.js class every other tokenizer falls back to.
 */
export function tokenizerImplementation(tokenizer: Tokenizer): "tdb-bpe" | "transformers.js" {
  return tokenizer instanceof ByteLevelBpeTokenizer ? "tdb-bpe" : "transformers.js";
}

/**
 * Loads the tokenizer of `tokenizer.json` and `tokenizer_config.json`. Byte-level BPE files of
 * the GPT-2 family get tdb-js's own tokenizer (`ByteLevelBpeTokenizer` in bpe-tokenizer.ts: same ids and
 * text as transformers.js, without importing it, which costs about a second); every other
 * file, and any setting that one does not implement (`byteLevelBpeUnsupported`), gets the
 * transformers.js class named by `tokenizer_config.json` (`tokenizer_class`, e.g.
 * `GPT2Tokenizer`), as `AutoTokenizer` would.
 */
export async function loadTokenizer(files: ModelFiles): Promise<Tokenizer> {
  const [json, config] = await Promise.all(TOKENIZER_FILES.map((f) => readJson(files, f)));
  const fast = ByteLevelBpeTokenizer.build(json, config);
  if (fast !== null) return fast;
  const tf = (await import("@huggingface/transformers")) as unknown as Record<string, unknown>;
  const name = typeof config!.tokenizer_class === "string" ? config!.tokenizer_class.replace(/Fast$/, "") : "PreTrainedTokenizer";
  const cls = (tf[name] ?? tf.PreTrainedTokenizer) as new (j: unknown, c: unknown) => Tokenizer;
  try {
    return new cls(json, config);
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `transformers.js could not build ${name} from ${files.origin}: ${(cause as Error).message}`, {
      value: name,
      cause,
    });
  }
}
