"""What the service spends preparing one architecture it has never seen, per space: parse + validate + canonicalize +
renumber (``service.pipeline.prepare``), the CPU work before tokenization that no batching shares.

For each space, ``--count`` random architectures (seeded) are prepared one after another, the NB201 parse memo emptied
first; microseconds per architecture, median of ``--repeats`` passes. ``--baseline PATH`` also runs the same measurement
on the code of another checkout (a ``git worktree`` of an earlier revision: a subprocess started there, with PATH on its
``PYTHONPATH``), alternating with this revision, so both lie in one sitting. Writes
``benchmarks/results/prepare_cost.{json,md}``.

    python -m benchmarks.prepare_cost [--count 500] [--repeats 5] [--baseline /tmp/ab_old --baseline-name REV]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPACES = ("nb201", "fbnet", "ofa")
RESULTS = Path(__file__).parent / "results" / "prepare_cost"


def architectures(space: str, count: int) -> list[dict]:
    """``count`` request architectures of ``space`` (seed 0), as a client sends them."""
    from model.parsers import NB201_OPS, nb201_arch_str
    from model.parsers.fbnet import FBNET_CHOICES

    rng = random.Random(0)
    if space == "nb201":
        cells = list(itertools.product(NB201_OPS, repeat=6))
        return [{"space": "nb201", "arch": nb201_arch_str(ops)} for ops in rng.sample(cells, count)]
    if space == "fbnet":
        return [{"space": "fbnet", "layers": [rng.choice(FBNET_CHOICES) for _ in range(22)]} for _ in range(count)]
    return [
        {"space": "ofa", "ks": [rng.choice([3, 5, 7]) for _ in range(20)], "e": [rng.choice([3, 4, 6]) for _ in range(20)],
         "d": [rng.choice([2, 3, 4]) for _ in range(5)], "r": rng.choice(range(128, 225, 4))}
        for _ in range(count)
    ]  # fmt: skip


def measure(count: int, repeats: int) -> dict[str, float]:
    """Median microseconds per architecture of ``prepare`` for each space, with the code this process imports."""
    from pydantic import TypeAdapter

    from service import pipeline
    from service.schemas import Architecture

    adapter = TypeAdapter(Architecture)
    found = {}
    for space in SPACES:
        archs = [adapter.validate_python(a) for a in architectures(space, count)]
        passes = []
        for _ in range(repeats):
            pipeline._prepare_nb201.cache_clear()
            start = time.perf_counter()
            for arch in archs:
                pipeline.prepare(arch, 1000, None)
            passes.append(1e6 * (time.perf_counter() - start) / count)
        found[space] = statistics.median(passes)
    return found


def measure_in(checkout: Path, count: int, repeats: int) -> dict[str, float]:
    """``measure`` run by the code of ``checkout`` in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    here = str(Path(__file__).resolve())
    script = f"import json, runpy; m = runpy.run_path({here!r}); print(json.dumps(m['measure']({count}, {repeats})))"
    out = subprocess.run([sys.executable, "-c", script], cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of baseline and this revision")
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--baseline-name", default="baseline")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from benchmarks.machine import describe_machine

    here = Path(__file__).resolve().parent.parent
    names = ([args.baseline_name] if args.baseline else []) + ["this revision"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        if args.baseline:
            runs[args.baseline_name].append(measure_in(args.baseline.resolve(), args.count, args.repeats))
        runs["this revision"].append(measure_in(here, args.count, args.repeats))
    medians = {name: {s: statistics.median(r[s] for r in runs[name]) for s in SPACES} for name in names}
    command = " ".join(["python -m benchmarks.prepare_cost", *sys.argv[1:]])
    lines = [
        "# Preparing one architecture never seen: parse + validate + canonicalize + renumber (microseconds)", "",
        f"Machine: {describe_machine()}.", f"Command: `{command}`.",
        f"Setup: {args.count} random architectures per space (seed 0), prepared one after another by "
        f"`service.pipeline.prepare` with the NB201 memo emptied; median of {args.repeats} passes per round, median of "
        f"{args.rounds} rounds, each configuration in its own process, alternating.", "",
        "| space | " + " | ".join(names) + (" | ratio |" if args.baseline else ""),
        "|---|" + "---|" * len(names) + ("---|" if args.baseline else ""),
    ]  # fmt: skip
    for space in SPACES:
        row = [f"{medians[name][space]:.0f}" for name in names]
        ratio = f" | {medians[args.baseline_name][space] / medians['this revision'][space]:.2f}x" if args.baseline else ""
        lines.append(f"| {space} | " + " | ".join(row) + ratio + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "runs": runs, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
