/**
 * `tdb check` spec files: a model and a list of assertions about it (interpretability
 * regressions for CI), read from JSON or YAML and validated into typed {@link CheckSpec}s.
 *
 * Every problem is a `TdbError` with code `E_BAD_SPEC`, naming the field by its path
 * (`assertions[2].comparison`), the offending `value` and what is `allowed`.
 *
 * @module
 */
import { TdbError } from "../base/errors.js";
import { HEAD_DETECTORS, type HeadDetector, type ScoredQueries } from "../circuits/head-scores.js";
import type { NodeType } from "../attribution/node-table.js";

/** How a measured value is compared with the threshold: `measured <comparison> threshold`. */
export type Comparison = ">" | ">=" | "<" | "<=";
/** The comparisons a spec may use. */
export const COMPARISONS: readonly Comparison[] = [">", ">=", "<", "<="];

/**
 * How values over several prompts become one measured value: their `mean`, `min` or `max`, or
 * `all` (every prompt must pass: the measured value is the worst one, the minimum for `>`/`>=`
 * and the maximum for `<`/`<=`).
 */
export type Aggregate = "mean" | "min" | "max" | "all";
/** The aggregates a spec may use. */
export const AGGREGATES: readonly Aggregate[] = ["mean", "min", "max", "all"];

/** A prompt (BOS prepended unless the spec says `prependBos: false`) or a token row (used as is). */
export type PromptSpec = string | readonly number[];
/** A token: a string that is one token, or a token id. */
export type TokenSpec = string | number;

/**
 * An edit as JSON: a shorthand (`{ "head": "1.3" }` zero-ablates head 3 of layer 1,
 * `{ "neuron": "0.17@5" }` neuron 17 of layer 0 at position 5,
 * `{ "latent": "blocks.2.hook_mlp_out:123@-1" }` zero-ablates latent 123 of the spec's SAE on that
 * hook at the last position, or scales it (`scale: 2`) or sets it (`set: 5`); `positions` may be
 * added) or an intervene `Edit` object of a kind JSON can spell: `zero`, `scale`, `set`, `add`,
 * `project`, `mean` (a given mean array, or reference prompts) and `resample` (a source prompt).
 */
export type EditSpec =
  | { head: string; positions?: number[] }
  | { neuron: string; positions?: number[] }
  | { latent: string; positions?: number[]; scale?: number; set?: number }
  | ({ kind: string; hook: string } & Record<string, unknown>);

/** The JSON edit kinds a spec may use. */
export const EDIT_KINDS = ["zero", "scale", "set", "add", "project", "mean", "resample"] as const;

/** Fields every assertion has. */
export interface AssertionCommon {
  /** Unique id (the JUnit test case name). */
  id: string;
  /** What the assertion claims, in words (required: it is what a failing CI run shows). */
  description: string;
}

/** A comparison of a measured value with a threshold. */
export interface Threshold {
  comparison: Comparison;
  threshold: number;
}

/** The logit difference `target - distractor` at the last position of each prompt. */
export interface LogitDiffAssertion extends AssertionCommon, Threshold {
  kind: "logit_diff";
  prompts: PromptSpec[];
  target: TokenSpec;
  distractor: TokenSpec;
  aggregate: Aggregate;
}

/**
 * The share of prompts whose `k` most likely next tokens (at the last position) contain `token`;
 * compared with `threshold` (default: `>= 1`, every prompt).
 */
export interface TopTokenAssertion extends AssertionCommon, Threshold {
  kind: "top_token";
  prompts: PromptSpec[];
  token: TokenSpec;
  k: number;
}

/** What an ablation assertion measures per prompt. */
export type AblationMetric = "change" | "drop" | "edited" | "kl";
/** The ablation metrics a spec may use. */
export const ABLATION_METRICS: readonly AblationMetric[] = ["change", "drop", "edited", "kl"];

