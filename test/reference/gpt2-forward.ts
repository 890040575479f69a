/**
 * A plain float64 GPT-2 forward pass straight from the weights map (no ONNX), returning the
 * logits and every intermediate under its TransformerLens hook name. Test oracle for the
 * generated fixture graphs and for the hook machinery.
 *
 * @module
 */
import type { Gpt2Config } from "../../src/synthetic/config.js";
import type { Gpt2Weights } from "../../src/synthetic/weights.js";

/** A float64 tensor, row-major. */
export interface RefTensor {
  data: Float64Array;
  dims: number[];
}

/** Result of {@link gpt2Reference}. */
export interface RefResult {
  /** `[B, S, vocab]`. */
  logits: RefTensor;
  /**
   * Intermediates by TransformerLens name: `hook_embed`, `hook_pos_embed` `[B,S,d]`,
   * `blocks.L.hook_resid_pre|mid|post`, `hook_attn_out`, `hook_mlp_out` `[B,S,d]`,
   * `blocks.L.attn.hook_q|k|v|z` `[B,S,H,dh]`, `hook_attn_scores`, `hook_pattern` `[B,H,S,S]`,
   * `hook_result` `[B,S,H,d]`, `blocks.L.mlp.hook_pre|hook_post` `[B,S,d_mlp]`,
   * `blocks.L.ln1|ln2.hook_scale`, `ln_final.hook_scale` `[B,S,1]`. Attention-only configs
   * (`c.attn_only`) have no `hook_resid_mid`, `ln2.hook_scale`, MLP hooks or `hook_mlp_out`.
   */
  cache: Map<string, RefTensor>;
}

/** Options of {@link gpt2Reference}. */
export interface RefOptions {
  /**
   * Vectors added to the residual stream entering block L (`blocks.L.hook_resid_pre`), at every
   * position of every row: steering, computed independently of the graph's edit points.
   */
  addToResidPre?: ReadonlyMap<number, ArrayLike<number>>;
  /** Residual-stream vectors entering block L replaced at one position of every row (activation patching). */
  replaceResidPre?: ReadonlyMap<number, { position: number; vector: ArrayLike<number> }>;
  /**
   * Called with `hook_embed`, each `blocks.L.attn.hook_pattern` and each `blocks.L.mlp.hook_post`
   * right after they are computed and before anything reads them: mutating the tensor edits the
   * forward pass (finite differences of attributions).
   */
  onHook?: (name: string, t: RefTensor) => void;
  /** Component of the residual stream entering block L along a direction set to `value` (0 ablates it), at every position or only `positions`. */
  projectResidPre?: ReadonlyMap<number, { direction: ArrayLike<number>; value: number; positions?: number[] }>;
  /** Use these final LayerNorm scales (one per row x position) instead of computing them (a frozen scale). */
  lnFinalScale?: ArrayLike<number>;
}

/** The mask value of the export: float32's most negative finite number. */
export const REF_MASK_VALUE = -3.4028234663852886e38;

function tensor(dims: number[]): RefTensor {
  return { data: new Float64Array(dims.reduce((a, b) => a * b, 1)), dims };
}

/**
 * Runs GPT-2 in float64.
 *
 * @param tokens `[B][S]` token ids (all rows the same length; pad as you like).
 * @param attentionMask `[B][S]` of 0/1; default all ones. Positions are 0..S-1 regardless, as in the export.
 */
