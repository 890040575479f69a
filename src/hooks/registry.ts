/**
 * The architecture adapters tdb-js knows, by `config.json` `model_type`. A new architecture
 * (Llama-family next) is one more adapter in {@link ADAPTERS}; nothing outside `src/hooks/`
 * knows architecture names.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import type { ArchitectureAdapter } from "./adapter.js";
import { gpt2Adapter } from "./gpt2.js";

/** Every adapter, in lookup order. */
export const ADAPTERS: readonly ArchitectureAdapter[] = [gpt2Adapter];

/**
 * The adapter for a config's `model_type`; `E_UNSUPPORTED_GRAPH` naming the supported types otherwise.
 *
 * @example
 * ```ts
 * adapterFor("gpt2").name; // "GPT-2"
 * ```
 */
export function adapterFor(modelType: string): ArchitectureAdapter {
  const adapter = ADAPTERS.find((a) => a.modelTypes.includes(modelType));
  if (adapter) return adapter;
  const known = ADAPTERS.flatMap((a) => a.modelTypes);
  throw new TdbError("E_UNSUPPORTED_GRAPH", `no architecture adapter for model_type ${JSON.stringify(modelType)}; supported: ${known.join(", ")}`, {
    value: modelType,
    allowed: known,
  });
}
