"""The fbnet and ofa request spaces end to end through the HTTP API, on a real (toy) ONNX predictor of those spaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import write_toy_predictor
from fastapi.testclient import TestClient

from model.canonical import canonicalize
from model.ops import OP_NAMES
from model.parsers import FBNET_CHOICES, parse_fbnet, parse_ofa

LAYERS = (
    "k5_e6 skip k3_e1_g2 skip k5_e1 skip skip skip k5_e6 k5_e1 k3_e1_g2 k5_e1 k5_e6 k3_e6 k3_e3 k5_e6 k3_e6 k3_e3 "
    "k5_e1 k3_e3 k5_e1 k5_e1_g2"
)
OFA = {
    "ks": [7, 5, 5, 5, 7, 7, 5, 7, 5, 7, 3, 7, 5, 3, 7, 3, 5, 3, 5, 3],
    "e": [6, 4, 4, 6, 6, 3, 4, 3, 3, 6, 3, 3, 3, 6, 3, 4, 6, 4, 3, 6],
    "d": [2, 2, 2, 2, 3],
    "r": 204,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from service.app import create_app
    from service.settings import Settings

    directory: Path = tmp_path_factory.mktemp("spaces")
    ops = [op for op in OP_NAMES if op.startswith(("fbnet_", "ofa_"))]
    toy = write_toy_predictor(directory, "toy-mobile", ["fbnet", "ofa"], ops, [("latency_phone_ms", "ms")], seed=3)
    with TestClient(create_app(Settings(predictor_dir=directory, providers="cpu")), raise_server_exceptions=False) as c:
        c.toy = toy  # type: ignore[attr-defined]
        yield c


def predict(client: TestClient, *architectures: dict) -> dict:
    response = client.post("/v1/predict", json={"architectures": list(architectures)})
    assert response.status_code == 200, response.text
    return response.json()


def test_fbnet_in_every_accepted_form_gets_the_same_prediction(client: TestClient) -> None:
    names = LAYERS.split()
    codes = [FBNET_CHOICES.index(n) for n in names]
    body = predict(client, {"space": "fbnet", "layers": LAYERS}, {"space": "fbnet", "layers": names},
                   {"space": "fbnet", "layers": codes})  # fmt: skip
    keys = {r["key"] for r in body["results"]}
    values = {r["predictions"]["latency_phone_ms"]["value"] for r in body["results"]}
    assert len(keys) == 1 and len(values) == 1
    graph = parse_fbnet(LAYERS)
    expected = client.toy.expected([graph.renumbered(canonicalize(graph).order)])[0, 0]  # type: ignore[attr-defined]
    assert body["results"][0]["predictions"]["latency_phone_ms"]["value"] == pytest.approx(expected, rel=1e-4)


def test_ofa_ignores_the_choices_of_inactive_layers(client: TestClient) -> None:
    other = dict(OFA, ks=list(OFA["ks"]), e=list(OFA["e"]))
    other["ks"][3], other["e"][3] = 3, 3  # stage 0 has depth 2: slot 3 is inactive
    deeper = dict(OFA, d=[3, 2, 2, 2, 3])  # slot 2 becomes active: a different network
    body = predict(client, {"space": "ofa", **OFA}, {"space": "ofa", **other}, {"space": "ofa", **deeper})
    first, second, third = body["results"]
    assert first == second and first["key"] != third["key"]
    graph = parse_ofa(OFA["ks"], OFA["e"], OFA["d"], OFA["r"])
    expected = client.toy.expected([graph.renumbered(canonicalize(graph).order)])[0, 0]  # type: ignore[attr-defined]
    assert np.isclose(first["predictions"]["latency_phone_ms"]["value"], expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("architecture", "code", "named"),
    [
        ({"space": "fbnet", "layers": "k3_e1 skip"}, "bad_fbnet", "22"),
        ({"space": "fbnet", "layers": ["k7_e9"] * 22}, "unknown_op", "k7_e9"),
        ({"space": "ofa", **OFA, "r": 130}, "bad_ofa", "130"),
        ({"space": "ofa", **OFA, "d": [2, 2, 2, 2, 5]}, "bad_ofa", "d"),
        ({"space": "ofa", **OFA, "ks": [9] * 20}, "bad_ofa", "ks"),
    ],
)
def test_bad_networks_get_422_naming_the_problem(client: TestClient, architecture: dict, code: str, named: str) -> None:
    response = client.post("/v1/predict", json={"architectures": [architecture]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and named in error["message"] and error["message"].startswith("architectures.0")