export function gpt2Reference(c: Gpt2Config, weights: Gpt2Weights, tokens: number[][], attentionMask?: number[][], opts: RefOptions = {}): RefResult {
  const W = (name: string): Float32Array => {
    const t = weights.get(name);
    if (!t) throw new Error(`missing weight ${name}`);
    return t.data;
  };
  const B = tokens.length;
  const S = tokens[0]?.length ?? 0;
  const d = c.n_embd;
  const H = c.n_head;
  const dh = d / H;
  const dm = c.n_inner;
  const V = c.vocab_size;
  const eps = c.layer_norm_epsilon;
  const mask = attentionMask ?? tokens.map((r) => r.map(() => 1));
  const cache = new Map<string, RefTensor>();
  const BS = B * S;

  const embed = tensor([B, S, d]);
  const pos = tensor([B, S, d]);
  const wte = W("transformer.wte.weight");
  const wpe = W("transformer.wpe.weight");
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const tok = tokens[b]![s]!;
      for (let i = 0; i < d; i++) {
        embed.data[(b * S + s) * d + i] = wte[tok * d + i]!;
        pos.data[(b * S + s) * d + i] = wpe[s * d + i]!;
      }
    }
  }
  opts.onHook?.("hook_embed", embed);
  cache.set("hook_embed", embed);
  cache.set("hook_pos_embed", pos);
  let resid = tensor([B, S, d]);
  for (let i = 0; i < resid.data.length; i++) resid.data[i] = embed.data[i]! + pos.data[i]!;

  const layerNorm = (x: RefTensor, prefix: string, scaleName: string, fixedScale?: ArrayLike<number>): RefTensor => {
    const w = W(`${prefix}.weight`);
    const bias = W(`${prefix}.bias`);
    const out = tensor([B, S, d]);
    const scale = tensor([B, S, 1]);
    for (let r = 0; r < BS; r++) {
      let mean = 0;
      for (let i = 0; i < d; i++) mean += x.data[r * d + i]!;
      mean /= d;
      let v = 0;
      for (let i = 0; i < d; i++) v += (x.data[r * d + i]! - mean) ** 2;
      v /= d;
      const sc = fixedScale ? fixedScale[r]! : Math.sqrt(v + eps);
      scale.data[r] = sc;
      for (let i = 0; i < d; i++) out.data[r * d + i] = ((x.data[r * d + i]! - mean) / sc) * w[i]! + bias[i]!;
    }
    cache.set(scaleName, scale);
    return out;
  };

  /** y[r, :] = x[r, :] @ w [nin, nout] + bias. */
  const linear = (x: Float64Array, rows: number, nin: number, w: Float32Array, bias: Float32Array | undefined, nout: number): Float64Array => {
    const y = new Float64Array(rows * nout);
    for (let r = 0; r < rows; r++) {
      const yo = r * nout;
      if (bias) for (let o = 0; o < nout; o++) y[yo + o] = bias[o]!;
      for (let i = 0; i < nin; i++) {
        const xv = x[r * nin + i]!;
        const wo = i * nout;
        for (let o = 0; o < nout; o++) y[yo + o]! += xv * w[wo + o]!;
      }
    }
    return y;
  };

  for (let l = 0; l < c.n_layer; l++) {
    const p = `transformer.h.${l}`;
    const h = (n: string) => `blocks.${l}.${n}`;
    const steer = opts.addToResidPre?.get(l);
    if (steer) resid = { data: resid.data.map((x, i) => x + steer[i % d]!), dims: resid.dims };
    const proj = opts.projectResidPre?.get(l);
    if (proj) {
      const norm = Math.sqrt(Array.from(proj.direction).reduce((a, x) => a + x * x, 0));
      const u = Array.from(proj.direction, (x) => x / norm);
      resid = { data: resid.data.slice(), dims: resid.dims };
      for (let b = 0; b < B; b++) {
        for (let s = 0; s < S; s++) {
          if (proj.positions && !proj.positions.includes(s)) continue;
          const o = (b * S + s) * d;
          let dot = 0;
          for (let i = 0; i < d; i++) dot += resid.data[o + i]! * u[i]!;
          for (let i = 0; i < d; i++) resid.data[o + i]! += (proj.value - dot) * u[i]!;
        }
      }
    }
    const patch = opts.replaceResidPre?.get(l);
    if (patch) {
      resid = { data: resid.data.slice(), dims: resid.dims };
      for (let b = 0; b < B; b++) for (let i = 0; i < d; i++) resid.data[(b * S + patch.position) * d + i] = patch.vector[i]!;
    }
    cache.set(h("hook_resid_pre"), resid);
    const x1 = layerNorm(resid, `${p}.ln_1`, h("ln1.hook_scale"));
    const qkv = linear(x1.data, BS, d, W(`${p}.attn.c_attn.weight`), W(`${p}.attn.c_attn.bias`), 3 * d);
    const q = tensor([B, S, H, dh]);
    const k = tensor([B, S, H, dh]);
    const v = tensor([B, S, H, dh]);
    for (let r = 0; r < BS; r++) {
      for (let i = 0; i < d; i++) {
        q.data[r * d + i] = qkv[r * 3 * d + i]!;
        k.data[r * d + i] = qkv[r * 3 * d + d + i]!;
        v.data[r * d + i] = qkv[r * 3 * d + 2 * d + i]!;
      }
    }
    const scores = tensor([B, H, S, S]);
    const pattern = tensor([B, H, S, S]);
    const z = tensor([B, S, H, dh]);
    const sq = Math.sqrt(dh);
    for (let b = 0; b < B; b++) {
      for (let hh = 0; hh < H; hh++) {
        for (let i = 0; i < S; i++) {
          const row = ((b * H + hh) * S + i) * S;
          let max = -Infinity;
          for (let j = 0; j < S; j++) {
            let s = 0;
            for (let e = 0; e < dh; e++) s += q.data[((b * S + i) * H + hh) * dh + e]! * k.data[((b * S + j) * H + hh) * dh + e]!;
            s /= sq;
            if (j > i) s = REF_MASK_VALUE;
            s += (1 - mask[b]![j]!) * REF_MASK_VALUE;
            scores.data[row + j] = s;
            if (s > max) max = s;
          }
          let sum = 0;
          for (let j = 0; j < S; j++) {
            const e = Math.exp(scores.data[row + j]! - max);
            pattern.data[row + j] = e;
            sum += e;
          }
          for (let j = 0; j < S; j++) pattern.data[row + j]! /= sum;
        }
      }
    }
    opts.onHook?.(h("attn.hook_pattern"), pattern);
    for (let b = 0; b < B; b++) {
      for (let hh = 0; hh < H; hh++) {
        for (let i = 0; i < S; i++) {
          const row = ((b * H + hh) * S + i) * S;
          for (let e = 0; e < dh; e++) {
            let acc = 0;
            for (let j = 0; j < S; j++) acc += pattern.data[row + j]! * v.data[((b * S + j) * H + hh) * dh + e]!;
            z.data[((b * S + i) * H + hh) * dh + e] = acc;
          }
        }
      }
    }
    cache.set(h("attn.hook_q"), q);
    cache.set(h("attn.hook_k"), k);
    cache.set(h("attn.hook_v"), v);
    cache.set(h("attn.hook_attn_scores"), scores);
    cache.set(h("attn.hook_pattern"), pattern);
    cache.set(h("attn.hook_z"), z);
    const wO = W(`${p}.attn.c_proj.weight`);
    const result = tensor([B, S, H, d]);
    for (let r = 0; r < BS; r++) {
      for (let hh = 0; hh < H; hh++) {
        const o = (r * H + hh) * d;
        for (let e = 0; e < dh; e++) {
          const zv = z.data[(r * H + hh) * dh + e]!;
          const wr = (hh * dh + e) * d;
          for (let i = 0; i < d; i++) result.data[o + i]! += zv * wO[wr + i]!;
        }
      }
    }
    cache.set(h("attn.hook_result"), result);
    const attnOut: RefTensor = { data: linear(z.data, BS, d, wO, W(`${p}.attn.c_proj.bias`), d), dims: [B, S, d] };
    cache.set(h("hook_attn_out"), attnOut);
    const mid = tensor([B, S, d]);
    for (let i = 0; i < mid.data.length; i++) mid.data[i] = resid.data[i]! + attnOut.data[i]!;
    if (c.attn_only) {
      // TransformerLens attn_only: resid_post = resid_pre + attn_out; no resid_mid, ln2 or MLP.
      cache.set(h("hook_resid_post"), mid);
      resid = mid;
      continue;
    }
    cache.set(h("hook_resid_mid"), mid);
    const x2 = layerNorm(mid, `${p}.ln_2`, h("ln2.hook_scale"));
    const pre: RefTensor = { data: linear(x2.data, BS, d, W(`${p}.mlp.c_fc.weight`), W(`${p}.mlp.c_fc.bias`), dm), dims: [B, S, dm] };
    const post = tensor([B, S, dm]);
    const k0 = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < pre.data.length; i++) {
      const x = pre.data[i]!;
      post.data[i] = 0.5 * x * (1 + Math.tanh(k0 * (x + 0.044715 * x * x * x)));
    }
    opts.onHook?.(h("mlp.hook_post"), post);
    cache.set(h("mlp.hook_pre"), pre);
    cache.set(h("mlp.hook_post"), post);
    const mlpOut: RefTensor = { data: linear(post.data, BS, dm, W(`${p}.mlp.c_proj.weight`), W(`${p}.mlp.c_proj.bias`), d), dims: [B, S, d] };
    cache.set(h("hook_mlp_out"), mlpOut);
    const next = tensor([B, S, d]);
    for (let i = 0; i < next.data.length; i++) next.data[i] = mid.data[i]! + mlpOut.data[i]!;
    cache.set(h("hook_resid_post"), next);
    resid = next;
  }
  const xf = layerNorm(resid, "transformer.ln_f", "ln_final.hook_scale", opts.lnFinalScale);
  // Unembed with wte^T: logits[r, t] = sum_i xf[r, i] * wte[t, i].
  const logits = tensor([B, S, V]);
  for (let r = 0; r < BS; r++) {
    for (let t = 0; t < V; t++) {
      let acc = 0;
      for (let i = 0; i < d; i++) acc += xf.data[r * d + i]! * wte[t * d + i]!;
      logits.data[r * V + t] = acc;
    }
  }
  return { logits, cache };
}
