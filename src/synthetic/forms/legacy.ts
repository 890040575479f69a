/**
 * The legacy form of a generated GPT-2 graph: what `torch.onnx` 1.5/1.6 (opset 11) wrote for Hugging
 * Face transformers 2.x/3.x `GPT2LMHeadModel`, as in onnxruntime's GPT-2 test models of that time.
 * Same function and weights as `buildGpt2Graph`, other nodes:
 *
 * - opset 11: `Split` with a `split` attribute, `Unsqueeze`/`Squeeze`/`ReduceMean` with `axes`
 *   attributes, `Softmax(axis=3)`;
 * - names without module scopes (nodes `<Op>_<n>`, values numbers; see {@link unscopedNames});
 * - the old `Attention`: keys split with `permute(0, 2, 3, 1)` (already transposed), scores divided
 *   by `sqrt(d_head)` (a constant, or computed from the values' shape), the causal mask sliced from
 *   the `bias` buffer by the scores' shape (`bias[:, :, ns-nd:ns, :ns]`) and applied as
 *   `w * b - 1e4 * (1 - b)` (float buffer, `mask: "mul-sub"`) or `where(b, w, masked_bias)` with
 *   `masked_bias = -1e4` (uint8 buffer, `mask: "where"`), the padding mask added as
 *   `(1 - attention_mask) * -10000`;
 * - `token_type_embeds = 0` added to the embedding sum (`Add(x, 0)`, as tracing records it);
 * - with `past` (default): inputs `past_0..past_{L-1}` `[2, batch, head, past, d_head]` read with
 *   `Gather` or `Split` + `Squeeze` (the key transposed back), position ids starting at the past length, and outputs
 *   `present_N = stack(key, value)`;
 * - Conv1D as `Gemm` (`torch.addmm`) or `MatMul` + `Add`;
 * - no `attention_mask` input when `attentionMask: false`; a `position_ids` input with `positionIds`;
 *   initializers listed as graph inputs too with `initializersAsInputs`;
 * - the final hidden states reshaped to `Shape(input_ids) + (d_model,)`, the unembedding a
 *   transposed copy of `wte` (constant folding of the tied `lm_head`).
 *
 * @module
 */
import { TensorProto_DataType, type ModelProto } from "onnx-buf";
import { TdbError } from "../../base/errors.js";
import { GraphBuilder, attr, valueInfo, type Dim } from "../../onnx/builder.js";
import type { ElemType } from "../../onnx/tensor.js";
import { headDim, type Gpt2Config } from "../config.js";
import { unembedInitializerName, causalMaskName } from "../gpt2-graph.js";
import type { Gpt2Weights } from "../weights.js";
import { unscopedNames } from "./unscoped.js";

/** How the causal mask is applied (see the module comment). */
export type LegacyMaskStyle = "mul-sub" | "where";

/** Options of {@link legacyGpt2Graph}. */
export interface LegacyOptions {
  /** Causal masking: `"mul-sub"` (transformers 2.x, default) or `"where"` (3.x, `masked_bias`). */
  mask?: LegacyMaskStyle;
  /** Inputs `past_N`, outputs `present_N` (onnxruntime's GPT-2 test models). Default true. */
  past?: boolean;
  /** An `attention_mask` input `[batch, past + seq]` (int64). Default true. */
  attentionMask?: boolean;
  /** The `sqrt(d_head)` divisor: a constant (traced `float(v.size(-1))`, default) or computed from `Shape(v)`. */
  scale?: "constant" | "shape";
  /** Conv1D as `Gemm` (`torch.addmm`, default) or `MatMul` + bias `Add`. */
  conv1d?: "gemm" | "matmul";
  /**
   * How each `past_N` is taken apart: `"gather"` (`layer_past[0]`, `layer_past[1]`, default) or
   * `"split"` (`key, value = layer_past`: `Split` + `Squeeze`).
   */
  pastUnstack?: "gather" | "split";
  /** A `position_ids` input `[batch, seq]` (int64), as onnxruntime's GPT-2 helper exported it. Default false. */
  positionIds?: boolean;
  /**
   * List every initializer as a graph input too (`keep_initializers_as_inputs=True`, the default
   * of older `torch.onnx`). Default false.
   */
  initializersAsInputs?: boolean;
  /** Number the parameter initializers too (`UnscopedOptions.numericInitializers`). Default false. */
  numericInitializers?: boolean;
}

