"""Repeatability check: re-measure a random sample of already-measured networks, long after their first passes.

    python -m training.netgen.remeasure --data training/datasets/cpu-ort-1t --count 150

Appends to ``remeasure.jsonl`` (resumable: ids already there are skipped) one pass per network, and prints the
median absolute % difference from the dataset value: the noise floor across time (minutes to hours apart),
where the A/B passes of the generator give it across seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.netgen.export import export_spec
from training.netgen.generate import MEASUREMENTS, META, read_jsonl
from training.netgen.measure import device_mismatch, measure_pass

REMEASURE = "remeasure.jsonl"


def remeasure(directory: Path, count: int, seed: int = 1) -> dict[str, float]:
    mismatch = device_mismatch(json.loads((directory / META).read_text()))
    if mismatch:
        raise SystemExit(f"not a repeat measurement: {mismatch}")
    records = {int(r["id"]): r for r in read_jsonl(directory / MEASUREMENTS) if "latency_ms" in r}
    done = {int(r["id"]): r for r in read_jsonl(directory / REMEASURE)}
    sample = random.Random(seed).sample(sorted(records), min(count, len(records)))
    with (directory / REMEASURE).open("a") as handle:
        for i in tqdm([i for i in sample if i not in done], desc="remeasure", unit="net"):
            record = records[i]
            result = measure_pass(export_spec(record["family"], record["spec"]))
            line = {"id": i, "min_ms": result.min_ms, "median_ms": result.median_ms, "runs": result.runs, "t": time.time()}
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            done[i] = line
    diffs = [100 * abs(done[i]["min_ms"] - records[i]["latency_ms"]) / records[i]["latency_ms"] for i in done if i in records]
    hours = [(done[i]["t"] - records[i]["a"]["t"]) / 3600 for i in done if i in records and "a" in records[i]]
    return {
        "n": float(len(diffs)),
        "median_abs_pct": float(np.median(diffs)) if diffs else float("nan"),
        "p90_abs_pct": float(np.percentile(diffs, 90)) if diffs else float("nan"),
        "median_hours_apart": float(np.median(hours)) if hours else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--count", type=int, default=150)
    args = parser.parse_args(argv)
    print(json.dumps(remeasure(args.data, args.count), indent=1))


if __name__ == "__main__":
    main()
