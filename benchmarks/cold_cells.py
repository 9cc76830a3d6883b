"""HTTP throughput on NB201 cells the server has never seen, as a NAS search sends them.

``service_throughput`` repeats its cells, so from the second pass on the server's parse memo skips parsing and
canonicalization. Here each fresh server (cache off) gets every NB201 cell exactly once, in a shuffled order, in
requests of ``batch`` cells: nothing is memoised, nothing cached. Cells/s of that pass, median over ``--repeats``
fresh servers per configuration. ``--baseline PATH`` adds a configuration whose server runs the code at PATH (a
``git worktree`` of an earlier revision: the server starts there, with PATH on its ``PYTHONPATH``); configurations
alternate within each repeat.

    python -m benchmarks.cold_cells [--batch-sizes 64 1024] [--repeats 3] [--baseline /tmp/ab_head --baseline-name REV]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.service_throughput import bodies_of, serving
from model.parsers import NB201_OPS, nb201_arch_str

RESULTS = Path(__file__).parent / "results" / "cold_cells"
WARM_UP_CELLS = 8  # sent first, one per request, and left out of the timed pass


def one_pass(batch: int, cells: list[str], checkout: Path | None) -> float:
    """Cells/s of one pass over ``cells`` through a fresh server running the code of ``checkout`` (None: this one)."""
    env = {} if checkout is None else {"PYTHONPATH": str(checkout)}
    with serving(checkout, ARCHCAST_CACHE_SIZE="0", **env) as base, httpx.Client(timeout=120) as client:
        url = f"{base}/v1/predict"
        headers = {"content-type": "application/json"}
        for body in bodies_of(cells[:WARM_UP_CELLS], 1, limit=WARM_UP_CELLS):
            client.post(url, content=body, headers=headers).raise_for_status()
        bodies = bodies_of(cells[WARM_UP_CELLS:], batch, limit=len(cells))
        start = time.perf_counter()
        for body in bodies:
            client.post(url, content=body, headers=headers).raise_for_status()
        return batch * len(bodies) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare against (its server only)")
    parser.add_argument("--baseline-name", default="baseline")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    cells = [nb201_arch_str(ops) for ops in itertools.product(NB201_OPS, repeat=6)]
    cells = [cells[i] for i in np.random.default_rng(0).permutation(len(cells))]
    configurations: list[tuple[str, Path | None]] = [("this revision", None)]
    if args.baseline is not None:
        configurations.insert(0, (args.baseline_name, args.baseline.resolve()))
    runs: dict[str, dict[int, list[float]]] = {name: {b: [] for b in args.batch_sizes} for name, _ in configurations}
    for repeat in range(args.repeats):
        for batch in args.batch_sizes:
            for name, checkout in configurations:
                rate = one_pass(batch, cells, checkout)
                runs[name][batch].append(rate)
                print(f"repeat {repeat + 1}, batch {batch}, {name}: {rate:.0f} cells/s", flush=True)
    meta = {
        "machine": describe_machine(),
        "command": " ".join(["python -m benchmarks.cold_cells", *sys.argv[1:]]),
        "setup": f"each pass: a fresh `archcast serve` (default settings, cache off), {WARM_UP_CELLS} warm-up requests of one "
        f"cell, then the other {len(cells) - WARM_UP_CELLS} NB201 cells once each (shuffled, seed 0) in requests of "
        f"`batch` cells from one client over loopback; median of {args.repeats} passes, configurations alternating",
    }
    lines = [
        "# HTTP throughput on NB201 cells the server has never seen", "", f"Machine: {meta['machine']}.",
        f"Command: `{meta['command']}`.", f"Setup: {meta['setup']}.", "",
        "| batch | " + " | ".join(f"{name}: cells/s" for name, _ in configurations) + " | runs |",
        "|---|" + "---|" * len(configurations) + "---|",
    ]  # fmt: skip
    for batch in args.batch_sizes:
        medians = [statistics.median(runs[name][batch]) for name, _ in configurations]
        every = "; ".join(f"{name}: " + ", ".join(f"{r:.0f}" for r in runs[name][batch]) for name, _ in configurations)
        lines.append(f"| {batch} | " + " | ".join(f"{m:.0f}" for m in medians) + f" | {every} |")
    if len(configurations) == 2:
        ratios = [
            statistics.median(runs["this revision"][b]) / statistics.median(runs[args.baseline_name][b])
            for b in args.batch_sizes
        ]
        lines += ["", "This revision / " + args.baseline_name + ": " + ", ".join(
            f"{r:.2f} at batch {b}" for b, r in zip(args.batch_sizes, ratios, strict=True)) + "."]  # fmt: skip
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