const i64 = (...v: number[]) => new BigInt64Array(v.map((x) => BigInt(x)));
const f32 = (...v: number[]) => new Float32Array(v);
const FLOAT = TensorProto_DataType.FLOAT;

/** Writes the legacy body; scopes only help readability before the names are dropped. */
class LegacyEmitter {
  constructor(
    private readonly b: GraphBuilder,
    private readonly c: Gpt2Config,
    private readonly o: Required<Omit<LegacyOptions, "numericInitializers" | "initializersAsInputs">>,
  ) {}

  private k(s: string, data: BigInt64Array | Float32Array, dims: number[] = [data.length]): string {
    return this.b.constant(s, data, dims);
  }

  /** `x.size(dim)`: Shape -> Gather(scalar). */
  private size(s: string, x: string, dim: number): string {
    return this.b.op("Gather", [this.b.op("Shape", [x], { scope: s }), this.k(s, i64(dim), [])], { scope: s, attrs: { axis: 0 } });
  }

  private unsq(s: string, x: string, axis = 0): string {
    return this.b.op("Unsqueeze", [x], { scope: s, attrs: { axes: [axis] } });
  }

  private layerNorm(s: string, x: string, prefix: string): string {
    const b = this.b;
    const mean = b.op("ReduceMean", [x], { scope: s, attrs: { axes: [-1], keepdims: 1 } });
    const d = b.op("Sub", [x, mean], { scope: s });
    const v = b.op("ReduceMean", [b.op("Pow", [d, this.k(s, f32(2), [])], { scope: s })], { scope: s, attrs: { axes: [-1], keepdims: 1 } });
    const std = b.op("Sqrt", [b.op("Add", [v, this.k(s, f32(this.c.layer_norm_epsilon), [])], { scope: s })], { scope: s });
    return b.op("Add", [b.op("Mul", [b.op("Div", [d, std], { scope: s }), `${prefix}.weight`], { scope: s }), `${prefix}.bias`], { scope: s });
  }

  /** Conv1D: `addmm(bias, x.view(-1, x.size(-1)), W).view(x.size()[:-1] + (nf,))`. */
  private conv1d(s: string, x: string, prefix: string, nf: number): string {
    const b = this.b;
    const d0 = this.size(s, x, 0);
    const d1 = this.size(s, x, 1);
    const flat = b.op("Reshape", [x, b.op("Concat", [this.k(s, i64(-1)), this.unsq(s, this.size(s, x, 2))], { scope: s, attrs: { axis: 0 } })], { scope: s });
    const y =
      this.o.conv1d === "gemm"
        ? b.op("Gemm", [flat, `${prefix}.weight`, `${prefix}.bias`], { scope: s, attrs: { alpha: attr.float(1), beta: attr.float(1) } })
        : b.op("Add", [b.op("MatMul", [flat, `${prefix}.weight`], { scope: s }), `${prefix}.bias`], { scope: s });
    const shape = b.op("Concat", [this.unsq(s, d0), this.unsq(s, d1), this.k(s, i64(nf))], { scope: s, attrs: { axis: 0 } });
    return b.op("Reshape", [y, shape], { scope: s });
  }

  /** `split_heads`: view to `[B, S, H, x.size(-1) // H]`, then permute. */
  private splitHeads(s: string, x: string, perm: number[]): string {
    const b = this.b;
    const dh = b.op("Div", [this.size(s, x, 2), this.k(s, i64(this.c.n_head), [])], { scope: s });
    const shape = b.op("Concat", [this.unsq(s, this.size(s, x, 0)), this.unsq(s, this.size(s, x, 1)), this.k(s, i64(this.c.n_head)), this.unsq(s, dh)], { scope: s, attrs: { axis: 0 } });
    return b.op("Transpose", [b.op("Reshape", [x, shape], { scope: s })], { scope: s, attrs: { perm } });
  }

