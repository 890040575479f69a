/**
 * Runs a `tdb check` spec: loads the model once, evaluates every assertion (a failing or erroring
 * assertion never stops the others) and returns a `tdb.check/1` report.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import type { AttributionNode } from "../attribution/node-table.js";
import { TdbError } from "../base/errors.js";
import { copyingAccuracy } from "../circuits/copying.js";
import { repeatedRandomTokens, type HeadScores, type HeadScoresOptions } from "../circuits/head-scores.js";
import { zeroHead, zeroNeuron, type Edit } from "../intervene/edits.js";
import type { AnyEdit } from "../model/sae-splice.js";
import { scaleLatent, setLatent, zeroLatent } from "../sae/latent-edits.js";
import type { Sae } from "../sae/sae.js";
import { loadSaeSource } from "../sae/sources.js";
import { fileSystemError } from "../io/node-files.js";
import { Model } from "../model/model.js";
import { DEFAULT_MODEL_ID, type LoadOptions, type ModelInput } from "../runtime/options.js";
import {
  parseLatentEdit,
  parseSpec,
  parseSpecText,
  SAE_NODE_RE,
  usesSaeLatents,
  type Aggregate,
  type AblationAssertion,
  type Assertion,
  type AssertionKind,
  type AttributionAssertion,
  type CheckSpec,
  type CopyingAssertion,
  type Comparison,
  type EditSpec,
  type HeadScoreAssertion,
  type LogitDiffAssertion,
  type PromptSpec,
  type TokenSpec,
  type TopTokenAssertion,
} from "./spec.js";

/** Schema name of {@link CheckReport}. */
export const CHECK_SCHEMA = "tdb.check/1";

/** Outcome of one assertion: it held, it did not, or it could not be evaluated (a typed error, or `E_INTERNAL` for a bug). */
export type AssertionStatus = "passed" | "failed" | "error";

/** One assertion's result in a {@link CheckReport}. */
export interface AssertionResult {
  id: string;
  kind: AssertionKind;
  description: string;
  status: AssertionStatus;
  /** `status === "passed"`. */
  passed: boolean;
  /** The value compared with the threshold (for rank assertions, the rank); null when there is none. */
  measured: number | null;
  /** `measured <comparison> threshold` is what must hold. */
  comparison: Comparison | null;
  threshold: number | null;
  /** How per-prompt values were combined, for assertions over prompts. */
  aggregate?: Aggregate;
  /** Per-prompt values (null where a rank was not found). */
  values?: (number | null)[];
  /** A sentence saying what was measured against what. */
  message: string;
  /** The error that kept the assertion from being evaluated. */
  error?: { code: string; message: string; value?: unknown; allowed?: unknown };
  durationMs: number;
}

/** The report of {@link runCheck}, schema `tdb.check/1` (fields are only ever added). */
export interface CheckReport {
  schema: typeof CHECK_SCHEMA;
  /** The spec's name (default: its file name, or "tdb check"). */
  name: string;
  /** The spec file, when one was read. */
  spec: string | null;
  /** The model source loaded. */
  model: string;
  /** Every assertion passed. */
  passed: boolean;
  counts: { total: number; passed: number; failed: number; errors: number };
  durationMs: number;
  assertions: AssertionResult[];
}

/** Options of {@link runCheck}. */
export interface CheckOptions {
  /** Model to load instead of the spec's (a directory, hub id or `tdb:<name>`). */
  model?: string;
  /** Options of `Model.load`. */
  load?: LoadOptions;
  /** Called after each assertion, in spec order (e.g. to print progress). */
  onResult?: (r: AssertionResult) => void;
  /** The file a spec object was read from (see {@link loadSpec}): it names the report and anchors relative model paths. */
  specPath?: string;
}

/**
 * Reads a spec file: `.json` as JSON, anything else as YAML. A missing or unreadable file is
 * `E_FILE_SYSTEM`; a malformed or invalid spec `E_BAD_SPEC`.
 */
