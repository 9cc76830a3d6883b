"""The unusual networks of ``benchmarks/onnx_unusual.py``, exported for real and answered by the shipped CPU predictor:
the warnings each must carry, and attention written with Einsum answered as its ``@`` twin. No timing here (that is
the benchmark's job)."""

from __future__ import annotations

import pytest

from benchmarks.onnx_unusual import UNUSUAL, markdown
from model.card import PREDICTOR_DIR
from model.onnx_graph import ParseOptions
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry


@pytest.fixture(scope="module")
def answer():
    predictor = load_registry(PREDICTOR_DIR, "cpu", 1).networks["cpu-ort-1t-v1"]
    return lambda name: predict_onnx_bytes(predictor, UNUSUAL[name][1](), ParseOptions())


def test_a_video_network_is_warned_about_its_conv3d(answer):
    body = answer("video_r3d")
    assert body["convolutions"]["ranks"] == [3]
    assert any("(Conv3d)" in w for w in body["warnings"])


def test_a_31_wide_depthwise_kernel_is_warned_about(answer):
    body = answer("large_kernel_31")
    assert body["convolutions"] == {"ranks": [2], "kernel": 31}  # the 4x4 stride-4 stem does not count
    assert any("kernel 31 wide" in w for w in body["warnings"])


def test_attention_with_einsum_is_answered_as_its_matmul_twin(answer):
    einsum, matmul = answer("attention_einsum"), answer("attention_matmul")
    assert einsum["einsums"] == 8 and matmul["einsums"] == 0
    assert matmul["warnings"] == [] and len(einsum["warnings"]) == 1
    assert einsum["warnings"][0].startswith("8 Einsum nodes read as the Transposes and MatMul")
    assert einsum["cost"] == matmul["cost"]
    assert einsum["latency_ms"] == pytest.approx(matmul["latency_ms"], rel=1e-6)


def test_report_names_the_factor_and_every_network():
    row = {"gmacs": 1.0, "nodes": 10, "passes_ms": [2.0, 2.2], "measured_ms": 2.0, "predicted_ms": 1.0, "std_ms": 0.1}
    report = {
        "predictor": "p 1.0",
        "device": "cpu-ort-1t",
        "machine": "m",
        "command": "c",
        "factor": 2.0,
        "reference_abs_error_pct": {"median": 3.0, "max": 9.0},
        "reference": [{**row, "network": "resnet18", "what": "canonical classifier", "warnings": [], "error_pct": 0.0}],
        "networks": [{**row, "network": "video_r3d", "what": "Conv3d", "warnings": ["w"], "error_pct": 0.0}],
    }
    text = markdown(report)
    assert "**2.00x**" in text and "| video_r3d | Conv3d |" in text and "- video_r3d: w" in text
    assert "| resnet18 | 2.00 | 2.00 | +0.0 |" in text
    assert "Slowest over fastest pass of a network: median 1.10x, max 1.10x" in text
