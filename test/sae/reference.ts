/**
 * SAELens's SAE forward in float64, row by row, written from its definitions (not from
 * src/sae/): the independent reference of the SAE tests.
 */
import type { SaeConfig, SaeNormalization, SaeWeights } from "../../src/sae/sae.js";

export interface Ref {
  latents: number[][];
  recons: number[][];
  pre: number[][];
}

/** SAELens's forward in float64, row by row, written from its definitions. */
export function reference(cfg: SaeConfig, w: SaeWeights, x: Float32Array): Ref {
  const rows = x.length / cfg.dIn;
  const norm: SaeNormalization = cfg.normalizeActivations ?? "none";
  const out: Ref = { latents: [], recons: [], pre: [] };
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cfg.dIn, (r + 1) * cfg.dIn));
    // normalisation in
    let xin = row;
    let undo = (v: number[]) => v;
    if (norm === "expected_average_only_in") {
      const s = cfg.normScalingFactor ?? 1;
      xin = row.map((v) => v * s);
      undo = (v) => v.map((y) => y / s);
    } else if (norm === "constant_norm_rescale") {
      const c = Math.sqrt(cfg.dIn) / Math.hypot(...row);
      xin = row.map((v) => v * c);
      undo = (v) => v.map((y) => y / c);
    } else if (norm === "layer_norm") {
      const mu = row.reduce((a, b) => a + b, 0) / cfg.dIn;
      const centred = row.map((v) => v - mu);
      const std = Math.sqrt(centred.reduce((a, b) => a + b * b, 0) / (cfg.dIn - 1));
      xin = centred.map((v) => v / (std + 1e-5));
      undo = (v) => v.map((y) => y * std + mu);
    }
    const apply = cfg.applyBDecToInput ?? true;
    const sin = xin.map((v, i) => v - (apply ? w.b_dec[i]! : 0));
    const affine = (W: (i: number, j: number) => number, b: (j: number) => number) =>
      Array.from({ length: cfg.dSae }, (_, j) => {
        let s = b(j);
        for (let i = 0; i < cfg.dIn; i++) s += sin[i]! * W(i, j);
        return s;
      });
    const enc = (i: number, j: number) => w.W_enc[i * cfg.dSae + j]!;
    let z: number[];
    let pre: number[];
    if (cfg.architecture === "gated") {
      const gate = affine(enc, (j) => w.b_gate![j]!);
      pre = affine((i, j) => enc(i, j) * Math.exp(w.r_mag![j]!), (j) => w.b_mag![j]!);
      z = pre.map((m, j) => (gate[j]! > 0 ? Math.max(m, 0) : 0));
    } else {
      pre = affine(enc, (j) => w.b_enc![j]!);
      if (cfg.architecture === "standard") z = pre.map((v) => Math.max(v, 0));
      else if (cfg.architecture === "jumprelu") z = pre.map((v, j) => (v > w.threshold![j]! ? Math.max(v, 0) : 0));
      else {
        // topk: keep j when fewer than k values rank above it (greater, or equal at a lower index)
        const k = cfg.k!;
        z = pre.map((v, j) => {
          const above = pre.filter((u, i) => u > v || (u === v && i < j)).length;
          return above < k ? Math.max(v, 0) : 0;
        });
      }
    }
    const dec = Array.from({ length: cfg.dIn }, (_, i) => {
      let s = w.b_dec[i]!;
      for (let j = 0; j < cfg.dSae; j++) s += z[j]! * w.W_dec[j * cfg.dIn + i]!;
      return s;
    });
    out.pre.push(pre);
    out.latents.push(z);
    out.recons.push(undo(dec));
  }
  return out;
}

/** Largest |actual - expected| / (1 + |expected|). */
export function worstError(actual: Float32Array, expected: number[][]): number {
  const flat = expected.flat();
  if (actual.length !== flat.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < flat.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - flat[i]!) / (1 + Math.abs(flat[i]!)));
  return worst;
}
