"""archcast.client against REAL uvicorn servers: the service on toy predictors, and a tiny flaky ASGI app for retries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ToyPredictor
from live_server import LiveServer, free_port
from scrape import scrape_text

from archcast.client import (
    ArchCastConnectionError,
    ArchCastError,
    AsyncClient,
    Client,
    as_architecture,
    darts,
    graph,
    nb101,
    nb201,
    nb201_index,
)
from model.canonical import canonicalize
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201, parse_nb201_network
from service.app import create_app
from service.errors import error_body
from service.settings import Settings

CELL_TARGETS = ("cifar10_test_acc", "cifar100_test_acc", "gpu_latency")
DARTS_CELL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
              ("skip_connect", 0), ("dil_conv_3x3", 2), ("max_pool_3x3", 0), ("skip_connect", 2)]


def cells(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    found: dict[str, str] = {}
    while len(found) < count:
        arch = nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)])
        found.setdefault(canonicalize(parse_nb201_network(arch)).key, arch)
    return list(found.values())


def service_app(toy_predictors) -> Any:
    return create_app(Settings(predictor_dir=toy_predictors[0], providers="cpu"))


@pytest.fixture(scope="module")
def server(toy_predictors) -> Iterator[LiveServer]:
    with LiveServer(service_app(toy_predictors)) as live:
        yield live


def predict_requests(server: LiveServer, status: str = "200") -> float:
    with Client(server.url) as client:
        text = client._http.get("/metrics").text
    return scrape_text(text).get("archcast_http_requests_total", route="/v1/predict", method="POST", status=status)


class Flaky:
    """A tiny ASGI app answering the given statuses first (JSON error bodies), then 200 with a predict-like body."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append({"path": scope["path"], "headers": {k.decode(): v.decode() for k, v in scope["headers"]}})
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            count = len(json.loads(body)["architectures"]) if body else 0
            results = [{"key": str(i), "predictions": {}} for i in range(count)]
            payload = {"predictor": "flaky", "version": "0", "results": results}
        else:
            payload = error_body("overloaded" if status == 503 else "upstream", f"status {status}")
        headers = [(b"content-type", b"application/json"), *[(k.encode(), v.encode()) for k, v in self.headers.items()]]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def test_helpers_build_what_the_api_takes(server: LiveServer) -> None:
    assert nb201("|a~0|") == {"space": "nb201", "arch": "|a~0|"} == as_architecture("|a~0|")
    assert nb201_index(7) == {"space": "nb201", "index": 7}
    matrix = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]
    with Client(server.url) as client:
        (cell,) = client.predict([nb101(np.array(matrix), ops)])
        (dag,) = client.predict([graph(["input", "nor_conv_3x3", {"op": "output"}], [(0, 1), (1, 2)])])
        (genotype,) = client.predict([darts(DARTS_CELL, DARTS_CELL)], predictor="toy-darts")
    assert set(cell["predictions"]) == set(dag["predictions"]) == set(CELL_TARGETS)
    assert list(genotype["predictions"]) == ["cifar10_val_acc"]
    with pytest.raises(TypeError):
        as_architecture(3)  # type: ignore[arg-type]