/**
 * An intervention on each prompt, compared with the clean run: `metric` is the change of the
 * logit difference (`change` = edited - clean), its drop (`drop` = clean - edited), the edited
 * logit difference (`edited`), or KL(clean || edited) at the last position (`kl`, no tokens needed).
 */
export interface AblationAssertion extends AssertionCommon, Threshold {
  kind: "ablation";
  prompts: PromptSpec[];
  edits: EditSpec[];
  target?: TokenSpec;
  distractor?: TokenSpec;
  metric: AblationMetric;
  aggregate: Aggregate;
}

/**
 * The rank of a node in the attribution node table of each prompt (nodes ordered by
 * |estimated total effect|, optionally only some node types): passes when a node matching
 * `node` is among the first `rank` (1: the top node). `node`: `"L.H"` or `"attn.L.H"` (any node of
 * that head), `"mlp.L.I"` (a neuron at any position), `"embed"`, `"sae.<hook>.<latent>"` (an SAE
 * latent at any position; `"sae.<hook>"`: any latent of that SAE), or an exact node id
 * (`attn.1.3@14:5`, `mlp.0.17@5`, `embed@3`, `sae.blocks.2.hook_mlp_out.123@5`). SAE latents are
 * nodes when the node names one or `among` lists `sae_latent`: the table then holds the latents
 * of every SAE in the spec's `saes`. The measured value is the rank of the first match (the worst
 * over prompts), or `null` when no node matches.
 */
export interface AttributionAssertion extends AssertionCommon {
  kind: "attribution";
  prompts: PromptSpec[];
  target: TokenSpec;
  distractor: TokenSpec;
  node: string;
  rank: number;
  among?: NodeType[];
  by: "totalEffect" | "directEffect";
  /**
   * `node` (default): rank single nodes. `head`: rank attention heads by the sum of their nodes'
   * effects (every query/key pair of the prompt), as "the top head by estimated total effect".
   */
  group: "node" | "head";
}

/**
 * A head detector score (see `model.headScores`): compared with a threshold, or (with `rank`)
 * the head must be among the `rank` highest-scoring heads. Without `input`, the scores use seeded
 * random tokens repeated twice (`seqLen`, `batch`, `seed`).
 */
export interface HeadScoreAssertion extends AssertionCommon, Partial<Threshold> {
  kind: "head_score";
  head: string;
  detector: HeadDetector;
  rank?: number;
  input?: PromptSpec[];
  seqLen?: number;
  batch?: number;
  seed?: number;
  excludeBos?: boolean;
  excludeCurrentToken?: boolean;
  queries?: ScoredQueries;
}

/**
 * In-context copying accuracy (see `copyingPositions`): the share of copying positions (a token
 * seen before, whose earlier continuation is the next token) where the model's top prediction is
 * that token, with `edits` held on (e.g. an ablated induction head). `metric`: the accuracy
 * (`accuracy`, default) or its drop from the clean run (`drop` = clean - edited). Without
 * `input`, seeded random tokens repeated twice (`seqLen`, `batch`, `seed`), so the repeated half
 * is what is scored.
 */
export interface CopyingAssertion extends AssertionCommon, Threshold {
  kind: "copying";
  edits: EditSpec[];
  metric: "accuracy" | "drop";
  input?: PromptSpec[];
  seqLen?: number;
  batch?: number;
  seed?: number;
}

/** One assertion of a spec, by `kind`. */
export type Assertion = LogitDiffAssertion | TopTokenAssertion | AblationAssertion | AttributionAssertion | HeadScoreAssertion | CopyingAssertion;
/** Assertion kinds. */
export type AssertionKind = Assertion["kind"];
/** Every assertion kind. */
export const ASSERTION_KINDS: readonly AssertionKind[] = ["logit_diff", "top_token", "ablation", "attribution", "head_score", "copying"];

