"""Service configuration from ``ARCHCAST_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.card import PREDICTOR_DIR
from model.ir import DEFAULT_MAX_NODES

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    """Every field can be set as ``ARCHCAST_<FIELD NAME>`` (e.g. ``ARCHCAST_MAX_BATCH=1024``)."""

    model_config = SettingsConfigDict(env_prefix="ARCHCAST_", extra="forbid")

    predictor_dir: Path = Field(
        default=PREDICTOR_DIR, description="Directory holding the predictor cards (*.card.json) and their ONNX files."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Shared benchmark data directory, used to resolve NB201 indices; None leaves it to model.tables "
        "(ARCHCAST_DATA_DIR or ../shared/data).",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port the HTTP server listens on.")
    max_batch: int = Field(default=4096, ge=1, description="Most architectures one request may carry (413 above it).")
    max_nodes: int = Field(
        default=DEFAULT_MAX_NODES, ge=2, le=DEFAULT_MAX_NODES, description="Most nodes one architecture graph may have."
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1, description="Largest accepted request body in bytes (413 above it)."
    )
    cache_size: int = Field(
        default=100_000,
        ge=0,
        description="Entries of the in-process prediction LRU cache (used when redis_url is unset); 0 disables it.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:6379/0, rediss://, unix://) of a prediction cache shared by every worker and "
        "replica; None keeps the in-process LRU cache. If Redis is slow or down, requests are answered uncached.",
    )
    redis_near_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Entries each worker keeps in memory in front of Redis, so a repeated query skips the round trip "
        "(values never go stale: keys carry the predictor version); 0 sends every lookup to Redis.",
    )
    redis_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="Expiry of each cached prediction in Redis, in seconds; 0 = never expires."
    )
    redis_max_value_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        description="Largest cached value (JSON of all targets) written to Redis, in bytes; larger ones are not cached.",
    )
    redis_timeout_seconds: float = Field(
        default=0.05,
        gt=0,
        description="Bound on each Redis round trip (connect, read, whole MGET or SET pipeline) in seconds; past it the "
        "request goes on uncached and archcast_cache_errors_total counts the failure.",
    )
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="onnxruntime execution provider: 'auto' uses CUDA only if a CUDA session really works, else CPU; "
        "'cuda' fails at start-up without a working CUDA provider.",
    )
    ort_threads: int = Field(
        default=0,
        ge=0,
        description="onnxruntime intra-op threads per session; 0 = this worker's share of the CPUs the process may use "
        "(its CPU affinity, capped by a cgroup CPU quota such as docker --cpus, divided by ARCHCAST_WORKERS, at least 1).",
    )
    ort_small_batch: int = Field(
        default=16,
        ge=0,
        description="Batches of at most this many architectures run on a second, single-threaded onnxruntime session "
        "of each cell predictor when ARCHCAST_ORT_THREADS gives a worker more than one thread (a second thread slows "
        "small batches and takes the CPU the event loop needs); 0 = every batch on the one multi-threaded session.",
    )
    dynamic_batching: bool = Field(
        default=True,
        description="Gather the cache misses of concurrent requests into one onnxruntime run per predictor; false runs "
        "each request's misses on its own.",
    )
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Dynamic batching: longest wait after the first queued request for others to join its onnxruntime run, "
        "in milliseconds.",
    )
    batch_max: int = Field(
        default=4096,
        ge=1,
        description="Dynamic batching: most architectures per onnxruntime run (a run starts at once when this many are "
        "queued; one request is never split).",
    )
    batch_queue_max: int = Field(
        default=65536,
        ge=1,
        description="Dynamic batching: most architectures waiting per predictor; a request that would exceed it gets 503 "
        "overloaded (with Retry-After).",
    )
    max_onnx_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest ONNX upload to POST /v1/predict/onnx in bytes (413 above it, refused before the body is read "
        "when Content-Length declares it).",
    )
    max_network_nodes: int = Field(
        default=4096, ge=1, le=16384, description="Most ops an uploaded ONNX graph may have (413 above it)."
    )
    max_resolution: int = Field(
        default=1024, ge=8, description="Largest input resolution a request may set for an ONNX model's symbolic dimensions."
    )
    max_sequence_length: int = Field(
        default=16384, ge=1, description="Largest sequence length a request may set for an ONNX model's symbolic dimensions."
    )
    max_onnx_batch: int = Field(default=256, ge=1, description="Largest batch size a request may set for an ONNX model.")
    parse_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Bound on parsing one uploaded ONNX model (shape inference); past it the request gets 422 parse_timeout.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the service and of uvicorn."
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines as one JSON object each (time, level, logger, message, request_id, ...) or as text. "
        "Request bodies are never logged.",
    )
    strict_startup: bool = Field(
        default=True,
        description="Refuse to start (exit with the reason) when a predictor card or ONNX file is missing, corrupt or "
        "inconsistent, or when there is none; false serves the predictors that did load, with /readyz 503.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys; when set, every request needs one as 'X-API-Key: KEY' or "
        "'Authorization: Bearer KEY' (401 otherwise). Empty (the default) disables keys.",
    )
    api_keys_for_health: bool = Field(default=False, description="With api_keys set, also require a key on /healthz and /readyz.")
    api_keys_for_metrics: bool = Field(default=False, description="With api_keys set, also require a key on /metrics.")
    calibration_dir: Path | None = Field(
        default=None,
        description="Directory where POST /v1/calibrate writes calibrated predictors and from which every worker loads "
        "them (at start-up and when a request names one it has not loaded); unset keeps them in the calibrating "
        "process's memory only.",
    )
    calibration_base: str = Field(
        default="nb201-latency-v1",
        description="Predictor whose latency heads a few-shot calibration maps onto a new device, when the request names none.",
    )
    max_calibration_samples: int = Field(
        default=500, ge=5, description="Most measurements one calibration request may carry (413 above it)."
    )
    max_calibration_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="Largest body of POST /v1/calibrate/onnx (the measured ONNX models together) in bytes (413 above it).",
    )
    max_calibrated_predictors: int = Field(
        default=100, ge=0, description="Most calibrated predictors one process holds (409 for a new device above it)."
    )
    gc_tuning: bool = Field(
        default=True,
        description="Once started, freeze the objects start-up loaded out of the garbage collector's reach and collect "
        "its youngest generation every 10,000 allocations (Python: 700): fewer, cheaper pauses, p99 at 600 requests/s "
        "75-106 -> 13-14 ms on 2 CPUs; false keeps Python's defaults.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes (uvicorn's supervisor restarts one that dies); above 1, metrics use prometheus-client's "
        "multiprocess mode in PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory when unset).",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, keys: object) -> object:
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",")]
        if isinstance(keys, list):
            if any(not isinstance(k, str) or (k and not k.isprintable()) or " " in k for k in keys):
                raise ValueError("API keys must be printable strings without spaces")
            return [k for k in keys if k]
        return keys

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_scheme(cls, url: object) -> object:
        """An empty value (``ARCHCAST_REDIS_URL=``) means no Redis; anything else must be a Redis URL."""
        if url == "":
            return None
        if isinstance(url, str) and not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"redis_url must start with one of {', '.join(REDIS_SCHEMES)}")
        return url
