"""Predictions per second through ``POST /v1/predict`` (real uvicorn server, HTTP on loopback, cache disabled).

Starts ``archcast serve`` in a subprocess with ``ARCHCAST_CACHE_SIZE=0``, sends NB201 cells at each batch size
from one keep-alive client for a fixed time, repeats, and reports the median; alongside, the raw onnxruntime
throughput of the same predictor at the same batch sizes (tokenized inputs prepared in advance), as a ratio.
Writes ``benchmarks/results/service_throughput.{json,md}``.

    python -m benchmarks.service_throughput [--batch-sizes 1 256] [--seconds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from model.canonical import canonicalize
from model.card import find_cards
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201
from model.tokenizer import tokenize_graphs

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_cells(count: int, seed: int = 0) -> list[str]:
    combos = list(itertools.product(NB201_OPS, repeat=6))
    rng = np.random.default_rng(seed)
    return [nb201_arch_str(combos[i]) for i in rng.choice(len(combos), size=count, replace=False)]


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "ARCHCAST_CACHE_SIZE": "0", "ARCHCAST_PORT": str(port), "ARCHCAST_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "archcast.cli", "serve"], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("service did not become ready within 60 s")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    card, onnx_path = find_cards()[0]
    cells = random_cells(8192)
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/v1/predict"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows = []
    try:
        with httpx.Client(timeout=60) as client:
            for batch in args.batch_sizes:
                groups = [cells[i : i + batch] for i in range(0, len(cells) - batch + 1, batch)][:64]
                bodies = [json.dumps({"architectures": [{"space": "nb201", "arch": a} for a in g]}).encode() for g in groups]
                feeds = []
                for g in groups[:8]:
                    graphs = [parse_nb201(a) for a in g]
                    tb = tokenize_graphs([x.renumbered(canonicalize(x).order) for x in graphs])
                    feeds.append({"tokens": tb.tokens, "mask": tb.mask, "depth": tb.depth})
                http_rate(client, url, bodies, batch, 1.0)  # warm-up
                http = [http_rate(client, url, bodies, batch, args.seconds) for _ in range(args.repeats)]
                raw = [ort_rate(session, feeds, batch, args.seconds) for _ in range(args.repeats)]
                rows.append(
                    {
                        "batch": batch,
                        "http_per_s": statistics.median(http),
                        "ort_per_s": statistics.median(raw),
                        "http_runs": http,
                        "ort_runs": raw,
                    }
                )
                print(f"batch {batch}: HTTP {rows[-1]['http_per_s']:.0f}/s, raw onnxruntime {rows[-1]['ort_per_s']:.0f}/s")
    finally:
        server.terminate()
        server.wait(timeout=30)
    meta = {
        "machine": describe_machine(),
        "predictor": f"{card.name} {card.version}",
        "command": " ".join(["python -m benchmarks.service_throughput", *sys.argv[1:]]),
        "setup": "server and client on the same machine over loopback, one keep-alive client, cache disabled, "
        f"median of {args.repeats} x {args.seconds:.0f} s",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "service_throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "# Predictions per second through POST /v1/predict",
        "",
        f"Machine: {meta['machine']}. Predictor: {meta['predictor']}.",
        f"Command: `{meta['command']}`. {meta['setup']}.",
        "",
        "| batch | HTTP predictions/s | raw onnxruntime predictions/s | HTTP / raw |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['http_per_s']:.0f} | {r['ort_per_s']:.0f} | {r['http_per_s'] / r['ort_per_s']:.2f} |")
    (RESULTS / "service_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
