#!/usr/bin/env node
/**
 * The `tdb` command line. Subcommands load lazily, so `tdb --help` never loads onnxruntime.
 *
 * Exit codes: 0 success, 1 a typed tdb-js error (printed, or as JSON with `--json`),
 * 2 a usage error (unknown command or flag, a flag the command does not take, a malformed or
 * missing flag value or prompt; found before any model is loaded), 70 an unexpected internal error.
 * With `--json`, every outcome prints exactly one JSON object on stdout (the result, or
 * `{"error": {...}}`) and nothing else there. Stack traces go to stderr only with `--debug`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TdbError } from "../base/errors.js";
import { UsageError } from "./usage.js";

const USAGE = `tdb: look inside transformers.js language models

Usage:
  tdb trace "<prompt>" [--model dir|hub-id] [--hooks name,name|all] [--sae sae]... [--top k] [--no-bos] [--json]
  tdb ablate "<prompt>" [--head L.H]... [--neuron L.I[@P]]... [--latent HOOK:I[@P] --sae sae]...
             [--target tok --distractor tok] [--model dir|hub-id] [--top k] [--no-bos] [--json]
  tdb attribute "<prompt>" --target tok --distractor tok [--sae sae]... [--explanations src] [--top k] [--model dir|hub-id]
             [--no-bos] [--json]
  tdb check <spec.yaml|spec.json> [--model dir|hub-id] [--junit file.xml] [--json]
  tdb train --config <file.json> [--resume] [--json]
  tdb sae train --hook <name> --latents N [--model dir|hub-id] [--architecture standard|topk --k K]
             [--tokens N] [--steps N] [--batch N] [--lr X] [--l1 X] [--context N] [--seed N]
             [--corpus file.txt|file.jsonl] [--out dir] [--checkpoint file [--resume]] [--json]
  tdb harvest --out <records dir> [--model dir|hub-id] [--layers 0,1] [--neurons L:I,...] [--heads]
             [--sae sae]... [--corpus file.txt|file.jsonl] [--tokens N] [--context N] [--top N]
             [--random N] [--checkpoint file [--resume]] [--json]
  tdb explain (--layer L --neuron I[,I...] | --node mlp.L.I|attn.L.H|sae.HOOK.I) [--model dir|hub-id]
             [--records dir | --corpus file --tokens N] [--sae sae]...
             (--offline | --llm-model M [--llm-base-url URL] [--llm-retries N] [--scorers detection,fuzzing])
             [--cache dir] [--json]
  tdb --help | --version

Options:
  --model   model directory, hub id or shipped model tdb:<name> (default: tdb:brown-small, a
            small GPT-2 trained on the Brown corpus that ships with tdb-js)
  --hooks   comma-separated hook names to cache, or "all" (default: all)
  --top     number of next-token predictions to print (default: 10)
  --no-bos  do not prepend the BOS token
  --head    (ablate) zero-ablate head H of layer L, e.g. --head 1.3 (repeatable)
  --neuron  (ablate) zero-ablate neuron I of layer L, at position P if given, e.g. --neuron 0.17@5
  --sae     (trace, attribute, ablate) a sparse autoencoder: SAELens directory, tdb:<model>/<hook>
            (shipped with a packaged model) or hub id [/folder] (repeatable; one per hook). trace
            caches <hook>.hook_sae_* and prints the top latents; attribute adds its latents as nodes
  --latent  (ablate) zero-ablate latent I of the --sae reading HOOK, at position P if given,
            e.g. --latent blocks.2.hook_mlp_out:123@-1 (repeatable)
  --target, --distractor
            (ablate) single tokens whose logit difference is reported, e.g. " Mary" " John"
  --junit   (check) also write a JUnit XML report to this file
  --json    machine-readable output (schemas tdb.trace/1, tdb.ablate/1, tdb.attribute/1, tdb.check/1, tdb.harvest/1, tdb.explain/1; see docs/cli.md)
  --config  (train) training config file (JSON; see src/cli/train-command.ts)
  --resume  (train) continue from the config's checkpoint when it exists
            (sae train) continue from --checkpoint when it exists
  --hook, --latents
            (sae train) the hook to train an SAE on, e.g. blocks.2.hook_mlp_out, and its width
  --architecture, --k
            (sae train) "standard" (ReLU + L1, default) or "topk" with k latents per token
  --tokens, --steps, --batch
            (sae train) tokens to harvest, training steps (default: tokens / batch, else 1000),
            rows per step (default 4096)
  --corpus  (sae train) text (paragraphs) or JSONL file to harvest from (default: Brown)
  --out     (sae train) output directory, SAELens layout (default: sae-<hook>)
  --layers, --neurons, --heads
            (harvest) MLP neurons of these layers (default all), or just --neurons 0:5,1:17;
            --heads adds the layers' attention heads, each --sae all its latents
  --top, --random, --context
            (harvest, explain) top and random excerpts per node (20, 20), tokens per excerpt (64)
  --records (explain) a record set written by tdb harvest (else records are harvested from
            --corpus, default Brown, over --tokens, default 50000)
  --node    (explain) node ids mlp.L.I, attn.L.H, sae.HOOK.I (comma-separated or repeated)
  --offline (explain) the offline token-pattern explainer (no LLM)
  --llm-model, --llm-base-url, --llm-retries
            (explain) an OpenAI-compatible chat endpoint (default base URL: TDB_LLM_BASE_URL or
            OpenAI); the API key is read from TDB_LLM_API_KEY or OPENAI_API_KEY only
  --scorers (explain) extra LLM scorers: detection, fuzzing
  --cache   (explain) cache explanations in this directory
  --explanations
            (attribute) explanations to show next to the nodes: a directory holding explanations/
            or tdb:<model> (tdb:brown-small ships them)
  --debug   print the stack trace of an error on stderr

Exit codes: 0 ok, 1 tdb error (code in the message), 2 usage error, 70 internal error.
check: 0 every assertion passed, 1 an assertion failed or could not be evaluated,
2 usage error or invalid spec, 70 internal error.`;

const COMMON_FLAGS = ["model", "top", "no-bos", "json"] as const;
/** The flags each command takes (besides --help and --version). */
const COMMAND_FLAGS: Record<string, readonly string[]> = {
  trace: [...COMMON_FLAGS, "hooks", "sae"],
  ablate: [...COMMON_FLAGS, "head", "neuron", "target", "distractor", "latent", "sae"],
  attribute: [...COMMON_FLAGS, "target", "distractor", "sae", "explanations"],
  check: ["model", "json", "junit"],
  train: ["config", "resume", "json"],
  harvest: ["model", "json", "layers", "neurons", "heads", "sae", "corpus", "tokens", "context", "top", "random", "out", "checkpoint", "resume"],
  explain: ["model", "json", "layer", "neuron", "node", "records", "sae", "corpus", "tokens", "context", "top", "random", "offline", "llm-base-url", "llm-model", "llm-retries", "scorers", "cache"],
  sae: ["model", "json", "hook", "latents", "architecture", "k", "tokens", "steps", "batch", "lr", "l1", "context", "seed", "corpus", "out", "checkpoint", "resume"],
};

