"""The service on the shipped predictors in model/predictors (skipped until a trained predictor is committed)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model.canonical import canonicalize
from model.card import PREDICTOR_DIR, find_cards
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201
from model.parsers.nb201 import NB201_EDGES
from model.tables import nb201_arch_strings

CARDS = sorted(PREDICTOR_DIR.glob("*.card.json"))
pytestmark = pytest.mark.skipif(not CARDS, reason=f"no shipped predictor: {PREDICTOR_DIR}/*.card.json is absent")
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(predictor_dir=PREDICTOR_DIR)), raise_server_exceptions=False) as client:
        yield client


def nb201_cards():
    cards = [card for card, _ in find_cards(PREDICTOR_DIR) if "nb201" in card.spaces]
    if not cards:
        pytest.skip("no shipped predictor supports the nb201 space")
    return cards


def test_ready_with_provider(shipped: TestClient) -> None:
    response = shipped.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert sorted(body["predictors"]) == sorted(card.name for card, _ in find_cards(PREDICTOR_DIR))


def test_predictor_listing_matches_cards(shipped: TestClient) -> None:
    listed = {p["name"]: p for p in shipped.get("/v1/predictors").json()["predictors"]}
    for card, _ in find_cards(PREDICTOR_DIR):
        info = listed[card.name]
        assert info["version"] == card.version and info["spaces"] == card.spaces
        assert [(t["name"], t["unit"]) for t in info["targets"]] == [(t.name, t.unit) for t in card.targets]


def test_nb201_prediction_has_every_target_with_unit(shipped: TestClient) -> None:
    card = nb201_cards()[0]
    response = shipped.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}], "predictor": card.name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["predictor"], body["version"]) == (card.name, card.version)
    result = body["results"][0]
    assert result["key"] == canonicalize(parse_nb201(ARCH)).key
    assert list(result["predictions"]) == card.target_names
    for target in card.targets:
        prediction = result["predictions"][target.name]
        assert prediction["unit"] == target.unit
        assert math.isfinite(prediction["value"])
        if target.unit == "ms":
            assert prediction["value"] > 0


def test_a_cell_that_computes_nothing_reads_chance_accuracy(shipped: TestClient) -> None:
    """No path from input to output but through ``none`` edges: the network ignores its input, and every such NB201 row
    reads 10 / 1 / 0.833 %; the default predictor answers that (its accuracies stop at chance), never below it, while a
    cell with a path reads above chance."""
    dead = [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",  # work that never reaches the output
        "|none~0|+|none~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
    ]
    body = {"architectures": [{"space": "nb201", "arch": a} for a in [*dead, ARCH]]}
    response = shipped.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    chance = {"cifar10": 10.0, "cifar100": 1.0, "imagenet16": 100.0 / 120}
    for dataset, rate in chance.items():
        for suffix in ("_test_acc", "_test_acc_12ep"):
            values = [r["predictions"][dataset + suffix]["value"] for r in results]
            assert values[:3] == pytest.approx([rate] * 3, rel=1e-6), (dataset + suffix, values)
            assert values[3] > 2 * rate
    listed = {p["name"]: p for p in shipped.get("/v1/predictors").json()["predictors"]}["nb201-v1"]
    assert {t["name"]: t["floor"] for t in listed["targets"]}["cifar100_test_acc"] == 1.0


def test_batch_matches_single_requests_in_order(shipped: TestClient) -> None:
    card = nb201_cards()[0]
    rng = np.random.default_rng(11)
    archs = [nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)]) for _ in range(64)]
    predictor = shipped.app.state.registry.predictors[card.name]
    runs = predictor.runs
    body = {"architectures": [{"space": "nb201", "arch": a} for a in archs], "predictor": card.name}
    batch = shipped.post("/v1/predict", json=body)
    assert batch.status_code == 200, batch.text
    assert predictor.runs <= runs + 1
    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(predictor_dir=PREDICTOR_DIR, cache_size=0))) as uncached:
        for arch, result in zip(archs[:8], batch.json()["results"], strict=False):
            body = {"architectures": [{"space": "nb201", "arch": arch}], "predictor": card.name}
            alone = uncached.post("/v1/predict", json=body)
            single = alone.json()["results"][0]
            assert single["key"] == result["key"]
            for name in card.target_names:
                assert single["predictions"][name]["value"] == pytest.approx(result["predictions"][name]["value"], rel=1e-4)


def test_index_lookup(shipped: TestClient) -> None:
    nb201_cards()
    try:
        arch = nb201_arch_strings()[4321]
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 benchmark table absent ({exc})")
    by_index = shipped.post("/v1/predict", json={"architectures": [{"space": "nb201", "index": 4321}]})
    by_arch = shipped.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": arch}]})
    assert by_index.status_code == 200 and by_index.json() == by_arch.json()


def test_renumbered_graph_is_invariant(shipped: TestClient) -> None:
    cards = [card for card, _ in find_cards(PREDICTOR_DIR) if {"graph", "nb201"} <= set(card.spaces)]
    if not cards:
        pytest.skip("no shipped predictor accepts the 'graph' space, so a renumbered DAG cannot be sent")
    graph = parse_nb201(ARCH)
    results = []
    for permutation in (list(range(8)), [3, 7, 0, 5, 1, 6, 2, 4]):
        position = {old: new for new, old in enumerate(permutation)}
        arch = {"space": "graph", "nodes": [graph.nodes[i].op for i in permutation],
                "edges": [[position[s], position[d]] for s, d in NB201_EDGES]}
        response = shipped.post("/v1/predict", json={"architectures": [arch], "predictor": cards[0].name})
        assert response.status_code == 200, response.text
        results.append(response.json()["results"][0])
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("name", "dataset", "aligned_to"),
    [
        ("cpu-ort-1t-v1", "cpu-ort-1t", None),
        ("cpu-ort-1t-epyc-v1", "cpu-ort-1t-epyc-23", "cpu-ort-1t"),
        ("cuda-ort-h200-v1", "cuda-ort-h200", "cpu-ort-1t"),
    ],
)
def test_shipped_network_predictor_reproduces_its_card_metrics(name: str, dataset: str, aligned_to: str | None) -> None:
    """Each shipped whole-network ensemble, run through the service's own path, gives its card's test MAPE."""
    from model.network_tokenizer import tokenize_networks
    from service.predictor import load_registry
    from training.latency_data import aligned_in_domain_split, load_latency_dataset, shipping_split, trained_ids_below
    from training.latency_metrics import latency_metrics

    datasets = Path(__file__).parents[1] / "training" / "datasets"
    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    if name not in registry.networks:
        pytest.skip(f"{name} is not shipped")
    network = registry.networks[name]
    assert network.device == json.loads((datasets / dataset / "meta.json").read_text())["device"]
    # the dataset as it was when the predictor shipped: ids below its `training.networks` (as in
    # benchmarks/onnx_latency_versions.py); an aligned dataset's split comes from the whole source dataset, whose
    # earlier families never changed their split
    shipped_with = trained_ids_below(json.loads((PREDICTOR_DIR / f"{name}.card.json").read_text())["training"])
    if aligned_to:
        data = load_latency_dataset(datasets / dataset, progress=False, ids_below=shipped_with)
        split = aligned_in_domain_split(data, load_latency_dataset(datasets / aligned_to, progress=False))
    else:
        data, split = shipping_split(datasets / dataset, ids_below=shipped_with)
    predictions = []
    for start in range(0, len(split.test), 64):
        batch = tokenize_networks([data.graphs[r] for r in split.test[start : start + 64]], version=network.card.tokenizer)
        (pred,) = network.session.run(None, network.feeds(batch))
        predictions.append(pred)
    pred = np.concatenate(predictions)
    metrics = latency_metrics(pred[:, 0], data.latency_ms[split.test])
    card = network.card.targets[0].metrics
    assert metrics["mape"] == pytest.approx(card["mape"], rel=1e-3)
    assert metrics["spearman"] == pytest.approx(card["spearman"], rel=1e-3)
    assert (pred[:, 1] > 0).all()


def test_each_space_and_generic_dags_of_its_ops_reach_its_predictor(shipped: TestClient) -> None:
    """NB101 / DARTS cells go to nb101-v1 / darts-v1; a generic DAG goes to the default predictor that accepts its ops."""
    names = {card.name for card, _ in find_cards(PREDICTOR_DIR)}
    if not {"nb201-v1", "nb101-v1", "darts-v1"} <= names:
        pytest.skip("needs the shipped nb201-v1, nb101-v1 and darts-v1")

    def answer(arch: dict) -> tuple[int, dict]:
        response = shipped.post("/v1/predict", json={"architectures": [arch]})
        return response.status_code, response.json()

    nb101 = {"space": "nb101", "matrix": [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
             "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]}  # fmt: skip
    as_graph = {"space": "graph", "nodes": nb101["ops"], "edges": [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]}
    darts = {"space": "darts", "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]] * 4,
             "reduce": [["max_pool_3x3", 0], ["dil_conv_5x5", 1]] * 4}  # fmt: skip
    nb201_graph = {"space": "graph", "nodes": ["input", "nor_conv_3x3", "output"], "edges": [[0, 1], [1, 2]]}
    for arch, expected in ((nb101, "nb101-v1"), (as_graph, "nb101-v1"), (darts, "darts-v1"), (nb201_graph, "nb201-v1")):
        status, body = answer(arch)
        assert status == 200 and body["predictor"] == expected, (arch, body)
    (first,), (second,) = answer(nb101)[1]["results"], answer(as_graph)[1]["results"]
    assert first["key"] == second["key"] and first["predictions"] == second["predictions"]  # the same cell either way

    mixed = {"space": "graph", "nodes": ["input", "nor_conv_3x3", "conv3x3-bn-relu", "output"], "edges": [[0, 1], [1, 2], [2, 3]]}
    status, body = answer(mixed)  # no predictor accepts both op sets: the default names what it cannot take
    assert status == 422 and body["error"]["code"] == "unsupported_op" and "conv3x3-bn-relu" in body["error"]["message"]
