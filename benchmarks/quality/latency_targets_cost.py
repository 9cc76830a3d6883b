"""Do latency targets trained beside the accuracies cost accuracy? NB201, 7,813 training cells, 100 epochs, 3 seeds.

Pairs, per seed (same split, same label-free pre-trained encoder): the accuracy-only runs of the 100-epoch size table
(``sample_sizes --task accuracy --sizes 7813 --steps 6200``: the 3 accuracies + their 12-epoch columns, with the
recipe's augmentation and without) against ``nb201-v1`` 1.2.0's configuration (the 3 accuracies + 7 HELP latencies,
augmentation for the first half; seed 0 is 1.2.0's own run). Reads each run's ``history.json`` (validation Kendall tau
per target at the checkpoint validation chose) and ``metrics_test.json``; writes
``benchmarks/results/quality/long/latency_targets_cost.md``.

    python -m benchmarks.quality.latency_targets_cost --acc-runs runs/quality/long_acc/accuracy \
        --with-latency runs/ship/nb201_ns_half_huber runs/s54/acc10/seed1 runs/s54/acc10/seed2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ACCURACIES = ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_test_acc")
OUT = Path(__file__).resolve().parents[1] / "results" / "quality" / "long" / "latency_targets_cost.md"


def read_run(run: Path) -> dict[str, list[float]]:
    """Validation and test Kendall tau of the three accuracies (validation at the chosen checkpoint)."""
    evals = [e for e in json.loads((run / "history.json").read_text()) if "val_score" in e]
    best = max(evals, key=lambda e: e["val_score"])
    test = json.loads((run / "metrics_test.json").read_text())["test"]
    return {"val": [best["val"][t] for t in ACCURACIES], "test": [test[t]["kendall_tau"] for t in ACCURACIES]}


def pm(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acc-runs", type=Path, default=Path("runs/quality/long_acc/accuracy"))
    parser.add_argument("--with-latency", type=Path, nargs="+", required=True, help="the 10-target runs, seeds 0, 1, 2")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    configs = {
        "3 accuracies + 12-epoch columns, augmentation for the first half": [
            read_run(args.acc_runs / f"n7813_node_sum_huber_seed{s}") for s in range(len(args.with_latency))
        ],
        "3 accuracies + 12-epoch columns, no augmentation (shipped 1.3.0 is seed 0)": [
            read_run(args.acc_runs / f"n7813_node_sum_huber_no_aug_seed{s}") for s in range(len(args.with_latency))
        ],
        "3 accuracies + 7 HELP latencies, augmentation for the first half (1.2.0 is seed 0)": [
            read_run(run) for run in args.with_latency
        ],
    }
    lines = [
        "# NB201 accuracy: trained alone or beside 7 HELP latencies (7,813 cells, 100 epochs)",
        "",
        "Machine: Intel Xeon family 6 model 167, 2 cores (two runs at a time, 1 torch thread each). Command: `python -m "
        f"benchmarks.quality.latency_targets_cost {' '.join(sys.argv[1:])}`. Splits `nb201_train7813_val500_seed{{0,1,2}}`"
        ", test = the 7,312 cells outside train and validation; checkpoints chosen on validation; mean ± std over the "
        "seeds; Kendall tau. Seed 0 of the latency configuration evaluated every 5 epochs, the others every 2.",
        "",
        "| configuration | seeds | validation, mean of 3 accuracies | test CIFAR-10 | test CIFAR-100 | test ImageNet16-120 |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in configs.items():
        val = [statistics.mean(r["val"]) for r in runs]
        tests = [pm([r["test"][i] for r in runs]) for i in range(3)]
        lines.append(f"| {name} | {len(runs)} | {pm(val)} | {' | '.join(tests)} |")
    lines += ["", "Per seed (test CIFAR-10 / CIFAR-100 / ImageNet16-120):", ""]
    for name, runs in configs.items():
        per_seed = "; ".join(f"seed {s}: " + " / ".join(f"{v:.3f}" for v in r["test"]) for s, r in enumerate(runs))
        lines.append(f"- {name}: {per_seed}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
