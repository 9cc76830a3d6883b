"""One network, two NB201 arch strings: how far the shipped cell predictors' answers for twins differ, and what
answering both as one (the service's ``parse_nb201_network``) does to test quality.

    python -m benchmarks.nb201_twin_answers [--out benchmarks/results/nb201_twin_answers]

For every shipped NB201 predictor, each of the 15,625 cells is predicted in its own form (its arch string's line
graph, as the service did before) straight through onnxruntime. Twins (``model.parsers.nb201_twin``) are then
compared with each other, and the predictor's test split (its card's split file: every cell in neither training nor
validation) is scored three ways: each cell in its own form, as its pair's representative (what the service answers
now), and the mean of both forms (geometric for latency). Needs the benchmark tables; about 1 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.machine import describe_machine
from benchmarks.quality.label_noise import target_values, twin_pairs
from model.canonical import canonicalize
from model.card import PREDICTOR_DIR
from model.parsers import nb201_arch_str, nb201_representative, parse_nb201
from model.tables import nb201_arch_strings
from model.tokenizer import tokenize_graphs
from service.predictor import load_registry

SPLITS = Path(__file__).resolve().parent.parent / "training" / "splits"
PREDICTORS = ("nb201-v1", "nb201-latency-v1")
BATCH = 2048


def own_form_predictions(predictor, arch_strs: tuple[str, ...]) -> np.ndarray:
    """(cells, targets) predictions of every cell in its own form, in target units."""
    out = []
    for start in range(0, len(arch_strs), BATCH):
        graphs = []
        for arch in arch_strs[start : start + BATCH]:
            graph = parse_nb201(arch)
            graphs.append(graph.renumbered(canonicalize(graph).order))
        out.append(predictor.run(tokenize_graphs(graphs))[:, : len(predictor.card.targets)])
    return np.concatenate(out)


def representative_rows(arch_strs: tuple[str, ...]) -> np.ndarray:
    """Per cell, the row of its pair's representative (itself when it has no twin or is the representative)."""
    row_of = {arch: i for i, arch in enumerate(arch_strs)}
    return np.array([row_of[nb201_arch_str(nb201_representative(parse_nb201(a).ops[1:-1]))] for a in arch_strs])


def twin_rows(arch_strs: tuple[str, ...], pairs: np.ndarray) -> np.ndarray:
    other = np.arange(len(arch_strs))
    other[pairs[:, 0]], other[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    return other


def scores(pred: np.ndarray, names: list[str], cells: np.ndarray) -> dict[str, float]:
    taus, accs = [], []
    for t, name in enumerate(names):
        y = target_values(name, len(pred))[cells]
        p = pred[cells, t]
        keep = np.isfinite(y)
        taus.append(float(stats.kendalltau(p[keep], y[keep]).statistic))
        accs.append(float(100 * np.mean(np.abs(p[keep] - y[keep]) / np.abs(y[keep]) <= 0.1)))
    return {"mean_kendall_tau": float(np.mean(taus)), "mean_acc10": float(np.mean(accs))}


def run() -> dict:
    arch_strs = nb201_arch_strings()
    pairs = twin_pairs(arch_strs)
    representative, other = representative_rows(arch_strs), twin_rows(arch_strs, pairs)
    registry = load_registry(PREDICTOR_DIR, providers="cpu")
    result: dict = {"pairs": int(len(pairs)), "predictors": {}}
    for name in PREDICTORS:
        predictor = registry.predictors[name]
        names = [t.name for t in predictor.card.targets]
        own = own_form_predictions(predictor, arch_strs)
        latency = np.array([t.unit == "ms" for t in predictor.card.targets])
        averaged = np.where(latency, np.sqrt(own * own[other]), (own + own[other]) / 2)
        a, b = own[pairs[:, 0]], own[pairs[:, 1]]
        gap = np.where(latency, 100 * np.abs(a - b) / ((a + b) / 2), np.abs(a - b))  # % for latency, points for accuracy
        split = json.loads((SPLITS / predictor.card.split["file"]).read_text())
        seen = set(split["train"]) | set(split["val"])
        test = np.array([i for i in range(len(arch_strs)) if i not in seen])
        with_twin = test[np.isin(test, pairs.ravel())]
        result["predictors"][name] = {
            "version": predictor.card.version,
            "twin_gap": {
                t: {"median": float(np.median(gap[:, k])), "p90": float(np.quantile(gap[:, k], 0.9)),
                    "max": float(gap[:, k].max()), "unit": "%" if latency[k] else "points"}
                for k, t in enumerate(names)
            },  # fmt: skip
            "test_cells": int(len(test)),
            "test_cells_with_twin": int(len(with_twin)),
            "test": {mode: scores(pred, names, test) for mode, pred in
                     (("own form", own), ("representative", own[representative]), ("mean of both forms", averaged))},
            "test_with_twin": {mode: scores(pred, names, with_twin) for mode, pred in
                               (("own form", own), ("representative", own[representative]), ("mean of both forms", averaged))},
        }  # fmt: skip
    return result


def markdown(result: dict, meta: dict) -> str:
    lines = [
        "# NB201 twins: one network, two arch strings, and the shipped predictors' answers",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. {result['pairs']:,} twin pairs (edge 1->2 `none`, "
        "intermediate nodes swapped; `model.parsers.nb201_twin`). Each cell predicted in its own form through "
        "onnxruntime (CPU).",
        "",
        "## How far twins' answers lie apart (own forms)",
        "",
        "| predictor | target | median | p90 | max |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["predictors"].items():
        for target, g in r["twin_gap"].items():
            unit = " %" if g["unit"] == "%" else " points"
            cells = " | ".join(f"{g[k]:.2f}{unit}" for k in ("median", "p90", "max"))
            lines.append(f"| {name} {r['version']} | {target} | {cells} |")
    lines += [
        "",
        "## Test quality (the card's split), mean over targets",
        "",
        "| predictor | answered as | Kendall tau, all test cells | Acc(10 %) | Kendall tau, test cells with a twin | Acc(10 %) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["predictors"].items():
        for mode, s in r["test"].items():
            w = r["test_with_twin"][mode]
            lines.append(
                f"| {name} ({r['test_cells']} / {r['test_cells_with_twin']} cells) | {mode} | {s['mean_kendall_tau']:.4f} | "
                f"{s['mean_acc10']:.2f} | {w['mean_kendall_tau']:.4f} | {w['mean_acc10']:.2f} |"
            )
    lines += [
        "",
        "The service answers `representative`: a network gets one answer and one cache entry whichever arch string "
        "names it. Averaging both forms costs a second row per twin cell and is not better.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nb201_twin_answers"))
    args = parser.parse_args()
    result = run()
    meta = {"machine": describe_machine(), "command": "python -m benchmarks.nb201_twin_answers"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    text = markdown(result, meta)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
