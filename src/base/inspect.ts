/**
 * Short summaries of tdb-js's result objects for consoles and notebooks, instead of tens of
 * kilobytes of floats (or nothing): Node's `util.inspect` (the REPL, `console.log`, tslab),
 * Deno's `Deno.inspect` (its REPL and `console.log`), and the Deno Jupyter kernel's rich display
 * (`Symbol.for("Jupyter.display")`, plain text and HTML).
 *
 * Classes install them with {@link installDisplay}; plain objects (the node table) with
 * {@link withDisplay}. The summarizers only read public members, through the structural types
 * below, so this module imports none of the classes it describes.
 *
 * @module
 */

/** Node's `util.inspect.custom`. */
export const NODE_INSPECT: unique symbol = Symbol.for("nodejs.util.inspect.custom");
/** Deno's `Deno.customInspect`. */
export const DENO_INSPECT: unique symbol = Symbol.for("Deno.customInspect");
/** The Deno Jupyter kernel's rich-display hook: returns a MIME bundle. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display");

/** How an object shows itself: a few lines of text, and optionally HTML for notebooks. */
export interface Display<T> {
  /** Plain-text summary (a few lines). */
  text(self: T): string;
  /** HTML for notebook front ends; the text in a `<pre>` when absent. */
  html?(self: T): string;
}

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function define<T extends object>(target: T, display: Display<T>): void {
  const text = function (this: T): string {
    return display.text(this);
  };
  const props: PropertyDescriptorMap = {
    [NODE_INSPECT]: { value: text, configurable: true, writable: true },
    [DENO_INSPECT]: { value: text, configurable: true, writable: true },
    [JUPYTER_DISPLAY]: {
      value(this: T) {
        const plain = display.text(this);
        return { "text/plain": plain, "text/html": display.html ? display.html(this) : `<pre>${escapeHtml(plain)}</pre>` };
      },
      configurable: true,
      writable: true,
    },
  };
  Object.defineProperties(target, props);
}

/**
 * Gives every instance of a class the summary `display` (non-enumerable methods on the
 * prototype under {@link NODE_INSPECT}, {@link DENO_INSPECT} and {@link JUPYTER_DISPLAY}).
 *
 * @example
 * ```ts
 * class Pair { constructor(readonly a: number, readonly b: number) {} static { installDisplay(Pair.prototype, { text: (p) => `Pair(${p.a}, ${p.b})` }); } }
 * ```
 */
export function installDisplay<T extends object>(prototype: T, display: Display<T>): void {
  define(prototype, display);
}

/** Adds the summary `display` to one plain object (non-enumerable: JSON and equality ignore it) and returns it. */
export function withDisplay<T extends object>(obj: T, display: Display<T>): T {
  define(obj, display);
  return obj;
}

/** A number in a few significant digits. */
export function fmt(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(digits - 1);
  return String(Number(x.toPrecision(digits)));
}

function signed(x: number): string {
  return (x >= 0 ? "+" : "") + fmt(x);
}

/** A token string as JSON (quotes, escapes for spaces and newlines). */
function tok(s: string): string {
  return JSON.stringify(s);
}

/** What the summaries read of an `Activation`. */
export interface ActivationLike {
  readonly name: string;
  readonly data: Float32Array;
  readonly dims: readonly number[];
  readonly labels: readonly string[];
}

/** Min, max, mean and RMS of `data` (NaNs counted apart). */
export function stats(data: ArrayLike<number>): { min: number; max: number; mean: number; rms: number; nan: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sq = 0;
  let nan = 0;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (Number.isNaN(x)) {
      nan++;
      continue;
    }
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sq += x * x;
  }
  const n = data.length - nan;
  return { min, max, mean: n ? sum / n : NaN, rms: n ? Math.sqrt(sq / n) : NaN, nan };
}

/** `[batch=1, pos=6, d_model=64]` */
function shape(a: ActivationLike): string {
  return `[${a.dims.map((d, i) => `${a.labels[i] ?? "?"}=${d}`).join(", ")}]`;
}

/** One line: name, labelled dims, value statistics and the first values. */
export function summarizeActivation(a: ActivationLike): string {
  const s = stats(a.data);
  const head = Array.from(a.data.subarray(0, 4), (x) => fmt(x)).join(", ");
  const more = a.data.length > 4 ? `, … (${a.data.length} values)` : "";
  const nan = s.nan ? ` NaN=${s.nan}` : "";
  return `Activation ${a.name} ${shape(a)} min=${fmt(s.min)} max=${fmt(s.max)} mean=${fmt(s.mean)} rms=${fmt(s.rms)}${nan} [${head}${more}]`;
}

