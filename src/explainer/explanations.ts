/**
 * Explanations stored with a model: `explanations/mlp.json`, `explanations/sae.json` and
 * `explanations/heads.json` (as `scripts/models/brown-small-explanations.ts` writes them for
 * `tdb:brown-small`), read into an
 * index from node id (`mlp.L.I`, `sae.<hook>.I`, `attn.L.H`: the attribution table's ids without
 * the position) to explanation and score, so that tables can show an explanation next to each node.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { defaultFiles, type DefaultFilesOptions, type ModelFiles } from "../io/files.js";

/** One stored explanation. */
export interface StoredExplanation {
  /** Node id without position: `mlp.2.17`, `sae.blocks.2.hook_mlp_out.5`, `attn.1.3`. */
  id: string;
  /** The explanation. */
  explanation: string;
  /** Its score (correlation of simulated and true activations on held-out records). */
  score: number;
}

/** Explanations by node id. */
export class ExplanationIndex {
  private readonly byId = new Map<string, StoredExplanation>();

  /** An index of `entries` (a later entry with the same id replaces an earlier one). */
  constructor(entries: Iterable<StoredExplanation> = []) {
    for (const e of entries) this.byId.set(e.id, e);
  }

  /** Number of explained nodes. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * The explanation of a node, by id; a table id with a position (`mlp.2.17@5`,
   * `attn.1.3@7:2`) is looked up without it.
   */
  get(id: string): StoredExplanation | undefined {
    const at = id.indexOf("@");
    return this.byId.get(at < 0 ? id : id.slice(0, at));
  }

  /** Every explanation. */
  entries(): StoredExplanation[] {
    return [...this.byId.values()];
  }
}

/** Names of the files {@link loadExplanations} reads (each optional, at least one present). */
export const EXPLANATION_FILES = Object.freeze(["mlp.json", "sae.json", "heads.json"] as const);

function parseFile(bytes: Uint8Array, where: string): StoredExplanation[] {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TdbError("E_BAD_INPUT", `${where} is not JSON: ${(e as Error).message}`, { value: where, allowed: "a JSON object { nodes: [{ id, explanation, score }] }" });
  }
  const nodes = (json as { nodes?: unknown })?.nodes;
  if (!Array.isArray(nodes)) throw new TdbError("E_BAD_INPUT", `${where} has no nodes array`, { value: typeof nodes, allowed: "{ nodes: [{ id, explanation, score }] }" });
  return nodes.map((n: unknown, i) => {
    const e = n as Partial<StoredExplanation>;
    if (typeof e?.id !== "string" || typeof e.explanation !== "string" || typeof e.score !== "number") {
      throw new TdbError("E_BAD_INPUT", `${where}: node ${i} needs a string id and explanation and a numeric score`, { value: n, allowed: "{ id, explanation, score }" });
    }
    return { id: e.id, explanation: e.explanation, score: e.score };
  });
}

/** Options of {@link loadExplanations}: where the files are, and how a hub id is fetched. */
export interface LoadExplanationsOptions extends DefaultFilesOptions {
  /** Folder holding the files. [default: "explanations"] */
  subfolder?: string;
}

/**
 * Reads the explanations stored with a model: `<source>/explanations/{mlp,sae,heads}.json`
 * (`source`: a packaged id such as `tdb:brown-small`, a directory, a hub id, or `ModelFiles`).
 * None of the files present is `E_MISSING_FILE`; a malformed one `E_BAD_INPUT`.
 *
 * @example
 * ```ts
 * const explanations = await loadExplanations("tdb:brown-small");
 * explanations.get("mlp.2.440")?.explanation;
 * const table = await model.attribute(prompt, { target, distractor, explanations });
 * ```
 */
export async function loadExplanations(source: string | ModelFiles, options: LoadExplanationsOptions = {}): Promise<ExplanationIndex> {
  const files = typeof source === "string" ? await defaultFiles(source, options) : source;
  const folder = (options.subfolder ?? "explanations").replace(/\/+$/, "");
  const entries: StoredExplanation[] = [];
  let found = 0;
  for (const name of EXPLANATION_FILES) {
    const path = folder === "" ? name : `${folder}/${name}`;
    const bytes = await files.read(path);
    if (bytes === null) continue;
    found++;
    entries.push(...parseFile(bytes, `${files.origin}/${path}`));
  }
  if (found === 0) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has no stored explanations (${EXPLANATION_FILES.map((n) => `${folder}/${n}`).join(", ")})`, {
      value: `${files.origin}/${folder}`,
      allowed: EXPLANATION_FILES.map((n) => `${folder}/${n}`),
    });
  }
  return new ExplanationIndex(entries);
}
