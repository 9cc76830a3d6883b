"""Reproduce the whole quality report from scratch: ``python -m benchmarks.quality [--only STAGE ...] [--dry-run]``.

Runs every stage in order, each a resumable command of its own (finished training runs are reused), printing the
stage, its estimated time on the 2-core reference machine and the estimated time left; then rebuilds
``benchmarks/results/quality/summary.md``. About 11 hours from nothing on 2 cores, minutes when every run is done.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

STAGES: dict[str, tuple[list[str], float]] = {  # name -> (module and arguments, minutes on the 2-core reference machine)
    "fewshot": (["benchmarks.quality.fewshot"], 45),
    "calibration_std": (["benchmarks.quality.calibration_std"], 3),
    "latency_sizes": (["benchmarks.quality.sample_sizes", "--task", "latency"], 105),
    "latency_pretraining": (["benchmarks.quality.sample_sizes", "--task", "latency_pretraining"], 115),
    "latency_long": (
        ["benchmarks.quality.sample_sizes", "--task", "latency_pretraining", "--sizes", "7813", "--steps", "6200",
         "--runs", "runs/quality/long", "--out", "benchmarks/results/quality/long"],
        130,
    ),  # fmt: skip
    "accuracy_sizes": (["benchmarks.quality.sample_sizes", "--task", "accuracy"], 125),
    "network_spaces": (["benchmarks.quality.network_spaces"], 70),
    "small_sample": (["benchmarks.quality.small_sample", "--steps", "1000"], 50),
    "scatter": (["benchmarks.quality.scatter"], 2),
    "label_noise": (["benchmarks.quality.label_noise"], 0.5),
    "summary": (["benchmarks.quality.summary"], 0.1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(STAGES), help="run these stages (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = parser.parse_args()
    stages = [s for s in STAGES if args.only is None or s in args.only]
    left = sum(STAGES[s][1] for s in stages)
    print(f"{len(stages)} stages, about {left:.0f} min from scratch on 2 cores (less for finished runs)", file=sys.stderr)
    started = time.perf_counter()
    for k, name in enumerate(stages, start=1):
        command, minutes = STAGES[name]
        elapsed = (time.perf_counter() - started) / 60
        print(f"[{k}/{len(stages)}] {name}: about {minutes:.0f} min; {elapsed:.0f} min elapsed, about {left:.0f} min left",
              file=sys.stderr)  # fmt: skip
        if args.dry_run:
            print("    python -m " + " ".join(command), file=sys.stderr)
        else:
            subprocess.run([sys.executable, "-m", *command], check=True)
        left -= minutes
    print(f"done in {(time.perf_counter() - started) / 60:.0f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
