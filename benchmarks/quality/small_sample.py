"""Small-sample accuracy predictors on NASLib's NB101 (292 distinct cells) and DARTS / NAS-Bench-301 (725) subsets.

That is all the data there is for these spaces here, so each seed splits the distinct cells 60 / 20 / 20 into train /
validation / test (committed split files; selection on validation only) and every figure is over 59 (NB101) or
145 (DARTS) test cells: read the ± as the spread between seeds, not as a small error bar. (NASLib's NB101 subset
lists 500 specs, but 208 of them prune to a cell already listed; duplicates are merged so none crosses the split.)
Methods in the same run:
``archcast`` (fusion transformer started from an encoder pre-trained without labels on 20,000 random cells of the
space: ``training.pretrain``, ``model.sampling``; augmentation + consistency for the first half of the steps, the
canonical order for the second), ``augment_throughout`` (the earlier recipe: augmentation at every step), its
ablations ``no_pretraining`` (``augment_throughout`` from random weights) and ``no_aug_no_consistency``
(pre-trained), ``flops_naslib`` (rank by the FLOPs NASLib lists, a
log-log fit for values), and ``ridge`` / ``gbm`` on the canonical graph encoding (one-hot op per position plus the
adjacency bits).

    python -m benchmarks.quality.small_sample [--seeds 0 1 2] [--steps 1000] [--variants ...] [--spaces ...] [--merge]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV

from benchmarks.machine import describe_machine
from benchmarks.quality.network_spaces import onehot_positions
from benchmarks.quality.sample_sizes import (
    NETWORK,
    NODE_SUM_VARIANTS,
    PRETRAIN_STEPS,
    PRETRAINED_VARIANTS,
    pretrain_path,
    variant_config,
)
from benchmarks.report import merge_meta
from model.tables import table_path
from training.data import load_dataset
from training.metrics import regression_metrics
from training.pretrain import RANDOM_CELLS, pretrain_encoder
from training.run import train_run
from training.splits import load_split, split_path, write_split

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
SPACES = {"nb101": ("nb101_cifar10_val_acc", 292), "darts": ("darts_cifar10_val_acc", 725)}
"""Target and number of distinct cells: NASLib's 500 NB101 specs prune to 292 distinct cells (see training.data)."""
VARIANTS = {**PRETRAINED_VARIANTS, **NODE_SUM_VARIANTS}
"""TrainConfig overrides of the transformer variants, those of the NB201 tables; ``pretrain``: start from the seed's
label-free encoder (here pre-trained on random cells of the space). ``node_sum`` runs only when named."""
DEFAULT_VARIANTS = list(PRETRAINED_VARIANTS)
BASELINES = ("flops_naslib", "ridge", "gbm")
METHODS = (*VARIANTS, *BASELINES)
METRICS = ("kendall_tau", "spearman", "mape", "acc10")


def sizes(n_total: int) -> tuple[int, int]:
    return int(0.6 * n_total), int(0.2 * n_total)


def _pretrain(job: tuple[str, int, str]) -> Path:
    """The seed's encoder, pre-trained on random cells of the space (the table's labels are not read)."""
    space, seed, runs = job
    import torch

    torch.set_num_threads(1)
    return pretrain_encoder(load_dataset([SPACES[space][0]]), NETWORK, pretrain_path(runs, seed, space), PRETRAIN_STEPS, seed)


def _train(job: tuple[str, str, int, int, str]) -> dict:
    space, variant, seed, steps, runs = job
    target, n_total = SPACES[space]
    n_train, n_val = sizes(n_total)
    split = split_path(n_train, n_val, seed, space)
    cfg = variant_config([target], split, n_train, seed, steps, pretrain_path(runs, seed, space), VARIANTS[variant])
    run_dir = Path(runs) / f"{space}_{variant}_seed{seed}"
    done = run_dir / "metrics_test.json"
    result = json.loads(done.read_text()) if done.exists() else train_run(cfg, run_dir)
    return {"space": space, "seed": seed, "method": variant, "train_seconds": result["train_seconds"],
            "val_score": result["best_val_score"], "test": result["test"][target]}  # fmt: skip


def merge_runs(saved: dict, results: list[dict], meta: dict, ran: list[str], spaces: list[str]) -> tuple[list[dict], dict]:
    """The saved per-run results with this invocation's variants and the baselines (recomputed) replaced in ``spaces``."""
    merged_meta = merge_meta(saved["meta"], meta, f"{', '.join(ran)} on {', '.join(spaces)}")
    replaced = {*ran, *BASELINES}
    kept = [r for r in saved["runs"] if r["method"] not in replaced or r["space"] not in spaces]
    return kept + results, merged_meta


def naslib_flops(space: str, keys: list[str]) -> np.ndarray:
    with gzip.open(table_path("nb101/naslib_subset.json.gz" if space == "nb101" else "nb301/naslib_subset.json.gz"), "rt") as f:
        raw = json.load(f)
    entries = raw["nasbench101"]["cifar10"] if space == "nb101" else raw["cifar10"]
    values = [entries[k]["flops"] for k in keys]
    return np.array([v["score"] if isinstance(v, dict) else v for v in values], dtype=np.float64)


