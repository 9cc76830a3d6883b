"""The architecture zoo: reproducible specs, valid ONNX exports, and canonical members that match published sizes.

Published multiply-accumulate counts (torchvision model docs "GFLOPS", which count MACs of conv/linear layers) pin
each family's canonical configuration to the real network; the ONNX cost model is then checked against the torch
count on real exports, including a ViT where attention matmuls add exactly 2 * depth * T^2 * D MACs.
"""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pytest
from family_samples import distinct, reproducible_samples

from model.onnx_graph import ParseOptions, parse_onnx
from training.netgen.export import build_network, export_onnx_bytes
from training.netgen.generate import count_macs
from training.netgen.registry import FAMILY_MODULES, family

PUBLISHED_GMACS = {
    "resnet18": 1.81, "resnet50": 4.09, "resnext50_32x4d": 4.23, "mobilenet_v2": 0.30, "mobilenet_v3_large": 0.22,
    "mobilenet_v3_small": 0.056, "efficientnet_b0": 0.39, "mnasnet1_0": 0.31, "squeezenet1_1": 0.35, "googlenet": 1.50,
    "densenet121": 2.83, "regnet_x_400mf": 0.41, "regnet_y_800mf": 0.83, "shufflenet_v2_x1_0": 0.14, "convnext_tiny": 4.46,
}


def canonical(name: str) -> tuple[str, dict]:
    for fam in FAMILY_MODULES:
        module = __import__(f"training.netgen.zoo.{fam}", fromlist=["canonical"])
        for spec in module.canonical():
            if spec["name"] == name:
                return fam, spec
    raise KeyError(name)


@pytest.mark.parametrize("name", FAMILY_MODULES)
def test_sampling_is_reproducible_and_serialisable(name: str) -> None:
    specs = reproducible_samples(name)
    assert distinct(specs) >= 15  # real variety
    assert all(64 <= s["resolution"] <= 256 and s["num_classes"] in (10, 100, 1000) for s in specs)


@pytest.mark.parametrize("name", FAMILY_MODULES)
def test_a_sample_exports_and_runs(name: str) -> None:
    spec = family(name).sample(random.Random("export"))
    data = export_onnx_bytes(build_network(name, spec), spec["resolution"])
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, spec["resolution"], spec["resolution"]), np.float32)
    (out,) = session.run(None, {"input": x})
    assert out.shape == (1, spec["num_classes"])
    graph = parse_onnx(data, ParseOptions(resolution=spec["resolution"]))
    assert graph.unknown_shapes == 0


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_canonical_members_match_published_size(name: str) -> None:
    fam, spec = canonical(name)
    macs = count_macs(family(fam).build(spec).eval(), spec["resolution"])
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.05)


def test_onnx_cost_model_agrees_with_torch_on_a_real_cnn() -> None:
    fam, spec = canonical("resnet18")
    module = build_network(fam, spec)
    graph = parse_onnx(export_onnx_bytes(module, 224))
    assert graph.totals()["macs"] == pytest.approx(count_macs(module, 224), rel=1e-9)
    # torchvision resnet18 has 11,689,512 parameters; folding each BN (scale + shift) into a conv bias saves one per
    # channel, and its BNs have 4,800 channels
    assert graph.totals()["params"] == 11_689_512 - 4_800


def test_onnx_cost_model_counts_attention_on_a_real_vit() -> None:
    fam, spec = canonical("vit_tiny_16")
    module = build_network(fam, spec)
    graph = parse_onnx(export_onnx_bytes(module, 224))
    tokens, dim, depth = 14 * 14 + 1, 192, 12
    attention = 2 * depth * tokens * tokens * dim  # Q.K^T and A.V per block
    assert graph.totals()["macs"] == pytest.approx(count_macs(module, 224) + attention, rel=1e-9)
    assert sum(n.op_type == "Softmax" for n in graph.nodes) == depth
    assert sum(n.op_type == "LayerNormalization" for n in graph.nodes) == 2 * depth + 1


def test_post_ln_vits_hold_the_fused_skip_layer_norm_that_vits_do_not(tmp_path) -> None:  # noqa: ANN001
    """``vitpost``: the ViT sampler's spec with ``norm: post``; onnxruntime fuses each block's two residual Adds with
    their LayerNorms (2 * depth SkipLayerNormalization kernels), where the pre-LN ViT of the same spec has one (the
    last block's Add and the final norm), and the tokenizer flags exactly those Adds and norms."""
    import onnx

    from model.network_tokenizer import FUSION_DIM, TOKEN_WIDTHS, tokenize_networks

    post = reproducible_samples("vitpost")
    assert distinct(post) >= 15 and all(s["norm"] == "post" for s in post)
    assert [{k: v for k, v in s.items() if k != "norm"} for s in post] == reproducible_samples("vit")
    spec = {**family("vit").sample(random.Random("export")), "resolution": 64, "patch": 16, "depth": 2}
    for name, fused_expected in (("vit", 1), ("vitpost", 2 * spec["depth"])):
        data = export_onnx_bytes(build_network(name, spec | ({"norm": "post"} if name == "vitpost" else {})), 64)
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{name}.onnx")
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"input": np.zeros((1, 3, 64, 64), np.float32)})
        assert out.shape == (1, spec["num_classes"])
        optimised = onnx.load(options.optimized_model_filepath).graph.node
        assert sum(n.op_type == "SkipLayerNormalization" for n in optimised) == fused_expected
        graph = parse_onnx(data, ParseOptions(resolution=64))
        flags = tokenize_networks([graph]).tokens[0, : graph.n, TOKEN_WIDTHS["4"] - FUSION_DIM]
        assert int(flags.sum()) == 2 * fused_expected


def test_alexnet_canonical_is_torchvisions_alexnet_and_its_samples_export_and_run() -> None:
    """``alexnet``'s canonical member has torchvision AlexNet's 61,100,840 parameters and 0.71 GMACs (the parsed ONNX
    agrees); samples are reproducible, varied, and keep the fully connected head under its cap."""
    from training.netgen.zoo import alexnet

    fam, spec = "alexnet", alexnet.canonical()[0]
    module = build_network(fam, spec)
    assert sum(p.numel() for p in module.parameters()) == 61_100_840
    graph = parse_onnx(export_onnx_bytes(module, 224))
    assert graph.totals()["params"] == 61_100_840
    assert graph.totals()["macs"] / 1e9 == pytest.approx(0.71, rel=0.05)
    specs = reproducible_samples(fam)
    assert distinct(specs) >= 15
    assert all(alexnet._head_weights(s) <= alexnet.MAX_HEAD_WEIGHTS or s["hidden"] == 512 for s in specs)
    spec = family(fam).sample(random.Random("export"))
    data = export_onnx_bytes(build_network(fam, spec), spec["resolution"])
    (out,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"input": np.zeros((1, 3, spec["resolution"], spec["resolution"]), np.float32)}
    )
    assert out.shape == (1, spec["num_classes"])
    assert parse_onnx(data, ParseOptions(resolution=spec["resolution"])).unknown_shapes == 0
