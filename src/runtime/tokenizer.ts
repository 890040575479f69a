/**
 * Tokenizer loading through transformers.js, from any {@link ModelFiles} source.
 *
 * @module
 */
import type { PreTrainedTokenizer } from "@huggingface/transformers";
import { TdbError } from "../base/errors.js";
import { readText, type ModelFiles } from "../io/files.js";

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;

async function readJson(files: ModelFiles, name: string): Promise<Record<string, unknown>> {
  const text = await readText(files, name);
  if (text === null) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has no ${name}; a tokenizer needs ${TOKENIZER_FILES.join(" and ")}`, {
      value: name,
      allowed: TOKENIZER_FILES,
    });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `${files.origin}/${name} is not valid JSON`, { value: name, cause });
  }
}

/**
 * Loads the transformers.js tokenizer class named by `tokenizer_config.json`
 * (`tokenizer_class`, e.g. `GPT2Tokenizer`), as `AutoTokenizer` would.
 */
export async function loadTokenizer(files: ModelFiles): Promise<PreTrainedTokenizer> {
  const [json, config] = await Promise.all(TOKENIZER_FILES.map((f) => readJson(files, f)));
  const tf = (await import("@huggingface/transformers")) as unknown as Record<string, unknown>;
  const name = typeof config!.tokenizer_class === "string" ? config!.tokenizer_class.replace(/Fast$/, "") : "PreTrainedTokenizer";
  const cls = (tf[name] ?? tf.PreTrainedTokenizer) as new (j: unknown, c: unknown) => PreTrainedTokenizer;
  try {
    return new cls(json, config);
  } catch (cause) {
    throw new TdbError("E_BAD_INPUT", `transformers.js could not build ${name} from ${files.origin}: ${(cause as Error).message}`, {
      value: name,
      cause,
    });
  }
}
