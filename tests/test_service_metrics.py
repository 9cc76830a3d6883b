"""GET /metrics: traffic through the API moves the Prometheus counters and histograms by exactly the right amounts."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from scrape import scrape, scrape_text

from model.parsers import NB201_OPS, nb201_arch_str
from service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parent.parent
PREDICT = {"route": "/v1/predict", "method": "POST"}
CELL_TARGETS = ("cifar10_test_acc", "cifar100_test_acc", "gpu_latency")


def nb201_body(count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    archs = {nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)]) for _ in range(4 * count)}
    return {"architectures": [{"space": "nb201", "arch": a} for a in sorted(archs)[:count]]}


def test_metrics_endpoint_is_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")  # a request is counted once its response is sent
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {name for name, _ in scrape_text(response.text).samples}
    expected = {
        "archcast_http_requests_total", "archcast_http_request_duration_seconds_count", "archcast_cache_requests_total",
        "archcast_model_info",
    }
    assert expected <= names
    assert scrape_text(response.text).get("archcast_http_requests_total", route="/healthz", method="GET", status="200") == 1
    openmetrics = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


def test_requests_counted_by_route_template_method_and_status(make_client) -> None:
    client = make_client(max_body_bytes=2000)
    before = scrape(client)
    for seed in range(3):
        assert client.post("/v1/predict", json=nb201_body(2, seed)).status_code == 200
    assert client.post("/v1/predict", json={"architectures": []}).status_code == 422
    assert client.get("/v1/predict").status_code == 405
    assert client.post("/v1/predict", content=b"x" * 5000, headers={"content-type": "application/json"}).status_code == 413
    assert client.get("/no/such/path/12345").status_code == 404
    assert client.request("BREW", "/v1/predict").status_code == 405
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return after.get(name, **labels) - before.get(name, **labels)

    assert delta("archcast_http_requests_total", **PREDICT, status="200") == 3
    assert delta("archcast_http_requests_total", **PREDICT, status="422") == 1
    assert delta("archcast_http_requests_total", **PREDICT, status="413") == 1  # refused before routing, still its route
    assert delta("archcast_http_requests_total", route="/v1/predict", method="GET", status="405") == 1
    assert delta("archcast_http_requests_total", route="/v1/predict", method="other", status="405") == 1
    assert delta("archcast_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("archcast_http_request_duration_seconds_count", **PREDICT) == 5
    assert delta("archcast_http_request_duration_seconds_sum", **PREDICT) > 0
    # raw paths never become labels
    assert after.label_values("archcast_http_requests_total", "route") == {"/v1/predict", "/metrics", "unmatched"}


def test_internal_error_is_counted_as_500(make_client) -> None:
    client = make_client()
    predictor = client.app.state.registry.predictors["toy-cell"]
    predictor.session = predictor.small_session = None  # breaks the ONNX run: an unexpected error
    response = client.post("/v1/predict", json=nb201_body(1, seed=1))
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert scrape(client).get("archcast_http_requests_total", **PREDICT, status="500") == 1


def test_predictions_batch_size_and_step_timings(client: TestClient) -> None:
    before = scrape(client)
    body = nb201_body(10, seed=11)
    assert client.post("/v1/predict", json=body).status_code == 200
    middle = scrape(client)
    assert middle.get("archcast_batch_size_count") - before.get("archcast_batch_size_count") == 1
    assert middle.get("archcast_batch_size_sum") - before.get("archcast_batch_size_sum") == 10
    assert middle.get("archcast_batch_size_bucket", le="8.0") == before.get("archcast_batch_size_bucket", le="8.0")
    assert middle.get("archcast_batch_size_bucket", le="16.0") - before.get("archcast_batch_size_bucket", le="16.0") == 1
    for step in ("archcast_inference_seconds", "archcast_tokenize_seconds"):
        assert middle.get(f"{step}_count") - before.get(f"{step}_count") == 1
        assert middle.get(f"{step}_sum") > before.get(f"{step}_sum")
    for target in CELL_TARGETS:
        series = {"predictor": "toy-cell", "target": target}
        assert middle.get("archcast_predictions_total", **series) - before.get("archcast_predictions_total", **series) == 10

    # the same 10 again, one target only: all from the cache, so no ONNX run and no batch observed
    assert client.post("/v1/predict", json={**body, "targets": ["gpu_latency"]}).status_code == 200
    after = scrape(client)
    assert after.get("archcast_batch_size_count") == middle.get("archcast_batch_size_count")
    assert after.get("archcast_inference_seconds_count") == middle.get("archcast_inference_seconds_count")
    gpu = {"predictor": "toy-cell", "target": "gpu_latency"}
    acc = {"predictor": "toy-cell", "target": "cifar10_test_acc"}
    assert after.get("archcast_predictions_total", **gpu) - middle.get("archcast_predictions_total", **gpu) == 10
    assert after.get("archcast_predictions_total", **acc) == middle.get("archcast_predictions_total", **acc)


def test_cache_hit_and_miss_counts(client: TestClient) -> None:
    five, eight = nb201_body(5, seed=21), nb201_body(8, seed=22)
    overlap = {"architectures": five["architectures"] + [a for a in eight["architectures"] if a not in five["architectures"]][:3]}
    before = scrape(client)
    client.post("/v1/predict", json=five)
    client.post("/v1/predict", json=overlap)
    after = scrape(client)
    assert after.since(before, "archcast_cache_requests_total", result="hit") == 5
    assert after.since(before, "archcast_cache_requests_total", result="miss") == 8
    assert after.get("archcast_cache_errors_total") == 0


def test_model_info(client: TestClient) -> None:
    metrics = scrape(client)
    for name in ("toy-cell", "toy-darts"):
        assert metrics.get("archcast_model_info", predictor=name, version="0.0.1-test", provider="CPUExecutionProvider") == 1


def test_model_info_in_multiprocess_mode_starts_without_a_warning(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = ServiceMetrics()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # prometheus-client's "Clearing labels has not been implemented" is a UserWarning
        metrics.set_models([("toy-cell", "1.0.0", "CPUExecutionProvider")])
    value = metrics.registry.get_sample_value(
        "archcast_model_info", {"predictor": "toy-cell", "version": "1.0.0", "provider": "CPUExecutionProvider"}
    )
    assert value == 1


def test_each_app_reports_its_own_traffic(make_client) -> None:
    first, second = make_client(), make_client()
    for _ in range(2):
        first.post("/v1/predict", json=nb201_body(1, seed=1))
    second.post("/v1/predict", json=nb201_body(1, seed=1))
    assert scrape(first).get("archcast_http_requests_total", **PREDICT, status="200") == 2
    assert scrape(second).get("archcast_http_requests_total", **PREDICT, status="200") == 1


MULTIPROCESS_WORKER = """
import sys
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings

