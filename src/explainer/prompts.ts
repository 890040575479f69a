/**
 * Prompts and reply parsers of the LLM explainer, after neuron-explainer's method (activations
 * shown as integers 0..10 in `token<TAB>activation` lines between `<start>` and `<end>`, an
 * explanation that completes "this neuron activates for", a simulator that predicts 0..10 per
 * token) and delphi's cheap scorers (detection, fuzzing). The worked examples are this project's
 * own. Every parser returns a failure instead of guessing: a malformed reply is never read as
 * zeros.
 *
 * Bump {@link PROMPT_VERSION} whenever a prompt or parser changes what an LLM would answer.
 *
 * @module
 */
import type { ChatMessage, TokenLogprob } from "./llm.js";
import type { ActivationRecord, ExplainableNode } from "./types.js";

/** Version of the prompts and parsers; part of every cache key. */
export const PROMPT_VERSION = "tdb-llm-1";

/** The top of the simulator's scale. */
export const SCALE_MAX = 10;

/**
 * Activations as the explainer sees them: `min(10, floor(10 * relu(a) / max))`. A non-positive
 * or non-finite `max` gives all zeros.
 */
export function normalizeActivations(activations: readonly number[], max: number): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return activations.map(() => 0);
  return activations.map((a) => (Number.isFinite(a) && a > 0 ? Math.min(SCALE_MAX, Math.floor((SCALE_MAX * a) / max)) : 0));
}

/** The largest activation over records (0 when there is none or all are negative). */
export function maxActivationOf(records: readonly ActivationRecord[]): number {
  let m = 0;
  for (const r of records) for (const a of r.activations) if (Number.isFinite(a) && a > m) m = a;
  return m;
}

/** A token as shown in a prompt line: tabs, newlines and carriage returns made visible. */
export function showToken(token: string): string {
  return token.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\r/g, "\\r").replace(/\n/g, "\\n");
}

/** One excerpt as `<start>`, `token<TAB>activation` lines (activations normalised by `max`), `<end>`. */
export function formatRecord(record: ActivationRecord, max: number): string {
  const levels = normalizeActivations(record.activations, max);
  return ["<start>", ...record.tokens.map((t, i) => `${showToken(t)}\t${levels[i]}`), "<end>"].join("\n");
}

/**
 * An attention-head excerpt: the text, then one `query<TAB>key<TAB>strength` line per query token
 * whose normalised strength is at least 1 (strongest first), between `<start>` and `<end>`.
 */
export function formatHeadRecord(record: ActivationRecord, max: number): string {
  const levels = normalizeActivations(record.activations, max);
  const keys = record.keys ?? [];
  const pairs = record.tokens
    .map((t, q) => ({ q, level: levels[q]!, key: keys[q] ?? -1, t }))
    .filter((p) => p.level >= 1 && p.key >= 0 && p.key < record.tokens.length)
    .sort((a, b) => b.level - a.level || a.q - b.q)
    .map((p) => `${showToken(p.t)}\t${showToken(record.tokens[p.key]!)}\t${p.level}`);
  return ["<start>", `text: ${JSON.stringify(record.tokens.join(""))}`, ...pairs, "<end>"].join("\n");
}

/** How a node is named in prompts: "neuron 17 of the layer-2 MLP", "latent 5 of the SAE at ...", "attention head 2.3". */
export function nodeLabel(node: ExplainableNode): string {
  switch (node.kind) {
    case "mlp_neuron":
      return `neuron ${node.index} of the layer-${node.layer} MLP`;
    case "sae_latent":
      return `latent ${node.index} of the sparse autoencoder at ${node.hook}`;
    case "attention_head":
      return `attention head ${node.layer}.${node.head}`;
  }
}

/** The words that start every explanation of this kind of node (the prompt ends with them). */
export function explanationLead(node: ExplainableNode): string {
  switch (node.kind) {
    case "mlp_neuron":
      return "this neuron activates for";
    case "sae_latent":
      return "this latent activates for";
    case "attention_head":
      return "from each token, this head attends to";
  }
}

/** The lead words used when no node is given (the neuron's). */
const DEFAULT_LEAD = "this neuron activates for";

// ---------------------------------------------------------------------------------------------
// Worked examples (written for this project; the activations are on the 0..10 scale already).

type Example = { label: string; excerpts: [string, number][][]; explanation: string };

