"""Prometheus metrics of the service (prometheus-client) and their text exposition for ``GET /metrics``.

One process: each app registers its metrics on its own ``CollectorRegistry`` (so /metrics shows that app's traffic, and
building many apps, as the tests do, never hits duplicate-registration errors).

Several worker processes (``gunicorn -k uvicorn.workers.UvicornWorker -w N``, ``uvicorn --workers N``): set
``PROMETHEUS_MULTIPROC_DIR`` to a directory writable by every worker before any of them starts (prometheus-client reads
it when first imported), and EMPTY THAT DIRECTORY AT EACH START-UP of the service, or the files of processes that are
gone are summed in. Each worker then writes its values to files there and /metrics merges all workers with
``MultiProcessCollector``. Run one app per process in that mode. With gunicorn, also call
``prometheus_client.multiprocess.mark_process_dead(worker.pid)`` in its ``child_exit`` hook.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = tuple(float(2**k) for k in range(15))  # 1 .. 16384 architectures
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """Every metric the service exports, registered on ``registry`` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.http_requests = Counter(
            "archcast_http_requests", "HTTP requests by route template (unmatched: no route), method and status code.",
            ["route", "method", "status"], registry=reg,
        )
        self.http_duration = Histogram(
            "archcast_http_request_duration_seconds", "HTTP request duration in seconds by route template and method.",
            ["route", "method"], buckets=HTTP_BUCKETS, registry=reg,
        )
        self.predictions = Counter(
            "archcast_predictions", "Predicted values returned (one per architecture and requested target).",
            ["predictor", "target"], registry=reg,
        )
        self.batch_size = Histogram(
            "archcast_batch_size",
            "Architectures per ONNX run (the cache misses of one request, or of several with dynamic batching).",
            buckets=BATCH_BUCKETS, registry=reg,
        )
        self.queue_wait_seconds = Histogram(
            "archcast_queue_wait_seconds",
            "Dynamic batching: time a request's cache misses waited in the queue before their ONNX run started, in seconds.",
            buckets=STEP_BUCKETS, registry=reg,
        )
        self.inference_seconds = Histogram(
            "archcast_inference_seconds", "Duration of one onnxruntime session run in seconds.", buckets=STEP_BUCKETS,
            registry=reg,
        )
        self.tokenize_seconds = Histogram(
            "archcast_tokenize_seconds", "Duration of tokenizing the architectures of one ONNX run in seconds.",
            buckets=STEP_BUCKETS, registry=reg,
        )
        self.cache_requests = Counter(
            "archcast_cache_requests",
            "Prediction cache lookups, one per architecture and answering predictor, by result (hit or miss).",
            ["result"],
            registry=reg,
        )
        self.cache_errors = Counter(
            "archcast_cache_errors", "Failed or timed-out cache round trips (Redis); those requests went on uncached.",
            registry=reg,
        )
        self.model_info = Gauge(
            "archcast_model_info", "Loaded predictors (value 1) with their version and onnxruntime execution provider.",
            ["predictor", "version", "provider"], multiprocess_mode="max", registry=reg,
        )
        for result in ("hit", "miss"):
            self.cache_requests.labels(result)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: prometheus-client validates and locks on every ``labels`` call (~1 us),
        and a predict request makes one per target. Only for label sets that stay bounded (never ``model_info``, which
        ``set_models`` clears)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def set_models(self, models: Iterable[tuple[str, str, str]]) -> None:
        """Publish the loaded predictors as (name, version, provider); earlier ones are dropped.

        Each worker calls it once, at start; in multiprocess mode there is nothing to drop yet, and prometheus-client
        warns on every ``clear`` there, so it is skipped.
        """
        if not multiprocess_mode():
            self.model_info.clear()
        for name, version, provider in models:
            self.model_info.labels(name, version, provider).set(1)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition(metrics: ServiceMetrics, accept: str = "") -> tuple[bytes, str]:
    """(body, content type) for a scrape: every worker's metrics in multiprocess mode, else this app's.

    The format follows the scraper's Accept header as prometheus-client negotiates it (OpenMetrics when asked for,
    else the Prometheus text format 0.0.4).
    """
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = metrics.registry
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
