"""``?breakdown=true``: where a network's predicted time goes, read out of a real exported additive ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from onnx import TensorProto, helper
from onnx_fixtures import _weight, attention_block, conv_net, model_from

from archcast.cli import main as cli_main
from model.network_tokenizer import tokenize_networks
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.breakdown import runtime_roots
from service.settings import Settings
from training.latency_export import export_ensemble, write_network_card
from training.network import NetworkConfig
from training.whole_network import WholeNetworkTransformer

CFG = NetworkConfig(n_targets=1, d_model=32, n_heads=2, n_layers=1, dropout=0.0)


def _predictor_dir(directory: Path, readout: str) -> Path:
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        member = WholeNetworkTransformer(CFG, readout).eval()
        with torch.no_grad():  # untrained rates differ per node only through the tokens: spread them out
            member.node_rates.weight.normal_(0.0, 0.5)
        members.append(member)
    export_ensemble(members, directory / "net-test.onnx")
    write_network_card(
        directory / "net-test.onnx", "net-test", "0.1", {"device": "cpu-ort-1t"}, {"mape": 1.0}, {"readout": readout}
    )
    torch.save(members, directory / "members.pt")
    return directory


@pytest.fixture(scope="module")
def additive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _predictor_dir(tmp_path_factory.mktemp("additive"), "additive")


@pytest.fixture(scope="module")
def client(additive_dir: Path):
    with TestClient(create_app(Settings(predictor_dir=additive_dir))) as c:
        yield c


def _member_shares(directory: Path, data: bytes) -> np.ndarray:
    """Each node's share of its member's sum, averaged over the members, computed in torch."""
    members = torch.load(directory / "members.pt", weights_only=False)
    batch = tokenize_networks([parse_onnx(data, ParseOptions(resolution=32))])
    tokens, mask = torch.from_numpy(batch.tokens), torch.from_numpy(batch.mask)
    shares = []
    with torch.no_grad():
        for m in members:
            _, _, cost = m.node_costs(tokens, mask)
            shares.append(torch.softmax(cost[0], dim=0).numpy())
    return np.mean(shares, axis=0)


@pytest.mark.parametrize("make, kernels", [(attention_block, 16), (conv_net, 5)])  # conv_net: Conv + Relu run as one
def test_the_breakdown_takes_the_prediction_apart_node_by_node(client: TestClient, additive_dir: Path, make, kernels) -> None:
    data = make().SerializeToString()
    response = client.post("/v1/predict/onnx?breakdown=true&resolution=32", content=data)
    assert response.status_code == 200, response.text
    body = response.json()
    value, parts = body["latency_ms"]["value"], body["breakdown"]
    graph = parse_onnx(data, ParseOptions(resolution=32))
    roots = runtime_roots(graph)
    assert parts["nodes"] == graph.n and parts["kernels"] == len(set(roots)) == kernels and parts["members"] == 2
    rows = parts["by_op_type"]
    assert sum(r["ms"] for r in rows) == pytest.approx(value, rel=1e-5)  # the parts add up to the answer
    assert sum(r["nodes"] + sum(r["fused"].values()) for r in rows) == graph.n
    assert [r["share"] for r in rows] == sorted((r["share"] for r in rows), reverse=True)
    for r in rows + parts["top_nodes"]:
        assert r["compute"] + r["memory"] + r["per_node"] == pytest.approx(1.0, abs=1e-6)
    # a kernel's share is the members' own node costs summed over its nodes (the ONNX tensors read are the right ones)
    expected = _member_shares(additive_dir, data)
    kernels = {r: float(sum(expected[j] for j in range(graph.n) if roots[j] == r)) for r in set(roots)}
    for node in parts["top_nodes"]:
        assert node["share"] == pytest.approx(kernels[node["index"]], rel=1e-4, abs=1e-7)
        assert node["ops"] == [graph.nodes[j].op_type for j in range(graph.n) if roots[j] == node["index"]]
    assert [n["index"] for n in parts["top_nodes"]] == sorted(kernels, key=lambda r: -kernels[r])[: len(parts["top_nodes"])]


def test_runtime_roots_follow_onnxruntime_cpu_fusions() -> None:
    """Conv + residual Add + Relu and MatMul + bias Add run as one kernel; a Conv read twice keeps its Relu apart."""
    w = [_weight("w1", 8, 8, 3, 3), _weight("w2", 8, 8, 3, 3), _weight("w3", 8, 8, 1, 1), _weight("m", 8, 4), _weight("b", 4)]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),  # 0
        helper.make_node("Add", ["c1", "x"], ["a1"]),  # 1 residual sum: fused into 0
        helper.make_node("Relu", ["a1"], ["r1"]),  # 2 then the activation: fused into 0
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),  # 3 read twice below
        helper.make_node("Relu", ["c2"], ["r2"]),  # 4 not fused: c2 has a second reader
        helper.make_node("Conv", ["c2", "w3"], ["c3"]),  # 5
        helper.make_node("Add", ["r2", "c3"], ["a2"]),  # 6 fused into 5 (c3 is read once)
        helper.make_node("GlobalAveragePool", ["a2"], ["g"]),  # 7
        helper.make_node("Flatten", ["g"], ["f"]),  # 8
        helper.make_node("MatMul", ["f", "m"], ["mm"]),  # 9
        helper.make_node("Add", ["mm", "b"], ["y"]),  # 10 bias: fused into 9
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = parse_onnx(model_from(nodes, [x], [y], w).SerializeToString(), ParseOptions())
    assert [n.op_type for n in graph.nodes] == ["Conv", "Add", "Relu", "Conv", "Relu", "Conv", "Add", "GlobalAveragePool",
                                                 "Flatten", "MatMul", "Add"]  # fmt: skip
    assert runtime_roots(graph) == [0, 0, 0, 3, 4, 5, 5, 7, 8, 9, 9]


def test_breakdown_is_asked_for_and_bypasses_the_cache(client: TestClient) -> None:
    data = conv_net().SerializeToString()
    plain = client.post("/v1/predict/onnx?resolution=32", content=data).json()
    assert "breakdown" not in plain
    again = client.post("/v1/predict/onnx?resolution=32&breakdown=true", content=data).json()
    assert again["latency_ms"] == plain["latency_ms"] and again["breakdown"]["nodes"] == plain["cost"]["nodes"]


def test_a_readout_with_a_whole_network_correction_is_refused(tmp_path: Path) -> None:
    directory = _predictor_dir(tmp_path, "contextual")
    with TestClient(create_app(Settings(predictor_dir=directory))) as c:
        data = conv_net().SerializeToString()
        assert c.post("/v1/predict/onnx?resolution=32", content=data).status_code == 200
        refused = c.post("/v1/predict/onnx?resolution=32&breakdown=true", content=data)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "breakdown_unavailable" and "contextual" in refused.json()["error"]["message"]


def test_cli_check_prints_where_the_time_goes(
    additive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARCHCAST_PREDICTOR_DIR", str(additive_dir))
    model = tmp_path / "conv.onnx"
    model.write_bytes(conv_net().SerializeToString())
    assert cli_main(["check", str(model), "--resolution", "32", "--max-latency-ms", "1e9", "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "op type" in out and "Conv" in out
