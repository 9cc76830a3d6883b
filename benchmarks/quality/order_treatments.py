"""Why the augmentation ablation wins NB201 accuracy at large training sizes: node-order treatments and step budgets.

A diagnostic next to ``sample_sizes --task accuracy``, on the same committed splits, the same pre-trained encoders and
the same network. With 1,563 and 7,813 training cells, ``no_aug_no_consistency`` edges out ``archcast`` there. Each
treatment below changes one thing, so the report shows which part of the recipe costs the accuracy:

- ``archcast``: each cell in a random valid node order, plus a renumbered twin in the consistency loss (weight 0.5);
- ``no_aug_no_consistency``: the canonical order only (the ablation);
- ``aug_no_consistency``: random orders, no consistency loss;
- ``aug_consistency_0.1``: random orders, consistency weight 0.1;
- ``anchor``: the canonical order is supervised, only the consistency twin is renumbered;

each at ``--steps`` optimiser steps, and ``archcast`` / ``no_aug_no_consistency`` also at ``--long-steps``.
Kendall tau on the test cells (every cell outside train and validation), checkpoints chosen on validation.

    python -m benchmarks.quality.order_treatments [--size 7813] [--seeds 0] [--steps 2000] [--long-steps 6000]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import describe_machine
from benchmarks.quality.sample_sizes import (
    ACCURACY_TARGETS,
    AUGMENTED,
    NOT_AUGMENTED,
    RESULTS,
    TASKS,
    pretrain_path,
    pretrain_seed_encoder,
    train_config,
)
from benchmarks.report import write_report
from training.run import train_run

TREATMENTS: dict[str, dict] = {  # TrainConfig overrides; every treatment starts from the seed's pre-trained encoder
    "archcast": AUGMENTED,
    "no_aug_no_consistency": NOT_AUGMENTED,
    "aug_no_consistency": {"augment": True, "consistency_weight": 0.0},
    "aug_consistency_0.1": {"augment": True, "consistency_weight": 0.1},
    "anchor": {"augment": False, "consistency_weight": 0.5},
}
LONG = ("archcast", "no_aug_no_consistency")


def _run(job: tuple[str, int, int, int, str]) -> dict:
    treatment, n_train, seed, steps, runs = job
    torch.set_num_threads(1)
    cfg = train_config("accuracy", n_train, seed, steps, runs, {**TREATMENTS[treatment], "pretrain": True})
    run_dir = Path(runs) / "order_treatments" / f"n{n_train}_{treatment}_steps{steps}_seed{seed}"
    done = run_dir / "metrics_test.json"
    result = json.loads(done.read_text()) if done.exists() else train_run(cfg, run_dir)
    taus = {t: m["kendall_tau"] for t, m in result["test"].items()}
    print(f"{treatment} steps={steps} seed={seed}: mean tau {np.mean(list(taus.values())):.4f}", file=sys.stderr)
    return {"treatment": treatment, "steps": steps, "seed": seed, "train_seconds": result["train_seconds"], "tau": taus}


def markdown(report: dict) -> str:
    rows: dict[tuple[str, int], list[dict]] = {}
    for r in report["results"]:
        rows.setdefault((r["treatment"], r["steps"]), []).append(r)
    short = ["c10", "c100", "in16", "c10 12ep", "c100 12ep", "in16 12ep"]
    lines = [
        f"# NB201 accuracy with {report['size']} training cells: node-order treatments and step budgets",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Seeds {report['seeds']}. Same splits, "
        "pre-trained encoders and network as `accuracy_sizes.md`. Kendall tau on the test cells; a diagnostic with "
        f"{len(report['seeds'])} seed(s): `accuracy_sizes.md` puts the seed-to-seed std of one method at 0.001-0.004.",
        "",
        f"| treatment | steps | {' | '.join(short)} | mean | train s |",
        f"|---|---|{'---|' * len(short)}---|---|",
    ]
    for (treatment, steps), runs in rows.items():
        taus = [np.mean([r["tau"][t] for r in runs]) for t in ACCURACY_TARGETS]
        seconds = np.mean([r["train_seconds"] for r in runs])
        cells = " | ".join(f"{v:.4f}" for v in taus)
        lines.append(f"| {treatment} | {steps} | {cells} | **{np.mean(taus):.4f}** | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=7813, choices=list(TASKS["accuracy"]["sizes"]))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--long-steps", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", default="runs/quality/sizes")
    parser.add_argument("--out", type=Path, default=RESULTS / "order_treatments")
    args = parser.parse_args()
    jobs = [(t, args.size, s, args.long_steps, args.runs) for t in LONG for s in args.seeds]
    jobs += [(t, args.size, s, args.steps, args.runs) for t in TREATMENTS for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        missing = [("accuracy", s, args.runs) for s in args.seeds if not pretrain_path(args.runs, s).exists()]
        list(pool.map(pretrain_seed_encoder, missing))
        results = list(pool.map(_run, jobs))
    results.sort(key=lambda r: (-r["steps"], list(TREATMENTS).index(r["treatment"]), r["seed"]))
    report = {
        "machine": describe_machine(),
        "command": f"python -m benchmarks.quality.order_treatments {' '.join(sys.argv[1:])}".strip(),
        "size": args.size,
        "seeds": args.seeds,
        "results": results,
    }
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
