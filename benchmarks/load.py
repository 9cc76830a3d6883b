"""Closed-loop HTTP load: N concurrent clients (asyncio + httpx.AsyncClient), optionally spread over several processes.

Each client sends one request body after another (cycling through ``bodies``) for a warm-up and then a measured window;
the result is the number of architectures answered in the window and every request's latency in it. Kept free of
onnxruntime imports so spawned load processes start fast.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class LoadSpec:
    """What each client sends: request ``bodies`` of ``per_body`` architectures each, to ``url``, for warm-up + window."""

    url: str
    bodies: list[bytes]
    per_body: int
    warmup: float
    seconds: float


@dataclass
class LoadResult:
    architectures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per request completed in the window
    errors: int = 0

    def merge(self, other: LoadResult) -> None:
        self.architectures += other.architectures
        self.seconds = max(self.seconds, other.seconds)
        self.latencies.extend(other.latencies)
        self.errors += other.errors


async def _client_loop(client: httpx.AsyncClient, spec: LoadSpec, offset: int, start: float, result: LoadResult) -> None:
    k = offset
    stop = start + spec.seconds
    headers = {"content-type": "application/json"}
    while True:
        sent = time.perf_counter()
        if sent >= stop:
            return
        response = await client.post(spec.url, content=spec.bodies[k % len(spec.bodies)], headers=headers)
        done = time.perf_counter()
        k += 1
        if sent < start:
            continue  # warm-up
        if response.status_code != 200:
            result.errors += 1
            continue
        result.architectures += spec.per_body
        result.latencies.append(done - sent)


async def _run(spec: LoadSpec, clients: int, seed: int) -> LoadResult:
    result = LoadResult(seconds=spec.seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter() + spec.warmup
        await asyncio.gather(*(_client_loop(client, spec, seed * 7919 + i * 104729, start, result) for i in range(clients)))
    return result


def run_load(spec: LoadSpec, clients: int, seed: int = 0) -> LoadResult:
    """``clients`` concurrent closed-loop clients in this process."""
    return asyncio.run(_run(spec, clients, seed))


def _worker(spec: LoadSpec, clients: int, seed: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(run_load(spec, clients, seed))


def spread_load(spec: LoadSpec, concurrency: int, processes: int) -> LoadResult:
    """``concurrency`` clients split over ``processes`` load processes (spawned) that start together."""
    processes = max(1, min(processes, concurrency))
    if processes == 1:
        return run_load(spec, concurrency)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    workers = [ctx.Process(target=_worker, args=(spec, share, i, barrier, queue), daemon=True) for i, share in enumerate(shares)]
    for worker in workers:
        worker.start()
    total = LoadResult(seconds=spec.seconds)
    for _ in workers:
        total.merge(queue.get(timeout=spec.warmup + spec.seconds + 120))
    for worker in workers:
        worker.join(timeout=30)
    return total