/** A validated spec. */
export interface CheckSpec {
  /** A name for reports (the JUnit test suite). [default: the file name, or "tdb check"] */
  name?: string;
  /**
   * Model: a directory (relative paths starting with `.` are relative to the spec file), a hub id,
   * or `tdb:<name>`. [default: the default model]
   */
  model?: string;
  /** Prepend BOS to string prompts. [default: true] */
  prependBos: boolean;
  /**
   * Sparse autoencoders whose latents assertions may name (attribution nodes `sae.<hook>...`,
   * `among: [sae_latent]`, `{ latent: "<hook>:<index>" }` edits), one per hook: SAELens
   * directories (paths starting with `.` are relative to the spec file), `tdb:<model>/<hook>`
   * (shipped with a packaged model) or hub ids (optionally followed by the SAE's folder). Each
   * SAE's cfg.json names its hook. Loaded on first use; an SAE that cannot load makes the
   * assertions that need it errors. [default: none]
   */
  saes?: string[];
  assertions: Assertion[];
}

/** A spec error at `path`. */
function bad(path: string, message: string, value: unknown, allowed: unknown): TdbError {
  return new TdbError("E_BAD_SPEC", `${path}: ${message}`, { value, allowed });
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(o: Obj, key: string, path: string, required: true): string;
function str(o: Obj, key: string, path: string, required: false): string | undefined;
function str(o: Obj, key: string, path: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v.length === 0) throw bad(`${path}.${key}`, `must be a non-empty string`, v ?? null, "a non-empty string");
  return v;
}

function num(o: Obj, key: string, path: string, opts: { required?: boolean; integer?: boolean; min?: number } = {}): number | undefined {
  const v = o[key];
  if (v === undefined && !opts.required) return undefined;
  const ok = typeof v === "number" && Number.isFinite(v) && (!opts.integer || Number.isInteger(v)) && (opts.min === undefined || v >= opts.min);
  if (!ok) {
    const allowed = `${opts.integer ? "an integer" : "a finite number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}`;
    throw bad(`${path}.${key}`, `must be ${allowed}`, v ?? null, allowed);
  }
  return v as number;
}

function bool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw bad(`${path}.${key}`, "must be true or false", v, [true, false]);
  return v;
}