  private block(l: number, x: string, padBias: string | undefined): string {
    const b = this.b;
    const d = this.c.n_embd;
    const blk = `/transformer/h.${l}`;
    const p = `transformer.h.${l}`;
    const a = `${blk}/attn`;
    const qkv = this.conv1d(`${a}/c_attn`, this.layerNorm(`${blk}/ln_1`, x, `${p}.ln_1`), `${p}.attn.c_attn`, 3 * d);
    const [q, k, v] = b.node("Split", [qkv], { scope: a, outputs: 3, attrs: { axis: 2, split: [d, d, d] } }) as [string, string, string];
    const qh = this.splitHeads(a, q, [0, 2, 1, 3]);
    let kT = this.splitHeads(a, k, [0, 2, 3, 1]);
    let vh = this.splitHeads(a, v, [0, 2, 1, 3]);
    if (this.o.past) {
      const past = `past_${l}`;
      let pk: string;
      let pv: string;
      if (this.o.pastUnstack === "gather") {
        pk = b.op("Gather", [past, this.k(a, i64(0), [])], { scope: a, attrs: { axis: 0 } });
        pv = b.op("Gather", [past, this.k(a, i64(1), [])], { scope: a, attrs: { axis: 0 } });
      } else {
        const halves = b.node("Split", [past], { scope: a, outputs: 2, attrs: { axis: 0, split: [1, 1] } });
        [pk, pv] = halves.map((h) => b.op("Squeeze", [h], { scope: a, attrs: { axes: [0] } })) as [string, string];
      }
      pk = b.op("Transpose", [pk], { scope: a, attrs: { perm: [0, 1, 3, 2] } });
      kT = b.op("Concat", [pk, kT], { scope: a, attrs: { axis: -1 } });
      vh = b.op("Concat", [pv, vh], { scope: a, attrs: { axis: -2 } });
      // present = torch.stack((key.transpose(-2, -1), value))
      const kBack = b.op("Transpose", [kT], { scope: a, attrs: { perm: [0, 1, 3, 2] } });
      b.op("Concat", [this.unsq(a, kBack), this.unsq(a, vh)], { scope: a, attrs: { axis: 0 }, output: `present_${l}` });
    }
    let w = b.op("MatMul", [qh, kT], { scope: a });
    const divisor =
      this.o.scale === "constant"
        ? this.k(a, f32(Math.sqrt(headDim(this.c))), [])
        : b.op("Pow", [b.op("Cast", [this.size(a, vh, 3)], { scope: a, attrs: { to: FLOAT } }), this.k(a, f32(0.5), [])], { scope: a });
    w = b.op("Div", [w, divisor], { scope: a });
    // b = self.bias[:, :, ns - nd : ns, :ns] with nd, ns = w.size(-2), w.size(-1)
    const nd = this.size(a, w, 2);
    const ns = this.size(a, w, 3);
    const rows = b.op("Slice", [causalMaskName(l), this.unsq(a, b.op("Sub", [ns, nd], { scope: a })), this.unsq(a, ns), this.k(a, i64(2)), this.k(a, i64(1))], { scope: a });
    const mask = b.op("Slice", [rows, this.k(a, i64(0)), this.unsq(a, ns), this.k(a, i64(3)), this.k(a, i64(1))], { scope: a });
    if (this.o.mask === "mul-sub") {
      const inv = b.op("Mul", [b.op("Sub", [this.k(a, f32(1), []), mask], { scope: a }), this.k(a, f32(1e4), [])], { scope: a });
      w = b.op("Sub", [b.op("Mul", [w, mask], { scope: a }), inv], { scope: a });
    } else {
      const cond = b.op("Cast", [mask], { scope: a, attrs: { to: TensorProto_DataType.BOOL } });
      w = b.op("Where", [cond, w, `${p}.attn.masked_bias`], { scope: a });
    }
    if (padBias) w = b.op("Add", [w, padBias], { scope: a });
    const pattern = b.op("Softmax", [w], { scope: a, attrs: { axis: 3 } });
    const z = b.op("Transpose", [b.op("MatMul", [pattern, vh], { scope: a })], { scope: a, attrs: { perm: [0, 2, 1, 3] } });
    // merge_heads: view(x.size()[:-2] + (x.size(-2) * x.size(-1),))
    const hd = b.op("Mul", [this.size(a, z, 2), this.size(a, z, 3)], { scope: a });
    const mShape = b.op("Concat", [this.unsq(a, this.size(a, z, 0)), this.unsq(a, this.size(a, z, 1)), this.unsq(a, hd)], { scope: a, attrs: { axis: 0 } });
    const attnOut = this.conv1d(`${a}/c_proj`, b.op("Reshape", [z, mShape], { scope: a }), `${p}.attn.c_proj`, d);
    const mid = b.op("Add", [x, attnOut], { scope: blk });
    if (this.c.attn_only) return mid;
    const pre = this.conv1d(`${blk}/mlp/c_fc`, this.layerNorm(`${blk}/ln_2`, mid, `${p}.ln_2`), `${p}.mlp.c_fc`, this.c.n_inner);
    const s = `${blk}/mlp/act`;
    const half = b.op("Mul", [pre, this.k(s, f32(0.5), [])], { scope: s });
    const cube = b.op("Mul", [b.op("Pow", [pre, this.k(s, f32(3), [])], { scope: s }), this.k(s, f32(0.044715), [])], { scope: s });
    const inner = b.op("Mul", [b.op("Add", [pre, cube], { scope: s }), this.k(s, f32(Math.sqrt(2 / Math.PI)), [])], { scope: s });
    const post = b.op("Mul", [half, b.op("Add", [b.op("Tanh", [inner], { scope: s }), this.k(s, f32(1), [])], { scope: s })], { scope: s });
    return b.op("Add", [mid, this.conv1d(`${blk}/mlp/c_proj`, post, `${p}.mlp.c_proj`, d)], { scope: blk });
  }