export async function loadSpec(path: string): Promise<CheckSpec> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw fileSystemError(e, path, "read the spec file");
  }
  return parseSpecText(text, extname(path).toLowerCase() === ".json" ? "json" : "yaml", path);
}

/**
 * The model to load: `tdb:default` (or none) is the default model, `tdb:brown-small`; other `tdb:<name>` sources and hub ids
 * go to `Model.load` as they are; paths starting with `.` are relative to the spec's directory.
 */
async function resolveModel(source: string | undefined, specDir: string | undefined): Promise<string> {
  if (source === undefined || source === "tdb:default") return DEFAULT_MODEL_ID;
  if (source.startsWith(".") && specDir !== undefined && !isAbsolute(source)) return resolve(specDir, source);
  return source;
}

const fmt = (x: number | null): string => (x === null ? "none" : Number.isInteger(x) ? String(x) : Number(x.toPrecision(6)).toString());

function compare(x: number | null, c: Comparison, t: number): boolean {
  if (x === null || Number.isNaN(x)) return false;
  switch (c) {
    case ">":
      return x > t;
    case ">=":
      return x >= t;
    case "<":
      return x < t;
    case "<=":
      return x <= t;
  }
}

function aggregate(values: readonly number[], how: Aggregate, c: Comparison): number {
  if (how === "all") how = c === ">" || c === ">=" ? "min" : "max";
  if (how === "mean") return values.reduce((a, b) => a + b, 0) / values.length;
  return how === "min" ? Math.min(...values) : Math.max(...values);
}

/** The SAE sources of a spec, paths starting with `.` resolved against the spec's directory. */
function resolveSaeSources(sources: readonly string[] | undefined, specDir: string | undefined): string[] {
  return (sources ?? []).map((s) => (s.startsWith(".") && specDir !== undefined && !isAbsolute(s) ? resolve(specDir, s) : s));
}

/** Evaluates assertions on one loaded model; head scores are computed once per distinct set of options. */
class Evaluator {
  private readonly headScoreCache = new Map<string, Promise<HeadScores>>();
  private saesLoaded?: Promise<Sae[]>;

  constructor(
    readonly model: Model,
    readonly prependBos: boolean,
    readonly saeSources: readonly string[] = [],
  ) {}

  /**
   * The spec's SAEs, loaded on first use (once for every assertion): a load error is each
   * needing assertion's error. Two SAEs on one hook are `E_BAD_SPEC`.
   */
  saes(): Promise<Sae[]> {
    this.saesLoaded ??= (async () => {
      const out: Sae[] = [];
      for (const source of this.saeSources) out.push(await loadSaeSource(source));
      const hooks = out.map((s) => s.config.hookName);
      const dup = hooks.findIndex((h, i) => h !== undefined && hooks.indexOf(h) !== i);
      if (dup >= 0) throw new TdbError("E_BAD_SPEC", `spec.saes: ${this.saeSources[hooks.indexOf(hooks[dup])]} and ${this.saeSources[dup]} both read ${hooks[dup]}; give one SAE per hook`, { value: hooks[dup], allowed: "one SAE per hook" });
      return out;
    })();
    return this.saesLoaded;
  }

  /** The spec's SAE reading `hook`; `E_BAD_OPTION` naming the hooks that have one otherwise. */
  async saeAt(hook: string): Promise<Sae> {
    const saes = await this.saes();
    const s = saes.find((x) => x.config.hookName === hook);
    if (!s) {
      throw new TdbError("E_BAD_OPTION", `no SAE in the spec's saes reads ${hook}`, { value: hook, allowed: saes.flatMap((x) => (x.config.hookName === undefined ? [] : [x.config.hookName])) });
    }
    return s;
  }

  private input(p: PromptSpec): ModelInput {
    return p;
  }

  private tokenId(t: TokenSpec): number {
    if (typeof t === "string") return this.model.toSingleToken(t);
    const V = this.model.config.dVocab;
    if (t >= V) throw new TdbError("E_INDEX_RANGE", `token id ${t} out of range [0, ${V - 1}]`, { value: t, allowed: [0, V - 1] });
    return t;
  }

