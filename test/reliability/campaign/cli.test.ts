/**
 * Issue 12's bad-input campaign through the `tdb` command line: every command with bad flags,
 * bad values, bad models and bad prompts, each run with and without `--json`. Each run must end
 * with its documented exit code (0 ok, 1 typed error, 2 usage error; never 70, never a signal),
 * print exactly one JSON object on stdout under `--json` (the error's code as expected), and no
 * stack trace without `--debug`. The outcome table prints at the end (see `_campaign.ts`).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sae } from "../../../src/sae/sae.js";
import { saveSae } from "../../../src/sae/save.js";
import { makeTestModel, type TestModel } from "../../helpers/models.js";
import { tdb, type CliRun } from "../../cli/_run.js";
import { outcomes, summary, type Outcome } from "./_campaign.js";

let tm: TestModel;
beforeAll(async () => {
  tm = await makeTestModel();
  await writeFile(join(tm.dir, "not-a-dir.txt"), "x");
  await writeFile(join(tm.dir, "bad-spec.yaml"), "assertions:\n  - id: a\n    kind: explode\n");
  // SAEs on blocks.0.hook_mlp_out: a good one (8 latents), one whose safetensors file is cut
  // short, one whose cfg.json is not JSON, one whose d_in does not match the hook.
  const d = tm.arch.n_embd;
  const sae = (dIn: number) =>
    Sae.create({ architecture: "standard", dIn, dSae: 8, hookName: "blocks.0.hook_mlp_out" }, {
      W_enc: Float32Array.from({ length: dIn * 8 }, (_, i) => Math.sin(i) / 4),
      W_dec: Float32Array.from({ length: dIn * 8 }, (_, i) => Math.cos(i) / 4),
      b_enc: new Float32Array(8).fill(0.01),
      b_dec: new Float32Array(dIn),
    });
  await saveSae(sae(d), join(tm.dir, "sae"));
  await saveSae(sae(d + 1), join(tm.dir, "sae-wide"));
  const weights = await readFile(join(tm.dir, "sae", "sae_weights.safetensors"));
  const cfg = await readFile(join(tm.dir, "sae", "cfg.json"));
  await mkdir(join(tm.dir, "sae-corrupt"));
  await writeFile(join(tm.dir, "sae-corrupt", "cfg.json"), cfg);
  await writeFile(join(tm.dir, "sae-corrupt", "sae_weights.safetensors"), weights.subarray(0, weights.length - 37));
  await mkdir(join(tm.dir, "sae-badcfg"));
  await writeFile(join(tm.dir, "sae-badcfg", "cfg.json"), "{ d_in: 64");
  await writeFile(join(tm.dir, "sae-badcfg", "sae_weights.safetensors"), weights);
});
afterAll(async () => {
  await tm?.cleanup();
  console.log(summary("CLI campaign"));
});

const P = "Hello there friend";
type Want = { exit: 0 } | { exit: 1; code: string | string[] } | { exit: 2; code?: string };
interface CliCase {
  what: string;
  /** Arguments; `@model` is replaced by `--model <test model>`. */
  args: string[];
  want: Want;
}
const M = "@model";
const usage: Want = { exit: 2 };
const err = (...code: string[]): Want => ({ exit: 1, code });
const ok: Want = { exit: 0 };

