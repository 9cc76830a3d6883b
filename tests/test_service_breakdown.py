"""``?breakdown=true``: where a network's predicted time goes, read out of a real exported additive ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from onnx_fixtures import attention_block, conv_net

from archcast.cli import main as cli_main
from model.network_tokenizer import log2_column, tokenize_networks
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.settings import Settings
from training.latency_export import export_ensemble, write_network_card
from training.network import NetworkConfig
from training.whole_network import LOG2_CODE_TO_LN, WholeNetworkTransformer

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
            x = m.token_proj(tokens)
            for block in m.encoder:
                x = block(x, None, mask)
            rates = m.node_rates(m.ln_nodes(x))
            ln_flops = tokens[..., log2_column("flops")] * LOG2_CODE_TO_LN
            ln_bytes = tokens[..., log2_column("memory_bytes")] * LOG2_CODE_TO_LN
            terms = torch.stack([ln_flops + rates[..., 0], ln_bytes + rates[..., 1], rates[..., 2]], dim=-1)
            shares.append(torch.softmax(torch.logsumexp(terms, dim=-1)[0], dim=0).numpy())
    return np.mean(shares, axis=0)


def test_the_breakdown_takes_the_prediction_apart_node_by_node(client: TestClient, additive_dir: Path) -> None:
    data = attention_block().SerializeToString()
    response = client.post("/v1/predict/onnx?breakdown=true&resolution=32", content=data)
    assert response.status_code == 200, response.text
    body = response.json()
    value, parts = body["latency_ms"]["value"], body["breakdown"]
    graph = parse_onnx(data, ParseOptions(resolution=32))
    assert parts["nodes"] == graph.n and parts["members"] == 2
    rows = parts["by_op_type"]
    assert sum(r["ms"] for r in rows) == pytest.approx(value, rel=1e-5)  # the parts add up to the answer
    assert sum(r["nodes"] for r in rows) == graph.n
    assert {r["op_type"] for r in rows} == {n.op_type for n in graph.nodes}
    assert [r["share"] for r in rows] == sorted((r["share"] for r in rows), reverse=True)
    for r in rows + parts["top_nodes"]:
        assert r["compute"] + r["memory"] + r["per_node"] == pytest.approx(1.0, abs=1e-6)
    # the per-node shares are the members' own node costs (the ONNX tensors the breakdown reads are the right ones)
    expected = _member_shares(additive_dir, data)
    for node in parts["top_nodes"]:
        assert node["share"] == pytest.approx(expected[node["index"]], rel=1e-4, abs=1e-7)
        assert node["op_type"] == graph.nodes[node["index"]].op_type
    assert [n["index"] for n in parts["top_nodes"]] == list(np.argsort(-expected)[: len(parts["top_nodes"])])


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
