"""Every bad input gets a 4xx JSON body ``{"error": {"code", "message"}}`` naming the problem, never a 500."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
NB201 = {"space": "nb201", "arch": ARCH}
PAIRS = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
         ["skip_connect", 0], ["dil_conv_3x3", 2], ["max_pool_3x3", 0], ["skip_connect", 2]]
DARTS = {"space": "darts", "normal": PAIRS, "reduce": PAIRS}
CHAIN = {"space": "graph", "nodes": ["input", "nor_conv_3x3", "output"], "edges": [[0, 1], [1, 2]]}


def predict(client: TestClient, body: Any) -> tuple[int, str, str]:
    response = client.post("/v1/predict", json=body)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json().get("error", {})
    return response.status_code, error.get("code", ""), error.get("message", "")


def single(arch: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"architectures": [arch], **extra}


CASES: list[tuple[str, Any, int, str, list[str]]] = [
    # parser / validation errors of the architecture itself (ArchitectureError codes)
    ("bad arch string", single({"space": "nb201", "arch": "|conv~0|"}), 422, "bad_arch_string", ["architectures.0", "3"]),
    ("unknown nb201 op", single({"space": "nb201", "arch": ARCH.replace("avg_pool_3x3", "conv_7x7")}), 422, "unknown_op",
     ["architectures.0", "conv_7x7"]),
    ("cycle", single({"space": "graph", "nodes": ["input", "nor_conv_3x3", "nor_conv_1x1", "output"],
                      "edges": [[0, 1], [1, 2], [2, 1], [2, 3]]}), 422, "cycle", ["architectures.0", "cycle"]),
    ("disconnected", single({"space": "graph", "nodes": ["input", "nor_conv_3x3", "output"], "edges": [[0, 2]]}), 422,
     "disconnected", ["node 1"]),
    ("duplicate edge", single({**CHAIN, "edges": [[0, 1], [0, 1], [1, 2]]}), 422, "bad_edge", ["duplicate edge"]),
    ("edge out of range", single({**CHAIN, "edges": [[0, 1], [1, 9]]}), 422, "bad_edge", ["outside"]),
    ("two inputs", single({**CHAIN, "nodes": ["input", "input", "output"]}), 422, "bad_node", ["exactly one"]),
    ("graph op outside vocabulary", single({**CHAIN, "nodes": ["input", "conv_7x7", "output"]}), 422, "unknown_op",
     ["conv_7x7"]),
    ("nb101 bad matrix", single({"space": "nb101", "matrix": [[0, 1], [1, 0]], "ops": ["input", "output"]}), 422,
     "bad_matrix", ["upper-triangular"]),
    ("nb101 ragged matrix", single({"space": "nb101", "matrix": [[0, 1], [0]], "ops": ["input", "output"]}), 422,
     "bad_matrix", ["square"]),
    ("darts wrong pair count", single({**DARTS, "normal": PAIRS[:7]}), 422, "bad_genotype", ["normal", "8"]),
    ("darts bad input state", single({**DARTS, "reduce": [["sep_conv_3x3", 5]] + PAIRS[1:]}), 422, "bad_genotype",
     ["reduce cell pair 0"]),
    # shape errors caught by the request schema
    ("nb201 without arch or index", single({"space": "nb201"}), 422, "invalid_request",
     ["architectures.0", "exactly one of 'arch' and 'index'"]),
    ("nb201 with arch and index", single({"space": "nb201", "arch": ARCH, "index": 3}), 422, "invalid_request",
     ["exactly one"]),
    ("missing field", single({"space": "graph", "nodes": ["input", "output"]}), 422, "invalid_request",
     ["architectures.0.edges: field required"]),
    ("extra field", single({**NB201, "colour": "red"}), 422, "invalid_request", ["architectures.0.colour", "extra"]),
    ("extra top-level field", {**single(NB201), "verbose": True}, 422, "invalid_request", ["verbose"]),
    ("missing space", single({"arch": ARCH}), 422, "invalid_request", ["architectures.0.space: field required"]),
    ("arch not a string", single({"space": "nb201", "arch": 5}), 422, "invalid_request", ["architectures.0.arch"]),
    ("index as string", single({"space": "nb201", "index": "12"}), 422, "invalid_request", ["architectures.0.index"]),
    ("matrix entry 2", single({"space": "nb101", "matrix": [[0, 2], [0, 0]], "ops": ["input", "output"]}), 422,
     "invalid_request", ["architectures.0.matrix.0.1"]),
    ("huge matrix entry", single({"space": "nb101", "matrix": [[0, 10**30], [0, 0]], "ops": ["input", "output"]}), 422,
     "invalid_request", ["matrix"]),
    ("edge not a pair", single({**CHAIN, "edges": [[0, 1, 2]]}), 422, "invalid_request", ["architectures.0.edges.0"]),
    ("body is a list", [NB201], 422, "invalid_request", ["body"]),
    ("architectures not a list", {"architectures": NB201}, 422, "invalid_request", ["architectures"]),
    ("missing architectures", {"targets": None}, 422, "invalid_request", ["architectures: field required"]),
    ("empty targets", single(NB201, targets=[]), 422, "invalid_request", ["targets"]),
    # request-level errors of the service
    ("empty batch", {"architectures": []}, 422, "empty_batch", ["architectures", "empty"]),
    ("unknown space", single({"space": "proxylessnas", "arch": "x"}), 422, "unsupported_space",
     ["architectures.0.space", "proxylessnas", "nb201"]),
    ("unknown target", single(NB201, targets=["cifar10_test_acc", "top5"]), 422, "unknown_target",
     ["'top5'", "cifar10_test_acc", "gpu_latency"]),
    ("unknown predictor", single(NB201, predictor="nb999"), 404, "unknown_predictor", ["nb999", "toy-cell"]),
    ("space not supported by named predictor", single(DARTS, predictor="toy-cell"), 422, "unsupported_space",
     ["darts", "nb201"]),
    ("mixed spaces", {"architectures": [NB201, DARTS]}, 422, "mixed_spaces", ["nb201", "darts"]),
    ("op not in predictor card", single({**CHAIN, "nodes": ["input", "concat", "output"]}), 422, "unsupported_op",
     ["architectures.0", "concat", "toy-cell"]),
    ("index out of range", single({"space": "nb201", "index": 15625}), 422, "index_out_of_range", ["15625", "0..15624"]),
    ("negative index", single({"space": "nb201", "index": -1}), 422, "index_out_of_range", ["-1"]),
    ("error names the failing architecture", {"architectures": [NB201, NB201, {"space": "nb201", "arch": "bad"}]}, 422,
     "bad_arch_string", ["architectures.2"]),
]


@pytest.mark.parametrize(("body", "status", "code", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(client: TestClient, body: Any, status: int, code: str, needles: list[str]) -> None:
    got_status, got_code, message = predict(client, body)
    assert (got_status, got_code) == (status, code), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_too_many_nodes(make_client) -> None:
    client = make_client(max_nodes=5)
    nodes = ["input", *["nor_conv_3x3"] * 5, "output"]
    status, code, message = predict(client, single({"space": "graph", "nodes": nodes, "edges": [[i, i + 1] for i in range(6)]}))
    assert (status, code) == (422, "too_large") and "limit is 5" in message


def test_no_loaded_predictor_supports_space(make_client, toy_predictors, tmp_path: Path) -> None:
    for path in toy_predictors[0].glob("toy-cell.*"):
        shutil.copy(path, tmp_path / path.name)
    client = make_client(predictor_dir=tmp_path)
    status, code, message = predict(client, single(DARTS))
    assert (status, code) == (422, "unsupported_space")
    assert "darts" in message and "nb201, nb101, graph" in message.replace("graph, nb101, nb201", "nb201, nb101, graph")


@pytest.mark.parametrize(
    ("content", "headers", "needle"),
    [
        (b'{"architectures": [', {"content-type": "application/json"}, "not valid JSON"),
        (b"{'architectures': []}", {"content-type": "application/json"}, "not valid JSON"),
        (b"\xff\xfe\xfa", {"content-type": "application/json"}, "JSON"),
        (b"architectures=1", {"content-type": "application/x-www-form-urlencoded"}, "Content-Type: application/json"),
        (b'{"architectures": []}', {"content-type": "text/plain"}, "Content-Type: application/json"),
        (b"", {"content-type": "application/json"}, "missing"),
    ],
    ids=["truncated", "single-quotes", "not-utf8", "form", "text-plain", "empty"],
)
def test_malformed_json(client: TestClient, content: bytes, headers: dict[str, str], needle: str) -> None:
    response = client.post("/v1/predict", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
    assert needle in response.json()["error"]["message"]


def test_batch_over_max_batch(make_client) -> None:
    client = make_client(max_batch=3)
    assert predict(client, {"architectures": [NB201] * 3})[0] == 200
    status, code, message = predict(client, {"architectures": [NB201] * 4})
    assert (status, code) == (413, "batch_too_large")
    assert "4 architectures" in message and "limit is 3" in message and "ARCHCAST_MAX_BATCH" in message


def test_body_over_max_body_bytes(make_client) -> None:
    client = make_client(max_body_bytes=300)
    small = json.dumps(single(NB201)).encode()
    assert len(small) < 300
    assert client.post("/v1/predict", content=small, headers={"content-type": "application/json"}).status_code == 200
    big = json.dumps({"architectures": [NB201] * 5}).encode()
    response = client.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert "300 bytes" in response.json()["error"]["message"]


def test_streamed_body_without_content_length_is_counted(make_client) -> None:
    client = make_client(max_body_bytes=300)
    big = json.dumps({"architectures": [NB201] * 5}).encode()

    def chunks():
        for start in range(0, len(big), 64):
            yield big[start:start + 64]

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    small = json.dumps(single(NB201)).encode()
    response = client.post("/v1/predict", content=iter([small[:50], small[50:]]), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


def test_index_unavailable_without_data(make_client, tmp_path: Path) -> None:
    client = make_client(data_dir=tmp_path / "no-data-here")
    status, code, message = predict(client, single({"space": "nb201", "index": 7}))
    assert (status, code) == (422, "index_unavailable")
    assert "ARCHCAST_DATA_DIR" in message and "'arch'" in message
    # arch strings still work without the table
    assert predict(client, single(NB201))[0] == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"architectures": [{"space": "nb201", "index": NaN}]}',
        b'{"architectures": [{"space": "nb101", "matrix": [[0, Infinity], [0, 0]], "ops": ["input", "output"]}]}',
        b'{"architectures": [{"space": "nb201", "arch": "' + ARCH.encode() + b'"}], "targets": [-Infinity]}',
    ],
)
def test_non_finite_json_numbers_are_rejected(client: TestClient, content: bytes) -> None:
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_unknown_route_and_method(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.get("/v1/predict")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
spaces = st.sampled_from(["nb201", "nb101", "darts", "graph", "other"])
architectures = st.fixed_dictionaries(
    {"space": spaces},
    optional={
        "arch": st.text(alphabet="|+~0123_abcdeimnoprstvxy", max_size=80) | json_values,
        "index": st.integers(-5, 20_000) | json_values,
        "matrix": st.lists(st.lists(st.integers(-1, 2), max_size=8), max_size=8) | json_values,
        "ops": st.lists(st.sampled_from(["input", "output", "conv3x3-bn-relu", "maxpool3x3", "x"]), max_size=8),
        "normal": st.lists(st.tuples(st.sampled_from(["sep_conv_3x3", "skip_connect", "bad"]) | st.integers(-2, 9),
                                     st.integers(-2, 7)), max_size=9),
        "reduce": st.lists(st.tuples(st.sampled_from(["sep_conv_3x3", "skip_connect"]), st.integers(0, 6)), max_size=9),
        "nodes": st.lists(st.sampled_from(["input", "output", "nor_conv_3x3", "concat", "avg_pool_3x3"]), max_size=10),
        "edges": st.lists(st.lists(st.integers(-1, 10), min_size=0, max_size=3), max_size=14),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({"architectures": st.lists(architectures, max_size=3)}) | json_values)
def test_random_bodies_never_give_a_server_error(client: TestClient, body: Any) -> None:
    response = client.post("/v1/predict", json=body)
    assert response.status_code in (200, 400, 404, 413, 422), response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["code"] and error["message"]
