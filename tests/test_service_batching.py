"""Dynamic batching: concurrent requests share ONNX runs, with unbatched results; bounded queue; failures reach every waiter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import ToyPredictor
from fastapi import FastAPI
from scrape import scrape_text

from model.canonical import canonicalize
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb101, parse_nb201_network
from service.app import create_app
from service.batcher import Batcher
from service.errors import ServiceError
from service.settings import Settings

CELL_TARGETS = ("cifar10_test_acc", "cifar100_test_acc", "gpu_latency")
NB101_CHAIN_OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu"]


def nb101_chain(length: int, shift: int) -> dict:
    """An NB101 chain cell with ``length`` nodes (3..7): input -> ops -> output, plus a skip edge input -> output."""
    matrix = [[0] * length for _ in range(length)]
    for i in range(length - 1):
        matrix[i][i + 1] = 1
    matrix[0][length - 1] = 1
    ops = ["input", *[NB101_CHAIN_OPS[(k + shift) % 5] for k in range(length - 2)], "output"]
    return {"space": "nb101", "matrix": matrix, "ops": ops}


def mixed_architectures(count: int, seed: int) -> list[dict]:
    """Distinct NB201 cells (8 nodes) mixed with NB101 cells of 3..7 nodes, so a shared batch pads most of them."""
    rng = np.random.default_rng(seed)
    archs: dict[str, dict] = {}
    while len(archs) < count:
        if len(archs) % 4 == 3:
            arch = nb101_chain(int(rng.integers(3, 8)), shift=int(rng.integers(0, 5)))
        else:
            arch = {"space": "nb201", "arch": nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)])}
        archs.setdefault(canonicalize(graph_of(arch)).key, arch)
    return list(archs.values())


def graph_of(arch: dict):
    graph = parse_nb201_network(arch["arch"]) if arch["space"] == "nb201" else parse_nb101(arch["matrix"], arch["ops"])
    return graph.renumbered(canonicalize(graph).order)


def values(result: dict) -> list[float]:
    return [result["predictions"][t]["value"] for t in CELL_TARGETS]


@asynccontextmanager
async def serving(predictor_dir: Path, **overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an async client calling it in this event loop."""
    app = create_app(Settings(predictor_dir=predictor_dir, providers="cpu", **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://archcast") as client:
            yield app, client


async def predict_each(client: httpx.AsyncClient, archs: list[dict]) -> list[httpx.Response]:
    """One single-architecture request per architecture, all at once."""
    return await asyncio.gather(*(client.post("/v1/predict", json={"architectures": [a]}) for a in archs))


class BlockingSession:
    """Wraps a real ONNX session; each run waits until ``release`` is set (``entered`` tells a run has begun)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(timeout=30), "test never released the session"
        return self.session.run(*args, **kwargs)


class BrokenFeedsSession:
    """Wraps a real ONNX session but feeds it tokens of the wrong width: a genuine onnxruntime InvalidArgument."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> Any:
        return self.session.run(outputs, {**feeds, "tokens": feeds["tokens"][..., :7]})


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_concurrent_requests_share_onnx_runs_with_unbatched_results(toy_predictors) -> None:
    toy: ToyPredictor = toy_predictors[1]["toy-cell"]
    archs = mixed_architectures(64, seed=101)

    async def scenario() -> tuple[list[httpx.Response], int, list[httpx.Response], int]:
        async with serving(toy_predictors[0], cache_size=0, batch_wait_ms=20) as (app, client):
            predictor = app.state.registry.predictors["toy-cell"]
            before = predictor.runs
            batched = await predict_each(client, archs)
            batched_runs = predictor.runs - before
        async with serving(toy_predictors[0], cache_size=0, dynamic_batching=False) as (app, client):
            assert app.state.batchers is None
            predictor = app.state.registry.predictors["toy-cell"]
            before = predictor.runs
            alone = [(await predict_each(client, [a]))[0] for a in archs]
            alone_runs = predictor.runs - before
        return batched, batched_runs, alone, alone_runs

    batched, batched_runs, alone, alone_runs = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in batched + alone), [r.text for r in batched if r.status_code != 200][:1]
    assert batched_runs < 16, f"64 concurrent requests took {batched_runs} ONNX runs"
    assert alone_runs == 64
    for arch, shared, single in zip(archs, batched, alone, strict=True):
        (shared_result,), (single_result,) = shared.json()["results"], single.json()["results"]
        assert shared_result["key"] == single_result["key"]
        np.testing.assert_allclose(values(shared_result), values(single_result), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(values(shared_result), toy.expected([graph_of(arch)])[0], rtol=1e-5)


def test_batch_size_and_queue_wait_metrics(toy_predictors) -> None:
    archs = mixed_architectures(24, seed=5)

    async def scenario() -> tuple[int, str]:
        async with serving(toy_predictors[0], cache_size=0, batch_wait_ms=20) as (app, client):
            predictor = app.state.registry.predictors["toy-cell"]
            responses = await predict_each(client, archs)
            assert all(r.status_code == 200 for r in responses)
            return predictor.runs, (await client.get("/metrics")).text

    runs, text = asyncio.run(scenario())
    metrics = scrape_text(text)
    assert metrics.get("archcast_batch_size_count") == runs  # one observation per shared ONNX run
    assert metrics.get("archcast_batch_size_sum") == 24
    assert metrics.get("archcast_queue_wait_seconds_count") == 24
    assert metrics.get("archcast_queue_wait_seconds_sum") > 0


def test_full_queue_answers_503_overloaded(toy_predictors) -> None:
    async def scenario() -> None:
        # ort_small_batch=0: every run goes through predictor.session, which the test replaces
        async with serving(toy_predictors[0], cache_size=0, batch_wait_ms=0, batch_queue_max=4, ort_small_batch=0) as (
            app, client,
        ):
            predictor = app.state.registry.predictors["toy-cell"]
            batcher: Batcher = app.state.batchers["toy-cell"]
            blocking = BlockingSession(predictor.session)
            predictor.session = blocking
            archs = mixed_architectures(8, seed=9)
            first = asyncio.create_task(client.post("/v1/predict", json={"architectures": archs[:3]}))
            await wait_until(blocking.entered.is_set)  # the first request's run is in progress
            second = asyncio.create_task(client.post("/v1/predict", json={"architectures": archs[3:6]}))
            await wait_until(lambda: batcher.queued == 3)  # queued behind it
            refused = await client.post("/v1/predict", json={"architectures": archs[6:8]})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"
            assert "ARCHCAST_BATCH_QUEUE_MAX" in refused.json()["error"]["message"]
            assert refused.headers["retry-after"] == "1"
            blocking.release.set()
            assert (await first).status_code == 200 and (await second).status_code == 200
            again = await client.post("/v1/predict", json={"architectures": archs[6:8]})
            assert again.status_code == 200

    asyncio.run(scenario())


@pytest.mark.parametrize("dynamic_batching", [True, False])
def test_onnxruntime_failure_is_503_for_every_waiter(toy_predictors, dynamic_batching: bool) -> None:
    async def scenario() -> None:
        async with serving(
            toy_predictors[0], cache_size=0, batch_wait_ms=20, dynamic_batching=dynamic_batching, ort_small_batch=0
        ) as (app, client):
            predictor = app.state.registry.predictors["toy-cell"]
            real = predictor.session
            predictor.session = BrokenFeedsSession(real)
            responses = await predict_each(client, mixed_architectures(8, seed=3))
            assert [r.status_code for r in responses] == [503] * 8
            assert {r.json()["error"]["code"] for r in responses} == {"inference_failed"}
            assert "toy-cell" in responses[0].json()["error"]["message"]
            predictor.session = real  # the batcher survives a failed run
            recovered = await predict_each(client, mixed_architectures(4, seed=4))
            assert [r.status_code for r in recovered] == [200] * 4

    asyncio.run(scenario())


def test_a_lone_request_does_not_wait_for_company(toy_predictors) -> None:
    """With nobody else on the way, the batch window is cut short: sequential callers pay no batching delay."""

    async def scenario() -> None:
        async with serving(toy_predictors[0], cache_size=0, batch_wait_ms=1000) as (app, client):
            for arch in mixed_architectures(3, seed=12):
                started = asyncio.get_running_loop().time()
                response = await client.post("/v1/predict", json={"architectures": [arch]})
                assert response.status_code == 200
                assert asyncio.get_running_loop().time() - started < 0.5
            assert app.state.batchers.arriving == 0

    asyncio.run(scenario())


def test_disabled_batching_runs_each_request_alone(toy_predictors) -> None:
    async def scenario() -> None:
        async with serving(toy_predictors[0], cache_size=0, dynamic_batching=False) as (app, client):
            predictor = app.state.registry.predictors["toy-cell"]
            before = predictor.runs
            responses = await predict_each(client, mixed_architectures(16, seed=8))
            assert [r.status_code for r in responses] == [200] * 16
            assert predictor.runs - before == 16
            assert scrape_text((await client.get("/metrics")).text).get("archcast_queue_wait_seconds_count") == 0

    asyncio.run(scenario())


# --- the Batcher alone, with a stand-in compute function ---------------------------------------------------------


def fake_compute(calls: list[list[str]], gate: threading.Event | None = None):
    def compute(predictor: Any, graphs: list[Any], metrics: Any) -> list[dict[str, float]]:
        if gate is not None:
            assert gate.wait(timeout=30)
        calls.append(list(graphs))
        return [{"value": float(len(g))} for g in graphs]

    return compute


STUB = SimpleNamespace(name="stub")


def test_batcher_splits_at_max_batch_and_deduplicates() -> None:
    calls: list[list[str]] = []

    async def scenario() -> list[list[dict[str, float]]]:
        batcher = Batcher(STUB, wait_ms=50, max_batch=4, compute_fn=fake_compute(calls))  # type: ignore[arg-type]
        batcher.start()
        requests = [["a", "bb"], ["a", "ccc"], ["dddd"], ["eeeee", "a"]]
        try:
            return await asyncio.gather(*(batcher.submit(keys, keys) for keys in requests))  # type: ignore[arg-type]
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert results == [[{"value": 1.0}, {"value": 2.0}], [{"value": 1.0}, {"value": 3.0}], [{"value": 4.0}],
                       [{"value": 5.0}, {"value": 1.0}]]
    # whole requests up to 4 architectures per run; "a" asked by two requests of the first run is computed once
    assert calls == [["a", "bb", "ccc"], ["dddd", "eeeee", "a"]]


def test_batcher_skips_cancelled_requests_and_stop_fails_waiters() -> None:
    calls: list[list[str]] = []
    gate = threading.Event()

    async def scenario() -> None:
        batcher = Batcher(STUB, wait_ms=0, compute_fn=fake_compute(calls, gate))  # type: ignore[arg-type]
        batcher.start()
        running = asyncio.create_task(batcher.submit(["x"], ["x"]))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # its run is now blocked on the gate
        cancelled = asyncio.create_task(batcher.submit(["yy"], ["yy"]))  # type: ignore[arg-type]
        waiting = asyncio.create_task(batcher.submit(["zzz"], ["zzz"]))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert batcher.queued == 2
        cancelled.cancel()
        gate.set()
        assert await running == [{"value": 1.0}]
        assert await waiting == [{"value": 3.0}]
        assert calls == [["x"], ["zzz"]]  # the cancelled request never reached a run
        assert batcher.queued == 0

        gate.clear()
        blocked = asyncio.create_task(batcher.submit(["w"], ["w"]))  # type: ignore[arg-type]
        queued = asyncio.create_task(batcher.submit(["vv"], ["vv"]))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        await batcher.stop()
        gate.set()
        for task in (blocked, queued):
            with pytest.raises(ServiceError) as stopped:
                await task
            assert (stopped.value.status, stopped.value.code) == (503, "shutting_down")
        with pytest.raises(ServiceError) as after:
            await batcher.submit(["u"], ["u"])  # type: ignore[arg-type]
        assert after.value.code == "not_ready"

    asyncio.run(scenario())
