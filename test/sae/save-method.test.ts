/**
 * `sae.save(dir)` without the Node writer imported first: the method loads it on first use, and
 * the directory it writes loads back as the same SAE, with the same bytes as `saeFiles`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { Sae } from "../../src/sae/sae.js";
import { loadSae, saeFiles } from "../../src/sae/saelens.js";

const root = mkdtempSync(join(tmpdir(), "tdb-sae-save-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it("writes cfg.json and sae_weights.safetensors that load back identically", async () => {
  const v = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.cos(i * s)));
  const sae = Sae.create(
    { architecture: "gated", dIn: 3, dSae: 5, hookName: "blocks.0.hook_resid_pre", hookLayer: 0 },
    { W_enc: v(15, 1), W_dec: v(15, 2), b_dec: v(3, 3), b_gate: v(5, 4), r_mag: v(5, 5), b_mag: v(5, 6) },
  );
  await sae.save(join(root, "g"));
  const files = saeFiles(sae);
  for (const f of ["cfg.json", "sae_weights.safetensors"] as const) expect(readFileSync(join(root, "g", f)).equals(Buffer.from(files[f]))).toBe(true);
  const back = await loadSae(join(root, "g"));
  expect(back.config).toMatchObject({ architecture: "gated", dIn: 3, dSae: 5, hookName: "blocks.0.hook_resid_pre", hookLayer: 0 });
  for (const name of ["W_enc", "W_dec", "b_dec", "b_gate", "r_mag", "b_mag"] as const) expect([...back.weights[name]!]).toEqual([...sae.weights[name]!]);
});
