/**
 * `tdb attribute --explanations`: every MLP neuron row carries the explanation and score shipped
 * for it (read here straight from the shipped file), the text table shows them, and a bad source
 * is a usage error (empty) or a typed error (nothing there).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { tdb } from "./_run.js";

const SHIPPED = resolve(import.meta.dirname, "../../models/brown-small/explanations/mlp.json");
const ARGS = ["attribute", "The cat sat on the", "--target", " mat", "--distractor", " floor", "--model", "tdb:brown-small", "--top", "12"];

interface Row {
  id: string;
  type: string;
  layer: number;
  index?: number;
  explanation?: string | null;
  explanationScore?: number | null;
}

describe("tdb attribute --explanations", () => {
  it("rows of MLP neurons carry the shipped explanation and score", async () => {
    const shipped = new Map<string, { explanation: string; score: number }>(
      (JSON.parse(readFileSync(SHIPPED, "utf8")) as { nodes: { id: string; explanation: string; score: number }[] }).nodes.map((n) => [n.id, n]),
    );
    const r = await tdb([...ARGS, "--explanations", "tdb:brown-small", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { nodes: Row[] };
    const neurons = out.nodes.filter((n) => n.type === "mlp_neuron");
    expect(neurons.length).toBeGreaterThan(0);
    for (const n of neurons) {
      const want = shipped.get(`mlp.${n.layer}.${n.index}`);
      expect(want, n.id).toBeDefined();
      expect(n.explanation).toBe(want!.explanation);
      expect(n.explanationScore).toBeCloseTo(want!.score, 5);
    }
    // Without the flag, rows have no explanation fields (the JSON schema is unchanged).
    const plain = JSON.parse((await tdb([...ARGS, "--json"])).stdout) as { nodes: Row[] };
    expect(plain.nodes.every((n) => !("explanation" in n))).toBe(true);
  }, 120_000);

  it("the text table shows the explanation next to the node", async () => {
    const r = await tdb([...ARGS, "--explanations", "tdb:brown-small"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("explanation (score)");
    const line = r.stdout.split("\n").find((l) => /^mlp\./.test(l));
    expect(line).toMatch(/the token|\(\d\.\d\d\)/);
  }, 120_000);

  it("an empty source is a usage error; a directory without explanations a typed error", async () => {
    const empty = await tdb([...ARGS, "--explanations", ""]);
    expect(empty.code).toBe(2);
    const dir = await mkdtemp(join(tmpdir(), "tdb-noexpl-"));
    try {
      const r = await tdb([...ARGS, "--explanations", dir, "--json"]);
      expect(r.code, r.stdout).toBe(1);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe("E_MISSING_FILE");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