  private async trace(p: PromptSpec) {
    const t = await this.model.trace(this.input(p), { hooks: [], prependBos: this.prependBos });
    if (t.nonFinite) throw new TdbError("E_NON_FINITE", "the model produced NaN or infinite logits", { value: p, allowed: "finite logits" });
    return t;
  }

  async logitDiff(a: LogitDiffAssertion): Promise<Measured> {
    const [target, distractor] = [this.tokenId(a.target), this.tokenId(a.distractor)];
    const values: number[] = [];
    for (const p of a.prompts) values.push((await this.trace(p)).logitDiff(target, distractor));
    return { values, measured: aggregate(values, a.aggregate, a.comparison), what: `logit difference ${JSON.stringify(a.target)} - ${JSON.stringify(a.distractor)} (${a.aggregate} over ${values.length} prompt(s))` };
  }

  async topToken(a: TopTokenAssertion): Promise<Measured> {
    const id = this.tokenId(a.token);
    const values: number[] = [];
    for (const p of a.prompts) values.push((await this.trace(p)).topK(a.k).some((t) => t.token === id) ? 1 : 0);
    return { values, measured: values.reduce((x, y) => x + y, 0) / values.length, what: `share of prompts with ${JSON.stringify(a.token)} in the top ${a.k}` };
  }

  /** {@link EditSpec}s as intervene edits (latent shorthands with the spec's SAEs). */
  async edits(list: readonly EditSpec[]): Promise<AnyEdit[]> {
    const out: AnyEdit[] = [];
    for (const e of list) {
      if ("latent" in e && typeof e.latent === "string") {
        const le = e as { latent: string; positions?: number[]; scale?: number; set?: number }; // validated by the spec parser
        const l = parseLatentEdit(le.latent);
        const sae = await this.saeAt(l.hook);
        if (l.latent >= sae.dSae) throw new TdbError("E_INDEX_RANGE", `latent ${l.latent} of the SAE on ${l.hook} out of range [0, ${sae.dSae - 1}]`, { value: l.latent, allowed: [0, sae.dSae - 1] });
        const at = l.position === undefined ? le.positions : [l.position, ...(le.positions ?? [])];
        const where = at ? { positions: at } : {};
        out.push(le.set !== undefined ? setLatent(sae, l.latent, le.set, where) : le.scale !== undefined ? scaleLatent(sae, l.latent, le.scale, where) : zeroLatent(sae, l.latent, where));
      } else out.push(this.edit(e));
    }
    return out;
  }

  /** An {@link EditSpec} (not a latent shorthand) as an intervene edit. */
  edit(e: EditSpec): Edit {
    const positions = (e as { positions?: number[] }).positions;
    if ("head" in e && typeof e.head === "string") {
      const [l, h] = e.head.split(".").map(Number) as [number, number];
      return zeroHead(l, h, positions ? { positions } : {});
    }
    if ("neuron" in e && typeof e.neuron === "string") {
      const m = /^(\d+)\.(\d+)(?:@(-?\d+))?$/.exec(e.neuron)!;
      const at = m[3] === undefined ? positions : [Number(m[3]), ...(positions ?? [])];
      return zeroNeuron(Number(m[1]), Number(m[2]), at ? { positions: at } : {});
    }
    const o = { ...(e as Record<string, unknown>) };
    // A given mean vector is `meanValues` (a bare array under `mean` would read as a token row).
    if (o.kind === "mean" && Array.isArray(o.meanValues)) {
      o.mean = Float64Array.from(o.meanValues as number[]);
      delete o.meanValues;
    }
    return o as unknown as Edit;
  }

