"""Two leave-one-family-out runs side by side, split by split: which one generalises better, judged first on validation.

    python -m benchmarks.onnx_lofo_compare BEFORE.json AFTER.json --out benchmarks/results/NAME

Reads two ``benchmarks.onnx_latency`` reports (``--protocol lofo --val-family``) and pairs their ArchCast runs by
held-out family and seed; only pairs both reports have count, so a partial rerun compares like with like. Each
held-out family's checkpoint is chosen on one other whole family, so the validation MAPE is the figure a choice
between the two may rest on; the test MAPE, Acc(10 %) and Spearman are reported beside it and decide nothing.
Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.report import write_report

FIGURES = ("val_mape", "mape", "acc10", "spearman")


def runs_by_split(report: dict) -> dict[tuple[str, int], dict[str, float]]:
    """(held-out family, seed) -> ArchCast's validation MAPE and test metrics."""
    return {
        (job["protocol"].removeprefix("lofo:"), int(job["seed"])): {
            "val_mape": float(job["archcast_val_mape"]),
            **{k: float(job["metrics"]["archcast"][k]) for k in FIGURES[1:]},
            "val_family": job["split"].split("_valfam_")[1].rsplit("_seed", 1)[0],
        }
        for job in report["runs"]
        if job["protocol"].startswith("lofo:")
    }


def compare(before: dict, after: dict) -> dict:
    """Paired per-split figures and their means over the pairs both reports hold."""
    a, b = runs_by_split(before), runs_by_split(after)
    pairs = sorted(set(a) & set(b))
    if not pairs:
        raise SystemExit("the two reports share no (held-out family, seed) split")
    rows = [
        {"family": f, "seed": s, "val_family": a[(f, s)]["val_family"], "before": a[(f, s)], "after": b[(f, s)]} for f, s in pairs
    ]
    means = {side: {k: float(np.mean([r[side][k] for r in rows])) for k in FIGURES} for side in ("before", "after")}
    return {
        "pairs": len(rows),
        "seeds": sorted({s for _, s in pairs}),
        "families": sorted({f for f, _ in pairs}),
        "means": means,
        "better_val": sum(r["after"]["val_mape"] < r["before"]["val_mape"] for r in rows),
        "better_test": sum(r["after"]["mape"] < r["before"]["mape"] for r in rows),
        "rows": rows,
    }


def markdown(result: dict, names: tuple[str, str], command: str) -> str:
    before, after = names
    m = result["means"]
    lines = [
        "# Leave-one-family-out, two runs paired split by split",
        "",
        f"Command: `{command}`. Before: `{before}`. After: `{after}`.",
        "",
        f"{result['pairs']} splits both runs hold (seeds {result['seeds']}, {len(result['families'])} held-out "
        "families). Each split's checkpoint is chosen on its validation family; validation MAPE is what a choice "
        "may rest on, the test figures decide nothing.",
        "",
        "| | mean validation MAPE % | mean test MAPE % | mean test Acc(10 %) % | mean test Spearman |",
        "|---|---|---|---|---|",
        *(
            f"| {side} | {m[side]['val_mape']:.2f} | {m[side]['mape']:.2f} | {m[side]['acc10']:.1f} | {m[side]['spearman']:.3f} |"
            for side in ("before", "after")
        ),
        "",
        f"After is lower on validation in {result['better_val']} of {result['pairs']} splits, on test in "
        f"{result['better_test']}.",
        "",
        "| held-out family | seed | validation family | val MAPE before -> after | test MAPE before -> after | "
        "Spearman before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        b, a = r["before"], r["after"]
        lines.append(
            f"| {r['family']} | {r['seed']} | {r['val_family']} | {b['val_mape']:.2f} -> {a['val_mape']:.2f} | "
            f"{b['mape']:.2f} -> {a['mape']:.2f} | {b['spearman']:.3f} -> {a['spearman']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    command = "python -m benchmarks.onnx_lofo_compare " + " ".join(sys.argv[1:] if argv is None else argv)
    write_report(
        args.out,
        {"command": command, "before": str(args.before), "after": str(args.after), **result},
        markdown(result, (str(args.before), str(args.after)), command),
    )


if __name__ == "__main__":
    main()
