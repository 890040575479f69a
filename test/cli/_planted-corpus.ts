/**
 * A small text corpus for CLI tests on the planted-detector model (test/helpers/planted-model.ts).
 */
import type { PlantedModel } from "../helpers/planted-model.js";

/** Paragraphs in which every planted token occurs between ordinary tokens of the tiny vocabulary. */
export function plantedCorpus(pm: PlantedModel, docs = 16): string {
  const tok = pm.model.tokenizer;
  const filler = Array.from({ length: 40 }, (_, i) => tok.decode([300 + ((i * 13) % 200)]));
  return Array.from({ length: docs }, (_, d) => {
    const parts: string[] = [];
    for (let i = 0; i < 30; i++) parts.push(i % 7 === d % 7 ? pm.planted[(d + i) % pm.planted.length]!.token : filler[(d * 5 + i) % filler.length]!);
    return parts.join("").trim();
  }).join("\n\n");
}
