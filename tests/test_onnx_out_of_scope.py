"""The out-of-scope networks of benchmarks/onnx_out_of_scope.py export, parse and get a prediction with a std."""

from __future__ import annotations

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
