"""One request's targets answered by several predictors: each target from the first predictor, by priority, offering it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import NB201_NB101_OPS, ToyPredictor, write_toy_predictor
from fastapi.testclient import TestClient

from model.canonical import canonicalize
from model.parsers import parse_nb201_network

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
]


@pytest.fixture(scope="module")
def split_predictors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ToyPredictor]]:
    """``toy-acc`` (the default: priority 0; two accuracies and ``shared``) and ``toy-lat`` (priority -10; two
    latencies and ``shared``), both for nb201 and generic graphs."""
    directory = tmp_path_factory.mktemp("split_predictors")
    spaces = ["nb201", "graph"]
    acc_targets = [("acc_a", "%"), ("acc_b", "%"), ("shared", "%")]
    lat_targets = [("lat_x", "ms"), ("shared", "%"), ("lat_y", "ms")]
    acc = write_toy_predictor(directory, "toy-acc", spaces, NB201_NB101_OPS, acc_targets, seed=3)
    lat = write_toy_predictor(directory, "toy-lat", spaces, NB201_NB101_OPS, lat_targets, seed=4)
    card_path = directory / "toy-lat.card.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "priority": -10}))
    return directory, {acc.name: acc, lat.name: lat}


@pytest.fixture
def make_split_client(split_predictors, make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``make_client`` on the directory of ``toy-acc`` and ``toy-lat``."""
    return lambda **overrides: make_client(predictor_dir=split_predictors[0], **overrides)


def expected(toy: ToyPredictor, target: str) -> np.ndarray:
    graphs = []
    for arch in ARCHS:
        graph = parse_nb201_network(arch)
        graphs.append(graph.renumbered(canonicalize(graph).order))
    return toy.expected(graphs)[:, [name for name, _ in toy.targets].index(target)]


def request(targets: list[str] | None, predictor: str | None = None) -> dict:
    return {"architectures": [{"space": "nb201", "arch": a} for a in ARCHS], "targets": targets, "predictor": predictor}


@pytest.mark.parametrize("dynamic_batching", [True, False])
def test_targets_of_two_predictors_in_one_answer(make_split_client, split_predictors, dynamic_batching: bool) -> None:
    toys = split_predictors[1]
    client = make_split_client(dynamic_batching=dynamic_batching)
    response = client.post("/v1/predict", json=request(["lat_x", "acc_a", "shared", "lat_y"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["predictor"], body["version"]) == ("toy-acc", "0.0.1-test")
    assert body["answered_by"] == [
        {"predictor": "toy-acc", "version": "0.0.1-test", "targets": ["acc_a", "shared"]},  # the default keeps what it has
        {"predictor": "toy-lat", "version": "0.0.1-test", "targets": ["lat_x", "lat_y"]},
    ]
    for result in body["results"]:
        assert list(result["predictions"]) == ["lat_x", "acc_a", "shared", "lat_y"]  # request order
        assert result["predictions"]["lat_x"]["unit"] == "ms" and result["predictions"]["acc_a"]["unit"] == "%"
    got = {t: [r["predictions"][t]["value"] for r in body["results"]] for t in ("lat_x", "acc_a", "shared", "lat_y")}
    np.testing.assert_allclose(got["acc_a"], expected(toys["toy-acc"], "acc_a"), rtol=1e-5)
    np.testing.assert_allclose(got["shared"], expected(toys["toy-acc"], "shared"), rtol=1e-5)
    np.testing.assert_allclose(got["lat_x"], expected(toys["toy-lat"], "lat_x"), rtol=1e-5)
    np.testing.assert_allclose(got["lat_y"], expected(toys["toy-lat"], "lat_y"), rtol=1e-5)

    from service.schemas import PredictResponse

    assert PredictResponse.model_validate(body).model_dump(mode="json") == body
    again = client.post("/v1/predict", json=request(["lat_x", "acc_a", "shared", "lat_y"])).json()
    assert again == body  # from the cache, each predictor's entries under its own key
    hits = client.get("/metrics").text
    assert 'archcast_cache_requests_total{result="hit"} 4.0' in hits  # 2 architectures x 2 predictors


def test_single_predictor_answers_stay_single(make_split_client) -> None:
    client = make_split_client()
    plain = client.post("/v1/predict", json=request(None)).json()
    assert plain["answered_by"] == [{"predictor": "toy-acc", "version": "0.0.1-test", "targets": ["acc_a", "acc_b", "shared"]}]
    latency = client.post("/v1/predict", json=request(["lat_y", "shared"])).json()  # toy-lat offers both: it alone answers
    assert latency["predictor"] == "toy-lat" and [p["predictor"] for p in latency["answered_by"]] == ["toy-lat"]


def test_a_named_predictor_answers_alone(make_split_client) -> None:
    client = make_split_client()
    response = client.post("/v1/predict", json=request(["acc_a", "lat_x"], predictor="toy-acc"))
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_target"
    assert "'lat_x'" in response.json()["error"]["message"]


def test_a_target_no_predictor_offers_names_every_valid_one(make_split_client) -> None:
    client = make_split_client()
    response = client.post("/v1/predict", json=request(["acc_a", "lat_x", "top5"]))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_target" and "'top5'" in error["message"] and "'lat_x'" not in error["message"]
    assert "acc_b" in error["message"] and "lat_y" in error["message"]  # the default's targets and the others'