/** A next-token prediction, as `Trace.topK` returns it. */
interface TopTokenLike {
  readonly token: number;
  readonly str: string;
  readonly logit: number;
  readonly prob: number;
}

/** What the summaries read of a `Trace`. */
export interface TraceLike {
  readonly tokens: readonly (readonly number[])[];
  readonly strTokens: readonly (readonly string[])[];
  readonly logits: ActivationLike;
  readonly cache: { keys(): Iterable<string> };
  topK(k?: number, opts?: { batch?: number }): TopTokenLike[];
}

function promptLine(strTokens: readonly string[], max = 24): string {
  const shown = strTokens.slice(0, max).map(tok).join(" ");
  return strTokens.length > max ? `${shown} … (${strTokens.length} tokens)` : shown;
}

function topLine(top: readonly TopTokenLike[]): string {
  return top.map((t) => `${tok(t.str)} ${fmt(t.logit)} (p=${fmt(t.prob, 3)})`).join(", ");
}

/** A few lines: rows and tokens, the prompt, cached hooks, logits' shape and the top next tokens of row 0. */
export function summarizeTrace(t: TraceLike, k = 5): string {
  const rows = t.tokens.length;
  const names = [...t.cache.keys()];
  const lines = [
    `Trace: ${rows} row${rows === 1 ? "" : "s"} × ${Math.max(...t.tokens.map((r) => r.length))} tokens, ${names.length} cached hook${names.length === 1 ? "" : "s"}, logits ${shape(t.logits)}`,
    `  prompt: ${promptLine(t.strTokens[0] ?? [])}${rows > 1 ? ` (+${rows - 1} more rows)` : ""}`,
  ];
  if (names.length) lines.push(`  hooks: ${names.slice(0, 6).join(", ")}${names.length > 6 ? `, … (${names.length})` : ""}`);
  // A graph without a logits output (logits [batch, pos, 0]): no predictions to show.
  lines.push(t.logits.dims[2] === 0 ? "  no logits: the graph has no logits output" : `  top ${k} next tokens: ${topLine(t.topK(k))}`);
  return lines.join("\n");
}

/** HTML for a trace: the summary and a table of the top next tokens. */
export function traceHtml(t: TraceLike, k = 10): string {
  const rows = (t.logits.dims[2] === 0 ? [] : t.topK(k)).map((x) => `<tr><td><code>${escapeHtml(tok(x.str))}</code></td><td>${x.token}</td><td>${fmt(x.logit)}</td><td>${fmt(x.prob, 3)}</td></tr>`);
  const [first, ...rest] = summarizeTrace(t).split("\n");
  return `<div><b>${escapeHtml(first!)}</b><pre>${escapeHtml(rest.slice(0, -1).join("\n"))}</pre><table><tr><th>next token</th><th>id</th><th>logit</th><th>p</th></tr>${rows.join("")}</table></div>`;
}

/** What the summaries read of an `InterventionResult`. */
export interface InterventionResultLike {
  readonly edited: TraceLike;
  readonly clean: TraceLike;
  readonly variants: boolean;
  readonly rows: number;
  kl(): number[];
  topKChanges(k?: number): { before: TopTokenLike[]; after: TopTokenLike[] }[];
}

/** A few lines: rows, KL per row, and row 0's top next tokens before and after. */
export function summarizeIntervention(r: InterventionResultLike, k = 5): string {
  if (r.edited.logits.dims[2] === 0) {
    return `InterventionResult: ${r.rows} edited row${r.rows === 1 ? "" : "s"} vs clean, no logits (the graph has no logits output): compare the cached hooks`;
  }
  const kl = r.kl();
  const klShown = kl.slice(0, 8).map((x) => fmt(x, 3)).join(", ") + (kl.length > 8 ? `, … (${kl.length})` : "");
  const change = r.topKChanges(k)[0];
  const lines = [
    `InterventionResult: ${r.rows} edited row${r.rows === 1 ? "" : "s"}${r.variants ? " (variants of one prompt)" : ""} vs clean, ${r.edited.strTokens[0]?.length ?? 0} tokens`,
    `  KL(clean || edited) at the last position: ${klShown}`,
  ];
  if (change) {
    lines.push(`  clean  top ${k}: ${topLine(change.before)}`);
    lines.push(`  edited top ${k}: ${topLine(change.after)}`);
  }
  return lines.join("\n");
}