  emit(unembed: string): void {
    const b = this.b;
    const t = "/transformer";
    const inputShape = b.op("Shape", ["input_ids"], { scope: t });
    const seq = b.op("Gather", [inputShape, this.k(t, i64(1), [])], { scope: t, attrs: { axis: 0 } });
    const ids = b.op("Reshape", ["input_ids", b.op("Concat", [this.k(t, i64(-1)), this.unsq(t, seq)], { scope: t, attrs: { axis: 0 } })], { scope: t });
    let pos: string;
    if (this.o.positionIds) {
      // position_ids.view(-1, input_shape[-1])
      pos = b.op("Reshape", ["position_ids", b.op("Concat", [this.k(t, i64(-1)), this.unsq(t, seq)], { scope: t, attrs: { axis: 0 } })], { scope: t });
    } else {
      // past_length = past[0][0].size(-2); arange(past_length, seq + past_length).unsqueeze(0).view(-1, seq)
      const start = this.o.past ? this.size(t, b.op("Gather", ["past_0", this.k(t, i64(0), [])], { scope: t, attrs: { axis: 0 } }), 2) : this.k(t, i64(0), []);
      const range = b.op("Range", [start, b.op("Add", [seq, start], { scope: t }), this.k(t, i64(1), [])], { scope: t });
      pos = b.op("Reshape", [this.unsq(t, range), b.op("Concat", [this.k(t, i64(-1)), this.unsq(t, seq)], { scope: t, attrs: { axis: 0 } })], { scope: t });
    }
    let padBias: string | undefined;
    if (this.o.attentionMask) {
      const batch = b.op("Gather", [inputShape, this.k(t, i64(0), [])], { scope: t, attrs: { axis: 0 } });
      const m2 = b.op("Reshape", ["attention_mask", b.op("Concat", [this.unsq(t, batch), this.k(t, i64(-1))], { scope: t, attrs: { axis: 0 } })], { scope: t });
      const mf = b.op("Cast", [this.unsq(t, this.unsq(t, m2, 1), 2)], { scope: t, attrs: { to: FLOAT } });
      padBias = b.op("Mul", [b.op("Sub", [this.k(t, f32(1), []), mf], { scope: t }), this.k(t, f32(-10000), [])], { scope: t });
    }
    const tok = b.op("Gather", ["transformer.wte.weight", ids], { scope: `${t}/wte` });
    const posEmb = b.op("Gather", ["transformer.wpe.weight", pos], { scope: `${t}/wpe` });
    // inputs_embeds + position_embeds + token_type_embeds, the last being the Python int 0
    let x = b.op("Add", [b.op("Add", [tok, posEmb], { scope: t }), this.k(t, f32(0), [])], { scope: t });
    for (let l = 0; l < this.c.n_layer; l++) x = this.block(l, x, padBias);
    const outShape = b.op("Concat", [inputShape, this.unsq(t, this.size(t, x, 2))], { scope: t, attrs: { axis: 0 } });
    const hidden = b.op("Reshape", [this.layerNorm(`${t}/ln_f`, x, "transformer.ln_f"), outShape], { scope: t });
    b.op("MatMul", [hidden, unembed], { scope: "/lm_head", output: "logits" });
  }
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

function check<T extends string | boolean>(name: string, v: T | undefined, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!allowed.includes(v)) throw new TdbError("E_BAD_OPTION", `unknown ${name} ${String(v)}`, { value: v, allowed: [...allowed] });
  return v;
}