const NEURON_EXAMPLES: readonly Example[] = [
  {
    label: "A",
    excerpts: [
      [[" The", 0], [" committee", 0], [" will", 0], [" meet", 0], [" again", 0], [" on", 1], [" Thursday", 10], [" morning", 2], [".", 0]],
      [[" Shops", 0], [" close", 0], [" early", 0], [" every", 0], [" Sunday", 8], [" and", 0], [" on", 0], [" Monday", 7], [" they", 0], [" open", 0], [" late", 0]],
      [[" By", 0], [" Friday", 9], [" the", 0], [" river", 0], [" had", 0], [" risen", 0], [" two", 0], [" feet", 0]],
    ],
    explanation: "names of days of the week, most strongly when a day is given as the time of an event",
  },
  {
    label: "B",
    excerpts: [
      [[" She", 0], [" poured", 0], [" a", 0], [" cup", 0], [" of", 0], [" tea", 9], [" and", 0], [" sat", 0], [" down", 0]],
      [[" He", 0], [" bought", 0], [" a", 0], [" pair", 0], [" of", 0], [" boots", 8], [" and", 0], [" a", 0], [" sack", 0], [" of", 0], [" flour", 10]],
      [[" The", 0], [" history", 0], [" of", 0], [" Rome", 1], [" is", 0], [" long", 0]],
    ],
    explanation: "the noun right after \"of\" in a quantity or container phrase (cup of tea, sack of flour), not after other uses of \"of\"",
  },
];

const HEAD_EXAMPLE: { label: string; excerpts: { text: string; pairs: [string, string, number][] }[]; explanation: string } = {
  label: "head X",
  excerpts: [
    {
      text: " When Anna met Tom at the station, Anna gave Tom the letter",
      pairs: [[" Anna", " Anna", 10], [" Tom", " Tom", 9]],
    },
    {
      text: " The red kite and the blue kite flew over the hill",
      pairs: [[" kite", " kite", 8]],
    },
  ],
  explanation: "an earlier occurrence of the same word (a repeated name or noun attends back to its first mention)",
};

function exampleNeuronBlock(e: Example): string {
  return e.excerpts.map((x) => ["<start>", ...x.map(([t, a]) => `${showToken(t)}\t${a}`), "<end>"].join("\n")).join("\n");
}

const EXPLAIN_SYSTEM =
  "You study the internals of a small language model. Each unit (a neuron or a sparse-autoencoder latent) responds to some " +
  "pattern in text. You are shown excerpts, one token per line as token<TAB>activation, between <start> and <end>. " +
  "Activations are integers from 0 (silent) to 10 (the strongest response seen for this unit). Tokens keep their leading " +
  "spaces; \\n stands for a newline. Say in one short phrase what the unit responds to: describe the pattern (the kind of " +
  "token and the context), do not just list the example words. Reply with the phrase only.";

const EXPLAIN_HEAD_SYSTEM =
  "You study the attention heads of a small language model. For each excerpt you see its text and, for the query tokens " +
  "where the head attends strongly, lines query<TAB>key<TAB>strength: the query token, the earlier token it attends to most, " +
  "and how strongly, from 1 to 10 (10 = the strongest seen for this head). Say in one short phrase which earlier token the " +
  "head attends to from each position (its relation to the query). Reply with the phrase only.";

/**
 * The explanation request: system instructions, the worked examples as earlier turns, then the
 * node's excerpts; the last user message ends with "... behavior: <lead>" ({@link explanationLead}).
 */
export function explanationMessages(node: ExplainableNode, records: readonly ActivationRecord[], max: number): ChatMessage[] {
  const lead = explanationLead(node);
  if (node.kind === "attention_head") {
    const ex = HEAD_EXAMPLE;
    const exBody = ex.excerpts
      .map((x) => ["<start>", `text: ${JSON.stringify(x.text)}`, ...x.pairs.map(([q, k, s]) => `${showToken(q)}\t${showToken(k)}\t${s}`), "<end>"].join("\n"))
      .join("\n");
    return [
      { role: "system", content: EXPLAIN_HEAD_SYSTEM },
      { role: "user", content: `Attention pairs of ${ex.label}:\n${exBody}\n\nExplanation of ${ex.label} behavior: ${lead}` },
      { role: "assistant", content: ex.explanation },
      { role: "user", content: `Attention pairs of ${nodeLabel(node)}:\n${records.map((r) => formatHeadRecord(r, max)).join("\n")}\n\nExplanation of ${nodeLabel(node)} behavior: ${lead}` },
    ];
  }
  const word = node.kind === "sae_latent" ? "latent" : "neuron";
  const turns: ChatMessage[] = [{ role: "system", content: EXPLAIN_SYSTEM }];
  for (const ex of NEURON_EXAMPLES) {
    const label = `${word} ${ex.label}`;
    turns.push({ role: "user", content: `Activations of ${label}:\n${exampleNeuronBlock(ex)}\n\nExplanation of ${label} behavior: ${lead}` });
    turns.push({ role: "assistant", content: ex.explanation });
  }
  turns.push({ role: "user", content: `Activations of ${nodeLabel(node)}:\n${records.map((r) => formatRecord(r, max)).join("\n")}\n\nExplanation of ${nodeLabel(node)} behavior: ${lead}` });
  return turns;
}

