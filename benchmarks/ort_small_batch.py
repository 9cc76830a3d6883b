"""onnxruntime time per batch of NB201 cells with one intra-op thread against this machine's CPUs, batch by batch.

The service gives each cell predictor a single-threaded twin session for batches of at most ``ARCHCAST_ORT_SMALL_BATCH``
architectures (``service.predictor.Predictor.small_session``); this table is where that threshold comes from: below
the crossover a second thread costs more than it gains. Inputs are tokenized in advance (canonical NB201 cells), the
median of many runs per point, both sessions run alternately in one process. Writes
``benchmarks/results/ort_small_batch.{json,md}``.

    python -m benchmarks.ort_small_batch [--predictor nb201-v1] [--batch-sizes 1 2 4 8 16 32 64 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from benchmarks.machine import describe_machine
from benchmarks.service_throughput import random_cells
from model.card import PREDICTOR_DIR
from model.tokenizer import TokenBatch, tokenize_graphs
from service.cpus import available_cpus
from service.pipeline import _prepare_nb201

RESULTS = Path(__file__).parent / "results"


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_run_seconds(sess: ort.InferenceSession, batch: TokenBatch, runs: int) -> float:
    feeds = {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(predictor: str, batch_sizes: list[int], repeats: int) -> dict[str, Any]:
    path = PREDICTOR_DIR / f"{predictor}.onnx"
    cpus = available_cpus()
    sessions = {1: session(path, 1), cpus: session(path, cpus)}
    graphs = [_prepare_nb201(arch, 10_000).graph for arch in random_cells(max(batch_sizes), seed=1)]
    rows = []
    for size in batch_sizes:
        batch = tokenize_graphs(graphs[:size])
        runs = max(20, 2000 // size)
        medians: dict[int, list[float]] = {threads: [] for threads in sessions}
        for _ in range(repeats):  # alternate the two sessions so drift on a shared machine hits both
            for threads, sess in sessions.items():
                medians[threads].append(median_run_seconds(sess, batch, runs))
        one, many = statistics.median(medians[1]), statistics.median(medians[cpus])
        rows.append({"batch": size, "one_thread_us": one * 1e6, "all_threads_us": many * 1e6, "ratio": many / one})
        print(f"batch {size:5d}: 1 thread {one * 1e6:9.0f} us, {cpus} threads {many * 1e6:9.0f} us ({many / one:.2f})")
    return {"machine": describe_machine(), "predictor": predictor, "cpus": cpus, "repeats": repeats, "rows": rows,
            "command": " ".join(["python -m benchmarks.ort_small_batch", *sys.argv[1:]])}


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort_small_batch.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# onnxruntime per batch: one intra-op thread against all CPUs",
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`. Predictor `{result['predictor']}`, canonical NB201 "
        f"cells tokenized in advance; median run time, the median of {result['repeats']} alternating repeats. "
        f"A ratio above 1 means {result['cpus']} threads are slower than one.",
        "",
        f"| batch | 1 thread us | {result['cpus']} threads us | ratio |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['batch']} | {row['one_thread_us']:.0f} | {row['all_threads_us']:.0f} | {row['ratio']:.2f} |")
    (out / "ort_small_batch.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictor", default="nb201-v1")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    write(measure(args.predictor, args.batch_sizes, args.repeats), args.out)


if __name__ == "__main__":
    main()
