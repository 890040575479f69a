/**
 * Writes a trained model as an ordinary model directory (Hugging Face / transformers.js layout):
 * `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` and
 * `onnx/model.onnx` (the export's structure, with the trained weights). Node-only.
 *
 * @module
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { TdbError } from "../base/errors.js";
import { fileSystemError } from "../io/fs-error.js";
import { writeAtomic } from "../io/write-atomic.js";
import { encodeModel } from "../onnx/proto.js";
import { buildGpt2Tokenizer, GPT2_VOCAB_SIZE } from "../synthetic/tokenizer.js";
import type { TokenizerSource } from "./config.js";
import type { ResolvedModel } from "./graph.js";


const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";

/** The two tokenizer files and the EOS id. */
export interface TokenizerFiles {
  tokenizerJson: string;
  tokenizerConfigJson: string;
  eos: number;
}

/** The id of the tokenizer's EOS token (`eos_token` of tokenizer_config.json looked up in tokenizer.json), or `fallback`. */
export function eosTokenId(tokenizerJson: string, tokenizerConfigJson: string, fallback: number): number {
  try {
    const cfg = JSON.parse(tokenizerConfigJson) as { eos_token?: string | { content?: string } };
    const tok = JSON.parse(tokenizerJson) as { model?: { vocab?: Record<string, number> }; added_tokens?: { id: number; content: string }[] };
    const name = typeof cfg.eos_token === "string" ? cfg.eos_token : cfg.eos_token?.content;
    if (name === undefined) return fallback;
    const added = tok.added_tokens?.find((t) => t.content === name);
    if (added) return added.id;
    return tok.model?.vocab?.[name] ?? fallback;
  } catch {
    return fallback;
  }
}

/** Reads or builds the tokenizer files of `source` for a model of `vocabSize` tokens and context `nCtx`. */
export async function tokenizerFiles(source: TokenizerSource, vocabSize: number, nCtx: number): Promise<TokenizerFiles> {
  if (source === "gpt2") {
    const t = buildGpt2Tokenizer({ vocabSize: Math.min(vocabSize, GPT2_VOCAB_SIZE), modelMaxLength: nCtx });
    return { tokenizerJson: JSON.stringify(t.tokenizer), tokenizerConfigJson: json(t.tokenizerConfig), eos: t.eosTokenId };
  }
  let tokenizerJson: string;
  let tokenizerConfigJson: string;
  if ("dir" in source) {
    try {
      tokenizerJson = await readFile(join(source.dir, "tokenizer.json"), "utf8");
      tokenizerConfigJson = await readFile(join(source.dir, "tokenizer_config.json"), "utf8");
    } catch (cause) {
      throw new TdbError("E_MISSING_FILE", `cannot read the tokenizer files in ${source.dir}: ${(cause as Error).message}`, {
        value: source.dir,
        allowed: "a directory with tokenizer.json and tokenizer_config.json",
        cause,
      });
    }
  } else if (typeof source === "object" && typeof source.tokenizerJson === "string" && typeof source.tokenizerConfigJson === "string") {
    ({ tokenizerJson, tokenizerConfigJson } = source);
  } else {
    throw new TdbError("E_BAD_OPTION", "tokenizer must be \"gpt2\", { dir } or { tokenizerJson, tokenizerConfigJson }", { value: source, allowed: ["gpt2", "{ dir }", "{ tokenizerJson, tokenizerConfigJson }"] });
  }
  return { tokenizerJson, tokenizerConfigJson, eos: eosTokenId(tokenizerJson, tokenizerConfigJson, vocabSize - 1) };
}

/** Writes the model directory `dir` from a resolved model, trained parameter values and tokenizer files (see {@link tokenizerFiles}). */
export async function writeTrainedModel(dir: string, m: ResolvedModel, values: ReadonlyMap<string, Float32Array>, tok: TokenizerFiles): Promise<void> {
  if (!m.hfConfig) {
    throw new TdbError("E_BAD_OPTION", "writing a model directory of a graph model needs model.hfConfig (config.json)", { value: "hfConfig", allowed: "model.hfConfig" });
  }
  try {
    await mkdir(join(dir, "onnx"), { recursive: true });
  } catch (cause) {
    throw fileSystemError(cause, dir, "create the model directory");
  }
  await writeAtomic(join(dir, "tokenizer.json"), tok.tokenizerJson);
  await writeAtomic(join(dir, "tokenizer_config.json"), tok.tokenizerConfigJson);
  await writeAtomic(join(dir, "config.json"), json(m.hfConfig(tok.eos)));
  await writeAtomic(join(dir, "generation_config.json"), json({ _from_model_config: true, bos_token_id: tok.eos, eos_token_id: tok.eos }));
  await writeAtomic(join(dir, "onnx", "model.onnx"), encodeModel(m.exportGraph(values)));
}