/**
 * The explanation in a reply: its first non-empty line, with the lead words removed if the model
 * repeated them, surrounding quotes and a final period dropped; `undefined` when nothing is left.
 */
export function parseExplanation(reply: string, node?: ExplainableNode): string | undefined {
  const line = reply
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== "" && !/^```/.test(l));
  if (line === undefined) return undefined;
  let s = line.replace(/^(explanation[^:]*:\s*)/i, "");
  const leads = [node ? explanationLead(node) : "", "this neuron activates for", "this latent activates for", "from each token, this head attends to", "this head attends to"];
  for (const l of leads) if (l && s.toLowerCase().startsWith(l.toLowerCase())) s = s.slice(l.length).trim();
  // Trailing periods, and quotes that wrap the whole explanation (not a quoted token at its end).
  for (let i = 0; i < 2; i++) {
    s = s.replace(/\.+$/, "").trim();
    const m = /^(["'“`])([\s\S]*)(["'”`])$/.exec(s);
    if (m && !/["”]/.test(m[2]!)) s = m[2]!.trim();
  }
  return s === "" ? undefined : s.slice(0, 500);
}

// ---------------------------------------------------------------------------------------------
// Simulation

const SIMULATE_SYSTEM =
  "You predict how a unit of a language model responds to each token of a text, from an explanation of what the unit " +
  "responds to. For every token, in order, give an integer from 0 (no response) to 10 (the strongest response). Most tokens " +
  "of most texts are 0. Reply with JSON only, in the form {\"activations\": [n1, n2, ...]}, with exactly one integer per token.";

const SIM_EXAMPLE = {
  explanation: "names of days of the week, most strongly when a day is given as the time of an event",
  tokens: [" We", " left", " on", " Tuesday", " and", " came", " back", " Saturday", "."],
  activations: [0, 0, 1, 10, 0, 0, 0, 9, 0],
};

function simulationUser(explanation: string, lead: string, tokens: readonly string[]): string {
  return (
    `Explanation: ${lead} ${explanation}\n` +
    `Tokens (${tokens.length}), as a JSON array: ${JSON.stringify(tokens)}\n` +
    `Reply with {"activations": [...]} holding exactly ${tokens.length} integers from 0 to 10.`
  );
}

/** The simulation request for one excerpt: instructions, one worked example, then the excerpt's tokens. */
export function simulationMessages(explanation: string, tokens: readonly string[], node?: ExplainableNode): ChatMessage[] {
  const lead = node ? explanationLead(node) : DEFAULT_LEAD;
  return [
    { role: "system", content: SIMULATE_SYSTEM },
    { role: "user", content: simulationUser(SIM_EXAMPLE.explanation, DEFAULT_LEAD, SIM_EXAMPLE.tokens) },
    { role: "assistant", content: JSON.stringify({ activations: SIM_EXAMPLE.activations }) },
    { role: "user", content: simulationUser(explanation, lead, tokens) },
  ];
}

/** A parse that worked, or why it did not. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The JSON value in a reply: the whole reply, else inside a code fence, else the outermost {...} or [...] span. */
export function extractJson(reply: string): Parsed<unknown> {
  const candidates: string[] = [reply.trim()];
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(reply);
  if (fence) candidates.push(fence[1]!.trim());
  for (const [open, close] of [
    ["{", "}"],
    ["[", "]"],
  ] as const) {
    const a = reply.indexOf(open);
    const b = reply.lastIndexOf(close);
    if (a >= 0 && b > a) candidates.push(reply.slice(a, b + 1));
  }
  for (const c of candidates) {
    try {
      return { ok: true, value: JSON.parse(c) };
    } catch {
      // next candidate
    }
  }
  return { ok: false, reason: "reply holds no JSON value" };
}

/**
 * The simulated activations in a reply: `{"activations": [...]}` or a bare array, exactly `n`
 * finite numbers (numeric strings accepted); values are clamped to 0..10. Anything else (no
 * JSON, wrong length, a non-number) is a failure, never zeros.
 */
export function parseSimulation(reply: string, n: number): Parsed<number[]> {
  const json = extractJson(reply);
  if (!json.ok) return json;
  const v = json.value;
  const arr = Array.isArray(v) ? v : typeof v === "object" && v !== null && Array.isArray((v as { activations?: unknown }).activations) ? (v as { activations: unknown[] }).activations : undefined;
  if (!arr) return { ok: false, reason: "JSON has no activations array" };
  if (arr.length !== n) return { ok: false, reason: `expected ${n} activations, got ${arr.length}` };
  const out: number[] = [];
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i];
    const num = typeof x === "number" ? x : typeof x === "string" && x.trim() !== "" ? Number(x) : NaN;
    if (!Number.isFinite(num)) return { ok: false, reason: `activation ${i} is not a number: ${JSON.stringify(x)}` };
    out.push(Math.min(SCALE_MAX, Math.max(0, num)));
  }
  return { ok: true, value: out };
}

