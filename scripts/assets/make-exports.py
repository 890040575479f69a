#!/usr/bin/env python3
"""Step 2 of scripts/assets/make-exports.sh: fuses the project's generated GPT-2 models with
onnxruntime's own Python transformer optimizer and float16 tools, and writes the test assets of
issue 11 (test/assets/exports/) with a manifest.

    python3 scripts/assets/make-exports.py <bases-dir> <out-dir>

<bases-dir> is what write-base-models.ts wrote (bases.json, <name>/decoder, <name>/merged).
Needs onnxruntime and onnx (pip); torch is not needed (see stub_torch). Nothing in the project
runs this script: CI and users never need Python. The assets are checked in TypeScript by
test/onnx/assets.test.ts.

Forms fused (per base):
- `<name>-opt`: optimize_model(model_type="gpt2") on the generated decoder as it is (the
  transformers 4.x export form). The optimizer's GPT-2 attention fusions only know older export
  forms, so only LayerNormalization, SkipLayerNormalization and FastGelu appear.
- `<name>-fused`: the same function rewritten into the form onnxruntime's own GPT-2 exporter
  (onnxruntime.transformers.models.gpt2, convert_to_onnx) writes: one stacked `past_N`
  [2, batch, heads, past, head_dim] input and one `present_N` output per layer, the with-past
  branch of the generated merged decoder inlined. On this form the optimizer fuses everything:
  EmbedLayerNormalization, Attention (packed QKV, 2-D mask, past/present), SkipLayerNormalization,
  FastGelu.
- float16 (`convert_float_to_float16`) of the fused graph, with float16 and with float32 I/O;
  int32 inputs (`change_graph_inputs_to_int32`, as onnxruntime's GPT-2 tools do for
  `--use_int32_inputs`); the unfused decoder in float16 (onnxruntime.transformers.float16);
  optimize_model on the generated merged decoder (If with two branches).
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import types


def stub_torch() -> None:
    """optimize_by_onnxruntime imports torch only to read torch.version.hip (ROCm or not). torch
    is large and not needed for the fusions: a stub saying "not ROCm" stands in for it."""
    if "torch" in sys.modules:
        return
    try:
        import torch  # noqa: F401

        return
    except ImportError:
        pass
    stub = types.ModuleType("torch")
    stub.version = types.SimpleNamespace(hip=None, cuda=None, __version__="stub")  # type: ignore[attr-defined]
    sys.modules["torch"] = stub


stub_torch()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.transformers import float16 as ort_float16  # noqa: E402
from onnxruntime.transformers.fusion_options import FusionOptions  # noqa: E402
from onnxruntime.transformers.optimizer import optimize_model  # noqa: E402

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("make-exports")

MODEL_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
DTYPE_NAMES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.INT64: "int64", TensorProto.INT32: "int32", TensorProto.BOOL: "bool"}


# --------------------------------------------------------------------------------------------
# graph facts for the manifest


def dims_of(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else None) for d in vi.type.tensor_type.shape.dim]


def io_of(vis) -> list:
    return [{"name": v.name, "dtype": DTYPE_NAMES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type)), "dims": dims_of(v)} for v in vis]


def all_nodes(graph: onnx.GraphProto):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(a.g)
            for g in a.graphs:
                yield from all_nodes(g)


def op_counts(model: onnx.ModelProto) -> dict:
    c = collections.Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in all_nodes(model.graph))
    return dict(sorted(c.items()))


def ms_ops(model: onnx.ModelProto) -> dict:
    c = collections.Counter(n.op_type for n in all_nodes(model.graph) if n.domain == "com.microsoft")
    return dict(sorted(c.items()))


def ms_attributes(model: onnx.ModelProto) -> dict:
    """Attributes and input arity of each com.microsoft op type (first node of each type)."""
    out = {}
    for n in all_nodes(model.graph):
        if n.domain != "com.microsoft" or n.op_type in out:
            continue
        attrs = {}
        for a in n.attribute:
            v = helper.get_attribute_value(a)
            attrs[a.name] = v.decode() if isinstance(v, bytes) else (float(v) if isinstance(v, float) else v)
        out[n.op_type] = {"attributes": attrs, "inputs": list(n.input), "outputs": list(n.output)}
    return out


# --------------------------------------------------------------------------------------------
# the form onnxruntime's GPT-2 exporter writes (stacked past_N / present_N)


def to_ort_gpt2_past_form(merged: onnx.ModelProto, n_layer: int, n_head: int, head_dim: int, position_ids: bool = False) -> onnx.ModelProto:
    """Inlines the with-past branch of the generated merged decoder and replaces the
    past_key_values.N.key/value inputs and present.N.key/value outputs by one stacked
    past_N / present_N per layer ([2, batch, heads, seq, head_dim]), as
    onnxruntime.transformers.models.gpt2 exports GPT-2 (present_N = stack(key, value)).
    With position_ids, the position embedding reads a `position_ids` input [batch, seq] (inputs
    in the exporter's order: input_ids, position_ids, attention_mask, past_N) instead of the
    in-graph arange."""
    m = copy.deepcopy(merged)
    g = m.graph
    (if_node,) = [n for n in g.node if n.op_type == "If"]
    then = next(a.g for a in if_node.attribute if a.name == "then_branch")
    nodes = [n for n in g.node if n is not if_node] + list(then.node)
    inits = list(g.initializer) + list(then.initializer)

    pre, post = [], []
    inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "ort_gpt2_past_index_0"))
    inits.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "ort_gpt2_past_index_1"))
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "ort_gpt2_axes_0"))
    inputs = [i for i in g.input if i.name in ("input_ids", "attention_mask")]
    outputs = [o for o in then.output if o.name == "logits"]
    for l in range(n_layer):
        past = f"past_{l}"
        inputs.append(helper.make_tensor_value_info(past, TensorProto.FLOAT, [2, "batch_size", n_head, "past_sequence_length", head_dim]))
        pre.append(helper.make_node("Gather", [past, "ort_gpt2_past_index_0"], [f"past_key_values.{l}.key"], name=f"/past_{l}/Gather_key", axis=0))
        pre.append(helper.make_node("Gather", [past, "ort_gpt2_past_index_1"], [f"past_key_values.{l}.value"], name=f"/past_{l}/Gather_value", axis=0))
        uk, uv = f"/present_{l}/Unsqueeze_key_output_0", f"/present_{l}/Unsqueeze_value_output_0"
        post.append(helper.make_node("Unsqueeze", [f"present.{l}.key", "ort_gpt2_axes_0"], [uk], name=f"/present_{l}/Unsqueeze_key"))
        post.append(helper.make_node("Unsqueeze", [f"present.{l}.value", "ort_gpt2_axes_0"], [uv], name=f"/present_{l}/Unsqueeze_value"))
        post.append(helper.make_node("Concat", [uk, uv], [f"present_{l}"], name=f"/present_{l}/Concat", axis=0))
        outputs.append(helper.make_tensor_value_info(f"present_{l}", TensorProto.FLOAT, [2, "batch_size", n_head, "past_sequence_length + sequence_length", head_dim]))
    if position_ids:
        (wpe,) = [n for n in nodes if n.op_type == "Gather" and n.input[0] == "transformer.wpe.weight"]
        wpe.input[1] = "position_ids"
        inputs.insert(1, helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]))
    # The with-past mask input spans past + current tokens, as in the merged decoder.
    for i in inputs:
        if i.name == "attention_mask":
            i.type.tensor_type.shape.dim[1].dim_param = "past_sequence_length + sequence_length"
    graph = helper.make_graph(pre + nodes + post, g.name, inputs, outputs, inits)
    out = helper.make_model(graph, opset_imports=list(m.opset_import), producer_name=m.producer_name, producer_version=m.producer_version)
    out.ir_version = m.ir_version
    onnx.checker.check_model(out)
    return out


# --------------------------------------------------------------------------------------------


class Writer:
    def __init__(self, out_dir: str, bases_dir: str):
        self.out_dir = out_dir
        self.bases_dir = bases_dir
        self.assets: list = []
        self.refused: list = []

    def write(self, name: str, base: dict, model: onnx.ModelProto, form: str, made_by: dict, source: str) -> None:
        d = os.path.join(self.out_dir, name)
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(os.path.join(d, "onnx"))
        for f in MODEL_FILES:
            shutil.copyfile(os.path.join(self.bases_dir, base["name"], "decoder", f), os.path.join(d, f))
        path = os.path.join(d, "onnx", "model.onnx")
        onnx.save_model(model, path)
        data = open(path, "rb").read()
        # Every asset must at least open in onnxruntime's CPU session; record whether it does.
        try:
            onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            cpu = {"loads": True}
        except Exception as e:  # noqa: BLE001
            cpu = {"loads": False, "error": str(e).splitlines()[0][:400]}
        entry = {
            "name": name,
            "base": base["name"],
            "form": form,
            "source": source,
            "made_by": made_by,
            "file": f"{name}/onnx/model.onnx",
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "onnxruntime_cpu": cpu,
            "inputs": io_of(model.graph.input),
            "outputs": io_of(model.graph.output),
            "com_microsoft_ops": ms_ops(model),
            "com_microsoft_attributes": ms_attributes(model),
            "ops": op_counts(model),
        }
        self.assets.append(entry)
        print(f"{name}: {len(data)} bytes, com.microsoft {entry['com_microsoft_ops']}, cpu loads {cpu['loads']}")


def optimize(model_or_path, base: dict, options: FusionOptions | None = None):
    c = base["config"]
    return optimize_model(model_or_path, model_type="gpt2", num_heads=c["n_head"], hidden_size=c["n_embd"], optimization_options=options)


def options_record(options: FusionOptions | None) -> dict:
    o = options or FusionOptions("gpt2")
    return {k: (v if isinstance(v, (bool, int, float, str, type(None))) else str(v)) for k, v in sorted(vars(o).items())}


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: make-exports.py <bases-dir> <out-dir>")
    bases_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    bases = json.load(open(os.path.join(bases_dir, "bases.json")))
    w = Writer(out_dir, bases_dir)
    opt_call = "onnxruntime.transformers.optimizer.optimize_model(model, model_type='gpt2', num_heads=n_head, hidden_size=n_embd) (opt_level None = 1 for gpt2: onnxruntime basic graph optimizations, then the Python fusions)"

    for base in bases:
        name = base["name"]
        c = base["config"]
        decoder_path = os.path.join(bases_dir, name, "decoder", "onnx", "model.onnx")
        merged_path = os.path.join(bases_dir, name, "merged", "onnx", "model.onnx")
        head_dim = c["n_embd"] // c["n_head"]

        # (a0) the generated decoder as it is (transformers 4.x export form)
        opt = optimize(decoder_path, base)
        # Other onnxruntime graph optimization levels before the Python fusions: do they find the attention?
        levels = {}
        for lvl in (0, 2, 99):
            c_ = base["config"]
            levels[str(lvl)] = ms_ops(optimize_model(decoder_path, model_type="gpt2", num_heads=c_["n_head"], hidden_size=c_["n_embd"], opt_level=lvl).model)
        w.write(f"{name}-opt", base, opt.model, "decoder", {"call": opt_call, "fusion_options": options_record(None), "fused_operator_statistics": opt.get_fused_operator_statistics(), "com_microsoft_ops_at_other_opt_levels": levels}, "generated decoder (tdb-js export form)")

        # (a) onnxruntime's GPT-2 export form: everything fuses
        ort_form = to_ort_gpt2_past_form(onnx.load(merged_path), c["n_layer"], c["n_head"], head_dim)
        fused = optimize(ort_form, base)
        stats = fused.get_fused_operator_statistics()
        if stats.get("Attention", 0) != c["n_layer"]:
            log.error("%s: Attention fused %s times, expected %s", name, stats.get("Attention", 0), c["n_layer"])
        w.write(f"{name}-fused", base, fused.model, "ort-gpt2-past", {"call": opt_call, "fusion_options": options_record(None), "fused_operator_statistics": stats}, "generated merged decoder, with-past branch inlined, past_N/present_N stacked")

        # (b) float16 of the fused graph: float16 I/O, and float32 I/O (keep_io_types)
        for keep_io, suffix in ((False, "fused-fp16"), (True, "fused-fp16-io32")):
            m16 = copy.deepcopy(fused)
            m16.convert_float_to_float16(keep_io_types=keep_io)
            w.write(f"{name}-{suffix}", base, m16.model, "ort-gpt2-past", {"call": f"OnnxModel.convert_float_to_float16(keep_io_types={keep_io}) on {name}-fused (symbolic shape inference, default op_block_list)"}, f"{name}-fused")

        # (c) int32 inputs, as onnxruntime's GPT-2 tools write them with --use_int32_inputs
        # change_graph_inputs_to_int32() would retype every input, the float past_N too (an
        # invalid graph: Attention refuses int32 past): only the int64 inputs are changed.
        m32 = copy.deepcopy(fused)
        for gi in m32.model.graph.input:
            if gi.type.tensor_type.elem_type == TensorProto.INT64:
                m32.change_graph_input_type(gi, TensorProto.INT32)
        w.write(f"{name}-fused-int32", base, m32.model, "ort-gpt2-past", {"call": f"OnnxModel.change_graph_input_type(input, TensorProto.INT32) for the int64 inputs of {name}-fused"}, f"{name}-fused")
        probe = copy.deepcopy(fused)
        probe.change_graph_inputs_to_int32()
        try:
            onnxruntime.InferenceSession(probe.model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            w.refused.append({"base": name, "what": "BertOnnxModel.change_graph_inputs_to_int32() on the fused graph", "result": f"retypes the float past_N inputs too; onnxruntime refuses the graph: {str(e).splitlines()[0][:300]}"})

        # (d) the unfused generated decoder in float16
        u16 = ort_float16.convert_float_to_float16(onnx.load(decoder_path), keep_io_types=False)
        w.write(f"{name}-fp16", base, u16, "decoder", {"call": "onnxruntime.transformers.float16.convert_float_to_float16(model, keep_io_types=False)"}, "generated decoder (tdb-js export form)")

        # (a2) the exporter's form with a position_ids input (second shape only, to keep the assets small)
        if name == "heads3":
            fp = optimize(to_ort_gpt2_past_form(onnx.load(merged_path), c["n_layer"], c["n_head"], head_dim, position_ids=True), base)
            w.write(f"{name}-fused-posids", base, fp.model, "ort-gpt2-past", {"call": opt_call, "fusion_options": options_record(None), "fused_operator_statistics": fp.get_fused_operator_statistics()}, "as -fused, with a position_ids input")

        # (e) the generated merged decoder (If on use_cache_branch) through the optimizer
        try:
            mo = optimize(merged_path, base)
            ops = ms_ops(mo.model)
            if ops:
                w.write(f"{name}-merged-opt", base, mo.model, "merged", {"call": opt_call, "fusion_options": options_record(None), "fused_operator_statistics": mo.get_fused_operator_statistics()}, "generated merged decoder")
            else:
                w.refused.append({"base": name, "what": "optimize_model on the merged decoder (If)", "result": "no com.microsoft op fused (the fusions do not enter If branches)", "ops": op_counts(mo.model)})
        except Exception as e:  # noqa: BLE001
            w.refused.append({"base": name, "what": "optimize_model on the merged decoder (If)", "result": f"raised {type(e).__name__}: {e}"})

    manifest = {
        "description": "Fused, float16 and int32 forms of tdb-js's generated GPT-2 models, made with onnxruntime's Python transformer tools. Regenerate: bash scripts/assets/make-exports.sh (README.md).",
        "bases": bases,
        "weights": "randomGpt2Weights(config, seed, weights) of src/synthetic/weights.ts; graph: buildGpt2Graph (src/synthetic/gpt2-graph.ts)",
        "tools": {
            "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "torch": "not installed: a stub module answers torch.version.hip = None (the only use of torch in optimize_by_onnxruntime)" if getattr(sys.modules.get("torch"), "version", None) and getattr(sys.modules["torch"].version, "__version__", "") == "stub" else "installed",
        },
        "assets": w.assets,
        "not_made": w.refused,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    total = sum(a["bytes"] for a in w.assets)
    print(f"{len(w.assets)} assets, {total} bytes of ONNX in {out_dir}")
    for r in w.refused:
        print(f"not made: {r['base']}: {r['what']}: {r['result']}")


if __name__ == "__main__":
    main()
