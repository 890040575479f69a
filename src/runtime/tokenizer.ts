/**
 * Tokenizer loading through transformers.js, from any {@link ModelFiles} source.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { readText, type ModelFiles } from "../io/files.js";

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
 * Loads the transformers.js tokenizer class named by `tokenizer_config.json`
 * (`tokenizer_class`, e.g. `GPT2Tokenizer`), as `AutoTokenizer` would.
 */
export async function loadTokenizer(files: ModelFiles): Promise<Tokenizer> {
  const [json, config] = await Promise.all(TOKENIZER_FILES.map((f) => readJson(files, f)));
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