/** Expected-value simulation details: the values, and how many came from probabilities vs the sampled digits. */
export interface ExpectedValues {
  /** One value per token, 0..10. */
  values: number[];
  /** Values computed as an expected value over the "0".."10" alternatives. */
  fromProbabilities: number;
  /** Values taken from the sampled number (its token had no usable alternatives, or the number spanned several tokens). */
  fromSamples: number;
}

/**
 * The expected-value simulator's reading of a reply with logprobs: the reply must parse as
 * {@link parseSimulation} does; then, for each number of the activations array, the generated
 * token that holds it is found, and its top alternatives that read as the same token with another
 * integer 0..10 in place of the number give the expected value `sum p_v v / sum p_v`. A number
 * split over several tokens, or a token without such alternatives, keeps its sampled value.
 */
export function expectedValuesFromLogprobs(reply: string, logprobs: readonly TokenLogprob[], n: number): Parsed<ExpectedValues> {
  const parsed = parseSimulation(reply, n);
  if (!parsed.ok) return parsed;
  const text = logprobs.map((t) => t.token).join("");
  if (text !== reply) return { ok: false, reason: "logprob tokens do not spell the reply" };
  // Number literals of the activations array, with their character offsets.
  const key = text.indexOf('"activations"');
  const open = text.indexOf("[", key >= 0 ? key : 0);
  const close = open >= 0 ? text.indexOf("]", open) : -1;
  if (open < 0 || close < 0) return { ok: false, reason: "no activations array in the reply" };
  const literals = [...text.slice(open + 1, close).matchAll(/-?\d+(?:\.\d+)?/g)].map((m) => ({ start: open + 1 + m.index, end: open + 1 + m.index + m[0].length }));
  if (literals.length !== n) return { ok: false, reason: `expected ${n} numbers in the activations array, found ${literals.length}` };
  const starts: number[] = [];
  let pos = 0;
  for (const t of logprobs) {
    starts.push(pos);
    pos += t.token.length;
  }
  const values = parsed.value.slice();
  let fromProbabilities = 0;
  literals.forEach((lit, i) => {
    let k = 0;
    while (k + 1 < starts.length && starts[k + 1]! <= lit.start) k++;
    const tok = logprobs[k]!;
    const tokStart = starts[k]!;
    if (lit.end > tokStart + tok.token.length) return; // number split over tokens
    const prefix = tok.token.slice(0, lit.start - tokStart);
    const suffix = tok.token.slice(lit.end - tokStart);
    let mass = 0;
    let sum = 0;
    for (const alt of tok.top) {
      if (!alt.token.startsWith(prefix) || !alt.token.endsWith(suffix) || alt.token.length < prefix.length + suffix.length) continue;
      const mid = alt.token.slice(prefix.length, alt.token.length - suffix.length);
      if (!/^\d{1,2}$/.test(mid)) continue;
      const v = Number(mid);
      if (v > SCALE_MAX) continue;
      const p = Math.exp(alt.logprob);
      mass += p;
      sum += p * v;
    }
    if (mass > 0) {
      values[i] = sum / mass;
      fromProbabilities++;
    }
  });
  return { ok: true, value: { values, fromProbabilities, fromSamples: n - fromProbabilities } };
}

