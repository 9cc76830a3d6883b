"""Test-time averaging over node orders: does it rescue a model trained on renumbered cells?

Every prediction is made in the canonical node order (``model/canonical.py``). A model trained with the
information-flow-consistency augmentation has seen each cell in many valid orders; this diagnostic scores finished
runs both ways on their test cells: in the canonical order, and as the mean of the predictions over ``--orders``
random valid orders of each cell. No training; the runs come from ``benchmarks.quality.order_treatments`` (accuracy)
and ``sample_sizes`` (latency).

    python -m benchmarks.quality.order_averaging [--orders 8] [--runs RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import describe_machine
from benchmarks.quality.sample_sizes import RESULTS
from benchmarks.report import write_report
from model.augment import sample_padded_orders
from model.tokenizer import EncodedGraphs
from training.data import ArchDataset, load_dataset
from training.metrics import regression_metrics
from training.splits import load_split
from training.trainer import load_best, predict_normalised

DEFAULT_RUNS = (
    "runs/quality/sizes/order_treatments/n7813_archcast_steps6000_seed0",
    "runs/quality/sizes/order_treatments/n7813_no_aug_no_consistency_steps6000_seed0",
    "runs/quality/long/latency_pretraining/n7813_augment_throughout_seed0",
    "runs/quality/long/latency_pretraining/n7813_no_aug_no_consistency_seed0",
)


def order_averaged(net: torch.nn.Module, encoded: EncodedGraphs, pools: list[np.ndarray], orders: int, seed: int) -> np.ndarray:
    """Mean prediction (normalised units) over ``orders`` random valid node orders of every graph."""
    rng = np.random.default_rng(seed)
    length = encoded.op_ids.shape[1]
    draws = [predict_normalised(net, encoded, orders=sample_padded_orders(pools, rng, length)) for _ in range(orders)]
    return np.mean(np.stack(draws).astype(np.float64), axis=0)


@functools.lru_cache(maxsize=4)
def _test_set(targets: tuple[str, ...], split: str) -> ArchDataset:
    """A split's test cells with the run's targets (runs with the same targets and split share one load)."""
    data = load_dataset(list(targets))
    _, _, test_idx = load_split(Path(split), len(data.indices))
    return data.subset(test_idx)


def score(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    metrics = [regression_metrics(pred[:, t], y[:, t]) for t in range(y.shape[1])]
    return {k: float(np.nanmean([m[k] for m in metrics])) for k in ("kendall_tau", "spearman")}


def evaluate(run: Path, orders: int, seed: int) -> dict:
    net, normaliser, cfg = load_best(run)
    test = _test_set(tuple(cfg.targets), cfg.split)
    canonical = normaliser.decode(predict_normalised(net, test.encoded))
    averaged = normaliser.decode(order_averaged(net, test.encoded, test.orders(), orders, seed))
    result = {
        "run": str(run),
        "augment": cfg.augment,
        "targets": len(cfg.targets),
        "canonical": score(canonical, test.y),
        "order_averaged": score(averaged, test.y),
    }
    print(f"{run}: {result}", file=sys.stderr)
    return result


def markdown(report: dict) -> str:
    lines = [
        "# Test-time averaging over node orders",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Each run's own test cells; mean over its "
        f"targets; `averaged` = mean prediction over {report['orders']} random valid node orders of each cell.",
        "",
        "| run | trained with augmentation | targets | Kendall tau canonical | averaged | Spearman canonical | averaged |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        c, a = r["canonical"], r["order_averaged"]
        lines.append(
            f"| `{Path(r['run']).name}` | {'yes' if r['augment'] else 'no'} | {r['targets']} | {c['kendall_tau']:.4f} | "
            f"{a['kendall_tau']:.4f} | {c['spearman']:.4f} | {a['spearman']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--orders", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "order_averaging")
    args = parser.parse_args()
    torch.set_num_threads(1)
    missing = [r for r in args.runs if not (Path(r) / "best.pt").exists()]
    if missing:
        parser.error(f"no finished run (best.pt) in {missing}")
    results = [evaluate(Path(r), args.orders, args.seed) for r in args.runs]
    report = {
        "machine": describe_machine(),
        "command": f"python -m benchmarks.quality.order_averaging {' '.join(sys.argv[1:])}".strip(),
        "orders": args.orders,
        "results": results,
    }
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