def test_sync_and_async_predictions_match_the_model(server: LiveServer, toy_predictors) -> None:
    toy: ToyPredictor = toy_predictors[1]["toy-cell"]
    archs = cells(5, seed=1)
    with Client(server.url) as client:
        results = client.predict([nb201(a) for a in archs], targets=["gpu_latency", "cifar10_test_acc"])
        assert client.ready() is True
        assert [p["name"] for p in client.predictors()] == ["toy-cell", "toy-darts"]

    async def run_async() -> tuple[list[dict], bool]:
        async with AsyncClient(server.url) as client:
            return await client.predict(archs, targets=["gpu_latency", "cifar10_test_acc"]), await client.ready()

    async_results, ready = asyncio.run(run_async())
    assert ready is True and async_results == results
    assert [r["key"] for r in results] == [canonicalize(parse_nb201_network(a)).key for a in archs]
    graphs = [(g := parse_nb201(a)).renumbered(canonicalize(g).order) for a in archs]
    expected = toy.expected(graphs)[:, [2, 0]]  # gpu_latency, cifar10_test_acc
    got = [[r["predictions"][t]["value"] for t in ("gpu_latency", "cifar10_test_acc")] for r in results]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert list(results[0]["predictions"]) == ["gpu_latency", "cifar10_test_acc"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_long_lists_are_split_into_requests_in_order(server: LiveServer, mode: str) -> None:
    archs = cells(7, seed=2)
    before = predict_requests(server)
    if mode == "sync":
        with Client(server.url, max_batch=3) as client:
            body = client.predict_response(archs)
    else:

        async def run_async() -> dict:
            async with AsyncClient(server.url, max_batch=3) as client:
                return await client.predict_response(archs)

        body = asyncio.run(run_async())
    assert predict_requests(server) - before == 3  # 3 + 3 + 1
    assert body["predictor"] == "toy-cell"
    assert [r["key"] for r in body["results"]] == [canonicalize(parse_nb201_network(a)).key for a in archs]
    with Client(server.url) as client:
        assert client.predict(archs) == body["results"]  # the same as one request


def test_4xx_raises_the_server_code_at_once(server: LiveServer) -> None:
    before = predict_requests(server, "422")
    with Client(server.url, max_batch=3, backoff=5.0) as client:
        with pytest.raises(ArchCastError) as unknown:
            client.predict(cells(2, seed=3), targets=["no_such_target"])
        archs: list[Any] = cells(6, seed=4)
        archs[4] = nb201("|not_an_op~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        with pytest.raises(ArchCastError) as bad:
            client.predict(archs)
    assert (unknown.value.status, unknown.value.code) == (422, "unknown_target")
    assert "no_such_target" in unknown.value.message and "422 unknown_target" in str(unknown.value)
    assert bad.value.status == 422
    assert bad.value.message.startswith("architectures.4:"), bad.value.message  # its index in the whole list
    assert predict_requests(server, "422") - before == 2  # never retried


def test_async_4xx_raises_too(server: LiveServer) -> None:
    async def run_async() -> None:
        async with AsyncClient(server.url) as client:
            await client.predict([nb201("|x~0|")])

    with pytest.raises(ArchCastError) as error:
        asyncio.run(run_async())
    assert error.value.status == 422 and error.value.code != "connection_failed"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_502_503_504_are_retried(mode: str) -> None:
    app = Flaky([503, 502, 504])
    retries: list[tuple[int, str]] = []
    with LiveServer(app) as live:
        options = {"retries": 3, "backoff": 0.01, "on_retry": lambda attempt, why, wait: retries.append((attempt, why))}
        if mode == "sync":
            with Client(live.url, **options) as client:
                results = client.predict(["a", "b"])
        else:

            async def run_async() -> list[dict]:
                async with AsyncClient(live.url, **options) as client:
                    return await client.predict(["a", "b"])

            results = asyncio.run(run_async())
    assert len(results) == 2 and len(app.seen) == 4
    assert retries == [(1, "HTTP 503"), (2, "HTTP 502"), (3, "HTTP 504")]


def test_gives_up_after_the_retries_and_never_retries_500() -> None:
    app = Flaky([503] * 5 + [500])
    with LiveServer(app) as live, Client(live.url, retries=2, backoff=0.01) as client:
        with pytest.raises(ArchCastError) as overloaded:
            client.predict(["a"])
        assert (overloaded.value.status, overloaded.value.code) == (503, "overloaded")
        assert len(app.seen) == 3
        app.statuses = [500]
        with pytest.raises(ArchCastError) as server_error:
            client.predict(["a"])
        assert server_error.value.status == 500 and len(app.seen) == 4


def test_retry_after_is_honoured_and_api_key_is_sent() -> None:
    app = Flaky([503], headers={"retry-after": "0.3"})
    with LiveServer(app) as live, Client(live.url, backoff=0.001, api_key="secret") as client:
        started = time.monotonic()
        client.predict(["a"])
        assert time.monotonic() - started >= 0.3
    assert all(seen["headers"]["authorization"] == "Bearer secret" for seen in app.seen)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_refused_then_accepting(toy_predictors, mode: str) -> None:
    live = LiveServer(service_app(toy_predictors), port=free_port())
    retries: list[tuple[int, str]] = []

    def start_server_on_first_retry(attempt: int, why: str, wait: float) -> None:
        retries.append((attempt, why))
        if attempt == 1:
            live.start()

    arch = cells(1, seed=5)[0]
    try:
        if mode == "sync":
            with Client(live.url, retries=3, backoff=0.05, on_retry=start_server_on_first_retry) as client:
                assert client.ready() is False
                results = client.predict([arch])
        else:

            async def run_async() -> list[dict]:
                async with AsyncClient(live.url, retries=3, backoff=0.05, on_retry=start_server_on_first_retry) as client:
                    assert await client.ready() is False
                    return await client.predict([arch])

            results = asyncio.run(run_async())
    finally:
        live.stop()
    assert results[0]["key"] == canonicalize(parse_nb201_network(arch)).key
    assert len(retries) == 1 and retries[0][1].startswith("ConnectError")


def test_unreachable_service_raises_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=1, backoff=0.01) as client, pytest.raises(ArchCastConnectionError) as error:
        client.predictors()
    assert error.value.status == 0 and error.value.code == "connection_failed"
    assert "after 2 attempt(s)" in error.value.message
