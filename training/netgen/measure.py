"""Latency measurement of one ONNX model on onnxruntime: CPU (1 intra-op thread) or CUDA execution provider, batch 1.

One pass = a fresh session, ``warmup`` untimed runs, then timed runs until both ``min_runs`` and ``min_time_s``
are reached (at most ``max_runs``). A pass reports the minimum and the median run; the minimum is the robust
statistic on a shared, noisy machine (interference only ever adds time). The dataset generator measures every
network in two passes, in two different shuffled orders, and keeps both so the noise floor can be computed.
"""

from __future__ import annotations

import platform
import random
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

DEVICE_NAME = "cpu-ort-1t"


@dataclass(frozen=True)
class MeasureSettings:
    threads: int = 1
    warmup: int = 3
    min_runs: int = 7
    max_runs: int = 60
    min_time_s: float = 0.3
    provider: str = "cpu"  # "cpu" or "cuda" (onnxruntime's CUDA execution provider; the session must run on it)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PassResult:
    min_ms: float
    median_ms: float
    runs: int


PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def make_session(
    onnx_bytes: bytes, threads: int = 1, provider: str = "cpu", profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A measuring session; with ``provider="cuda"`` it must really run on CUDA (no silent CPU fallback). With
    ``profile_prefix`` onnxruntime's profiler is on and writes there (``session.end_profiling()`` names the file)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(onnx_bytes, options, providers=PROVIDERS[provider])
    if session.get_providers()[0] != PROVIDERS[provider][0]:
        raise RuntimeError(f"onnxruntime could not create a {PROVIDERS[provider][0]} session here")
    return session


INTEGER_INPUTS = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def session_feed(session: ort.InferenceSession, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for value in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in value.shape]
        if value.type in INTEGER_INPUTS:  # token ids: id 0 is valid for every embedding table
            feed[value.name] = np.zeros(shape, INTEGER_INPUTS[value.type])
        else:
            feed[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


def measure_pass(
    onnx_bytes: bytes, settings: MeasureSettings | None = None, feed: dict[str, np.ndarray] | None = None
) -> PassResult:
    """One pass over a model; ``feed`` gives the inputs (default: ``session_feed``, symbolic dimensions set to 1)."""
    settings = settings or MeasureSettings()
    session = make_session(onnx_bytes, settings.threads, settings.provider)
    feed = feed if feed is not None else session_feed(session)
    for _ in range(settings.warmup):
        session.run(None, feed)
    return timed_runs(session, feed, settings.min_runs, settings.max_runs, settings.min_time_s)


def timed_runs(
    session: ort.InferenceSession, feed: dict[str, np.ndarray], min_runs: int, max_runs: int, min_time_s: float
) -> PassResult:
    """Run ``session`` on ``feed`` at least ``min_runs`` times and for ``min_time_s``, at most ``max_runs`` times."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - started < min_time_s):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return PassResult(min_ms=min(times), median_ms=statistics.median(times), runs=len(times))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_signature() -> str:
    """CPU family / model / stepping and the widest vector extension: a VM may show only "AMD EPYC" as the model
    name, and different EPYC generations run the same network at different speeds."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("cpu family", "model", "stepping", "flags") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        return platform.machine()
    flags = set(fields.get("flags", "").split())
    vector = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "none")
    family, model, stepping = (fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
    return f"family {family} model {model} stepping {stepping}, {vector}"


def gpu_model() -> str:
    """GPU name and driver from nvidia-smi ("" when there is none)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def environment(provider: str = "cpu") -> dict[str, str]:
    env = {
        "device": DEVICE_NAME,
        "cpu": cpu_model(),
        "cpu_id": cpu_signature(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }
    if provider == "cuda":
        env["gpu"] = gpu_model()
    return env


def device_mismatch(recorded: dict[str, Any]) -> str | None:
    """Why a latency measured here is not comparable with data recorded under ``recorded`` (a dataset's meta).

    A CPU model, CPU generation or onnxruntime version other than the recorded one is another device, not noise: on
    one shared VM that moved from an Intel Xeon to AMD EPYC hosts, the same networks measured 0.9x to 1.3x by family on
    one host and 0.46x to 0.71x (family medians) on another, a Zen 5 that also reports itself as just "AMD EPYC".
    """
    here = environment()
    for key in ("cpu", "cpu_id", "onnxruntime"):  # datasets recorded before cpu_id existed are checked without it
        if recorded.get(key) and recorded[key] != here[key]:
            return f"this machine has {key} {here[key]!r}; the dataset was measured with {recorded[key]!r}"
    return None


def measure_chunk(models: dict[int, bytes], settings: MeasureSettings, rng: random.Random) -> dict[int, dict[str, Any]]:
    """Two passes (A, B) over the models in two shuffled orders; per model the passes, an error, or the label."""
    results: dict[int, dict[str, Any]] = {i: {} for i in models}
    for pass_name in ("a", "b"):
        order = list(models)
        rng.shuffle(order)
        for i in order:
            try:
                result = measure_pass(models[i], settings)
                results[i][pass_name] = {
                    "min_ms": result.min_ms,
                    "median_ms": result.median_ms,
                    "runs": result.runs,
                    "t": time.time(),
                }
            except Exception as exc:  # an ORT failure is recorded, not retried forever
                results[i]["error"] = f"onnxruntime: {exc}"[:300]
    for result in results.values():
        if "a" in result and "b" in result:  # both passes ran: the dataset label is the mean of their minima
            result["latency_ms"] = (result["a"]["min_ms"] + result["b"]["min_ms"]) / 2
    return results
