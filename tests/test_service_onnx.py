"""``POST /v1/predict/onnx``, ``archcast predict model.onnx`` and the ``archcast check`` CI gate, end to end.

The network predictor is a REAL exported ensemble (two untrained WholeNetworkTransformer members, fixed seeds):
the tests check plumbing and contracts (value/std from the ONNX graph, costs from the parser, limits, errors),
not quality, which benchmarks/onnx_latency.py measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from live_server import LiveServer
from onnx_fixtures import attention_block, conv_net, conv_stack, einsum_model, kv_cache_attention, recurrent_model

from archcast.cli import main as cli_main
from archcast.client import Client
from model.network_tokenizer import GRAPH_FEATURE_DIM, NETWORK_TOKEN_DIM, tokenize_networks
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.settings import Settings
from training.latency_export import export_ensemble, write_network_card
from training.network import NetworkConfig
from training.whole_network import LatencyEnsemble, WholeNetworkTransformer


@pytest.fixture(scope="module")
def network_predictor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("network-predictor")
    cfg = NetworkConfig(n_targets=1, d_model=32, n_heads=2, n_layers=1, dropout=0.0)
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(WholeNetworkTransformer(cfg).eval())
    export_ensemble(members, directory / "net-test.onnx")
    write_network_card(directory / "net-test.onnx", "net-test", "0.1", {"device": "cpu-ort-1t"}, {"mape": 1.0}, {})
    torch.save(members, directory / "members.pt")
    return directory


def expected(directory: Path, data: bytes, resolution: int) -> np.ndarray:
    members = torch.load(directory / "members.pt", weights_only=False)
    batch = tokenize_networks([parse_onnx(data, ParseOptions(resolution=resolution))])
    with torch.no_grad():
        return LatencyEnsemble(members)(
            torch.from_numpy(batch.tokens), torch.from_numpy(batch.mask), torch.from_numpy(batch.features)
        )[0].numpy()


@pytest.fixture(scope="module")
def client(network_predictor_dir: Path):
    app = create_app(Settings(predictor_dir=network_predictor_dir, max_onnx_bytes=200_000, max_network_nodes=12))
    with TestClient(app) as c:
        yield c


def test_raw_and_multipart_give_the_ensemble_prediction_and_costs(client: TestClient, network_predictor_dir: Path) -> None:
    data = conv_net().SerializeToString()
    raw = client.post("/v1/predict/onnx?resolution=32", content=data, headers={"content-type": "application/octet-stream"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    value, std = expected(network_predictor_dir, data, 32)
    assert body["latency_ms"]["value"] == pytest.approx(value, rel=1e-4)
    assert body["latency_ms"]["std"] == pytest.approx(std, rel=1e-3, abs=1e-6)
    assert body["latency_ms"]["std"] > 0  # two different members disagree
    assert body["cost"]["macs"] == 16 * 16 * 16 * 27 + 16 * 16 * 16 * 9 + 160
    assert body["cost"]["nodes"] == 6 and body["device"] == "cpu-ort-1t" and body["cached"] is False
    assert body["input_shapes"] == {"x": [1, 3, 32, 32]}
    multipart = client.post("/v1/predict/onnx?resolution=32", files={"file": ("m.onnx", data)})
    assert multipart.status_code == 200 and multipart.json()["cached"] is True
    assert multipart.json()["latency_ms"] == body["latency_ms"]


def test_a_recurrent_upload_is_read_lowered_by_a_tokenizer_6_predictor(client: TestClient, network_predictor_dir: Path) -> None:
    """The test predictor's card says tokenizer 6: the service lowers the LSTM to its products before the ensemble
    sees it, and the cost summary still describes the graph as uploaded."""
    data = recurrent_model("LSTM", 4, "forward", 1).SerializeToString()
    body = client.post("/v1/predict/onnx", content=data, headers={"content-type": "application/octet-stream"}).json()
    value, _ = expected(network_predictor_dir, data, 224)
    assert body["latency_ms"]["value"] == pytest.approx(value, rel=1e-4)
    assert body["cost"]["nodes"] == 3
    members = torch.load(network_predictor_dir / "members.pt", weights_only=False)
    exported = tokenize_networks([parse_onnx(data)], version="5")
    with torch.no_grad():
        unlowered = LatencyEnsemble(members)(*(torch.from_numpy(a) for a in (exported.tokens, exported.mask, exported.features)))
    assert unlowered[0, 0].item() != pytest.approx(value, rel=1e-4)


def test_resolution_changes_the_answer_and_the_cache_key(client: TestClient) -> None:
    data = conv_net().SerializeToString()
    small = client.post("/v1/predict/onnx?resolution=32", content=data).json()
    big = client.post("/v1/predict/onnx?resolution=128&batch=2", content=data).json()
    # convolutions scale with pixels (16x) and batch (2x), the classifier Gemm (160 MACs) with batch only
    assert big["cost"]["macs"] == pytest.approx(32 * small["cost"]["macs"] - 30 * 160, rel=1e-9)
    assert big["cached"] is False and big["batch"] == 2


def token_model() -> bytes:
    """Token ids of symbolic batch and length -> embedding table (Gather) -> MatMul 16 x 8."""
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.zeros((1000, 16), np.float32), "table")
    weight = numpy_helper.from_array(np.zeros((16, 8), np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["embedded"]), helper.make_node("MatMul", ["embedded", "weight"], ["y"])],
        "tokens",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [table, weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_sequence_length_sets_symbolic_token_axes_and_the_cache_key(client: TestClient) -> None:
    data = token_model()
    default = client.post("/v1/predict/onnx", content=data).json()
    assert default["input_shapes"] == {"ids": [1, 128]} and default["cost"]["macs"] == 128 * 16 * 8
    short = client.post("/v1/predict/onnx?sequence_length=64", content=data).json()
    assert short["cached"] is False and short["sequence_length"] == 64
    assert short["input_shapes"] == {"ids": [1, 64]} and short["cost"]["macs"] == 64 * 16 * 8
    response = client.post("/v1/predict/onnx?sequence_length=100000", content=data)
    assert response.status_code == 422 and response.json()["error"]["code"] == "sequence_length_too_large"


def test_past_length_sets_a_kv_caches_named_axes_and_the_cache_key(client: TestClient) -> None:
    data = kv_cache_attention(heads=2, head_dim=4).SerializeToString()
    step = client.post("/v1/predict/onnx?sequence_length=1&past_length=37", content=data).json()
    assert step["input_shapes"] == {"q": [1, 2, 1, 4], "past_key": [1, 2, 37, 4]} and step["past_length"] == 37
    assert step["cost"]["macs"] == 2 * 2 * 38 * 4 and step["cached"] is False
    shorter = client.post("/v1/predict/onnx?sequence_length=1&past_length=10", content=data).json()
    assert shorter["cached"] is False and shorter["cost"]["macs"] == 2 * 2 * 11 * 4
    again = client.post("/v1/predict/onnx?sequence_length=1&past_length=37", content=data).json()
    assert again["cached"] is True and again["latency_ms"] == step["latency_ms"] and again["past_length"] == 37
    response = client.post("/v1/predict/onnx?past_length=100000", content=data)
    assert response.status_code == 422 and response.json()["error"]["code"] == "past_length_too_large"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"not an onnx model"}, 422, "invalid_onnx"),
        ({"content": b""}, 422, "invalid_onnx"),
        ({"json": {"model": "x"}}, 415, "unsupported_media_type"),
        ({"files": {"other": ("m.onnx", b"x")}}, 422, "missing_file"),
        ({"content": b"x" * 200_001}, 413, "body_too_large"),
    ],
    ids=["garbage", "empty", "json", "multipart-without-file", "oversized"],
)
def test_bad_uploads_get_clear_4xx(client: TestClient, kwargs: dict, status: int, code: str) -> None:
    response = client.post("/v1/predict/onnx", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_limits_are_enforced(client: TestClient) -> None:
    too_many_nodes = attention_block().SerializeToString()  # 16 ops > max_network_nodes=12
    response = client.post("/v1/predict/onnx", content=too_many_nodes)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    response = client.post("/v1/predict/onnx?resolution=4096", content=conv_net().SerializeToString())
    assert response.status_code == 422 and response.json()["error"]["code"] == "resolution_too_large"
    response = client.post("/v1/predict/onnx?device=h100", content=conv_net().SerializeToString())
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_predictor"


def test_without_a_device_the_highest_priority_network_predictor_answers(network_predictor_dir: Path, tmp_path: Path) -> None:
    """Two network predictors (two devices): a request naming a device gets that device's; one naming none gets the
    card with the highest priority, whatever the names' order."""
    import shutil

    for name, device, priority in (("a-other", "cpu-other", 0), ("z-main", "cpu-main", 1)):
        shutil.copy(network_predictor_dir / "net-test.onnx", tmp_path / f"{name}.onnx")
        write_network_card(tmp_path / f"{name}.onnx", name, "0.1", {"device": device}, {"mape": 1.0}, {}, priority)
    with TestClient(create_app(Settings(predictor_dir=tmp_path))) as c:
        data = conv_net().SerializeToString()
        headers = {"content-type": "application/octet-stream"}
        assert c.post("/v1/predict/onnx?resolution=32", content=data, headers=headers).json()["device"] == "cpu-main"
        other = c.post("/v1/predict/onnx?resolution=32&device=cpu-other", content=data, headers=headers).json()
        assert other["device"] == "cpu-other" and other["predictor"] == "a-other"