function choice<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[], fallback?: T): T {
  const v = o[key] ?? fallback;
  if (!(allowed as readonly unknown[]).includes(v)) throw bad(`${path}.${key}`, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`, v ?? null, allowed);
  return v as T;
}

function token(o: Obj, key: string, path: string, required: boolean): TokenSpec | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (!((typeof v === "string" && v.length > 0) || (typeof v === "number" && Number.isInteger(v) && v >= 0))) {
    throw bad(`${path}.${key}`, "must be a token: a non-empty string or a token id", v ?? null, "a string that is one token, or an integer token id >= 0");
  }
  return v;
}

function prompt(v: unknown, path: string): PromptSpec {
  if (typeof v === "string" && v.length > 0) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number" && Number.isInteger(t) && t >= 0)) return v as number[];
  throw bad(path, "must be a prompt: a non-empty string or a non-empty array of token ids", v ?? null, "a non-empty string or an array of integer token ids");
}

/** `prompts` (an array) or `prompt` (one), at least one. */
function prompts(o: Obj, path: string, key = "prompts", single: string | undefined = "prompt", required = true): PromptSpec[] | undefined {
  if (single !== undefined && o[single] !== undefined) {
    if (o[key] !== undefined) throw bad(path, `give either ${key} or ${single}, not both`, [key, single], `one of ${key}, ${single}`);
    return [prompt(o[single], `${path}.${single}`)];
  }
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (!Array.isArray(v) || v.length === 0) throw bad(`${path}.${key}`, "must be a non-empty array of prompts", v ?? null, "a non-empty array of strings or token-id arrays");
  return v.map((p, i) => prompt(p, `${path}.${key}[${i}]`));
}

/** `input`: absent, or prompts that are all strings or all token rows (one batch). */
function inputRows(o: Obj, path: string): PromptSpec[] | undefined {
  const rows = prompts(o, path, "input", undefined, false);
  if (rows && !rows.every((r) => typeof r === "string") && !rows.every((r) => typeof r !== "string")) {
    throw bad(`${path}.input`, "mixes strings and token rows", rows, "all strings or all token-id arrays");
  }
  return rows;
}

const HEAD_RE = /^(?:attn\.)?(\d+)\.(\d+)$/;
/** A hook name as SAE node patterns and latent edits spell it (`blocks.2.hook_mlp_out`, `blocks.0.mlp.hook_post`). */
const SAE_HOOK = "blocks\\.\\d+\\.(?:[a-z_]+\\.)?hook_[a-z_]+";
/** `sae.<hook>`, `sae.<hook>.<latent>`, `sae.<hook>.<latent>@<position>`. */
export const SAE_NODE_RE = new RegExp(`^sae\\.(${SAE_HOOK})(?:\\.(\\d+)(?:@(\\d+))?)?$`);
/** `<hook>:<latent>[@<position>]` (negative positions count from the end). */
const LATENT_EDIT_RE = new RegExp(`^(${SAE_HOOK}):(\\d+)(?:@(-?\\d+))?$`);
const NODE_RE = /^(?:(?:attn\.)?\d+\.\d+|attn\.\d+\.\d+@\d+:\d+|mlp\.\d+\.\d+(?:@\d+)?|embed(?:@\d+)?)$/;
const NODE_TYPES: readonly NodeType[] = ["mlp_neuron", "attention_head", "token_embedding", "sae_latent"];

/** Whether an attribution assertion needs the spec's SAEs (its node is a latent, or `among` lists `sae_latent`). */
export function usesSaeLatents(a: AttributionAssertion): boolean {
  return SAE_NODE_RE.test(a.node) || (a.among?.includes("sae_latent") ?? false);
}

/** `{ latent: "<hook>:<index>[@<position>]" }` parsed (the spec parser validated it). */
export function parseLatentEdit(spec: string): { hook: string; latent: number; position?: number } {
  const m = LATENT_EDIT_RE.exec(spec);
  if (!m) throw new TdbError("E_BAD_SPEC", `latent ${JSON.stringify(spec)} is not HOOK:INDEX[@POSITION]`, { value: spec, allowed: 'e.g. "blocks.2.hook_mlp_out:123" or "blocks.2.hook_mlp_out:123@-1"' });
  return { hook: m[1]!, latent: Number(m[2]), ...(m[3] === undefined ? {} : { position: Number(m[3]) }) };
}

function edit(v: unknown, path: string): EditSpec {
  if (!isObj(v)) throw bad(path, "must be an edit object", v ?? null, 'an object: { "head": "L.H" }, { "neuron": "L.I[@P]" } or { "kind": ..., "hook": ... }');
  const positions = v.positions;
  if (positions !== undefined && !(Array.isArray(positions) && positions.every((p) => Number.isInteger(p)))) {
    throw bad(`${path}.positions`, "must be an array of integer positions", positions, "an array of integers (negative counts from the end)");
  }
  if ("latent" in v) {
    const extra = Object.keys(v).filter((k) => !["latent", "positions", "scale", "set"].includes(k));
    if (extra.length > 0) throw bad(`${path}.${extra[0]}`, "unknown field of a latent shorthand", extra[0], ["latent", "positions", "scale", "set"]);
    if (typeof v.latent !== "string" || !LATENT_EDIT_RE.test(v.latent)) {
      throw bad(`${path}.latent`, "must be HOOK:INDEX[@POSITION]", v.latent ?? null, 'e.g. "blocks.2.hook_mlp_out:123" or "blocks.2.hook_mlp_out:123@-1"');
    }
    if (v.scale !== undefined && v.set !== undefined) throw bad(path, "give scale or set, not both", ["scale", "set"], "one of scale, set (neither: zero-ablate)");
    num(v, "scale", path);
    num(v, "set", path);
    return v as EditSpec;
  }
  if ("head" in v || "neuron" in v) {
    const key = "head" in v ? "head" : "neuron";
    const extra = Object.keys(v).filter((k) => k !== key && k !== "positions");
    if (extra.length > 0) throw bad(`${path}.${extra[0]}`, `unknown field of a ${key} shorthand`, extra[0], [key, "positions"]);
    const s = v[key];
    const re = key === "head" ? /^\d+\.\d+$/ : /^\d+\.\d+(?:@-?\d+)?$/;
    if (typeof s !== "string" || !re.test(s)) throw bad(`${path}.${key}`, `must be ${key === "head" ? "LAYER.HEAD" : "LAYER.INDEX[@POSITION]"}`, s ?? null, key === "head" ? "e.g. \"1.3\"" : 'e.g. "0.17" or "0.17@5"');
    return v as EditSpec;
  }
  choice(v, "kind", path, EDIT_KINDS);
  str(v, "hook", path, true);
  return v as EditSpec;
}

const COMMON_KEYS = ["id", "description", "kind"];
const KEYS: Record<AssertionKind, readonly string[]> = {
  logit_diff: ["prompts", "prompt", "target", "distractor", "comparison", "threshold", "aggregate"],
  top_token: ["prompts", "prompt", "token", "k", "comparison", "threshold"],
  ablation: ["prompts", "prompt", "edits", "target", "distractor", "metric", "comparison", "threshold", "aggregate"],
  attribution: ["prompts", "prompt", "target", "distractor", "node", "rank", "among", "by", "group"],
  head_score: ["head", "detector", "comparison", "threshold", "rank", "input", "seqLen", "batch", "seed", "excludeBos", "excludeCurrentToken", "queries"],
  copying: ["edits", "metric", "comparison", "threshold", "input", "seqLen", "batch", "seed"],
};

function threshold(o: Obj, path: string): Threshold {
  return { comparison: choice(o, "comparison", path, COMPARISONS), threshold: num(o, "threshold", path, { required: true })! };
}

function assertion(v: unknown, path: string): Assertion {
  if (!isObj(v)) throw bad(path, "must be an assertion object", v ?? null, "an object with id, description and kind");
  const kind = choice(v, "kind", path, ASSERTION_KINDS);
  const allowedKeys = [...COMMON_KEYS, ...KEYS[kind]];
  for (const k of Object.keys(v)) if (!allowedKeys.includes(k)) throw bad(`${path}.${k}`, `unknown field of a ${kind} assertion`, k, allowedKeys);
  const common = { id: str(v, "id", path, true), description: str(v, "description", path, true) };
  switch (kind) {
    case "logit_diff":
      return { ...common, kind, prompts: prompts(v, path)!, target: token(v, "target", path, true)!, distractor: token(v, "distractor", path, true)!, ...threshold(v, path), aggregate: choice(v, "aggregate", path, AGGREGATES, "mean") };
    case "top_token":
      return {
        ...common,
        kind,
        prompts: prompts(v, path)!,
        token: token(v, "token", path, true)!,
        k: num(v, "k", path, { integer: true, min: 1 }) ?? 1,
        comparison: choice(v, "comparison", path, COMPARISONS, ">="),
        threshold: num(v, "threshold", path) ?? 1,
      };
    case "ablation": {
      const metric = choice(v, "metric", path, ABLATION_METRICS, "change");
      const target = token(v, "target", path, metric !== "kl");
      const distractor = token(v, "distractor", path, metric !== "kl");
      if (!Array.isArray(v.edits) || v.edits.length === 0) throw bad(`${path}.edits`, "must be a non-empty array of edits", v.edits ?? null, "a non-empty array of edit objects");
      const edits = v.edits.map((e, i) => edit(e, `${path}.edits[${i}]`));
      return { ...common, kind, prompts: prompts(v, path)!, edits, target, distractor, metric, ...threshold(v, path), aggregate: choice(v, "aggregate", path, AGGREGATES, "mean") };
    }
    case "attribution": {
      const node = str(v, "node", path, true);
      if (!NODE_RE.test(node) && !SAE_NODE_RE.test(node)) {
        throw bad(`${path}.node`, "is not a node pattern", node, ['"L.H"', '"attn.L.H"', '"attn.L.H@Q:K"', '"mlp.L.I"', '"mlp.L.I@T"', '"embed"', '"embed@T"', '"sae.HOOK"', '"sae.HOOK.I"', '"sae.HOOK.I@T"']);
      }
      let among: NodeType[] | undefined;
      if (v.among !== undefined) {
        if (!Array.isArray(v.among) || v.among.length === 0) throw bad(`${path}.among`, "must be a non-empty array of node types", v.among, NODE_TYPES);
        among = v.among.map((t: unknown, i) => {
          if (!(NODE_TYPES as readonly unknown[]).includes(t)) throw bad(`${path}.among[${i}]`, `must be one of ${NODE_TYPES.map((n) => JSON.stringify(n)).join(", ")}`, t ?? null, NODE_TYPES);
          return t as NodeType;
        });
      }
      return {
        ...common,
        kind,
        prompts: prompts(v, path)!,
        target: token(v, "target", path, true)!,
        distractor: token(v, "distractor", path, true)!,
        node,
        rank: num(v, "rank", path, { integer: true, min: 1 }) ?? 1,
        among,
        by: choice(v, "by", path, ["totalEffect", "directEffect"] as const, "totalEffect"),
        group: choice(v, "group", path, ["node", "head"] as const, "node"),
      };
    }
    case "copying": {
      if (v.edits !== undefined && !Array.isArray(v.edits)) throw bad(`${path}.edits`, "must be an array of edits", v.edits, "an array of edit objects (may be empty)");
      const edits = ((v.edits as unknown[] | undefined) ?? []).map((e, i) => edit(e, `${path}.edits[${i}]`));
      const metric = choice(v, "metric", path, ["accuracy", "drop"] as const, "accuracy");
      if (metric === "drop" && edits.length === 0) throw bad(`${path}.edits`, "metric drop needs edits", [], "a non-empty array of edits");
      return {
        ...common,
        kind,
        edits,
        metric,
        ...threshold(v, path),
        input: inputRows(v, path),
        seqLen: num(v, "seqLen", path, { integer: true, min: 1 }),
        batch: num(v, "batch", path, { integer: true, min: 1 }),
        seed: num(v, "seed", path, { integer: true, min: 0 }),
      };
    }
    case "head_score": {
      const head = str(v, "head", path, true);
      if (!HEAD_RE.test(head)) throw bad(`${path}.head`, "must be LAYER.HEAD", head, 'e.g. "1.3"');
      const rank = num(v, "rank", path, { integer: true, min: 1 });
      const hasThreshold = v.comparison !== undefined || v.threshold !== undefined;
      if ((rank === undefined) === !hasThreshold) {
        throw bad(path, "a head_score assertion needs either comparison and threshold, or rank", rank === undefined ? null : { rank, comparison: v.comparison, threshold: v.threshold }, ["comparison + threshold", "rank"]);
      }
      return {
        ...common,
        kind,
        head,
        detector: choice(v, "detector", path, HEAD_DETECTORS),
        ...(hasThreshold ? threshold(v, path) : {}),
        rank,
        input: inputRows(v, path),
        seqLen: num(v, "seqLen", path, { integer: true, min: 1 }),
        batch: num(v, "batch", path, { integer: true, min: 1 }),
        seed: num(v, "seed", path, { integer: true, min: 0 }),
        excludeBos: bool(v, "excludeBos", path),
        excludeCurrentToken: bool(v, "excludeCurrentToken", path),
        queries: v.queries === undefined ? undefined : choice(v, "queries", path, ["all", "matched"] as const),
      };
    }
  }
}

const SPEC_KEYS = ["name", "model", "prependBos", "saes", "assertions"];

/** `spec.saes`: absent, or a non-empty array of non-empty strings. */
function saeList(doc: Obj): string[] | undefined {
  const v = doc.saes;
  if (v === undefined) return undefined;
  const allowed = "a non-empty array of SAE sources: directories, tdb:<model>/<hook> or hub ids";
  if (!Array.isArray(v) || v.length === 0) throw bad("spec.saes", "must be a non-empty array of SAE sources", v, allowed);
  v.forEach((s: unknown, i) => {
    if (typeof s !== "string" || s.trim() === "") throw bad(`spec.saes[${i}]`, "must be a non-empty string", s ?? null, allowed);
  });
  return v as string[];
}

/** The path of the first thing in `a` that needs the spec's SAEs, or undefined. */
function needsSaes(a: Assertion, path: string): string | undefined {
  if (a.kind === "attribution") {
    if (SAE_NODE_RE.test(a.node)) return `${path}.node`;
    if (a.among?.includes("sae_latent")) return `${path}.among`;
  }
  if (a.kind === "ablation" || a.kind === "copying") {
    const i = a.edits.findIndex((e) => "latent" in e);
    if (i >= 0) return `${path}.edits[${i}]`;
  }
  return undefined;
}

/**
 * Validates a parsed spec (the JSON or YAML document) into a {@link CheckSpec}; `E_BAD_SPEC` on
 * the first problem found.
 *
 * @example
 * ```ts
 * const spec = parseSpec({ assertions: [{ id: "ind", description: "1.0 is an induction head", kind: "head_score", head: "1.0", detector: "induction", comparison: ">", threshold: 0.4 }] });
 * ```
 */
export function parseSpec(doc: unknown): CheckSpec {
  if (!isObj(doc)) throw bad("spec", "must be an object with an assertions list", doc === null ? null : Array.isArray(doc) ? "an array" : typeof doc, "an object with model, prependBos, assertions");
  for (const k of Object.keys(doc)) if (!SPEC_KEYS.includes(k)) throw bad(`spec.${k}`, "unknown field", k, SPEC_KEYS);
  const list = doc.assertions;
  if (!Array.isArray(list) || list.length === 0) throw bad("spec.assertions", "must be a non-empty array", list ?? null, "a non-empty array of assertions");
  const assertions = list.map((a, i) => assertion(a, `assertions[${i}]`));
  const saes = saeList(doc);
  if (saes === undefined) {
    assertions.forEach((a, i) => {
      const where = needsSaes(a, `assertions[${i}]`);
      if (where !== undefined) throw bad(where, "names SAE latents, but the spec has no saes", null, "a spec with saes: [<SAE directory, tdb:<model>/<hook> or hub id>, ...]");
    });
  }
  const seen = new Set<string>();
  assertions.forEach((a, i) => {
    if (seen.has(a.id)) throw bad(`assertions[${i}].id`, `duplicate id ${JSON.stringify(a.id)}`, a.id, "ids unique within the spec");
    seen.add(a.id);
  });
  return {
    name: str(doc, "name", "spec", false),
    model: str(doc, "model", "spec", false),
    prependBos: bool(doc, "prependBos", "spec") ?? true,
    ...(saes ? { saes } : {}),
    assertions,
  };
}

/** Parses spec text: JSON when `format` is "json", otherwise YAML (a superset of JSON). */
export async function parseSpecText(text: string, format: "json" | "yaml", source = "spec"): Promise<CheckSpec> {
  let doc: unknown;
  try {
    if (format === "json") doc = JSON.parse(text);
    else {
      const { parse } = await import("yaml");
      doc = parse(text);
    }
  } catch (e) {
    throw new TdbError("E_BAD_SPEC", `${source}: not valid ${format.toUpperCase()}: ${(e as Error).message}`, { value: source, allowed: `a ${format.toUpperCase()} document`, cause: e });
  }
  return parseSpec(doc);
}