  async ablation(a: AblationAssertion): Promise<Measured> {
    const edits = await this.edits(a.edits);
    const tokens = a.metric === "kl" ? undefined : ([this.tokenId(a.target!), this.tokenId(a.distractor!)] as const);
    const values: number[] = [];
    for (const p of a.prompts) {
      const r = await this.model.intervene(this.input(p), edits, { prependBos: this.prependBos });
      if (r.clean.nonFinite || r.edited.nonFinite) throw new TdbError("E_NON_FINITE", `the ${r.clean.nonFinite ? "clean" : "edited"} run produced NaN or infinite logits`, { value: p, allowed: "finite logits" });
      if (a.metric === "kl") values.push(r.kl()[0]!);
      else {
        const d = r.logitDiffs(tokens![0], tokens![1]);
        values.push(a.metric === "change" ? d.change[0]! : a.metric === "drop" ? d.clean[0]! - d.edited[0]! : d.edited[0]!);
      }
    }
    const what =
      a.metric === "kl"
        ? "KL(clean || edited)"
        : `${a.metric === "change" ? "change (edited - clean) of" : a.metric === "drop" ? "drop (clean - edited) of" : "edited"} logit difference ${JSON.stringify(a.target)} - ${JSON.stringify(a.distractor)}`;
    return { values, measured: aggregate(values, a.aggregate, a.comparison), what: `${what} (${a.aggregate} over ${values.length} prompt(s))` };
  }

  async attribution(a: AttributionAssertion): Promise<Measured> {
    const match = nodeMatcher(a.node);
    const values: (number | null)[] = [];
    const saes = usesSaeLatents(a) ? await this.saes() : [];
    if (SAE_NODE_RE.test(a.node)) await this.saeAt(SAE_NODE_RE.exec(a.node)![1]!); // a latent of no spec SAE is an error, not "no match"
    for (const p of a.prompts) {
      const perHead = a.group === "head";
      const t = await this.model.attribute(this.input(p), {
        target: a.target,
        distractor: a.distractor,
        // Summing a head's nodes needs all of them, not the top k.
        topK: perHead ? Number.MAX_SAFE_INTEGER : Math.max(a.rank, 10),
        prependBos: this.prependBos,
        ...(perHead ? { nodeTypes: ["attention_head" as const] } : a.among ? { nodeTypes: a.among } : {}),
        ...(saes.length ? { saes } : {}),
      });
      if (perHead) {
        const sums = new Map<string, { node: AttributionNode; sum: number }>();
        for (const n of t.nodes) {
          const k = `${n.layer}.${n.head}`;
          const e = sums.get(k) ?? { node: n, sum: 0 };
          e.sum += n[a.by];
          sums.set(k, e);
        }
        const ranked = [...sums.values()].sort((x, y) => Math.abs(y.sum) - Math.abs(x.sum));
        const i = ranked.findIndex((e) => match(e.node));
        values.push(i < 0 ? null : i + 1);
        continue;
      }
      const ranked = [...t.nodes].sort((x, y) => Math.abs(y[a.by]) - Math.abs(x[a.by]));
      const i = ranked.findIndex(match);
      values.push(i < 0 ? null : i + 1);
    }
    const measured = values.includes(null) ? null : Math.max(...(values as number[]));
    const among = a.group === "head" ? " among heads (summed over their nodes)" : a.among ? ` among ${a.among.join(", ")}` : "";
    return { values, measured, what: `rank of ${a.node} by |${a.by}|${among} (worst over ${values.length} prompt(s))` };
  }

  async headScore(a: HeadScoreAssertion): Promise<Measured> {
    const opts: HeadScoresOptions = { prependBos: this.prependBos };
    if (a.input) opts.input = a.input as ModelInput;
    for (const k of ["seqLen", "batch", "seed", "excludeBos", "excludeCurrentToken", "queries"] as const) if (a[k] !== undefined) (opts as Record<string, unknown>)[k] = a[k];
    const key = JSON.stringify(opts);
    let p = this.headScoreCache.get(key);
    if (!p) this.headScoreCache.set(key, (p = this.model.headScores(opts)));
    const s = await p;
    const [layer, head] = a.head.replace(/^attn\./, "").split(".").map(Number) as [number, number];
    const score = s.score(a.detector, layer, head);
    if (a.rank !== undefined) {
      const rank = s.ranked(a.detector).findIndex((x) => x.layer === layer && x.head === head) + 1;
      return { values: [score], measured: rank, what: `rank of head ${layer}.${head} by ${a.detector} score (score ${fmt(score)})` };
    }
    return { values: [score], measured: score, what: `${a.detector} score of head ${layer}.${head}` };
  }
}

