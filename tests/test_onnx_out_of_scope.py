"""The out-of-scope networks of benchmarks/onnx_out_of_scope.py export, parse and get a prediction with a std."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from benchmarks.onnx_out_of_scope import out_of_scope_networks  # noqa: E402
from model.card import PREDICTOR_DIR  # noqa: E402
from model.onnx_graph import ParseOptions, parse_onnx  # noqa: E402
from service.network_predictor import predict_onnx_bytes  # noqa: E402
from service.predictor import load_registry  # noqa: E402


def test_every_out_of_scope_network_is_parsed_and_predicted() -> None:
    networks = out_of_scope_networks()
    assert set(networks) == {"unet", "fpn", "mixer", "text_encoder", "lstm"}
    ops = {name: {node.op_type for node in parse_onnx(data).nodes} for name, (_, data) in networks.items()}
    assert "ConvTranspose" in ops["unet"] and "Resize" in ops["fpn"] and "LSTM" in ops["lstm"]
    assert "Softmax" in ops["text_encoder"] and "Softmax" not in ops["mixer"]
    predictor = load_registry(PREDICTOR_DIR, "cpu", 1).networks["cpu-ort-1t-v1"]
    for _, data in networks.values():
        body = predict_onnx_bytes(predictor, data, ParseOptions())
        assert body["latency_ms"]["value"] > 0 and body["latency_ms"]["std"] > 0


def test_every_sequence_network_is_parsed_and_predicted() -> None:
    from benchmarks.onnx_out_of_scope import sequence_networks

    networks = sequence_networks()
    assert set(networks) == {"bert_mini", "bert_small", "distilbert", "speech_gru", "lstm_lm", "lstm"}
    ops = {name: {node.op_type for node in parse_onnx(data).nodes} for name, (_, data) in networks.items()}
    assert "GRU" in ops["speech_gru"] and "Conv" in ops["speech_gru"] and "LSTM" in ops["lstm_lm"]
    assert {"Gather", "Softmax", "Tanh"} <= ops["distilbert"]
    predictor = load_registry(PREDICTOR_DIR, "cpu", 1).networks["cpu-ort-1t-v1"]
    for _, data in networks.values():
        body = predict_onnx_bytes(predictor, data, ParseOptions())
        assert body["latency_ms"]["value"] > 0 and body["latency_ms"]["std"] > 0


def test_the_published_decoder_shapes_are_the_published_sizes_and_one_predicts() -> None:
    from training.netgen.export import export_spec
    from training.netgen.zoo.decoder import canonical, parameters

    specs = {spec["name"]: spec for spec in canonical()}
    # published sizes count a tied head once: the weights less one vocabulary x width table
    tied = {name: parameters(spec) - spec["vocab"] * spec["dim"] for name, spec in specs.items()}
    assert tied["gpt2_past128"] == pytest.approx(124.4e6, rel=0.01)  # GPT-2 small (its 1024 positions left out)
    assert tied["stories15m_past256"] == pytest.approx(15.2e6, rel=0.01)
    assert tied["stories110m_past256"] == pytest.approx(110e6, rel=0.01)
    assert tied["smollm135m_past128"] == pytest.approx(134.5e6, rel=0.01)
    predictor = load_registry(PREDICTOR_DIR, "cpu", 1).networks["cpu-ort-1t-epyc-v1"]
    body = predict_onnx_bytes(predictor, export_spec("decoder", specs["stories15m_past256"]), ParseOptions())
    assert body["latency_ms"]["value"] > 0 and body["latency_ms"]["std"] > 0
    assert body["input_shapes"]["input"] == [1, 1]


def test_the_sittings_speed_is_the_median_reference_ratio_and_scales_the_measurements() -> None:
    from benchmarks.onnx_realworld import reference_networks, sitting_speed

    assert reference_networks(Path("no/such/dataset"), 0) == {}  # without references nothing is read

    references = {f"reference:{i}": ({"latency_ms": 10.0 * (i + 1)}, b"") for i in range(5)}
    ratios = [0.80, 0.90, 0.92, 0.95, 1.30]  # the machine runs 8 % faster than when the labels were taken
    labels = [10.0 * (i + 1) for i in range(5)]
    passes = {name: [ms * r * 1.1, ms * r] for name, ms, r in zip(references, labels, ratios, strict=True)}
    speed = sitting_speed(references, passes)
    assert speed["n"] == 5 and speed["now_over_label"] == pytest.approx(0.92)