/** Rejects flags `command` does not take (they would be silently ignored otherwise). */
function checkFlags(command: string, values: Record<string, unknown>): void {
  const allowed = COMMAND_FLAGS[command] ?? [];
  for (const [flag, v] of Object.entries(values)) {
    if (v === undefined || flag === "help" || flag === "version" || flag === "debug") continue;
    if (!allowed.includes(flag)) {
      throw new UsageError(`${command} does not take --${flag}; it takes ${allowed.map((f) => `--${f}`).join(", ")}`, `--${flag}`);
    }
  }
}

/** The single prompt argument of `command`. */
function onePrompt(command: string, rest: readonly string[]): string {
  if (rest.length !== 1) throw new UsageError(`${command} takes exactly one prompt argument, got ${rest.length}`, rest.length);
  return rest[0]!;
}

/** `--top`: a positive integer, or `fallback` when absent. */
function parseTop(value: string | undefined, fallback: number): number {
  const top = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(top) || top < 1) throw new UsageError(`--top must be a positive integer, got ${value}`, value);
  return top;
}

/** `--hooks`: "all" or a comma-separated list of names, none of them empty. */
function parseHooks(value: string | undefined): void {
  if (value === undefined || value === "all") return;
  const names = value.split(",").map((s) => s.trim());
  if (names.some((n) => n === "")) throw new UsageError(`--hooks takes "all" or comma-separated hook names, none empty; got ${JSON.stringify(value)}`, value);
}