/**
 * The legacy (PyTorch 1.5/1.6, transformers 2.x/3.x) export of GPT-2 for `config` and `weights`
 * (see the module comment); it computes the same logits as `buildGpt2Graph` on the same
 * weights. Weights with an unembedding bias are refused (GPT-2's `lm_head` had none).
 *
 * @example
 * ```ts
 * const m = legacyGpt2Graph(TINY_GPT2, randomGpt2Weights(TINY_GPT2, 0), { mask: "mul-sub", past: true });
 * m.graph!.input.map((i) => i.name); // ["input_ids", "attention_mask", "past_0", "past_1"]
 * ```
 */
export function legacyGpt2Graph(config: Gpt2Config, weights: Gpt2Weights, options: LegacyOptions = {}): ModelProto {
  const o = {
    mask: check("mask", options.mask, ["mul-sub", "where"] as const, "mul-sub"),
    past: check("past", options.past, [true, false] as const, true),
    attentionMask: check("attentionMask", options.attentionMask, [true, false] as const, true),
    scale: check("scale", options.scale, ["constant", "shape"] as const, "constant"),
    conv1d: check("conv1d", options.conv1d, ["gemm", "matmul"] as const, "gemm"),
    pastUnstack: check("pastUnstack", options.pastUnstack, ["gather", "split"] as const, "gather"),
    positionIds: check("positionIds", options.positionIds, [true, false] as const, false),
  };
  const wte = weights.get("transformer.wte.weight");
  if (!wte) throw new TdbError("E_BAD_INPUT", "weights lack transformer.wte.weight", { value: [...weights.keys()].slice(0, 5) });
  if ([...weights.keys()].some((k) => !k.startsWith("transformer."))) {
    throw new TdbError("E_BAD_INPUT", "the legacy form has no unembedding bias (lm_head.bias)", { value: [...weights.keys()].filter((k) => !k.startsWith("transformer.")), allowed: "transformer.* weights" });
  }
  const c = config;
  const H = c.n_head;
  const dh = headDim(c);
  const b = new GraphBuilder({ name: "torch-jit-export", opset: 11, irVersion: 6, producerName: "pytorch", producerVersion: "1.5" });
  const batchSeq: Dim[] = ["batch_size", "seq_len"];
  b.input("input_ids", "int64", batchSeq);
  if (o.positionIds) b.input("position_ids", "int64", batchSeq);
  if (o.attentionMask) b.input("attention_mask", "int64", ["batch_size", "total_seq_len"]);
  if (o.past) for (let l = 0; l < c.n_layer; l++) b.input(`past_${l}`, "float32", [2, "batch_size", H, "past_seq_len", dh]);
  for (const [name, w] of weights) b.initializer(name, w.data, w.dims);
  const n = c.n_positions;
  const tri = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) tri.fill(1, i * n, i * n + i + 1);
  for (let l = 0; l < c.n_layer; l++) {
    if (o.mask === "mul-sub") b.initializer(causalMaskName(l), Float32Array.from(tri), [1, 1, n, n]);
    else {
      b.initializer(causalMaskName(l), tri, [1, 1, n, n], "uint8");
      b.initializer(`transformer.h.${l}.attn.masked_bias`, f32(-1e4), []);
    }
  }
  const unembed = b.initializer(unembedInitializerName(c), transpose2d(wte.data, c.vocab_size, c.n_embd), [c.n_embd, c.vocab_size]);
  new LegacyEmitter(b, c, o).emit(unembed);
  b.output("logits", "float32", ["batch_size", "seq_len", c.vocab_size]);
  if (o.past) for (let l = 0; l < c.n_layer; l++) b.output(`present_${l}`, "float32", [2, "batch_size", H, "total_seq_len", dh]);
  const model = b.build();
  if (options.initializersAsInputs) {
    const types: Record<number, ElemType> = { [TensorProto_DataType.FLOAT]: "float32", [TensorProto_DataType.UINT8]: "uint8" };
    for (const t of model.graph!.initializer) model.graph!.input.push(valueInfo(t.name, types[t.dataType], t.dims.map(Number)));
  }
  return unscopedNames(model, { numericInitializers: options.numericInitializers ?? false });
}
