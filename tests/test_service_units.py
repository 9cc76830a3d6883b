"""Service parts on their own: LRU cache, settings from the environment, provider selection, start-up, no torch."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from service.app import create_app
from service.cache import LRUCache, NullCache, PredictionCache, make_cache
from service.errors import ServiceError
from service.predictor import CPU, load_registry, predict_local
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_lru_cache_get_set_and_eviction() -> None:
    cache = LRUCache(2)
    asyncio.run(cache.set_many({"a": {"t": 1.0}, "b": {"t": 2.0}}))
    assert asyncio.run(cache.get_many(["a", "x", "b"])) == [{"t": 1.0}, None, {"t": 2.0}]
    assert (cache.hits, cache.misses) == (2, 1)
    asyncio.run(cache.get_many(["a"]))  # a is now the most recently used
    asyncio.run(cache.set_many({"c": {"t": 3.0}}))
    assert asyncio.run(cache.get_many(["a", "b", "c"])) == [{"t": 1.0}, None, {"t": 3.0}]
    assert len(cache) == 2


def test_make_cache_and_protocol() -> None:
    assert isinstance(make_cache(0), NullCache)
    assert isinstance(make_cache(5), LRUCache)
    null: PredictionCache = make_cache(0)
    asyncio.run(null.set_many({"a": {"t": 1.0}}))
    assert asyncio.run(null.get_many(["a", "b"])) == [None, None]
    with pytest.raises(ValueError):
        LRUCache(0)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARCHCAST_MAX_BATCH", "12")
    monkeypatch.setenv("ARCHCAST_CACHE_SIZE", "0")
    monkeypatch.setenv("ARCHCAST_PREDICTOR_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHCAST_PROVIDERS", "cpu")
    settings = Settings()
    assert (settings.max_batch, settings.cache_size, settings.predictor_dir, settings.providers) == (12, 0, tmp_path, "cpu")
    defaults = Settings.model_fields
    assert all(field.description for field in defaults.values())
    assert defaults["max_body_bytes"].default == 4 * 1024 * 1024 and defaults["port"].default == 8000


def test_redis_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().redis_url is None  # default: the in-process LRU
    monkeypatch.setenv("ARCHCAST_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("ARCHCAST_REDIS_TTL_SECONDS", "0")
    monkeypatch.setenv("ARCHCAST_REDIS_MAX_VALUE_BYTES", "512")
    monkeypatch.setenv("ARCHCAST_REDIS_TIMEOUT_SECONDS", "0.2")
    settings = Settings()
    assert (settings.redis_url, settings.redis_ttl_seconds, settings.redis_max_value_bytes, settings.redis_timeout_seconds) == (
        "redis://cache:6379/2", 0, 512, 0.2
    )
    defaults = Settings.model_fields
    assert defaults["redis_ttl_seconds"].default == 7 * 24 * 3600 and defaults["redis_timeout_seconds"].default == 0.05


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        Settings(max_nodes=64)
    with pytest.raises(ValueError):
        Settings(providers="tpu")
    with pytest.raises(ValueError):
        Settings(redis_url="http://localhost:6379")
    assert Settings(redis_url="").redis_url is None
    with pytest.raises(ValueError):
        Settings(redis_timeout_seconds=0)


@pytest.mark.parametrize("providers", ["auto", "cpu"])
def test_provider_selection_reports_the_provider_in_use(toy_predictors, providers: str) -> None:
    registry = load_registry(toy_predictors[0], providers=providers, threads=1)
    assert registry.ready and not registry.errors
    for predictor in registry.predictors.values():
        assert predictor.provider == predictor.session.get_providers()[0]
        if providers == "cpu":
            assert predictor.provider == CPU


def test_cuda_only_when_it_really_works(toy_predictors) -> None:
    """'cuda' either runs on CUDA or refuses the predictor with a clear error; never a silent CPU fallback."""
    registry = load_registry(toy_predictors[0], providers="cuda")
    if registry.predictors:
        assert {p.provider for p in registry.predictors.values()} == {"CUDAExecutionProvider"}
    else:
        assert all("CUDA" in error for error in registry.errors)


def test_predict_local(toy_predictors) -> None:
    settings = Settings(predictor_dir=toy_predictors[0], providers="cpu")
    body = predict_local({"space": "nb201", "arch": ARCH}, ["gpu_latency"], settings=settings)
    assert body["predictor"] == "toy-cell"
    assert list(body["results"][0]["predictions"]) == ["gpu_latency"]
    with pytest.raises(ServiceError) as bad:
        predict_local({"space": "nb201"}, settings=settings)
    assert bad.value.code == "invalid_request" and "architectures.0" in bad.value.message


def test_service_never_imports_torch(toy_predictors) -> None:
    code = f"""
import sys
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings
with TestClient(create_app(Settings(predictor_dir={str(toy_predictors[0])!r}, providers="cpu"))) as client:
    response = client.post("/v1/predict", json={{"architectures": [{{"space": "nb201", "arch": {ARCH!r}}}]}})
    assert response.status_code == 200, response.text
import service.main, service.__main__
from onnx import TensorProto, helper
from model.onnx_graph import parse_onnx  # ONNX shape inference must not pull torch in either
x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xy")
parse_onnx(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])).SerializeToString())
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_service_serves(toy_predictors) -> None:
    port = _free_port()
    env = {**os.environ, "ARCHCAST_PORT": str(port), "ARCHCAST_HOST": "127.0.0.1", "ARCHCAST_PROVIDERS": "cpu",
           "ARCHCAST_PREDICTOR_DIR": str(toy_predictors[0]), "ARCHCAST_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "service"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    ready = json.load(response)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"service did not start: {output}") from None
                time.sleep(0.2)
        assert ready["ready"] is True and ready["provider"] == CPU
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/predict",
            data=json.dumps({"architectures": [{"space": "nb201", "arch": ARCH}]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["predictor"] == "toy-cell"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not install on Windows")
def test_uvicorn_runs_on_httptools_and_uvloop(toy_predictors) -> None:
    import uvicorn
    import uvloop

    from service.main import uvicorn_options

    settings = Settings(predictor_dir=toy_predictors[0], providers="cpu")
    config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    if hasattr(config, "get_loop_factory"):  # uvicorn >= 0.36
        loop = config.get_loop_factory()()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()


def test_openapi_schema_documents_the_api(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predictors", "/healthz", "/readyz"} <= set(schema["paths"])
    models = {"NB201Architecture", "NB101Architecture", "DartsArchitecture", "GraphArchitecture", "PredictResponse"}
    assert models <= set(schema["components"]["schemas"])


def test_an_unknown_predictor_is_a_documented_404(client) -> None:
    """Schemathesis found POST /v1/predict answering 404 without documenting it."""
    body = {"predictor": "no-such-predictor", "architectures": [{"space": "nb201", "index": 0}]}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_predictor"
    schema = client.get("/openapi.json").json()
    assert "404" in schema["paths"]["/v1/predict"]["post"]["responses"]