def test_predictors_lists_the_network_predictor(client: TestClient) -> None:
    (info,) = client.get("/v1/predictors").json()["predictors"]
    assert info["kind"] == "network" and info["device"] == {"device": "cpu-ort-1t"}
    assert info["targets"][0]["metrics"] == {"mape": 1.0}
    assert client.get("/readyz").json()["predictors"] == ["net-test"]


def test_cli_predict_and_check_in_process(
    network_predictor_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARCHCAST_PREDICTOR_DIR", str(network_predictor_dir))
    model = tmp_path / "conv.onnx"
    model.write_bytes(conv_net().SerializeToString())
    value, _ = expected(network_predictor_dir, model.read_bytes(), 64)
    assert cli_main(["check", str(model), "--resolution", "64", "--max-latency-ms", str(value * 1.01)]) == 0
    assert capsys.readouterr().out.startswith("PASS")
    assert cli_main(["check", str(model), "--resolution", "64", "--max-latency-ms", str(value * 0.99)]) == 1
    assert capsys.readouterr().out.startswith("FAIL")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"junk")
    assert cli_main(["check", str(broken), "--max-latency-ms", "10"]) == 2
    assert "invalid_onnx" in capsys.readouterr().err
    assert cli_main(["predict", str(model), "--resolution", "64"]) == 0
    assert '"latency_ms"' in capsys.readouterr().out