requests, predictor_dir = int(sys.argv[1]), sys.argv[2]
body = {"architectures": [{"space": "nb201", "arch": "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"}]}
with TestClient(create_app(Settings(predictor_dir=predictor_dir, providers="cpu"))) as client:
    for _ in range(requests):
        assert client.post("/v1/predict", json=body).status_code == 200
    sys.stdout.write(client.get("/metrics").text)
"""


def test_multiprocess_mode_sums_every_worker(toy_predictors, tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics of one process shows the traffic of every process writing there."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    outputs = []
    for requests in (2, 1):
        command = [sys.executable, "-c", MULTIPROCESS_WORKER, str(requests), str(toy_predictors[0])]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append(scrape_text(result.stdout))
    assert outputs[0].get("archcast_http_requests_total", **PREDICT, status="200") == 2
    assert outputs[1].get("archcast_http_requests_total", **PREDICT, status="200") == 3
    # each process has its own LRU: one ONNX run each, the 2nd request of the first process was a hit
    assert outputs[1].get("archcast_batch_size_count") == 2
    assert outputs[1].get("archcast_cache_requests_total", result="hit") == 1
    assert outputs[1].get("archcast_cache_requests_total", result="miss") == 2
    info = {"predictor": "toy-cell", "version": "0.0.1-test", "provider": "CPUExecutionProvider"}
    assert outputs[1].get("archcast_model_info", **info) == 1


def test_remembered_children_are_the_labelled_series() -> None:
    metrics = ServiceMetrics()
    child = metrics.child(metrics.predictions, "toy-cell", "gpu_latency")
    assert child is metrics.child(metrics.predictions, "toy-cell", "gpu_latency")
    assert child is metrics.predictions.labels("toy-cell", "gpu_latency")
    child.inc(3)
    metrics.child(metrics.http_duration, "/v1/predict", "POST").observe(0.002)
    assert metrics.child(metrics.predictions, "toy-cell", "cifar10_test_acc") is not child
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics.registry.collect() for s in m.samples}
    assert values[("archcast_predictions_total", (("predictor", "toy-cell"), ("target", "gpu_latency")))] == 3
    assert values[("archcast_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/predict")))] == 1