const CASES: CliCase[] = [
  // anywhere
  { what: "no command", args: [], want: usage },
  { what: "an unknown command", args: ["explode", P], want: usage },
  { what: "an unknown flag", args: ["trace", P, "--frobnicate", M], want: usage },
  { what: "a flag without its value", args: ["trace", P, "--model"], want: usage },
  // trace
  { what: "trace: no prompt", args: ["trace", M], want: usage },
  { what: "trace: two prompts", args: ["trace", P, "again", M], want: usage },
  { what: "trace: an empty prompt", args: ["trace", "", M], want: err("E_EMPTY_PROMPT") },
  { what: "trace: a prompt over n_ctx", args: ["trace", "word ".repeat(200), M], want: err("E_PROMPT_TOO_LONG") },
  { what: "trace: --top 0", args: ["trace", P, "--top", "0", M], want: usage },
  { what: "trace: --top -3", args: ["trace", P, "--top", "-3", M], want: usage },
  { what: "trace: --top 2.5", args: ["trace", P, "--top", "2.5", M], want: usage },
  { what: "trace: --top abc", args: ["trace", P, "--top", "abc", M], want: usage },
  { what: "trace: --top 1e9 (clamped to the vocabulary)", args: ["trace", P, "--top", "1000000000", "--hooks", "hook_embed", M], want: ok },
  { what: "trace: --hooks unknown", args: ["trace", P, "--hooks", "blocks.0.hook_nope", M], want: err("E_UNKNOWN_HOOK") },
  { what: "trace: --hooks layer out of range", args: ["trace", P, "--hooks", "blocks.9.hook_resid_pre", M], want: err("E_LAYER_RANGE") },
  { what: "trace: --hooks empty", args: ["trace", P, "--hooks", "", M], want: usage },
  { what: "trace: --hooks with an empty name", args: ["trace", P, "--hooks", "hook_embed,,", M], want: usage },
  { what: "trace: --model missing directory", args: ["trace", P, "--model", "/nonexistent/tdb-model"], want: err("E_MISSING_FILE") },
  { what: "trace: --model a file", args: ["trace", P, "--model", "@file"], want: err("E_FILE_SYSTEM") },
  { what: "trace: --model empty", args: ["trace", P, "--model", ""], want: err("E_BAD_INPUT") },
  { what: "trace: a flag of another command (--head)", args: ["trace", P, "--head", "0.0", M], want: usage },
  { what: "trace: --no-bos with a one-token prompt", args: ["trace", "Hi", "--no-bos", "--hooks", "hook_embed", M], want: ok },
  // ablate
  { what: "ablate: nothing to ablate", args: ["ablate", P, M], want: usage },
  { what: "ablate: --head malformed", args: ["ablate", P, "--head", "1-3", M], want: usage },
  { what: "ablate: --head without the head", args: ["ablate", P, "--head", "1", M], want: usage },
  { what: "ablate: --head letters", args: ["ablate", P, "--head", "a.b", M], want: usage },
  { what: "ablate: --head layer out of range", args: ["ablate", P, "--head", "9.0", M], want: err("E_LAYER_RANGE") },
  { what: "ablate: --head head out of range", args: ["ablate", P, "--head", "0.9", M], want: err("E_INDEX_RANGE") },
  { what: "ablate: --head negative", args: ["ablate", P, "--head", "-1.0", M], want: usage },
  { what: "ablate: --neuron out of range", args: ["ablate", P, "--neuron", "0.100000", M], want: err("E_INDEX_RANGE") },
  { what: "ablate: --neuron position out of range", args: ["ablate", P, "--neuron", "0.1@99", M], want: err("E_POSITION_RANGE", "E_INDEX_RANGE") },
  { what: "ablate: --neuron malformed position", args: ["ablate", P, "--neuron", "0.1@x", M], want: usage },
  { what: "ablate: --target without --distractor", args: ["ablate", P, "--head", "0.0", "--target", " a", M], want: usage },
  { what: "ablate: target = distractor", args: ["ablate", P, "--head", "0.0", "--target", " a", "--distractor", " a", M], want: err("E_BAD_INPUT") },
  { what: "ablate: a multi-token target", args: ["ablate", P, "--head", "0.0", "--target", " hello there friends", "--distractor", " a", M], want: err("E_NOT_SINGLE_TOKEN") },
  { what: "ablate: --top 0", args: ["ablate", P, "--head", "0.0", "--top", "0", M], want: usage },
  { what: "ablate: --hooks (not taken)", args: ["ablate", P, "--head", "0.0", "--hooks", "all", M], want: usage },
  { what: "ablate: an empty prompt", args: ["ablate", "", "--head", "0.0", M], want: err("E_EMPTY_PROMPT") },
  // attribute
  { what: "attribute: no target", args: ["attribute", P, "--distractor", " a", M], want: usage },
  { what: "attribute: no distractor", args: ["attribute", P, "--target", " a", M], want: usage },
  { what: "attribute: target = distractor", args: ["attribute", P, "--target", " a", "--distractor", " a", M], want: err("E_BAD_INPUT") },
  { what: "attribute: a multi-token distractor", args: ["attribute", P, "--target", " a", "--distractor", " hello there friends", M], want: err("E_NOT_SINGLE_TOKEN") },
  { what: "attribute: an empty target", args: ["attribute", P, "--target", "", "--distractor", " a", M], want: err("E_NOT_SINGLE_TOKEN") },
  { what: "attribute: --top -1", args: ["attribute", P, "--target", " a", "--distractor", " b", "--top", "-1", M], want: usage },
  { what: "attribute: --head (not taken)", args: ["attribute", P, "--target", " a", "--distractor", " b", "--head", "0.0", M], want: usage },
  { what: "attribute: --model missing", args: ["attribute", P, "--target", " a", "--distractor", " b", "--model", "/nonexistent/tdb-model"], want: err("E_MISSING_FILE") },
  // SAE flags (--sae on trace, attribute, ablate; --latent on ablate)
  { what: "trace: --sae a missing directory", args: ["trace", P, "--sae", "/nonexistent/tdb-sae", M], want: err("E_MISSING_FILE") },
  { what: "trace: --sae a corrupt safetensors file", args: ["trace", P, "--sae", "@sae-corrupt", M], want: err("E_SAFETENSORS") },
  { what: "trace: --sae a cfg.json that is not JSON", args: ["trace", P, "--sae", "@sae-badcfg", M], want: err("E_SAE_CONFIG") },
  { what: "trace: --sae whose d_in does not match the hook", args: ["trace", P, "--sae", "@sae-wide", M], want: err("E_SAE_CONFIG") },
  { what: "trace: --sae empty", args: ["trace", P, "--sae", "", M], want: usage },
  { what: "trace: --sae twice on one hook", args: ["trace", P, "--sae", "@sae", "--sae", "@sae", M], want: err("E_BAD_OPTION") },
  { what: "trace: --hooks an SAE hook without --sae", args: ["trace", P, "--hooks", "blocks.0.hook_mlp_out.hook_sae_acts_post", M], want: err("E_BAD_OPTION") },
  { what: "trace: --hooks an unknown SAE hook", args: ["trace", P, "--sae", "@sae", "--hooks", "blocks.0.hook_mlp_out.hook_sae_nope", M], want: err("E_UNKNOWN_HOOK") },
  { what: "trace: --sae, its hooks selected", args: ["trace", P, "--sae", "@sae", "--hooks", "blocks.0.hook_mlp_out.hook_sae_acts_post", M], want: ok },
  { what: "trace: --latent (not taken)", args: ["trace", P, "--latent", "blocks.0.hook_mlp_out:1", M], want: usage },
  { what: "attribute: --sae a missing directory", args: ["attribute", P, "--target", " a", "--distractor", " b", "--sae", "/nonexistent/tdb-sae", M], want: err("E_MISSING_FILE") },
  { what: "attribute: --sae a corrupt safetensors file", args: ["attribute", P, "--target", " a", "--distractor", " b", "--sae", "@sae-corrupt", M], want: err("E_SAFETENSORS") },
  { what: "attribute: --sae whose d_in does not match the hook", args: ["attribute", P, "--target", " a", "--distractor", " b", "--sae", "@sae-wide", M], want: err("E_SAE_CONFIG") },
  { what: "attribute: --sae", args: ["attribute", P, "--target", " a", "--distractor", " b", "--sae", "@sae", M], want: ok },
  { what: "ablate: --latent an unknown latent index", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.0.hook_mlp_out:8", M], want: err("E_INDEX_RANGE") },
  { what: "ablate: --latent a hook no --sae reads", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.1.hook_mlp_out:1", M], want: err("E_BAD_OPTION") },
  { what: "ablate: --latent an unknown hook", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.0.hook_nope:1", M], want: err("E_UNKNOWN_HOOK") },
  { what: "ablate: --latent a position out of range", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.0.hook_mlp_out:1@99", M], want: err("E_POSITION_RANGE", "E_INDEX_RANGE") },
  { what: "ablate: --latent malformed", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.0.hook_mlp_out.1", M], want: usage },
  { what: "ablate: --latent without --sae", args: ["ablate", P, "--latent", "blocks.0.hook_mlp_out:1", M], want: usage },
  { what: "ablate: --sae without --latent", args: ["ablate", P, "--head", "0.0", "--sae", "@sae", M], want: usage },
  { what: "ablate: --latent with an SAE whose d_in does not match", args: ["ablate", P, "--sae", "@sae-wide", "--latent", "blocks.0.hook_mlp_out:1", M], want: err("E_SAE_CONFIG") },
  { what: "ablate: --latent", args: ["ablate", P, "--sae", "@sae", "--latent", "blocks.0.hook_mlp_out:1@-1", M], want: ok },
  // check
  { what: "check: no spec", args: ["check", M], want: usage },
  { what: "check: two specs", args: ["check", "a.yaml", "b.yaml", M], want: usage },
  { what: "check: a spec file that does not exist", args: ["check", "/nonexistent/spec.yaml", M], want: { exit: 2, code: "E_FILE_SYSTEM" } },
  { what: "check: a spec that is not a spec", args: ["check", "@badspec", M], want: { exit: 2, code: "E_BAD_SPEC" } },
  // train
  { what: "train: no --config", args: ["train"], want: usage },
  { what: "train: a config file that does not exist", args: ["train", "--config", "/nonexistent/run.json"], want: err("E_FILE_SYSTEM", "E_MISSING_FILE", "E_BAD_INPUT") },
  // harvest
  { what: "harvest: no --out", args: ["harvest", "--layers", "0", M], want: usage },
  { what: "harvest: --neurons malformed", args: ["harvest", "--out", "@out-records", "--neurons", "0.5", M], want: usage },
  { what: "harvest: --layers out of range", args: ["harvest", "--out", "@out-records", "--layers", "9", M], want: err("E_LAYER_RANGE") },
  { what: "harvest: --neurons index out of range", args: ["harvest", "--out", "@out-records", "--neurons", "0:100000", M], want: err("E_INDEX_RANGE") },
  { what: "harvest: --corpus a missing file", args: ["harvest", "--out", "@out-records", "--corpus", "/nonexistent/corpus.txt", M], want: err("E_FILE_SYSTEM", "E_MISSING_FILE") },
  { what: "harvest: --out a file", args: ["harvest", "--out", "@file", "--corpus", "@file", "--neurons", "0:1", M], want: err("E_FILE_SYSTEM") },
  // explain
  { what: "explain: no node", args: ["explain", "--offline", M], want: usage },
  { what: "explain: --node malformed", args: ["explain", "--node", "neuron.0.1", "--offline", M], want: usage },
  { what: "explain: neither --offline nor an LLM", args: ["explain", "--node", "mlp.0.1", "--llm-base-url", "http://127.0.0.1:9/v1", M], want: usage },
  { what: "explain: --records a missing directory", args: ["explain", "--node", "mlp.0.1", "--offline", "--records", "/nonexistent/tdb-records", M], want: err("E_MISSING_FILE") },
  { what: "explain: --records a file", args: ["explain", "--node", "mlp.0.1", "--offline", "--records", "@file", M], want: err("E_MISSING_FILE", "E_FILE_SYSTEM") },
  { what: "explain: an unknown node (layer)", args: ["explain", "--node", "mlp.9.0", "--offline", "--corpus", "@file", M], want: err("E_LAYER_RANGE") },
  { what: "explain: an unknown node (index)", args: ["explain", "--layer", "0", "--neuron", "100000", "--offline", "--corpus", "@file", M], want: err("E_INDEX_RANGE") },
  { what: "explain: an SAE latent without --sae", args: ["explain", "--node", "sae.blocks.0.hook_mlp_out.1", "--offline", "--corpus", "@file", M], want: err("E_UNKNOWN_HOOK") },
  { what: "explain: --llm-base-url not http", args: ["explain", "--node", "mlp.0.1", "--llm-base-url", "ftp://example.com/v1", "--llm-model", "m", M], want: err("E_LLM_CONFIG") },
  { what: "explain: --llm-base-url not a URL", args: ["explain", "--node", "mlp.0.1", "--llm-base-url", "not a url", "--llm-model", "m", M], want: err("E_LLM_CONFIG") },
];

/** A stack frame line as Node prints them ("    at f (file:1:2)"). */
const STACK = /^\s+at .+[:(]/m;

function classify(c: CliCase, json: boolean, r: CliRun): { outcome: Outcome; detail: string } {
  if (r.code !== 0 && r.code !== 1 && r.code !== 2) return { outcome: "crash", detail: `exit ${r.code}: ${r.stderr.slice(0, 300)}` };
  if (STACK.test(r.stderr)) return { outcome: "untyped", detail: `stack trace on stderr: ${r.stderr.slice(0, 300)}` };
  if (r.code !== c.want.exit) {
    const kind = c.want.exit === 0 ? "wrong-code" : r.code === 0 ? "silent" : "wrong-code";
    return { outcome: kind, detail: `exit ${r.code}, expected ${c.want.exit}: ${(r.stderr || r.stdout).slice(0, 300)}` };
  }
  if (json) {
    const text = r.stdout.trim();
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return { outcome: "untyped", detail: `--json printed no single JSON object: ${text.slice(0, 200)}` };
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) return { outcome: "untyped", detail: "--json printed something else than an object" };
    const e = (v as { error?: { code?: string; message?: string } }).error;
    if (c.want.exit === 0) return e ? { outcome: "wrong-code", detail: `error ${e.code}` } : { outcome: "fine", detail: "" };
    if (!e || typeof e.message !== "string" || !e.message) return { outcome: "incomplete", detail: `no error object with a message: ${text.slice(0, 200)}` };
    const want = c.want.exit === 2 ? [c.want.code ?? "E_USAGE"] : [c.want.code].flat();
    if (!want.includes(e.code ?? "")) return { outcome: "wrong-code", detail: `${e.code} (${e.message}); expected ${want.join("|")}` };
    return { outcome: "typed", detail: e.code! };
  }
  if (c.want.exit === 0) return r.stdout.length > 0 ? { outcome: "fine", detail: "" } : { outcome: "silent", detail: "exit 0 with no output" };
  if (r.stdout !== "") return { outcome: "incomplete", detail: `an error printed on stdout: ${r.stdout.slice(0, 200)}` };
  if (!/^tdb: /.test(r.stderr)) return { outcome: "incomplete", detail: `error message not in the tdb format: ${r.stderr.slice(0, 200)}` };
  if (c.want.exit === 1 && ![c.want.code].flat().some((code) => r.stderr.includes(code))) return { outcome: "wrong-code", detail: `message names no ${[c.want.code].flat().join("|")}: ${r.stderr.slice(0, 200)}` };
  return { outcome: "typed", detail: "" };
}

describe.concurrent("bad-input campaign: tdb command line", () => {
  for (const c of CASES) {
    for (const json of [false, true]) {
      it(`${c.what}${json ? " --json" : ""}`, async () => {
        const args = c.args.flatMap((a) =>
          a === M ? ["--model", tm.dir] : a === "@file" ? [join(tm.dir, "not-a-dir.txt")] : a === "@badspec" ? [join(tm.dir, "bad-spec.yaml")] : a.startsWith("@sae") || a.startsWith("@out") ? [join(tm.dir, a.slice(1))] : [a],
        );
        const r = await tdb(json ? [...args, "--json"] : args);
        const { outcome, detail } = classify(c, json, r);
        outcomes.push({ entry: `cli ${c.args[0] ?? "(none)"}`, what: `${c.what}${json ? " --json" : ""}`, outcome, detail });
        expect(outcome === "typed" || outcome === "fine", `${c.what} (--json ${json}): ${outcome}: ${detail}`).toBe(true);
      }, 60_000);
    }
  }
});