/** What the summaries read of a node table row. */
interface NodeLike {
  readonly id: string;
  readonly token: string;
  readonly activation: number;
  readonly directEffect: number;
  readonly totalEffect: number;
}

/** What the summaries read of a `NodeTable`. */
export interface NodeTableLike {
  readonly nodes: readonly NodeLike[];
  readonly loss: number;
  readonly tokens: readonly string[];
  readonly tokenEffects: readonly { position: number; token: string; totalEffect: number }[];
  readonly counts: Readonly<Record<string, number>>;
  readonly topLogits?: readonly TopTokenLike[];
}

/** A few lines: loss, counts, the nodes with the largest |total effect| and the tokens' effects. */
export function summarizeNodeTable(t: NodeTableLike, k = 8): string {
  const scored = Object.values(t.counts).reduce((a, b) => a + b, 0);
  const counts = Object.entries(t.counts).map(([kind, n]) => `${n} ${kind}`).join(", ");
  const lines = [
    `NodeTable: loss ${fmt(t.loss)}, ${t.nodes.length} nodes kept of ${scored} scored (${counts}), ${t.tokens.length} tokens`,
    `  top ${Math.min(k, t.nodes.length)} by |total effect|:`,
    ...t.nodes.slice(0, k).map((n) => `    ${n.id.padEnd(18)} ${tok(n.token).padEnd(12)} total ${signed(n.totalEffect).padStart(10)}  direct ${signed(n.directEffect).padStart(10)}  act ${fmt(n.activation)}`),
  ];
  const te = [...t.tokenEffects].sort((a, b) => Math.abs(b.totalEffect) - Math.abs(a.totalEffect)).slice(0, 5);
  if (te.length) lines.push(`  tokens by |effect|: ${te.map((e) => `${tok(e.token)}@${e.position} ${signed(e.totalEffect)}`).join(", ")}`);
  if (t.topLogits?.length) lines.push(`  top next tokens: ${topLine(t.topLogits.slice(0, 5))}`);
  return lines.join("\n");
}

/** HTML for a node table: the summary line and a table of the top nodes. */
export function nodeTableHtml(t: NodeTableLike, k = 20): string {
  const rows = t.nodes
    .slice(0, k)
    .map((n) => `<tr><td><code>${escapeHtml(n.id)}</code></td><td><code>${escapeHtml(tok(n.token))}</code></td><td>${signed(n.totalEffect)}</td><td>${signed(n.directEffect)}</td><td>${fmt(n.activation)}</td></tr>`);
  const first = summarizeNodeTable(t).split("\n")[0]!;
  return `<div><b>${escapeHtml(first)}</b><table><tr><th>node</th><th>token</th><th>total effect</th><th>direct effect</th><th>activation</th></tr>${rows.join("")}</table></div>`;
}

/** What the summaries read of a `Model`. */
export interface ModelLike {
  readonly config: {
    readonly modelType: string;
    readonly nLayers: number;
    readonly nHeads: number;
    readonly dModel: number;
    readonly dMlp: number;
    readonly dVocab: number;
    readonly nCtx: number;
  };
  readonly hookNames: readonly string[];
  readonly unavailableHooks: ReadonlyMap<string, string>;
}

/**
 * One or two lines: architecture, sizes and hooks, e.g. `Model gpt2: 12 layers × 12 heads,
 * d_model 768, d_mlp 3072, vocab 50257, context 1024; 209 hooks`. `where` (an origin or a
 * device) is appended when given.
 */
export function summarizeModel(m: ModelLike, where?: string): string {
  const c = m.config;
  const missing = m.unavailableHooks.size ? `\n  unavailable hooks: ${[...m.unavailableHooks.keys()].slice(0, 4).join(", ")}${m.unavailableHooks.size > 4 ? `, … (${m.unavailableHooks.size})` : ""}` : "";
  return (
    `Model ${c.modelType}: ${c.nLayers} layers × ${c.nHeads} heads, d_model ${c.dModel}, d_mlp ${c.dMlp}, vocab ${c.dVocab}, context ${c.nCtx}; ` +
    `${m.hookNames.length} hooks${where ? ` (${where})` : ""}${missing}`
  );
}