/**
 * TEST-ONLY hook: with the environment variable `TDB_TEST_INTERNAL_ERROR=1`, a command throws a
 * plain `Error` once its arguments are parsed and checked (`=uncaught`: from a timer, outside
 * main's promise chain), so that tests can provoke the
 * internal-error path (exit 70) deterministically (test/reliability/cli-contract.test.ts).
 * Not part of the CLI's interface.
 */
function testInternalErrorHook(command: string): void {
  if (process.env.TDB_TEST_INTERNAL_ERROR === "1") throw new Error(`internal error provoked by TDB_TEST_INTERNAL_ERROR in ${command} (test-only)`);
  if (process.env.TDB_TEST_INTERNAL_ERROR === "uncaught") {
    // Thrown from a timer: outside main's promise chain, as a native callback's error would be.
    setTimeout(() => {
      throw new Error(`uncaught error provoked by TDB_TEST_INTERNAL_ERROR in ${command} (test-only)`);
    }, 0);
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: "string" },
        hooks: { type: "string" },
        top: { type: "string" },
        "no-bos": { type: "boolean" },
        json: { type: "boolean" },
        head: { type: "string", multiple: true },
        neuron: { type: "string", multiple: true },
        sae: { type: "string", multiple: true },
        latent: { type: "string", multiple: true },
        target: { type: "string" },
        distractor: { type: "string" },
        junit: { type: "string" },
        config: { type: "string" },
        resume: { type: "boolean" },
        hook: { type: "string" },
        latents: { type: "string" },
        architecture: { type: "string" },
        k: { type: "string" },
        tokens: { type: "string" },
        steps: { type: "string" },
        batch: { type: "string" },
        lr: { type: "string" },
        l1: { type: "string" },
        context: { type: "string" },
        seed: { type: "string" },
        corpus: { type: "string" },
        out: { type: "string" },
        checkpoint: { type: "string" },
        layers: { type: "string" },
        neurons: { type: "string" },
        heads: { type: "boolean" },
        random: { type: "string" },
        layer: { type: "string" },
        node: { type: "string", multiple: true },
        records: { type: "string" },
        offline: { type: "boolean" },
        "llm-base-url": { type: "string" },
        "llm-model": { type: "string" },
        "llm-retries": { type: "string" },
        scorers: { type: "string" },
        cache: { type: "string" },
        explanations: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        debug: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const { createRequire } = await import("node:module");
    const pkg = createRequire(import.meta.url)("../../package.json") as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command === undefined) throw new UsageError("no command given; commands: trace, ablate, attribute, check, train, sae, harvest, explain");
  if (COMMAND_FLAGS[command]) checkFlags(command, values);
  switch (command) {
    case "trace": {
      const prompt = onePrompt("trace", rest);
      const top = parseTop(values.top, 10);
      parseHooks(values.hooks);
      testInternalErrorHook(command);
      const { runTrace } = await import("./trace-command.js");
      return runTrace({
        prompt,
        model: values.model,
        hooks: values.hooks,
        saes: values.sae ?? [],
        top,
        prependBos: !values["no-bos"],
        json: values.json ?? false,
      });
    }
    case "ablate": {
      const prompt = onePrompt("ablate", rest);
      const top = parseTop(values.top, 10);
      testInternalErrorHook(command);
      const { runAblate } = await import("./ablate-command.js");
      return runAblate({
        prompt,
        model: values.model,
        heads: values.head ?? [],
        neurons: values.neuron ?? [],
        latents: values.latent ?? [],
        saes: values.sae ?? [],
        target: values.target,
        distractor: values.distractor,
        top,
        prependBos: !values["no-bos"],
        json: values.json ?? false,
      });
    }
    case "attribute": {
      const prompt = onePrompt("attribute", rest);
      if (values.target === undefined || values.distractor === undefined) throw new UsageError("attribute needs --target and --distractor", values.target === undefined ? "--target" : "--distractor");
      const top = parseTop(values.top, 20);
      if (values.explanations?.trim() === "") throw new UsageError("--explanations takes a directory holding explanations/ or tdb:<model>, got an empty value", values.explanations);
      testInternalErrorHook(command);
      const { runAttribute } = await import("./attribute-command.js");
      return runAttribute({ prompt, model: values.model, target: values.target, distractor: values.distractor, top, prependBos: !values["no-bos"], json: values.json ?? false, saes: values.sae ?? [], explanations: values.explanations });
    }
    case "check": {
      if (rest.length !== 1) throw new UsageError(`check takes exactly one spec file argument, got ${rest.length}`, rest.length);
      testInternalErrorHook(command);
      const { runCheckCommand } = await import("./check-command.js");
      return runCheckCommand({ spec: rest[0]!, model: values.model, junit: values.junit, json: values.json ?? false });
    }
    case "train": {
      if (rest.length !== 0) throw new UsageError(`train takes no positional arguments, got ${rest.length}`, rest.length);
      if (values.config === undefined) throw new UsageError("train needs --config <file.json>", "--config");
      testInternalErrorHook(command);
      const { runTrain } = await import("./train-command.js");
      return runTrain({ config: values.config, resume: values.resume ?? false, json: values.json ?? false });
    }
    case "sae": {
      if (rest.length !== 1 || rest[0] !== "train") throw new UsageError(`sae takes one subcommand, train; got ${rest.length === 0 ? "none" : JSON.stringify(rest.join(" "))}`, rest[0]);
      const { parseSaeTrainArgs, runSaeTrain } = await import("./sae-command.js");
      const args = parseSaeTrainArgs(values);
      testInternalErrorHook(command);
      return runSaeTrain(args);
    }
    case "harvest": {
      if (rest.length !== 0) throw new UsageError(`harvest takes no positional arguments, got ${rest.length}`, rest.length);
      const { parseHarvestArgs, runHarvest } = await import("./harvest-command.js");
      const args = parseHarvestArgs(values);
      testInternalErrorHook(command);
      return runHarvest(args);
    }
    case "explain": {
      if (rest.length !== 0) throw new UsageError(`explain takes no positional arguments, got ${rest.length}`, rest.length);
      const { parseExplainArgs, runExplain } = await import("./explain-command.js");
      const args = parseExplainArgs(values);
      testInternalErrorHook(command);
      return runExplain(args);
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; commands: trace, ablate, attribute, check, train, sae, harvest, explain`, command);
  }
}

const json = process.argv.includes("--json");
const debug = process.argv.includes("--debug");
let reported = false;

/** Prints `err` as the documented outcome (usage 2, typed 1, internal 70), once. */
function report(err: unknown): void {
  if (reported) return;
  reported = true;
  if (err instanceof UsageError) {
    if (json) console.log(JSON.stringify({ error: err.toJSON() }, null, 2));
    else console.error(`tdb: ${err.message}\n\n${USAGE}`);
    process.exitCode = 2;
  } else if (err instanceof TdbError) {
    if (json) console.log(JSON.stringify({ error: err.toJSON() }, null, 2));
    else console.error(`tdb: ${err.code}: ${err.message}`);
    if (debug) console.error(err);
    process.exitCode = 1;
  } else {
    // A bug: the message only (one JSON object with --json); the stack only with --debug.
    const message = err instanceof Error ? err.message : String(err);
    if (json) console.log(JSON.stringify({ error: { name: "InternalError", code: "E_INTERNAL", message } }, null, 2));
    else console.error(`tdb: internal error (a bug: please report it): ${message}${debug ? "" : "\n(rerun with --debug for the stack trace)"}`);
    if (debug) console.error(err);
    process.exitCode = 70;
  }
}

// Errors outside main's promise chain (a callback of a native module, a stray rejection) keep
// the same contract instead of Node's default stack dump.
process.on("uncaughtException", (err) => {
  report(err);
  process.exit();
});
process.on("unhandledRejection", (err) => {
  report(err);
  process.exit();
});
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  report,
);