/** Copying accuracy per row of the clean and edited runs (see {@link CopyingAssertion}). */
async function copying(ev: { model: Model; prependBos: boolean; edits(list: readonly EditSpec[]): Promise<AnyEdit[]> }, a: CopyingAssertion): Promise<Measured> {
  const m = ev.model;
  let input: ModelInput;
  if (a.input) input = a.input as ModelInput;
  else {
    const { nCtx, dVocab, eosTokenId } = m.config;
    const maxHalf = Math.floor((nCtx - (ev.prependBos ? 1 : 0)) / 2);
    const seqLen = a.seqLen ?? Math.min(50, maxHalf);
    if (seqLen > maxHalf) throw new TdbError("E_BAD_OPTION", `seqLen ${seqLen} does not fit twice in the model's context of ${nCtx} tokens`, { value: seqLen, allowed: `1..${maxHalf}` });
    const exclude = [m.bosTokenId, ...(eosTokenId === undefined ? [] : [eosTokenId])];
    input = repeatedRandomTokens({ dVocab, seqLen, batch: a.batch ?? 4, seed: a.seed ?? 0, prefix: ev.prependBos ? [m.bosTokenId] : [], exclude });
  }
  const r = await m.intervene(input, await ev.edits(a.edits), { prependBos: ev.prependBos, logits: "all" });
  if (r.clean.nonFinite || r.edited.nonFinite) throw new TdbError("E_NON_FINITE", "the model produced NaN or infinite logits", { value: a.id, allowed: "finite logits" });
  const rows = r.edited.tokens;
  const acc = (t: typeof r.edited) => rows.map((tokens, b) => copyingAccuracy(tokens, (i) => t.logitsAt({ batch: b, position: i })));
  const edited = acc(r.edited);
  const total = edited.reduce((n, x) => n + x.total, 0);
  if (total === 0) throw new TdbError("E_BAD_INPUT", "the input has no copying positions (no token repeats with its continuation)", { value: a.id, allowed: "input with repeated token sequences" });
  const pooled = (xs: { correct: number }[]) => xs.reduce((n, x) => n + x.correct, 0) / total;
  if (a.metric === "accuracy") {
    return { values: edited.map((x) => x.accuracy), measured: pooled(edited), what: `copying accuracy${a.edits.length ? " with the edits" : ""} over ${total} positions` };
  }
  const clean = acc(r.clean);
  return {
    values: edited.map((x, b) => (x.accuracy === null ? null : clean[b]!.accuracy! - x.accuracy)),
    measured: pooled(clean) - pooled(edited),
    what: `drop (clean ${fmt(pooled(clean))} - edited) of copying accuracy over ${total} positions`,
  };
}

interface Measured {
  values: (number | null)[];
  measured: number | null;
  what: string;
}

/** A predicate for attribution nodes matching a spec's node pattern (validated by the spec parser). */
export function nodeMatcher(pattern: string): (n: AttributionNode) => boolean {
  const head = /^(?:attn\.)?(\d+)\.(\d+)$/.exec(pattern);
  if (head) return (n) => n.type === "attention_head" && n.layer === Number(head[1]) && n.head === Number(head[2]);
  const neuron = /^mlp\.(\d+)\.(\d+)$/.exec(pattern);
  if (neuron) return (n) => n.type === "mlp_neuron" && n.layer === Number(neuron[1]) && n.index === Number(neuron[2]);
  if (pattern === "embed") return (n) => n.type === "token_embedding";
  const latent = SAE_NODE_RE.exec(pattern);
  if (latent && latent[3] === undefined) {
    const [hook, index] = [latent[1], latent[2] === undefined ? undefined : Number(latent[2])];
    return (n) => n.type === "sae_latent" && n.hook === hook && (index === undefined || n.index === index);
  }
  return (n) => n.id === pattern;
}

