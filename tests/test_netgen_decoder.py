"""The decoder family (one generation step with a KV cache): reproducible specs within the size cap, exports whose
every input is fed and whose outputs equal torch's, MACs the ONNX cost model counts by hand, the tokenizer reading it
without unknown ops, and splits of the earlier families unchanged by the extension."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from family_samples import distinct, reproducible_samples, small_sample

from model.network_tokenizer import network_token_matrix
from model.onnx_graph import ParseOptions, parse_onnx
from model.onnx_ops import ONNX_OPS, OTHER
from training.latency_data import in_domain_split
from training.netgen.export import build_network, export_spec
from training.netgen.generate import count_macs
from training.netgen.measure import make_session, session_feed
from training.netgen.registry import ALL_FAMILY_MODULES, GENERATION_FAMILY_MODULES, family
from training.netgen.zoo.decoder import MAX_PARAMS, parameters

SMALL = {
    "gpt": {"style": "gpt", "vocab": 500, "dim": 64, "heads": 4, "kv_heads": 4, "layers": 2, "past": 7,
            "mlp_hidden": 128, "act": "gelu"},
    "llama": {"style": "llama", "vocab": 300, "dim": 64, "heads": 4, "kv_heads": 2, "layers": 3, "past": 9,
              "mlp_hidden": 192, "act": "silu"},
}  # fmt: skip


def test_decoder_specs_are_reproducible_varied_and_within_the_size_cap() -> None:
    specs = reproducible_samples("decoder", 40)
    assert distinct(specs) >= 38
    assert {s["style"] for s in specs} == {"gpt", "llama"}
    assert all(parameters(s) <= MAX_PARAMS and s["heads"] % s["kv_heads"] == 0 for s in specs)
    assert any(s["kv_heads"] < s["heads"] for s in specs)  # grouped-query attention is drawn
    assert set(GENERATION_FAMILY_MODULES) <= set(ALL_FAMILY_MODULES)


@pytest.mark.parametrize("style", sorted(SMALL))
def test_a_decoder_step_exports_with_its_cache_as_inputs_and_runs_as_in_torch(style: str) -> None:
    spec = SMALL[style]
    module = build_network("decoder", spec)
    example = family("decoder").example_input(spec)
    session = make_session(export_spec("decoder", spec))
    inputs = session.get_inputs()
    assert len(inputs) == 1 + 2 * spec["layers"] and inputs[0].type == "tensor(int64)"
    feed = {value.name: tensor.numpy() for value, tensor in zip(inputs, example, strict=True)}
    outputs = session.run(None, feed)
    with torch.no_grad():
        expected = module(*example)
    assert len(outputs) == len(expected) == 1 + 2 * spec["layers"]
    assert outputs[0].shape == (1, 1, spec["vocab"])
    head_dim = spec["dim"] // spec["heads"]
    assert outputs[1].shape == (1, spec["kv_heads"], spec["past"] + 1, head_dim)  # the cache grows by one step
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    assert set(session_feed(session)) == {value.name for value in inputs}  # the measurer feeds every input


@pytest.mark.parametrize("style", sorted(SMALL))
def test_decoder_macs_are_the_linear_layers_plus_attention_over_the_cache(style: str) -> None:
    spec = SMALL[style]
    dim, kv_dim, hidden = spec["dim"], spec["kv_heads"] * spec["dim"] // spec["heads"], spec["mlp_hidden"]
    per_layer = dim * (dim + 2 * kv_dim) + dim * dim + (3 if style == "llama" else 2) * dim * hidden
    linear = spec["layers"] * per_layer + dim * spec["vocab"]  # one token: every weight once; the head
    attention = spec["layers"] * 2 * (spec["past"] + 1) * dim  # q K^T and A V, each heads x (past + 1) x head_dim
    module = build_network("decoder", spec)
    assert count_macs(module, family("decoder").example_input(spec)) == linear
    graph = parse_onnx(export_spec("decoder", spec), ParseOptions())
    assert graph.unknown_shapes == 0
    assert graph.totals()["macs"] == pytest.approx(linear + attention, rel=1e-9)


def test_the_tokenizer_reads_a_decoder_without_unknown_ops() -> None:
    spec = small_sample("decoder", 2e6)
    graph = parse_onnx(export_spec("decoder", spec), ParseOptions())
    tokens = network_token_matrix(graph)
    assert tokens.shape[0] == len(graph.nodes) and np.isfinite(tokens).all()
    assert OTHER not in {node.op_type for node in graph.nodes} and {node.op_type for node in graph.nodes} <= set(ONNX_OPS)
    assert {"MatMul", "Softmax", "Concat"} <= {node.op_type for node in graph.nodes}


def test_adding_the_decoder_family_leaves_every_earlier_familys_split_unchanged() -> None:
    earlier = np.repeat(np.array(["resnet", "vit", "yolo", "rnn", "text"]), [30, 20, 25, 15, 10])
    extended = np.concatenate([earlier, np.array(["decoder"] * 12)])
    for seed in range(3):
        before, after = in_domain_split(earlier, seed), in_domain_split(extended, seed)
        for part in ("train", "val", "test"):
            old = getattr(after, part)
            np.testing.assert_array_equal(old[old < len(earlier)], getattr(before, part))
        assert (extended[after.test] == "decoder").sum() == round(0.2 * 12)


def test_a_decoder_exported_with_a_symbolic_cache_length_parses_as_the_fixed_export_of_that_length() -> None:
    """The way a Hugging Face ``past_key_values`` export names the cache axis; ``ParseOptions.past_length`` sets it."""
    spec = SMALL["llama"]
    module, example = build_network("decoder", spec), family("decoder").example_input(spec)
    names = ["input_ids"] + [f"past_{kind}_{i}" for i in range(spec["layers"]) for kind in ("key", "value")]
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, example, buffer, dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes={name: {2: "past_sequence_length"} for name in names[1:]})  # fmt: skip
    dynamic = parse_onnx(buffer.getvalue(), ParseOptions(sequence_length=1, past_length=20))
    fixed = parse_onnx(export_spec("decoder", {**spec, "past": 20}), ParseOptions())
    assert dynamic.input_shapes["past_key_0"] == (1, spec["kv_heads"], 20, spec["dim"] // spec["heads"])
    assert dynamic.defaulted_dims == () and dynamic.totals()["macs"] == fixed.totals()["macs"]