def test_client_and_check_through_a_live_server(network_predictor_dir: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "conv.onnx"
    model.write_bytes(conv_net().SerializeToString())
    with LiveServer(create_app(Settings(predictor_dir=network_predictor_dir, providers="cpu"))) as server:
        with Client(server.url) as c:
            body = c.predict_onnx(model, resolution=32)
        value, _ = expected(network_predictor_dir, model.read_bytes(), 32)
        assert body["latency_ms"]["value"] == pytest.approx(value, rel=1e-4)
        assert cli_main(["check", str(model), "--url", server.url, "--resolution", "32", "--max-latency-ms", "1e6"]) == 0
        assert "PASS" in capsys.readouterr().out


def _constant_network_predictor(directory: Path, name: str, token_width: int, feature_width: int) -> Path:
    """A network predictor ONNX with the given input widths that always answers 1.0 (log ms) and its card."""
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["B", "L", token_width]),
        helper.make_tensor_value_info("mask", TensorProto.BOOL, ["B", "L"]),
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", feature_width]),
    ]
    output = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [1, 2])
    constant = helper.make_node(
        "Constant", [], ["prediction"], value=helper.make_tensor("v", TensorProto.FLOAT, [1, 2], [1.0, 0.1])
    )
    model = helper.make_model(helper.make_graph([constant], name, inputs, [output]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (directory / f"{name}.onnx").write_bytes(model.SerializeToString())
    return write_network_card(directory / f"{name}.onnx", name, "0.1", {"device": "cpu-ort-1t"}, {"mape": 1.0}, {})


def test_a_network_predictor_made_for_another_token_width_is_reported_not_served(tmp_path: Path) -> None:
    """A predictor exported before the tokenizer changed (240-wide tokens) must fail at load with a clear reason."""
    from service.predictor import load_registry

    _constant_network_predictor(tmp_path, "old-net", 240, 16)
    registry = load_registry(tmp_path, providers="cpu")
    assert "old-net" not in registry.networks
    assert any("width 240" in e and "another tokenizer version" in e for e in registry.errors), registry.errors


@pytest.mark.parametrize("recorded", ["", "2"])
def test_a_network_predictor_of_another_tokenizer_version_at_the_same_width_is_refused(tmp_path: Path, recorded: str) -> None:
    """Same widths, other column meanings (version 2 flagged channels on every node): loading it would misread tokens."""
    from service.predictor import load_registry

    card_path = _constant_network_predictor(tmp_path, "same-width", NETWORK_TOKEN_DIM, GRAPH_FEATURE_DIM)
    assert load_registry(tmp_path, providers="cpu").networks.keys() == {"same-width"}  # the current version loads
    card = json.loads(card_path.read_text())
    card["tokenizer"] = recorded
    card_path.write_text(json.dumps(card))
    registry = load_registry(tmp_path, providers="cpu")
    assert "same-width" not in registry.networks
    assert any("tokenizer version" in e and "another tokenizer version" in e for e in registry.errors), registry.errors


@pytest.mark.parametrize("version", ["3", "4"])
def test_a_network_predictor_of_an_older_tokenizer_is_served_with_the_columns_it_knows(tmp_path: Path, version: str) -> None:
    """Tokenizers 4 and 5 appended columns (fusion flags, GEMM view); an older predictor (narrower tokens) still loads
    and answers."""
    from model.network_tokenizer import TOKEN_WIDTHS
    from service.predictor import load_registry

    assert TOKEN_WIDTHS[version] < NETWORK_TOKEN_DIM
    card_path = _constant_network_predictor(tmp_path, "old-net", TOKEN_WIDTHS[version], GRAPH_FEATURE_DIM)
    card = json.loads(card_path.read_text())
    card["tokenizer"] = version
    card_path.write_text(json.dumps(card))
    registry = load_registry(tmp_path, providers="cpu")
    assert registry.networks.keys() == {"old-net"}, registry.errors
    graph = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=32))
    value, std = registry.networks["old-net"].run(graph)
    assert value == pytest.approx(1.0) and std == pytest.approx(0.1)


