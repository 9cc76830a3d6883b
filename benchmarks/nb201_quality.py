"""NB201 predictor quality: 3 seeds x {ArchCast, ablation without augmentation + consistency loss}.

Every run trains on a committed split (train / val / test disjoint, selection on validation only), resumes if
interrupted, and is evaluated on its test split. Prints and writes mean +- std per target to
``benchmarks/results/nb201_quality.{json,md}``.

    python -m benchmarks.nb201_quality [--n-train 1563] [--epochs 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.machine import describe_machine
from training.run import train_run
from training.splits import split_path
from training.targets import DEFAULT_TARGETS
from training.trainer import TrainConfig

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "archcast": {"augment": True, "consistency_weight": 0.5},
    "no_aug_no_consistency": {"augment": False, "consistency_weight": 0.0},
}
METRICS = ("kendall_tau", "spearman", "mape", "acc10")


def _run(job: tuple[str, int, dict]) -> dict:
    variant, seed, common = job
    cfg = TrainConfig(
        targets=list(DEFAULT_TARGETS),
        split=str(split_path(common["n_train"], common["n_val"], seed)),
        seed=seed,
        epochs=common["epochs"],
        threads=common["threads"],
        network=common["network"],
        **VARIANTS[variant],
    )
    result = train_run(cfg, Path(common["runs"]) / f"n{common['n_train']}_{variant}_seed{seed}")
    return {"variant": variant, **result}


def summarise(results: list[dict]) -> dict:
    summary: dict = {}
    for variant in VARIANTS:
        runs = [r for r in results if r["variant"] == variant]
        summary[variant] = {
            "seeds": [r["seed"] for r in runs],
            "train_seconds": [r["train_seconds"] for r in runs],
            "targets": {},
        }
        for target in DEFAULT_TARGETS:
            summary[variant]["targets"][target] = {
                m: {
                    "mean": float(np.mean([r["test"][target][m] for r in runs])),
                    "std": float(np.std([r["test"][target][m] for r in runs])),
                }
                for m in METRICS
            }
    return summary


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        f"# NB201 quality: {meta['n_train']} training cells, {meta['n_val']} validation, test = the rest",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Mean +- std over seeds {meta['seeds']}.",
        "",
    ]
    for metric, label in (
        ("kendall_tau", "Kendall tau-b"),
        ("spearman", "Spearman"),
        ("mape", "MAPE %"),
        ("acc10", "Acc(10%) %"),
    ):
        lines += [f"## {label}", "", "| target | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
        for target in DEFAULT_TARGETS:
            cells = [
                f"{summary[v]['targets'][target][metric]['mean']:.4f} +- {summary[v]['targets'][target][metric]['std']:.4f}"
                for v in VARIANTS
            ]
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Training time (s, per run)", ""]
    for v in VARIANTS:
        t = summary[v]["train_seconds"]
        lines.append(f"- {v}: {', '.join(f'{x:.0f}' for x in t)} (mean {np.mean(t):.0f})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=1563)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel, one torch thread each")
    parser.add_argument("--d-model", type=int, default=96)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--runs", default="runs/quality")
    args = parser.parse_args()
    common = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "epochs": args.epochs,
        "runs": args.runs,
        "threads": max(1, 2 // args.workers),
        "network": {"d_model": args.d_model, "n_layers": args.layers},
    }
    jobs = [(variant, seed, common) for seed in args.seeds for variant in VARIANTS]
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_run, jobs))
    meta = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "machine": f"{describe_machine()}; {args.workers} runs in parallel, {common['threads']} torch thread(s) each",
        "command": " ".join(["python -m benchmarks.nb201_quality", *sys.argv[1:]]),
        "wall_seconds": round(time.time() - start, 1),
    }
    summary = summarise(results)
    RESULTS.mkdir(exist_ok=True)
    stem = f"nb201_quality_n{args.n_train}"
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results}, indent=1))
    text = markdown(summary, meta)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