// ---------------------------------------------------------------------------------------------
// delphi-style scorers: detection and fuzzing

/** Characters that mark highlighted tokens in fuzzing prompts. */
export const HIGHLIGHT: readonly [string, string] = ["[[", "]]"];

const DETECT_SYSTEM =
  "You check an explanation of a unit of a language model. You get the explanation and numbered text excerpts. For each " +
  "excerpt decide whether the unit would respond somewhere in it, given the explanation: 1 if it would, 0 if not. " +
  "Reply with JSON only: an array with one 0 or 1 per excerpt, in order.";

const FUZZ_SYSTEM =
  `You check an explanation of a unit of a language model. You get the explanation and numbered text excerpts in which some ` +
  `tokens are marked as ${HIGHLIGHT[0]}token${HIGHLIGHT[1]}. For each excerpt decide whether the marked tokens are the ones ` +
  `the explanation says the unit responds to: 1 if they are, 0 if they are not. Reply with JSON only: an array with one 0 or 1 ` +
  `per excerpt, in order.`;

function numbered(texts: readonly string[]): string {
  return texts.map((t, i) => `Excerpt ${i + 1}: ${JSON.stringify(t)}`).join("\n");
}

/** The detection request: does each excerpt (plain text) make the unit respond? */
export function detectionMessages(explanation: string, excerpts: readonly string[], node?: ExplainableNode): ChatMessage[] {
  const lead = node ? explanationLead(node) : DEFAULT_LEAD;
  return [
    { role: "system", content: DETECT_SYSTEM },
    {
      role: "user",
      content: `Explanation: ${DEFAULT_LEAD} names of days of the week\n${numbered([" The fair opens on Saturday.", " He paid the bill in cash.", " See you Monday!"])}\nReply with 3 values.`,
    },
    { role: "assistant", content: "[1, 0, 1]" },
    { role: "user", content: `Explanation: ${lead} ${explanation}\n${numbered(excerpts)}\nReply with ${excerpts.length} values.` },
  ];
}

/** Tokens joined into text, with the tokens at `marked` positions wrapped in {@link HIGHLIGHT}. */
export function highlight(tokens: readonly string[], marked: ReadonlySet<number>): string {
  return tokens
    .map((t, i) => {
      if (!marked.has(i)) return t;
      const lead = /^\s*/.exec(t)![0];
      return `${lead}${HIGHLIGHT[0]}${t.slice(lead.length)}${HIGHLIGHT[1]}`;
    })
    .join("");
}

/** The fuzzing request: are the marked tokens of each excerpt the ones the explanation describes? */
export function fuzzingMessages(explanation: string, excerpts: readonly string[], node?: ExplainableNode): ChatMessage[] {
  const lead = node ? explanationLead(node) : DEFAULT_LEAD;
  const [a, b] = HIGHLIGHT;
  return [
    { role: "system", content: FUZZ_SYSTEM },
    {
      role: "user",
      content: `Explanation: ${DEFAULT_LEAD} names of days of the week\n${numbered([` We met on ${a}Friday${b}.`, ` We ${a}met${b} on Friday.`])}\nReply with 2 values.`,
    },
    { role: "assistant", content: "[1, 0]" },
    { role: "user", content: `Explanation: ${lead} ${explanation}\n${numbered(excerpts)}\nReply with ${excerpts.length} values.` },
  ];
}

/** A reply of the detection or fuzzing scorer: a JSON array of exactly `n` values 0/1 (or true/false, "0"/"1"). */
export function parseBinaryList(reply: string, n: number): Parsed<boolean[]> {
  const json = extractJson(reply);
  if (!json.ok) return json;
  const v = json.value;
  const arr = Array.isArray(v) ? v : typeof v === "object" && v !== null ? Object.values(v as object).find(Array.isArray) : undefined;
  if (!Array.isArray(arr)) return { ok: false, reason: "reply holds no JSON array" };
  if (arr.length !== n) return { ok: false, reason: `expected ${n} answers, got ${arr.length}` };
  const out: boolean[] = [];
  for (let i = 0; i < arr.length; i++) {
    const x: unknown = arr[i];
    if (x === 1 || x === true || x === "1") out.push(true);
    else if (x === 0 || x === false || x === "0") out.push(false);
    else return { ok: false, reason: `answer ${i} is not 0 or 1: ${JSON.stringify(x)}` };
  }
  return { ok: true, value: out };
}