@pytest.fixture(scope="module")
def domain_predictor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test predictor, its card saying it was trained on conv_net at resolutions 32-64 only."""
    from model.network_domain import training_domain

    directory = tmp_path_factory.mktemp("domain-predictor")
    cfg = NetworkConfig(n_targets=1, d_model=32, n_heads=2, n_layers=1, dropout=0.0)
    torch.manual_seed(0)
    export_ensemble([WholeNetworkTransformer(cfg).eval()] * 2, directory / "net-domain.onnx")
    graphs = [parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=r)) for r in (32, 64)]
    domain = training_domain(graphs)
    assert domain["op_types"] == ["Conv", "Flatten", "Gemm", "GlobalAveragePool", "Relu"]
    assert domain["conv"] == {"ranks": [2], "kernel": 3}
    write_network_card(
        directory / "net-domain.onnx", "net-domain", "0.1", {"device": "cpu-ort-1t"}, {"mape": 1.0}, {}, domain=domain
    )
    return directory


def test_uploads_outside_the_training_networks_are_answered_with_warnings(
    domain_predictor_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(Settings(predictor_dir=domain_predictor_dir))) as client:
        inside = client.post("/v1/predict/onnx?resolution=48", content=conv_net().SerializeToString()).json()
        assert inside["warnings"] == []
        larger = client.post("/v1/predict/onnx?resolution=224", content=conv_net().SerializeToString()).json()
        assert len(larger["warnings"]) == 1 and "MACs, more than any training network" in larger["warnings"][0]
        attention = attention_block().SerializeToString()
        first, again = (client.post("/v1/predict/onnx", content=attention).json() for _ in range(2))
        assert first["cached"] is False and again["cached"] is True
        assert first["warnings"] == again["warnings"]  # rebuilt from the cached values
        unseen = first["warnings"][0]
        assert unseen.startswith("op types never seen") and "MatMul" in unseen and "Softmax" in unseen
        assert "Conv" not in unseen.split(":", 1)[1]
    monkeypatch.setenv("ARCHCAST_PREDICTOR_DIR", str(domain_predictor_dir))
    model = tmp_path / "attention.onnx"
    model.write_bytes(attention)
    assert cli_main(["check", str(model), "--max-latency-ms", "1e9"]) == 0  # a warning does not fail the gate
    assert "warning: op types never seen" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kernel", "rank", "stride", "expected"),
    [
        (3, 2, 1, []),
        (8, 2, 8, []),  # a patch embedding (kernel = stride): no overlapping windows, not a wide kernel
        (7, 2, 1, ["a convolution kernel 7 wide, wider than any training network's (3): its cost is extrapolated"]),
        (
            3,
            3,
            1,
            [
                "convolutions over 3 spatial axes (Conv3d); the training networks convolve over 2 only: "
                "their cost is extrapolated"
            ],
        ),
    ],
)
def test_convolutions_unlike_the_training_networks_are_warned_about(
    domain_predictor_dir: Path, kernel: int, rank: int, stride: int, expected: list[str]
) -> None:
    data = conv_stack(kernel, rank, stride).SerializeToString()
    with TestClient(create_app(Settings(predictor_dir=domain_predictor_dir))) as client:
        first, again = (client.post("/v1/predict/onnx", content=data).json() for _ in range(2))
    assert again["cached"] is True
    for body in (first, again):  # the second rebuilt from the cached values
        assert body["convolutions"]["ranks"] == [rank]
        assert body["convolutions"]["kernel"] == (kernel if stride < kernel else 0)
        assert [w for w in body["warnings"] if "convol" in w] == expected


def test_an_einsum_read_as_a_matmul_is_said_so_from_the_cache_too(domain_predictor_dir: Path) -> None:
    data = einsum_model("bnhd,bmhd->bhnm", (1, 10, 4, 8), (1, 12, 4, 8), (1, 4, 10, 12)).SerializeToString()
    with TestClient(create_app(Settings(predictor_dir=domain_predictor_dir))) as client:
        first, again = (client.post("/v1/predict/onnx", content=data).json() for _ in range(2))
    assert again["cached"] is True
    for body in (first, again):
        assert body["einsums"] == 1 and body["cost"]["macs"] == 4 * 10 * 12 * 8
        assert [w for w in body["warnings"] if "Einsum" in w] == [
            "1 Einsum node read as the Transposes and MatMul computing the same product; onnxruntime's own Einsum "
            "kernel can run slower than that (attention: 1.2-1.6x, benchmarks/results/onnx_unusual.md)"
        ]


def test_a_card_without_a_domain_gives_no_warnings(client: TestClient) -> None:
    body = client.post("/v1/predict/onnx?resolution=512", content=conv_net().SerializeToString()).json()
    assert body["cost"]["nodes"] == 6 and body["warnings"] == []
