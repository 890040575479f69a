/**
 * tdb-js's own byte-level BPE tokenizer for Hugging Face `tokenizer.json` files of the GPT-2
 * family, built without importing transformers.js (whose import alone costs about a second).
 *
 * It implements exactly what transformers.js (`@huggingface/tokenizers`) does for the files it
 * accepts, and nothing else: {@link byteLevelBpeUnsupported} names the first setting it does not
 * implement, and `loadTokenizer` then builds transformers.js's tokenizer as before, so a file is
 * never tokenized differently from transformers.js.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";

/** GPT-2's pre-tokenization pattern (contractions, letters, digits, other, whitespace runs; global, unicode). */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's reversible byte-to-character map: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100 onwards in byte order.
 */
function byteToCharTable(): string[] {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

/** GPT-2's byte-to-character map: `BYTE_TO_CHAR[b]` is how byte `b` appears in byte-level BPE tokens. */
export const BYTE_TO_CHAR: readonly string[] = byteToCharTable();
const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** The subset of the Hugging Face `tokenizer.json` layout this module reads. */
interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** Parsed settings of a file the fast tokenizer accepts. */
interface Accepted {
  vocab: Record<string, unknown>;
  merges: [string, string][];
  unkToken: string | null;
  ignoreMerges: boolean;
  addPrefixSpace: boolean;
  useRegex: boolean;
  added: AddedTokenJson[];
  extraSpecial: string[];
  cleanUp: boolean;
  bosToken: string | null;
  addBosToken: boolean | undefined;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const absentOrNull = (o: Record<string, unknown>, key: string): boolean => o[key] === undefined || o[key] === null;
const absentOrFalse = (o: Record<string, unknown>, key: string): boolean => o[key] === undefined || o[key] === null || o[key] === false;

/** A special-token entry of tokenizer_config.json as transformers.js reads it (string or AddedToken object). */
function configToken(config: Record<string, unknown>, key: string): { ok: true; value: string | null } | { ok: false } {
  if (!Object.hasOwn(config, key)) return { ok: true, value: null };
  const item = config[key];
  if (!item) return { ok: true, value: null };
  if (typeof item === "string") return { ok: true, value: item };
  if (isRecord(item) && item.__type === "AddedToken" && typeof item.content === "string") return { ok: true, value: item.content };
  return { ok: false };
}

/**
 * transformers.js tokenizer classes (`tokenizer_class` without `Fast`) that add nothing to
 * `PreTrainedTokenizer` (empty subclasses in transformers.js 4), so tokenize as it does.
 */
const PLAIN_CLASSES = new Set([
  "PreTrainedTokenizer",
  "GPT2Tokenizer",
  "GPTNeoXTokenizer",
  "CodeGenTokenizer",
  "BloomTokenizer",
  "FalconTokenizer",
  "Qwen2Tokenizer",
  "BartTokenizer",
  "RobertaTokenizer",
]);

/** Checks a file pair; the parsed settings, or why the fast tokenizer does not take it. */
function accept(json: Record<string, unknown>, config: Record<string, unknown>): Accepted | string {
  const cls = typeof config.tokenizer_class === "string" ? config.tokenizer_class.replace(/Fast$/, "") : "PreTrainedTokenizer";
  if (!PLAIN_CLASSES.has(cls)) return `tokenizer_class ${cls} is not a plain transformers.js tokenizer`;
  for (const key of ["model", "decoder", "post_processor", "pre_tokenizer", "normalizer"]) {
    if (!(key in json)) return `tokenizer.json has no "${key}"`;
  }
  if (json.normalizer !== null) return "a normalizer is set";
  const model = json.model;
  if (!isRecord(model) || model.type !== "BPE") return "model.type is not BPE";
  if (!isRecord(model.vocab)) return "model.vocab is not an object";
  if (!Array.isArray(model.merges)) return "model.merges is not an array";
  if (!absentOrFalse(model, "byte_fallback")) return "model.byte_fallback is set";
  if (!absentOrNull(model, "dropout")) return "model.dropout is set";
  if (!absentOrFalse(model, "fuse_unk")) return "model.fuse_unk is set";
  for (const key of ["continuing_subword_prefix", "continuing_subword_suffix", "end_of_word_suffix"]) {
    if (!(model[key] === undefined || model[key] === null || model[key] === "")) return `model.${key} is set`;
  }
  if (!(model.unk_token === undefined || model.unk_token === null || typeof model.unk_token === "string")) return "model.unk_token is not a string";
  const ignoreMerges = model.ignore_merges === true;
  if (!absentOrFalse(model, "ignore_merges") && !ignoreMerges) return "model.ignore_merges is not a boolean";

  const merges: [string, string][] = [];
  for (const m of model.merges as unknown[]) {
    let pair: unknown[];
    if (typeof m === "string") pair = m.split(" ", 2);
    else if (Array.isArray(m)) pair = m;
    else return "a merge is neither a string nor a pair";
    const [a, b] = pair;
    if (pair.length !== 2 || typeof a !== "string" || typeof b !== "string") return "a merge is not a pair of strings";
    if (a.includes("\u0001") || b.includes("\u0001")) return "a merge contains U+0001";
    merges.push([a, b]);
  }
  // transformers.js tells string merges from pairs by the first entry only.
  const firstIsPair = Array.isArray((model.merges as unknown[])[0]);
  if ((model.merges as unknown[]).some((m) => Array.isArray(m) !== firstIsPair)) return "merges mix strings and pairs";

  const pre = json.pre_tokenizer;
  if (!isRecord(pre) || pre.type !== "ByteLevel") return "pre_tokenizer is not ByteLevel";
  if (!(pre.add_prefix_space === undefined || typeof pre.add_prefix_space === "boolean")) return "pre_tokenizer.add_prefix_space is not a boolean";
  if (!(pre.use_regex === undefined || typeof pre.use_regex === "boolean")) return "pre_tokenizer.use_regex is not a boolean";
  const decoder = json.decoder;
  if (!isRecord(decoder) || decoder.type !== "ByteLevel") return "decoder is not ByteLevel";
  const post = json.post_processor;
  if (!(post === null || (isRecord(post) && post.type === "ByteLevel"))) return "post_processor is neither null nor ByteLevel";

  if (!Array.isArray(json.added_tokens)) return "added_tokens is not an array";
  const added: AddedTokenJson[] = [];
  for (const t of json.added_tokens as unknown[]) {
    if (!isRecord(t) || typeof t.content !== "string" || !Number.isInteger(t.id)) return "an added token has no content or id";
    if (t.content === "") return "an added token is empty";
    if (t.single_word === true) return "an added token sets single_word";
    const special = t.special === true;
    // transformers.js normalizes `normalized` tokens only through a normalizer, and there is none here.
    added.push({ id: t.id as number, content: t.content, special, lstrip: t.lstrip === true, rstrip: t.rstrip === true });
  }

  for (const key of ["remove_space", "do_lowercase_and_remove_accent"]) {
    if (!absentOrFalse(config, key)) return `tokenizer_config.json sets ${key}`;
  }
  const extra = config.additional_special_tokens;
  if (!(extra === undefined || extra === null || Array.isArray(extra))) return "additional_special_tokens is not an array";
  const extraSpecial = ((extra ?? []) as unknown[]).filter((x): x is string => typeof x === "string");
  const cu = config.clean_up_tokenization_spaces;
  if (!(cu === undefined || cu === null || typeof cu === "boolean")) return "clean_up_tokenization_spaces is not a boolean";
  for (const key of ["mask_token", "pad_token", "eos_token", "sep_token", "unk_token"]) {
    if (!configToken(config, key).ok) return `tokenizer_config.json ${key} is an object transformers.js does not read`;
  }
  const bos = configToken(config, "bos_token");
  if (!bos.ok) return "tokenizer_config.json bos_token is an object transformers.js does not read";
  const ab = config.add_bos_token;

  return {
    vocab: model.vocab,
    merges,
    unkToken: typeof model.unk_token === "string" ? model.unk_token : null,
    ignoreMerges,
    addPrefixSpace: pre.add_prefix_space === true,
    useRegex: pre.use_regex !== false,
    added,
    extraSpecial,
    cleanUp: typeof cu === "boolean" ? cu : true,
    bosToken: bos.value,
    addBosToken: typeof ab === "boolean" ? ab : undefined,
  };
}

/**
 * Why tdb-js's own tokenizer does not take this `tokenizer.json` / `tokenizer_config.json`
 * pair (the first unsupported setting), or null when it does: a byte-level BPE model (GPT-2
 * family) with no normalizer, a ByteLevel pre-tokenizer, decoder and (optional) post-processor,
 * no byte fallback, dropout or sub-word affixes, and added tokens without `single_word`.
 */
export function byteLevelBpeUnsupported(json: unknown, config: unknown): string | null {
  if (!isRecord(json) || !isRecord(config)) return "tokenizer.json or tokenizer_config.json is not an object";
  const r = accept(json, config);
  return typeof r === "string" ? r : null;
}

const pairKey = (a: string, b: string): string => `${a}\u0001${b}`;

/** Greedy longest-match splitting on added tokens, as Hugging Face tokenizers split them out. */
class AddedSplitter {
  private readonly byFirst = new Map<string, string[]>();

  constructor(contents: readonly string[]) {
    for (const c of contents) {
      const list = this.byFirst.get(c[0]!) ?? [];
      if (!list.includes(c)) list.push(c);
      this.byFirst.set(c[0]!, list);
    }
    for (const list of this.byFirst.values()) list.sort((x, y) => y.length - x.length);
  }

  /** `text` cut into plain pieces and added-token contents, in order (no empty piece). */
  split(text: string): string[] {
    if (this.byFirst.size === 0) return text.length === 0 ? [] : [text];
    const out: string[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const candidates = this.byFirst.get(text[i]!);
      const match = candidates?.find((c) => text.startsWith(c, i));
      if (match === undefined) {
        i++;
        continue;
      }
      if (i > start) out.push(text.slice(start, i));
      out.push(match);
      i += match.length;
      start = i;
    }
    if (start < text.length) out.push(text.slice(start));
    return out;
  }
}

/**
 * A byte-level BPE tokenizer (GPT-2 family) built from a Hugging Face `tokenizer.json` and
 * `tokenizer_config.json`, tokenizing and decoding as transformers.js does. Build it with
 * {@link ByteLevelBpeTokenizer.build}, which returns null for files it does not implement.
 */
export class ByteLevelBpeTokenizer {
  /** The BOS token's id (`bos_token` of tokenizer_config.json), undefined without one. */
  readonly bos_token_id: number | undefined;
  /** `add_bos_token` of tokenizer_config.json (informational: encode does not add it, as in transformers.js). */
  readonly add_bos_token: boolean | undefined;
  /** Ids of the special added tokens. */
  readonly all_special_ids: readonly number[];

  private readonly ids = new Map<string, number>();
  private readonly tokens: (string | undefined)[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly addedIds = new Map<string, number>();
  private readonly addedFlags = new Map<string, { lstrip: boolean; rstrip: boolean }>();
  private readonly addedContents = new Set<string>();
  private readonly special = new Set<string>();
  private readonly splitter: AddedSplitter;
  private readonly unkToken: string | null;
  private readonly unkId: number | undefined;
  private readonly ignoreMerges: boolean;
  private readonly addPrefixSpace: boolean;
  private readonly useRegex: boolean;
  private readonly cleanUp: boolean;
  private readonly cache = new Map<string, string[]>();
  private readonly utf8 = new TextEncoder();
  private readonly utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  private constructor(a: Accepted) {
    for (const [token, id] of Object.entries(a.vocab)) {
      this.ids.set(token, id as number);
      this.tokens[id as number] = token;
    }
    this.unkToken = a.unkToken;
    this.unkId = a.unkToken === null ? undefined : this.ids.get(a.unkToken);
    a.merges.forEach(([x, y], i) => this.ranks.set(pairKey(x, y), i));
    const ids: number[] = [];
    for (const t of a.added) {
      this.ids.set(t.content, t.id);
      this.tokens[t.id] = t.content;
      this.addedIds.set(t.content, t.id);
      this.addedFlags.set(t.content, { lstrip: t.lstrip, rstrip: t.rstrip });
      this.addedContents.add(t.content);
      if (t.special) {
        this.special.add(t.content);
        ids.push(t.id);
      }
    }
    for (const s of a.extraSpecial) this.special.add(s);
    this.all_special_ids = ids;
    this.splitter = new AddedSplitter(a.added.map((t) => t.content));
    this.ignoreMerges = a.ignoreMerges;
    this.addPrefixSpace = a.addPrefixSpace;
    this.useRegex = a.useRegex;
    this.cleanUp = a.cleanUp;
    this.add_bos_token = a.addBosToken;
    this.bos_token_id = a.bosToken === null ? undefined : this.ids.get(a.bosToken);
  }

  /**
   * The tokenizer for a parsed `tokenizer.json` and `tokenizer_config.json`, or null when
   * {@link byteLevelBpeUnsupported} names a setting it does not implement.
   */
  static build(json: unknown, config: unknown): ByteLevelBpeTokenizer | null {
    if (!isRecord(json) || !isRecord(config)) return null;
    const a = accept(json, config);
    if (typeof a === "string") return null;
    for (const id of Object.values(a.vocab)) if (!Number.isInteger(id) || (id as number) < 0) return null;
    for (const t of a.added) if (t.id < 0) return null;
    const tok = new ByteLevelBpeTokenizer(a);
    // An unknown piece maps to the unk token; one without an id would give an undefined id.
    if (tok.unkToken !== null && !tok.ids.has(tok.unkToken)) return null;
    return tok;
  }

  /** Token ids of `text`; `add_special_tokens` adds nothing (ByteLevel post-processing, as in transformers.js). */
  encode(text: string, _options?: { add_special_tokens?: boolean }): number[] {
    if (typeof text !== "string") {
      throw new TdbError("E_BAD_INPUT", `encode expects a string, got ${typeof text}`, { value: text, allowed: "a string" });
    }
    const out: number[] = [];
    for (const piece of this.tokenize(text)) {
      const id = this.addedIds.get(piece) ?? this.ids.get(piece) ?? this.unkId;
      out.push(id as number);
    }
    return out;
  }

  /** Token strings of `text`. */
  private tokenize(text: string): string[] {
    const sections = this.splitter.split(text);
    for (let i = 0; i < sections.length; i++) {
      const flags = this.addedFlags.get(sections[i]!);
      if (flags === undefined) continue;
      if (flags.lstrip && i > 0) sections[i - 1] = sections[i - 1]!.trimEnd();
      if (flags.rstrip && i < sections.length - 1) sections[i + 1] = sections[i + 1]!.trimStart();
    }
    const out: string[] = [];
    for (const section of sections) {
      if (section.length === 0) continue;
      if (this.addedContents.has(section)) {
        out.push(section);
        continue;
      }
      for (const word of this.preTokenize(section)) this.model(word, out);
    }
    return out;
  }

  /** ByteLevel pre-tokenization: GPT-2 split, then each byte as its printable character. */
  private preTokenize(text: string): string[] {
    if (this.addPrefixSpace && !text.startsWith(" ")) text = " " + text;
    const words = this.useRegex ? (text.match(GPT2_SPLIT) ?? []) : [text];
    return words.map((w) => {
      let s = "";
      for (const b of this.utf8.encode(w)) s += BYTE_TO_CHAR[b]!;
      return s;
    });
  }

  /** BPE of one pre-token, appending vocabulary pieces (or the unk token) to `out`. */
  private model(word: string, out: string[]): void {
    if (this.ignoreMerges && this.ids.has(word)) {
      out.push(word);
      return;
    }
    for (const piece of this.bpe(word)) {
      if (this.ids.has(piece)) out.push(piece);
      else if (this.unkToken !== null) out.push(this.unkToken);
    }
  }

  /** Merges of `word`: the lowest-ranked adjacent pair first, leftmost among equal pairs. */
  private bpe(word: string): string[] {
    if (word.length === 0) return [];
    const hit = this.cache.get(word);
    if (hit !== undefined) return hit;
    let symbols = Array.from(word);
    while (symbols.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.ranks.get(pairKey(symbols[i]!, symbols[i + 1]!));
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const next: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && this.ranks.get(pairKey(symbols[i]!, symbols[i + 1]!)) === best) {
          next.push(symbols[i]! + symbols[i + 1]!);
          i++;
        } else next.push(symbols[i]!);
      }
      symbols = next;
    }
    if (word.length < 256) {
      if (this.cache.size >= 10000) this.cache.clear();
      this.cache.set(word, symbols);
    }
    return symbols;
  }

  /**
   * Text of token ids. Added tokens are written as they are (or left out with
   * `skip_special_tokens` when special); `clean_up_tokenization_spaces` defaults to
   * tokenizer_config.json's value (true when absent), as in transformers.js.
   */
  decode(ids: number[], options: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean } = {}): string {
    if (!Array.isArray(ids) || ids.length === 0 || !(Number.isInteger(ids[0]) || typeof ids[0] === "bigint")) {
      throw new TdbError("E_BAD_INPUT", "token_ids must be a non-empty array of integers.", { value: ids, allowed: "a non-empty array of integer token ids" });
    }
    let pieces = ids.map((i) => this.tokens[Number(i)] ?? this.unkToken);
    if (options.skip_special_tokens === true) pieces = pieces.filter((p) => p === null || !this.special.has(p));
    let text = "";
    let run: (string | null)[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const bytes: number[] = [];
      for (const c of run.join("")) bytes.push(CHAR_TO_BYTE.get(c) ?? 0);
      text += this.utf8Decoder.decode(new Uint8Array(bytes));
      run = [];
    };
    for (const p of pieces) {
      if (p !== null && this.addedContents.has(p)) {
        flush();
        text += p;
      } else run.push(p);
    }
    flush();
    if (options.clean_up_tokenization_spaces ?? this.cleanUp) text = cleanUpSpaces(text);
    return text;
  }
}

/** The clean-up of Hugging Face decoders: no space before . ? ! , and English contractions. */
function cleanUpSpaces(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