async function evaluate(ev: Evaluator, a: Assertion): Promise<AssertionResult> {
  const start = performance.now();
  const base = { id: a.id, kind: a.kind, description: a.description };
  const rankBased = a.kind === "attribution" || (a.kind === "head_score" && a.rank !== undefined);
  const comparison: Comparison = rankBased ? "<=" : (a as { comparison: Comparison }).comparison;
  const threshold: number = rankBased ? (a as { rank: number }).rank : (a as { threshold: number }).threshold;
  const aggregateOf = "aggregate" in a ? { aggregate: a.aggregate } : {};
  try {
    let m: Measured;
    switch (a.kind) {
      case "logit_diff":
        m = await ev.logitDiff(a);
        break;
      case "top_token":
        m = await ev.topToken(a);
        break;
      case "ablation":
        m = await ev.ablation(a);
        break;
      case "attribution":
        m = await ev.attribution(a);
        break;
      case "head_score":
        m = await ev.headScore(a);
        break;
      case "copying":
        m = await copying(ev, a);
        break;
    }
    const passed = compare(m.measured, comparison, threshold);
    const message = `${m.what}: ${fmt(m.measured)}, ${passed ? "" : "expected "}${comparison} ${fmt(threshold)}`;
    return {
      ...base,
      status: passed ? "passed" : "failed",
      passed,
      measured: m.measured,
      comparison,
      threshold,
      ...aggregateOf,
      values: m.values,
      message: passed ? message : `${a.description ? `${a.description}: ` : ""}${message}`,
      durationMs: Math.round(performance.now() - start),
    };
  } catch (e) {
    const err =
      e instanceof TdbError
        ? { code: e.code, message: e.message, value: e.value, allowed: e.allowed }
        : { code: "E_INTERNAL", message: e instanceof Error ? e.message : String(e) };
    return {
      ...base,
      status: "error",
      passed: false,
      measured: null,
      comparison,
      threshold,
      ...aggregateOf,
      message: `could not evaluate: ${err.code}: ${err.message}`,
      error: err,
      durationMs: Math.round(performance.now() - start),
    };
  }
}

/**
 * Runs a spec (a validated or raw spec object, or the path of a JSON or YAML spec file) and
 * returns its report. Every assertion runs, whatever the others gave. An invalid spec is
 * `E_BAD_SPEC` (before any model loads); a model that cannot load is that load's typed error.
 *
 * @example
 * ```ts
 * import { runCheck } from "tdb-js";
 * const report = await runCheck("checks/induction.yaml");
 * if (!report.passed) console.log(report.assertions.filter((a) => !a.passed));
 * ```
 */
export async function runCheck(specOrPath: CheckSpec | string | Record<string, unknown>, opts: CheckOptions = {}): Promise<CheckReport> {
  const start = performance.now();
  let spec: CheckSpec;
  let path: string | null = opts.specPath ?? null;
  if (typeof specOrPath === "string") {
    path = specOrPath;
    spec = await loadSpec(specOrPath);
  } else spec = parseSpec(specOrPath);
  const specDir = path === null ? undefined : dirname(resolve(path));
  const source = await resolveModel(opts.model ?? spec.model, specDir);
  const model = await Model.load(source, opts.load);
  const results: AssertionResult[] = [];
  try {
    const ev = new Evaluator(model, spec.prependBos, resolveSaeSources(spec.saes, specDir));
    for (const a of spec.assertions) {
      const r = await evaluate(ev, a);
      results.push(r);
      opts.onResult?.(r);
    }
  } finally {
    await model.dispose();
  }
  const count = (s: AssertionStatus) => results.filter((r) => r.status === s).length;
  return {
    schema: CHECK_SCHEMA,
    name: spec.name ?? (path === null ? "tdb check" : basename(path)),
    spec: path,
    model: source,
    passed: results.every((r) => r.passed),
    counts: { total: results.length, passed: count("passed"), failed: count("failed"), errors: count("error") },
    durationMs: Math.round(performance.now() - start),
    assertions: results,
  };
}
