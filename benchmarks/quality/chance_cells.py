"""NB201 cells that compute nothing: how the shipped accuracy predictor reads them, against an earlier version.

A cell with no path from input to output but through ``none`` edges gives a network that ignores its input; the table
reads chance for every one of them (``training.targets.Target.floor``). For each accuracy target of the card this
prints and writes: how many such cells the test and validation splits hold, what they measure, what the current and
the earlier predictor (its ONNX at ``--old-rev``) predict for them, and test MAPE / Acc(10 %) / Kendall tau of both.

    python -m benchmarks.quality.chance_cells --old-rev af98443
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from model.card import PREDICTOR_DIR, ModelCard
from model.parsers import parse_nb201
from training.data import load_dataset
from training.metrics import regression_metrics
from training.splits import SPLIT_DIR, load_split
from training.uncertainty import predict_cells

RESULTS = Path("benchmarks/results/quality/chance_cells")
CELL_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to) cell nodes of the six ops, arch-string order


def computes_nothing(arch: str) -> bool:
    """True when no path from the cell's input (node 0) to its output (node 3) avoids ``none`` edges."""
    reached = {0}
    for (source, target), op in zip(CELL_EDGES, parse_nb201(arch).ops[1:-1], strict=True):
        if op != "none" and source in reached:
            reached.add(target)
    return 3 not in reached


def old_onnx(rev: str, onnx_file: str, folder: Path) -> Path:
    path = folder / f"old_{onnx_file}"
    shown = subprocess.run(["git", "show", f"{rev}:model/predictors/{onnx_file}"], capture_output=True, check=True)
    path.write_bytes(shown.stdout)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=PREDICTOR_DIR / "nb201-v1.card.json")
    parser.add_argument("--old-rev", required=True, help="git revision whose model/predictors/<onnx> is the earlier version")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    card = ModelCard.load(args.card)
    data = load_dataset(card.target_names)
    _, val, test = load_split(SPLIT_DIR / card.split["file"], len(data.indices))
    dead = np.array([computes_nothing(a) for a in data.arch_strs])
    with tempfile.TemporaryDirectory() as folder:
        old_path = old_onnx(args.old_rev, card.onnx_file, Path(folder))
        new = predict_cells(args.card.parent / card.onnx_file, data, test)
        old = predict_cells(old_path, data, test)
    d = dead[test]
    rows = []
    for j, target in enumerate(card.targets):
        if target.unit != "%":
            continue
        y = data.y[test, j]
        m_old, m_new = regression_metrics(old[:, j], y), regression_metrics(new[:, j], y)
        ape_old = np.abs(old[:, j] / y - 1)
        rows.append({
            "target": target.name, "cells_val": int(dead[val].sum()), "cells_test": int(d.sum()), "n_test": len(test),
            "measured": sorted({round(float(v), 3) for v in y[d]}), "predicted_old": float(old[d, j].mean()),
            "predicted_new": float(new[d, j].mean()), "share_of_old_mape": float(ape_old[d].sum() / ape_old.sum()),
            "old": m_old, "new": m_new,
        })  # fmt: skip
    lines = [
        f"# NB201 cells that compute nothing: `{card.name}` {card.version} against its ONNX at `{args.old_rev}`",
        "",
        f"`python -m benchmarks.quality.chance_cells --old-rev {args.old_rev}`; split `{card.split['file']}`, "
        f"{dead.sum()} such cells in the whole space, {int(d.sum())} of {len(test)} test cells.",
        "",
        "| target | measured (%) | predicted, old / new (mean %) | share of old MAPE | MAPE % old / new | Acc(10%) old / new "
        "| Kendall tau old / new |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        o, n = r["old"], r["new"]
        lines.append(
            f"| {r['target']} | {', '.join(map(str, r['measured']))} | {r['predicted_old']:.2f} / {r['predicted_new']:.2f} | "
            f"{100 * r['share_of_old_mape']:.0f} % | {o['mape']:.2f} / {n['mape']:.2f} | {o['acc10']:.1f} / {n['acc10']:.1f} | "
            f"{o['kendall_tau']:.4f} / {n['kendall_tau']:.4f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
