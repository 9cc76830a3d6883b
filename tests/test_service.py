"""Service behaviour with small real ONNX predictors: predictions, order, canonical invariance, cache, health."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ToyPredictor
from fastapi.testclient import TestClient

from model.canonical import canonicalize
from model.parsers import NB201_OPS, nb201_arch_str, parse_json_dag, parse_nb201, parse_nb201_network
from model.parsers.nb201 import NB201_EDGES
from model.tables import nb201_arch_strings
from model.tokenizer import tokenize_graphs

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
CELL_TARGETS = {"cifar10_test_acc": "%", "cifar100_test_acc": "%", "gpu_latency": "ms"}


def canonical_graph(arch: str):
    graph = parse_nb201_network(arch)
    return graph.renumbered(canonicalize(graph).order)


def all_nb201_strings(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)]) for _ in range(count)]


def test_predict_nb201_string_returns_every_target_with_unit(client: TestClient, toy_predictors) -> None:
    toy: ToyPredictor = toy_predictors[1]["toy-cell"]
    response = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictor"] == "toy-cell" and body["version"] == "0.0.1-test"
    (result,) = body["results"]
    assert result["key"] == canonicalize(parse_nb201(ARCH)).key
    assert {t: p["unit"] for t, p in result["predictions"].items()} == CELL_TARGETS
    expected = toy.expected([canonical_graph(ARCH)])[0]
    got = [result["predictions"][t]["value"] for t in CELL_TARGETS]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_predict_body_is_exactly_the_documented_schema(client: TestClient) -> None:
    """The route writes its body with orjson, skipping pydantic: it must still be what PredictResponse would write."""
    from service.schemas import PredictResponse

    archs = [{"space": "nb201", "arch": a} for a in all_nb201_strings(5)]
    response = client.post("/v1/predict", json={"architectures": archs})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert PredictResponse.model_validate(body).model_dump(mode="json") == body
    assert all(set(p) == {"value", "unit", "std"} for r in body["results"] for p in r["predictions"].values())


def test_requested_targets_only_and_in_given_order(client: TestClient) -> None:
    body = {"architectures": [{"space": "nb201", "arch": ARCH}], "targets": ["gpu_latency", "cifar10_test_acc"]}
    result = client.post("/v1/predict", json=body).json()["results"][0]
    assert list(result["predictions"]) == ["gpu_latency", "cifar10_test_acc"]
    assert result["predictions"]["gpu_latency"]["unit"] == "ms"


def test_named_predictor_and_default_by_space(client: TestClient, toy_predictors) -> None:
    normal = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
              ["skip_connect", 0], ["dil_conv_3x3", 2], ["max_pool_3x3", 0], ["skip_connect", 2]]
    arch = {"space": "darts", "normal": normal, "reduce": normal}
    default = client.post("/v1/predict", json={"architectures": [arch]})
    named = client.post("/v1/predict", json={"architectures": [arch], "predictor": "toy-darts"})
    assert default.status_code == named.status_code == 200, default.text
    assert default.json() == named.json()
    assert default.json()["predictor"] == "toy-darts"
    assert list(default.json()["results"][0]["predictions"]) == ["cifar10_val_acc"]


def test_nb101_cell(client: TestClient) -> None:
    matrix = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]
    response = client.post("/v1/predict", json={"architectures": [{"space": "nb101", "matrix": matrix, "ops": ops}]})
    assert response.status_code == 200, response.text
    assert set(response.json()["results"][0]["predictions"]) == set(CELL_TARGETS)


def test_nb201_index_lookup(client: TestClient) -> None:
    try:
        strings = nb201_arch_strings()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 benchmark table absent ({exc}); index lookup needs ARCHCAST_DATA_DIR")
    by_index = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "index": 123}]})
    by_string = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": strings[123]}]})
    assert by_index.status_code == 200, by_index.text
    assert by_index.json() == by_string.json()


def test_nb201_index_with_explicit_data_dir(make_client) -> None:
    try:
        nb201_arch_strings()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 benchmark table absent ({exc})")
    from model.tables import data_dir

    client = make_client(data_dir=data_dir())
    body = {"architectures": [{"space": "nb201", "index": 0}, {"space": "nb201", "index": 15624}]}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    keys = [r["key"] for r in response.json()["results"]]
    strings = nb201_arch_strings()
    assert keys == [canonicalize(parse_nb201_network(strings[0])).key, canonicalize(parse_nb201_network(strings[15624])).key]


def test_batch_keeps_request_order_in_one_onnx_run(client: TestClient, toy_predictors) -> None:
    toy: ToyPredictor = toy_predictors[1]["toy-cell"]
    archs = all_nb201_strings(300, seed=7)
    predictor = client.app.state.registry.predictors["toy-cell"]
    runs_before = predictor.runs
    response = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": a} for a in archs]})
    assert response.status_code == 200, response.text
    assert predictor.runs == runs_before + 1  # one session.run for the whole batch
    results = response.json()["results"]
    assert [r["key"] for r in results] == [canonicalize(parse_nb201_network(a)).key for a in archs]
    expected = toy.expected([canonical_graph(a) for a in archs])
    got = np.array([[r["predictions"][t]["value"] for t in CELL_TARGETS] for r in results])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def nb201_as_json_graph(arch: str, permutation: list[int]) -> dict:
    """The NB201 cell of ``arch`` as a 'graph' architecture whose node k is IR node permutation[k]."""
    graph = parse_nb201(arch)
    position = {old: new for new, old in enumerate(permutation)}
    return {
        "space": "graph",
        "nodes": [graph.nodes[old].op for old in permutation],
        "edges": [[position[s], position[d]] for s, d in reversed(NB201_EDGES)],
    }


def test_renumbered_graph_gives_identical_key_and_values(client: TestClient) -> None:
    identity = nb201_as_json_graph(ARCH, list(range(8)))
    shuffled = nb201_as_json_graph(ARCH, [5, 7, 2, 0, 6, 1, 4, 3])
    # the test is only meaningful if the two numberings tokenize differently without canonicalization
    raw = [parse_json_dag(g["nodes"], g["edges"]) for g in (identity, shuffled)]
    topo = [g.renumbered(sorted(range(g.n), key=lambda i, g=g: _depth(g, i))) for g in raw]
    assert not np.array_equal(tokenize_graphs(topo[:1]).tokens, tokenize_graphs(topo[1:]).tokens)

    response = client.post("/v1/predict", json={"architectures": [identity, shuffled]})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first == second
    # the same DAG sent as an NB201 string shares the canonical key
    assert first["key"] == canonicalize(parse_nb201(ARCH)).key


def _depth(graph, node: int) -> tuple[int, int]:
    preds = graph.predecessors()
    depth, frontier = 0, [node]
    while any(preds[i] for i in frontier):
        frontier = [p for i in frontier for p in preds[i]]
        depth += 1
    return depth, node


def test_renumbering_invariance_without_cache(make_client) -> None:
    client = make_client(cache_size=0)
    a = nb201_as_json_graph(ARCH, list(range(8)))
    b = nb201_as_json_graph(ARCH, [7, 6, 5, 4, 3, 2, 1, 0])
    first = client.post("/v1/predict", json={"architectures": [a]}).json()["results"][0]
    second = client.post("/v1/predict", json={"architectures": [b]}).json()["results"][0]
    assert first == second


def test_cache_hit_returns_identical_answer(client: TestClient) -> None:
    cache = client.app.state.cache
    predictor = client.app.state.registry.predictors["toy-cell"]
    body = {"architectures": [{"space": "nb201", "arch": a} for a in all_nb201_strings(20, seed=3)]}
    first = client.post("/v1/predict", json=body)
    runs = predictor.runs
    hits = cache.hits
    second = client.post("/v1/predict", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert predictor.runs == runs  # answered from the cache, no ONNX run
    assert cache.hits == hits + 20
    # a different target subset is served from the same cache entries
    subset = client.post("/v1/predict", json={**body, "targets": ["gpu_latency"]}).json()
    assert predictor.runs == runs
    assert [r["predictions"]["gpu_latency"] for r in subset["results"]] == [
        r["predictions"]["gpu_latency"] for r in first.json()["results"]
    ]


def test_nb201_twins_are_one_network_with_one_answer_and_one_cache_entry(client: TestClient) -> None:
    """Cells whose edge 1->2 is none, with their intermediate nodes swapped, are one network under two arch strings."""
    from model.parsers import nb201_twin

    cell = ("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
    twin = nb201_twin(cell)
    assert twin is not None and canonicalize(parse_nb201(nb201_arch_str(cell))).key != canonicalize(
        parse_nb201(nb201_arch_str(twin))
    ).key  # the line graphs differ: without the representative the two would be two cache entries
    cache = client.app.state.cache
    first = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": nb201_arch_str(cell)}]})
    hits = cache.hits
    second = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": nb201_arch_str(twin)}]})
    assert first.status_code == second.status_code == 200
    assert first.json()["results"] == second.json()["results"]
    assert cache.hits == hits + 1


def test_partial_cache_hits_and_duplicates(client: TestClient) -> None:
    archs = all_nb201_strings(10, seed=5)
    client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": a} for a in archs[:5]]})
    mixed = archs[3:] + archs[:2] + [archs[9]] * 3
    response = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": a} for a in mixed]})
    fresh = [client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": a}]}).json()["results"][0]
             for a in mixed]
    assert response.json()["results"] == fresh


def test_cache_disabled_still_predicts(make_client, client: TestClient) -> None:
    uncached = make_client(cache_size=0)
    body = {"architectures": [{"space": "nb201", "arch": ARCH}]}
    predictor = uncached.app.state.registry.predictors["toy-cell"]
    answers = [uncached.post("/v1/predict", json=body) for _ in range(2)]
    assert all(a.status_code == 200 for a in answers)
    assert answers[0].json() == answers[1].json() == client.post("/v1/predict", json=body).json()
    assert predictor.runs == 2


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_provider_and_predictors(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "provider": "CPUExecutionProvider", "predictors": ["toy-cell", "toy-darts"]}


def test_readyz_503_without_predictors(make_client, tmp_path: Path) -> None:
    client = make_client(predictor_dir=tmp_path, strict_startup=False)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["ready"] is False
    assert client.get("/healthz").status_code == 200
    predict = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]})
    assert predict.status_code == 503 and predict.json()["error"]["code"] == "not_ready"


def test_readyz_503_when_a_card_is_broken(make_client, toy_predictors, tmp_path: Path) -> None:
    for path in toy_predictors[0].iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "toy-darts.onnx").write_bytes(b"not an onnx file")
    client = make_client(predictor_dir=tmp_path, strict_startup=False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["predictors"] == ["toy-cell"]
    assert "toy-darts" in response.json()["errors"][0]
    # the predictor that did load still serves
    assert client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]}).status_code == 200


def test_list_predictors(client: TestClient) -> None:
    response = client.get("/v1/predictors")
    assert response.status_code == 200
    predictors = {p["name"]: p for p in response.json()["predictors"]}
    assert set(predictors) == {"toy-cell", "toy-darts"}
    cell = predictors["toy-cell"]
    assert cell["version"] == "0.0.1-test"
    assert cell["spaces"] == ["nb201", "graph", "nb101"]
    assert cell["provider"] == "CPUExecutionProvider"
    assert [(t["name"], t["unit"]) for t in cell["targets"]] == list(CELL_TARGETS.items())
    assert cell["targets"][0]["description"] == "toy cifar10_test_acc"
    assert cell["targets"][0]["metrics"] == {"kendall_tau": 0.5}
