"""What a request whose targets span two predictors costs: HTTP throughput of NB201 batches asking for an accuracy
only, a HELP latency only, and both (answered by ``nb201-v1`` and ``nb201-help-v1``: two onnxruntime runs).

One ``archcast serve`` (shipped predictors, cache off, default settings otherwise), one keep-alive client; the target
sets are interleaved round by round and each figure is the median over the rounds. Beside it, raw onnxruntime: one
``nb201-v1`` run against an ``nb201-v1`` run followed by an ``nb201-help-v1`` run, on sessions of the service's intra-op
thread count with onnxruntime's default spinning and with ``session.force_spinning_stop`` (what the service sets). Writes
``benchmarks/results/target_split.{json,md}`` with the machine and the exact command.

    python -m benchmarks.target_split [--batch-sizes 1 64 1024] [--seconds 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import onnxruntime as ort

from benchmarks.machine import describe_machine
from benchmarks.service_throughput import bodies_of, http_rate, random_cells, serving
from model.canonical import canonicalize
from model.card import PREDICTOR_DIR
from model.parsers import parse_nb201
from model.tokenizer import tokenize_graphs
from service.predictor import session_threads
from service.settings import Settings

RESULTS = Path(__file__).parent / "results"
TARGET_SETS = {
    "accuracy (nb201-v1)": ["cifar10_test_acc"],
    "HELP latency (nb201-help-v1)": ["latency_pixel3_ms"],
    "both (two predictors)": ["cifar10_test_acc", "latency_pixel3_ms"],
}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    cells = random_cells(8192, seed=3)
    rows = []
    with serving(ARCHCAST_CACHE_SIZE="0") as base, httpx.Client(timeout=60) as client:
        url = f"{base}/v1/predict"
        answered = {
            name: [p["predictor"] for p in client.post(url, content=bodies_of(cells, 1, 1, targets)[0],
                                                        headers={"content-type": "application/json"}).json()["answered_by"]]
            for name, targets in TARGET_SETS.items()
        }  # fmt: skip
        for batch in args.batch_sizes:
            payloads = {name: bodies_of(cells, batch, 32, targets) for name, targets in TARGET_SETS.items()}
            for name in TARGET_SETS:  # warm-up, fills the parse memo
                http_rate(client, url, payloads[name], batch, min(1.0, args.seconds))
            runs: dict[str, list[float]] = {name: [] for name in TARGET_SETS}
            for _ in range(args.repeats):
                for name in TARGET_SETS:
                    runs[name].append(http_rate(client, url, payloads[name], batch, args.seconds))
            for name in TARGET_SETS:
                rows.append({"batch": batch, "targets": name, "answered_by": answered[name],
                             "per_s": statistics.median(runs[name]), "runs": runs[name]})  # fmt: skip
                print(f"batch {batch:5d} {name:30s} {rows[-1]['per_s']:8.0f} cells/s")
    return rows


def raw_back_to_back(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median ms of one nb201-v1 run and of an nb201-v1 run then an nb201-help-v1 run, spinning left on and stopped."""
    threads = session_threads(Settings())
    cells = random_cells(max(args.batch_sizes), seed=4)
    rows = []
    for batch in args.batch_sizes:
        graphs = [parse_nb201(a) for a in cells[:batch]]
        tokens = tokenize_graphs([g.renumbered(canonicalize(g).order) for g in graphs])
        feed = {"tokens": tokens.tokens, "mask": tokens.mask, "depth": tokens.depth}
        for spinning in ("default", "force_spinning_stop"):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            if spinning != "default":
                options.add_session_config_entry("session.force_spinning_stop", "1")
            first, second = (
                ort.InferenceSession(str(PREDICTOR_DIR / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
                for name in ("nb201-v1", "nb201-help-v1")
            )
            reps = max(5, min(300, 20_000 // batch))
            for _ in range(3):
                first.run(None, feed), second.run(None, feed)
            one, two = [], []
            for _ in range(reps):  # interleaved
                start = time.perf_counter()
                first.run(None, feed)
                one.append(time.perf_counter() - start)
                start = time.perf_counter()
                first.run(None, feed), second.run(None, feed)
                two.append(time.perf_counter() - start)
            row = {"batch": batch, "threads": threads, "spinning": spinning,
                   "one_ms": statistics.median(one) * 1000, "two_ms": statistics.median(two) * 1000}  # fmt: skip
            rows.append(row)
            print(f"raw batch {batch:5d} {spinning:20s} one run {row['one_ms']:.2f} ms, two {row['two_ms']:.2f} ms")
    return rows


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]]) -> str:
    lines = [
        "# Targets spanning two predictors: HTTP throughput",
        "",
        f"- Machine: {meta['machine']}",
        f"- Command: `{meta['command']}`",
        f"- Setup: {meta['setup']}",
        "",
        "| batch | targets | answered by | NB201 cells/s | / accuracy only |",
        "|---|---|---|---|---|",
    ]
    by = {(r["batch"], r["targets"]): r["per_s"] for r in rows}
    first = next(iter(TARGET_SETS))
    for r in rows:
        ratio = r["per_s"] / by[(r["batch"], first)]
        lines.append(f"| {r['batch']} | {r['targets']} | {', '.join(r['answered_by'])} | {r['per_s']:,.0f} | {ratio:.2f} |")
    lines += [
        "",
        "Raw onnxruntime, medians of interleaved repeats: one `nb201-v1` run, and an `nb201-v1` run followed by an "
        "`nb201-help-v1` run, on sessions with onnxruntime's default spinning and with `session.force_spinning_stop`.",
        "",
        "| batch | intra-op threads | spinning | one run ms | two runs ms | two / one |",
        "|---|---|---|---|---|---|",
        *(f"| {r['batch']} | {r['threads']} | {r['spinning']} | {r['one_ms']:.2f} | {r['two_ms']:.2f} | "
          f"{r['two_ms'] / r['one_ms']:.2f} |" for r in raw),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = measure(args)
    raw = raw_back_to_back(args)
    meta = {
        "machine": describe_machine(),
        "command": " ".join(["python -m benchmarks.target_split", *sys.argv[1:]]),
        "setup": f"archcast serve with the shipped predictors, cache off, one keep-alive client over loopback; target "
        f"sets interleaved, median of {args.repeats} x {args.seconds:g} s after a warm-up",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "target_split.json").write_text(json.dumps({"meta": meta, "rows": rows, "raw": raw}, indent=1))
    text = markdown(meta, rows, raw)
    (args.out / "target_split.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