def baselines(space: str, seed: int) -> list[dict]:
    target, n_total = SPACES[space]
    data = load_dataset([target])
    train, _, test = load_split(split_path(*sizes(n_total), seed, space), n_total)
    n = data.encoded.op_ids.shape[1]
    upper = np.triu_indices(n, 1)
    features = np.hstack([onehot_positions(data.encoded.op_ids), data.encoded.adjacency[:, upper[0], upper[1]]])
    error = np.log(100.0 - data.y[:, 0])
    flops = np.log(naslib_flops(space, data.arch_strs))
    out = []
    for method in BASELINES:
        if method == "flops_naslib":
            coef = np.polyfit(flops[train], error[train], 1)
            pred = np.polyval(coef, flops[test])
        elif method == "ridge":
            pred = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features[train], error[train]).predict(features[test])
        else:
            gbm = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, min_samples_leaf=5, random_state=seed)
            pred = gbm.fit(features[train], error[train]).predict(features[test])
        values = 100.0 - np.exp(pred)
        out.append({"space": space, "seed": seed, "method": method, "train_seconds": 0.0,
                    "test": regression_metrics(values, data.y[test, 0])})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", default="runs/quality/small_sample")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="subset (default: all but node_sum)")
    parser.add_argument("--spaces", nargs="+", choices=list(SPACES), default=list(SPACES))
    parser.add_argument("--merge", action="store_true", help="keep the saved runs of the variants and spaces not run now")
    args = parser.parse_args()
    variants = args.variants or DEFAULT_VARIANTS
    spaces = {space: SPACES[space] for space in args.spaces}
    for space, (_, n_total) in spaces.items():
        for seed in args.seeds:
            if not split_path(*sizes(n_total), seed, space).exists():
                write_split(n_total, *sizes(n_total), seed, space)
    pretrained = any(VARIANTS[v].get("pretrain") for v in variants)
    encoders = [(space, seed, args.runs) for space in spaces for seed in args.seeds] if pretrained else []
    jobs = [(space, variant, seed, args.steps, args.runs) for space in spaces for variant in variants for seed in args.seeds]
    print(f"{len(encoders)} pre-trainings of {PRETRAIN_STEPS} steps, {len(jobs)} runs of {args.steps} steps", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(_pretrain, encoders))
        results = list(pool.map(_train, jobs))
    for space in spaces:
        for seed in args.seeds:
            results += baselines(space, seed)
    meta = {"machine": describe_machine(), "command": "python -m benchmarks.quality.small_sample " + " ".join(sys.argv[1:]),
            "seeds": args.seeds, "steps": args.steps, "pretrain_steps": PRETRAIN_STEPS}  # fmt: skip
    saved_path = RESULTS / "small_sample.json"
    if args.merge and saved_path.exists():
        results, meta = merge_runs(json.loads(saved_path.read_text()), results, meta, variants, list(spaces))
    summary: dict = {}
    for space in SPACES:
        for method in METHODS:
            runs = [r["test"] for r in results if r["space"] == space and r["method"] == method]
            if not runs:
                continue
            summary.setdefault(space, {})[method] = {
                k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in METRICS
            }
            scores = [r.get("val_score") for r in results if r["space"] == space and r["method"] == method]
            if scores and None not in scores:  # transformer runs; the saved runs of earlier versions lack it
                summary[space][method]["val_score"] = (float(np.mean(scores)), float(np.std(scores)))
    lines = [
        "# Small-sample accuracy predictors: NB101 (292 distinct cells) and DARTS / NAS-Bench-301 (725 cells)",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Seeds {args.seeds}; split 60 / 20 / 20 per seed "
        "(NB101 175 / 58 / 59, DARTS 435 / 145 / 145). Mean ± std over seeds; test sets of 59 and 145 cells. NASLib's "
        "NB101 subset lists 500 specs that prune to 292 distinct cells (nodes off every input-output path); duplicates "
        "are merged (mean accuracy) so no cell is on both sides of a split.",
        "",
        f"`archcast` starts from an encoder pre-trained for {PRETRAIN_STEPS} steps on {RANDOM_CELLS:,} random cells of the space "
        "(drawn by the space's published sampling rule, `model.sampling`; structural properties only, no label), then "
        "trains with augmentation + consistency loss for the first half of the steps and on the canonical order for the "
        "second. `augment_throughout` is the earlier recipe (augmentation at every step); `no_pretraining` is that "
        "recipe from random weights; `no_aug_no_consistency` starts from the same encoder without augmentation and "
        "consistency loss. `node_sum` is `archcast` plus the node-sum readout (`training.network`).",
        "",
        *([f"Note: {meta['renamed']}.", ""] if meta.get("renamed") else []),
    ]
    for space, methods in summary.items():
        lines += [f"## {space}", "", "| method | Kendall tau | Spearman | MAPE % | Acc(10 %) | validation Kendall tau |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for method, m in methods.items():
            val = f"{m['val_score'][0]:.3f} ± {m['val_score'][1]:.3f}" if "val_score" in m else "-"
            lines.append(f"| {method} | " + " | ".join(f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in METRICS) + f" | {val} |")
        lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "small_sample.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results}, indent=1) + "\n")
    text = "\n".join(lines)
    (RESULTS / "small_sample.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
