"""NB201 predictor quality against training-set size, with baselines in the same run and table.

Tasks:
- ``latency``: one multi-device model over all 46 published latency settings (HELP 27, Eagle 15, nn-Meter 4),
  training sizes 20, 100, 900 and 7,813 cells ("all but test": 500 validation, 7,312 test), the same cells on every device;
- ``latency_pretraining``: the same model and settings with 20, 100, 900 and 7813 training cells, pre-trained encoder;
- ``accuracy``: CIFAR-10 / CIFAR-100 / ImageNet16-120 test accuracy after 200 and after 12 epochs,
  training sizes 78, 156, 781, 1563, 7813.

For each size and seed a committed split gives disjoint train / validation / test cells (test = every other cell);
checkpoints are chosen on validation only. Every run gets the same number of optimiser steps (``--steps``), so small
sets are not under-trained. Methods: ``archcast`` (on the accuracy and latency_pretraining tasks: an encoder
pre-trained without labels on every NB201 graph, ``training.pretrain``, then augmentation + consistency loss for the
first half of the steps and the canonical node order alone for the second half; on the older ``latency`` task:
random weights, augmentation throughout), ``node_sum`` (``archcast`` plus the node-sum
readout, ``training.network``; run on the accuracy task only when named), ``node_sum_huber`` (``node_sum`` trained
on the Huber form of the squared error; at each size the candidate with the better mean validation score is the
task's recipe, which its goal check reports: ``node_sum`` or ``node_sum_huber`` on latency_pretraining, ``archcast`` or
``node_sum_huber`` on accuracy), ``node_sum_no_aug`` and ``node_sum_huber_no_aug`` (those recipes without
augmentation or consistency loss: their own ablations), ``augment_throughout`` (the earlier
recipe: augmentation + consistency for every step), ``no_pretraining`` (``augment_throughout`` from random
weights), ``no_aug_no_consistency`` (the canonical order only, no consistency loss), and baselines fitted on the same
training cells: ``flops`` (log-log fit on the FLOPs of our IR cost model, ``model.cell_cost``),
``ridge_onehot`` and ``gbm_onehot`` (ridge / gradient-boosted trees on the one-hot cell encoding). Mean +- std over
seeds of Kendall tau, Spearman, MAPE and Acc(10 %) on the test cells.

    python -m benchmarks.quality.sample_sizes --task latency [--seeds 0 1 2] [--steps 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ConstantInputWarning
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV

from benchmarks.machine import describe_machine
from benchmarks.quality.fewshot import onehot
from benchmarks.report import merge_meta
from model.cell_cost import nb201_cost
from model.parsers.nb201 import NB201_NUM_CELLS, parse_nb201
from training.data import load_nb201
from training.metrics import regression_metrics
from training.pretrain import pretrain_encoder
from training.run import train_run
from training.splits import load_split, split_path, write_split
from training.targets import ACCURACY_TARGETS, LATENCY_TARGETS, TARGETS, prediction_floors
from training.trainer import TRANSFORMS, TrainConfig, forward_transform, inverse_transform

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
AUGMENTED = {"augment": True, "consistency_weight": 0.5}
NOT_AUGMENTED = {"augment": False, "consistency_weight": 0.0}
AUGMENTED_THEN_CANONICAL = {**AUGMENTED, "augment_until": 0.5}
PRETRAINED_VARIANTS = {
    "archcast": {**AUGMENTED_THEN_CANONICAL, "pretrain": True},
    "augment_throughout": {**AUGMENTED, "pretrain": True},
    "no_pretraining": AUGMENTED,
    "no_aug_no_consistency": {**NOT_AUGMENTED, "pretrain": True},
}
NODE_SUM_VARIANTS = {"node_sum": {**AUGMENTED_THEN_CANONICAL, "pretrain": True, "network": {"node_sum": True}}}
"""``archcast`` plus the node-sum readout (``training.network``). Validation chose it over ``archcast`` on the
latency_pretraining task at every training size (3 seeds each); ``archcast`` stays as its ablation."""
HUBER_DELTA = 0.1
"""Normalised log-latency units. The tables' noise, read off twin cells (``label_noise``), is heavy-tailed: per label a
median of 0.00-0.08 units on the mobile / edge devices but a 99th percentile of 0.5-1.6; 0.1 keeps the squared error
for the usual noise and the usual model error (a 900-cell model misses by about 0.1) and caps the pull of the tail."""
ROBUST_VARIANTS = {"node_sum_huber": {**NODE_SUM_VARIANTS["node_sum"], "huber_delta": HUBER_DELTA}}
"""``node_sum`` with the Huber form of the squared error (``training.losses.masked_mse``)."""
NODE_SUM_ABLATION = {"node_sum_no_aug": {**NOT_AUGMENTED, "pretrain": True, "network": {"node_sum": True}}}
"""``node_sum`` without augmentation or consistency loss: the issue's "ArchCast without augmentation / consistency
loss" ablation for the squared-error node-sum recipe."""
ROBUST_ABLATION = {"node_sum_huber_no_aug": {**NODE_SUM_ABLATION["node_sum_no_aug"], "huber_delta": HUBER_DELTA}}
"""``node_sum_huber`` without augmentation or consistency loss: the same ablation for the Huber node-sum recipe."""
TASKS = {
    "latency": {
        "kind": "latency",
        "targets": LATENCY_TARGETS,
        "sizes": {20: 5, 100: 25, 900: 100, 7813: 500},  # 7813: all but test
        "variants": {"archcast": AUGMENTED, "no_aug_no_consistency": NOT_AUGMENTED},
    },
    "latency_pretraining": {  # the pre-trained encoder on the latency settings, every size of the protocol
        "kind": "latency",
        "targets": LATENCY_TARGETS,
        "sizes": {20: 5, 100: 25, 900: 100, 7813: 500},  # 7813: all but test
        "variants": {**PRETRAINED_VARIANTS, **NODE_SUM_VARIANTS, **ROBUST_VARIANTS, **NODE_SUM_ABLATION, **ROBUST_ABLATION},
        "recipe": ("node_sum", "node_sum_huber"),  # per size, the better on validation: what the goal check reports
    },
    "accuracy": {
        "kind": "accuracy",
        "targets": ACCURACY_TARGETS,
        "sizes": {78: 20, 156: 40, 781: 200, 1563: 200, 7813: 500},
        "variants": {**PRETRAINED_VARIANTS, **NODE_SUM_VARIANTS, **ROBUST_VARIANTS, **ROBUST_ABLATION},
        "default_variants": [*PRETRAINED_VARIANTS, *ROBUST_VARIANTS, *ROBUST_ABLATION],  # node_sum: screened only
        "recipe": ("archcast", "node_sum_huber"),  # per size, the better on validation: what the goal check reports
    },
}
"""Variants: TrainConfig overrides; ``pretrain`` starts from the label-free pre-trained encoder of the seed
(``training.pretrain``, every NB201 graph, no labels; one encoder per seed serves every task). The ``latency`` task
predates pre-training: its ``archcast`` starts from random weights; ``latency_pretraining`` measures pre-training at
every size."""
NETWORK = {"d_model": 96, "n_layers": 3}
PRETRAIN_STEPS = 2000
BASELINES = ("flops", "ridge_onehot", "gbm_onehot")
METRICS = ("kendall_tau", "spearman", "mape", "acc10")
MOBILE_EDGE = (
    "latency_pixel2_ms", "latency_pixel3_ms", "latency_samsung_a50_ms", "latency_samsung_s7_ms",
    "latency_essential_ph_1_ms", "latency_raspi4_ms", "latency_eyeriss_ms", "latency_fpga_ms",
    *(t for t in LATENCY_TARGETS if "_eagle_embedded_" in t or "_eagle_mobile_" in t),
)  # fmt: skip
"""Headline devices. nn-Meter is left out of the headline: it labels 2,000 of the 15,625 cells, so a run with n
training cells sees only about 0.13 n of its labels (it is in the every-setting table)."""
ACCURACY_GOALS = {156: 0.82, 781: 0.88, 1563: 0.91}  # the CIFAR-10 Kendall tau goals
LATENCY_GOAL = {"spearman": 0.97, "acc10": 90.0}  # with LATENCY_GOAL_SIZE training cells, mobile / edge devices
LATENCY_GOAL_SIZE = "900"
SECONDS_PER_STEP = 0.14  # 2-core Xeon, one torch thread, batch 128, two augmented views


def epochs_for(n_train: int, steps: int, batch_size: int = 128) -> int:
    return max(1, math.ceil(steps / math.ceil(n_train / batch_size)))


def pretrain_path(runs: str, seed: int, space: str = "nb201") -> Path:
    return Path(runs) / f"pretrained_encoder_{space}_seed{seed}.pt"


def pretrain_seed_encoder(job: tuple[str, int, str]) -> Path:
    task, seed, runs = job
    torch.set_num_threads(1)
    data = load_nb201(list(TASKS[task]["targets"]))  # only the graphs are read
    return pretrain_encoder(data, NETWORK, pretrain_path(runs, seed), steps=PRETRAIN_STEPS, seed=seed)


def train_config(task: str, n_train: int, seed: int, steps: int, runs: str, overrides: dict) -> TrainConfig:
    """One run of ``task`` on the committed split of its size and seed."""
    split = split_path(n_train, TASKS[task]["sizes"][n_train], seed)
    return variant_config(TASKS[task]["targets"], split, n_train, seed, steps, pretrain_path(runs, seed), overrides)


def variant_config(
    targets: Sequence[str], split: Path, n_train: int, seed: int, steps: int, encoder: Path, overrides: dict
) -> TrainConfig:
    """The training configuration of one variant run (``steps`` optimiser steps whatever ``n_train``); ``overrides``
    are TrainConfig fields plus ``pretrain`` (start from ``encoder``, the seed's label-free pre-trained encoder) and
    ``network`` (options added to ``NETWORK``)."""
    overrides = dict(overrides)
    pretrained = str(encoder) if overrides.pop("pretrain", False) else None
    network = {**NETWORK, **overrides.pop("network", {})}
    epochs = epochs_for(n_train, steps)
    return TrainConfig(
        targets=list(targets),
        split=str(split),
        seed=seed,
        epochs=epochs,
        eval_every=max(1, epochs // 40),
        threads=1,
        network=network,
        pretrained=pretrained,
        **overrides,
    )


def _train(job: tuple[str, str, int, int, int, str]) -> dict:
    task, variant, n_train, seed, steps, runs = job
    cfg = train_config(task, n_train, seed, steps, runs, TASKS[task]["variants"][variant])
    run_dir = Path(runs) / task / f"n{n_train}_{variant}_seed{seed}"
    done = run_dir / "metrics_test.json"
    result = json.loads(done.read_text()) if done.exists() else train_run(cfg, run_dir)
    return {"method": variant, "n_train": n_train, "seed": seed, "train_seconds": result["train_seconds"],
            "val_score": result["best_val_score"], "test": result["test"]}  # fmt: skip


def baselines(task: str, n_train: int, seed: int, data, flops: np.ndarray, features: np.ndarray) -> list[dict]:
    """The three baselines fitted on the split's training cells, scored on its test cells (regressed quantity space)."""
    n_val = TASKS[task]["sizes"][n_train]
    train, _, test = load_split(split_path(n_train, n_val, seed), NB201_NUM_CELLS)
    kinds = np.array([TRANSFORMS.index(TARGETS[t].transform) for t in data.target_names])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = forward_transform(data.y, kinds)
    out = []
    for method in BASELINES:
        started = time.perf_counter()
        test_metrics = {}
        for t, name in enumerate(data.target_names):
            rows = train[np.isfinite(z[train, t])]
            if method == "flops":
                design = np.column_stack([np.ones(len(rows)), np.log(flops[rows])])
                coef = np.linalg.lstsq(design, z[rows, t], rcond=None)[0]
                pred = coef[0] + coef[1] * np.log(flops[test])
            elif method == "ridge_onehot":
                pred = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features[rows], z[rows, t]).predict(features[test])
            else:
                model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, min_samples_leaf=5, random_state=seed)
                pred = model.fit(features[rows], z[rows, t]).predict(features[test])
            values = inverse_transform(pred, np.full(len(test), kinds[t]), prediction_floors([name]))
            test_metrics[name] = regression_metrics(values, data.y[test, t])
        out.append(
            {"method": method, "n_train": n_train, "seed": seed, "train_seconds": time.perf_counter() - started,
             "test": test_metrics}
        )  # fmt: skip
    return out


def summarise(results: list[dict], targets: tuple[str, ...]) -> dict:
    summary: dict = {}
    for r in results:
        entry = summary.setdefault(r["method"], {}).setdefault(str(r["n_train"]), {"seeds": [], "train_seconds": []})
        entry["seeds"].append(r["seed"])
        entry["train_seconds"].append(round(r["train_seconds"], 1))
        if r.get("val_score") is not None:  # transformer runs: the score their checkpoint was chosen on
            entry.setdefault("val_scores", []).append(round(r["val_score"], 4))
    for method, sizes in summary.items():
        for n, entry in sizes.items():
            runs = [r for r in results if r["method"] == method and str(r["n_train"]) == n]
            entry["targets"] = {
                t: {m: (float(np.mean([r["test"][t][m] for r in runs])), float(np.std([r["test"][t][m] for r in runs])))
                    for m in METRICS}
                for t in targets
            }  # fmt: skip
    return summary


def merge_results(saved: dict, summary: dict, meta: dict, ran: list[str]) -> tuple[dict, dict]:
    """The saved results with this invocation's variants (and the baselines, recomputed) replaced size by size."""
    merged_meta = merge_meta(saved["meta"], meta, ", ".join(ran))
    merged = saved["summary"]
    for method, sizes in summary.items():
        merged.setdefault(method, {}).update(sizes)
    return merged, merged_meta


def _cell(pair: tuple[float, float], metric: str) -> str:
    digits = 3 if metric in ("kendall_tau", "spearman") else 1
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def recipe_of(task: str, summary: dict, size: str) -> str:
    """The method that is ArchCast's recipe at ``size`` in this task's report: of the candidates the task names (in a
    results file that has them), the one with the best mean validation score over seeds, the first listed on a tie or
    where scores were not recorded; ``archcast`` where the task names none or the file holds none."""
    candidates = [m for m in TASKS[task].get("recipe", ()) if size in summary.get(m, {})]
    if not candidates:
        return "archcast"
    if not all("val_scores" in summary[m][size] for m in candidates):
        return candidates[0]
    return max(candidates, key=lambda m: (float(np.mean(summary[m][size]["val_scores"])), -candidates.index(m)))


def markdown(task: str, summary: dict, meta: dict) -> str:
    variants = TASKS[task]["variants"]
    methods = [m for m in (*variants, *BASELINES) if m in summary]
    ran = [m for m in variants if m in summary]  # a run of some variants only (e.g. the recipe and its ablation)
    sizes = [str(n) for n in TASKS[task]["sizes"] if any(str(n) in summary[m] for m in ran)]
    lines = [
        f"# NB201 {task}: quality against training-set size",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Seeds {meta['seeds']}; {meta['steps']} optimiser steps "
        "per run whatever the size; validation cells per size: "
        + ", ".join(f"{n} -> {v}" for n, v in TASKS[task]["sizes"].items() if str(n) in sizes)
        + ". Test = every NB201 cell in neither set (with a value for the target). Mean ± std over seeds.",
        "",
        *([f"Note: {meta['renamed']}.", ""] if meta.get("renamed") else []),
    ]
    recipes = {n: recipe_of(task, summary, n) for n in sizes}
    if set(recipes.values()) != {"archcast"}:
        chosen = ", ".join(f"{n} cells: `{m}`" for n, m in recipes.items())
        lines += [f"ArchCast's recipe on this task is, at each size, the better on validation of "
                  f"{' and '.join(f'`{m}`' for m in TASKS[task]['recipe'])} ({chosen}; scores at the end). `node_sum` is "
                  "`archcast` plus the node-sum readout (`training.network`); `node_sum_huber` trains it on the Huber "
                  f"form of the squared error (`training.losses.masked_mse`, delta {HUBER_DELTA} normalised units)"
                  + "".join(f"; `{m}_no_aug` is `{m}` without augmentation or consistency loss, its ablation"
                            for m in ("node_sum", "node_sum_huber") if f"{m}_no_aug" in summary)
                  + ". The goal check reports the recipe of its size"
                  + (", as does the per-setting table." if TASKS[task]["kind"] == "latency" else "."), ""]
    headline = MOBILE_EDGE if TASKS[task]["kind"] == "latency" else TASKS[task]["targets"]
    for metric, label in (("kendall_tau", "Kendall tau"), ("spearman", "Spearman"), ("acc10", "Acc(10 %)"), ("mape", "MAPE %")):
        for n in sizes:
            lines += [f"## {label}, {n} training cells", "", "| target | " + " | ".join(methods) + " |",
                      "|---|" + "---|" * len(methods)]  # fmt: skip
            present = [m for m in methods if n in summary[m]]  # a variant run at some sizes only: "-" elsewhere
            for t in headline:
                best = max(summary[m][n]["targets"][t][metric][0] * (-1 if metric == "mape" else 1) for m in present)
                cells = []
                for m in methods:
                    if m not in present:
                        cells.append("-")
                        continue
                    value = summary[m][n]["targets"][t][metric]
                    text = _cell(value, metric)
                    cells.append(f"**{text}**" if value[0] * (-1 if metric == "mape" else 1) == best else text)
                lines.append(f"| {t} | " + " | ".join(cells) + " |")
            lines.append("")
    if TASKS[task]["kind"] == "latency":
        recipe = recipes[sizes[-1]]
        lines += [f"## Every latency setting, {sizes[-1]} training cells ({recipe})", "",
                  "| target | Kendall tau | Spearman | Acc(10 %) | MAPE % |", "|---|---|---|---|---|"]  # fmt: skip
        for t in TASKS[task]["targets"]:
            m = summary[recipe][sizes[-1]]["targets"][t]
            lines.append(f"| {t} | " + " | ".join(_cell(m[k], k) for k in ("kendall_tau", "spearman", "acc10", "mape")) + " |")
        lines.append("")
    lines += goal_lines(task, summary, sizes, meta.get("label_facts", {}))
    lines += ["## Training time per run (s, one torch thread)", ""]
    if any(v.get("pretrain") for v in variants.values()):
        lines += [f"Not counted below: the pre-trained encoder of each seed ({PRETRAIN_STEPS} steps over the 15,625 NB201 "
                  "graphs, about 2.5-3 min at one thread), made once and shared by every size and task.", ""]  # fmt: skip
    for m in variants:
        if m in summary:
            times = [f"{n} cells: {np.mean(summary[m][n]['train_seconds']):.0f}" for n in sizes if n in summary[m]]
            lines.append(f"- {m}: " + "; ".join(times))
    validated = [m for m in variants if m in summary and any("val_scores" in summary[m].get(n, {}) for n in sizes)]
    if validated:
        lines += ["", "## Validation score the checkpoints were chosen on (mean Kendall tau over targets; mean ± std "
                  "over seeds)", "", "| method | " + " | ".join(f"{n} cells" for n in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]  # fmt: skip
        for m in validated:
            scores = [summary[m].get(n, {}).get("val_scores") for n in sizes]
            lines.append(
                f"| {m} | " + " | ".join(f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "-" for v in scores) + " |"
            )
    lines += ["", f"![tau against training size]({task}_sizes.png)", ""]
    return "\n".join(lines)


def label_facts(data) -> dict[str, dict[str, float]]:
    """Per latency target, what the measured labels look like: distinct values, integer share, near-zero outliers."""
    facts = {}
    for t, name in enumerate(data.target_names):
        y = data.y[:, t][np.isfinite(data.y[:, t])]
        facts[name] = {
            "distinct": int(len(np.unique(y))),
            "integer_share": float(np.mean(y == np.round(y))),
            "below_1pct_of_median": float(np.mean(y < 0.01 * np.median(y))),
        }
    return facts


def goal_lines(task: str, summary: dict, sizes: list[str], facts: dict) -> list[str]:
    """The issue's goals against the measured figures, with the label evidence for the devices that miss them."""
    if TASKS[task]["kind"] == "accuracy":
        header = ["| training cells | goal | recipe | CIFAR-10 Kendall tau | met |", "|---|---|---|---|---|"]
        lines = ["## Goals (CIFAR-10 Kendall tau, ArchCast's recipe at each size)", "", *header]
        for n, goal in ACCURACY_GOALS.items():
            if str(n) in sizes:
                recipe = recipe_of(task, summary, str(n))
                tau = summary[recipe][str(n)]["targets"]["cifar10_test_acc"]["kendall_tau"]
                lines.append(
                    f"| {n} | {goal:.2f} | {recipe} | {_cell(tau, 'kendall_tau')} | {'yes' if tau[0] >= goal else 'no'} |"
                )
        return [*lines, ""]
    if LATENCY_GOAL_SIZE not in sizes:
        return []
    n = LATENCY_GOAL_SIZE
    largest = sizes[-1]
    recipe, recipe_big = recipe_of(task, summary, n), recipe_of(task, summary, largest)
    methods = [m for m in (*TASKS[task]["variants"], *BASELINES) if m in summary]
    lines = [
        f"## Goal: Spearman >= {LATENCY_GOAL['spearman']} and Acc(10 %) >= {LATENCY_GOAL['acc10']:.0f} % with {n} "
        "training cells (mobile / edge)",
        "",
        "Label evidence: `distinct` = distinct measured values over the space, `int` = share of integer-ms labels, "
        "`~0` = share of cells measured below 1 % of the device's median latency. `best any` = the best Acc(10 %) of "
        f"the {len(methods)} methods. A device whose Acc(10 %) stays flat from {n} to {largest} training cells for "
        "every model family has label noise, not model error.",
        "",
        f"| target | {recipe} Spearman ({n}) | Acc(10 %) ({n}) | met | best any ({n}) "
        f"| {recipe_big} Spearman / Acc(10 %) ({largest}) | best any ({largest}) | distinct | int | ~0 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in MOBILE_EDGE:
        m, big = summary[recipe][n]["targets"][t], summary[recipe_big][largest]["targets"][t]
        met = m["spearman"][0] >= LATENCY_GOAL["spearman"] and m["acc10"][0] >= LATENCY_GOAL["acc10"]
        best = max(summary[k][n]["targets"][t]["acc10"][0] for k in methods if n in summary[k])
        best_big = max(summary[k][largest]["targets"][t]["acc10"][0] for k in methods if largest in summary[k])
        f = facts.get(t, {})
        fact_text = f"{f['distinct']} | {f['integer_share']:.2f} | {100 * f['below_1pct_of_median']:.1f} %" if f else "- | - | -"
        lines.append(
            f"| {t} | {_cell(m['spearman'], 'spearman')} | {_cell(m['acc10'], 'acc10')} | {'yes' if met else 'no'} | "
            f"{best:.1f} | {big['spearman'][0]:.3f} / {big['acc10'][0]:.1f} | {best_big:.1f} | {fact_text} |"
        )
    return [*lines, ""]


def plot(task: str, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = (
        {"mobile / edge (mean)": MOBILE_EDGE, "all 46 settings (mean)": TASKS[task]["targets"]}
        if TASKS[task]["kind"] == "latency"
        else {t: (t,) for t in TASKS[task]["targets"]}
    )
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (title, targets) in zip(axes[0], groups.items(), strict=True):
        for method in (*TASKS[task]["variants"], *BASELINES):
            if method not in summary:
                continue
            sizes = sorted(int(n) for n in summary[method])
            means = [np.mean([summary[method][str(n)]["targets"][t]["kendall_tau"][0] for t in targets]) for n in sizes]
            ax.plot(sizes, means, marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("training cells")
        ax.set_ylabel("Kendall tau (test)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    warnings.simplefilter("ignore", ConstantInputWarning)  # a baseline with 2 labels predicts a constant: tau is NaN
    warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(TASKS), required=True)
    parser.add_argument("--sizes", type=int, nargs="+", help="subset of the task's sizes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--variants", nargs="+", help="subset of the task's variants (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", default="runs/quality/sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="re-render the markdown / plot from the results JSON")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the methods and sizes of the results JSON at --out that this invocation does not run (their machine "
        "and command stay in the report)",
    )
    args = parser.parse_args()
    task = args.task
    if args.report_only:
        saved = json.loads((args.out / f"{task}_sizes.json").read_text())
        if TASKS[task]["kind"] == "latency" and "label_facts" not in saved["meta"]:
            saved["meta"]["label_facts"] = label_facts(load_nb201(list(TASKS[task]["targets"])))
            (args.out / f"{task}_sizes.json").write_text(json.dumps(saved, indent=1) + "\n")
        text = markdown(task, saved["summary"], saved["meta"])
        (args.out / f"{task}_sizes.md").write_text(text)
        plot(task, saved["summary"], args.out / f"{task}_sizes.png")
        print(text)
        return
    sizes = args.sizes or list(TASKS[task]["sizes"])
    for n in sizes:
        for seed in args.seeds:
            if not split_path(n, TASKS[task]["sizes"][n], seed).exists():
                write_split(NB201_NUM_CELLS, n, TASKS[task]["sizes"][n], seed)
    unknown = set(args.variants or ()) - set(TASKS[task]["variants"])
    if unknown:
        parser.error(f"--variants: {sorted(unknown)} not among {list(TASKS[task]['variants'])}")
    default = TASKS[task].get("default_variants", list(TASKS[task]["variants"]))
    variants = {v: TASKS[task]["variants"][v] for v in args.variants or default}
    jobs = [(task, v, n, s, args.steps, args.runs) for n in sizes for s in args.seeds for v in variants]
    todo = [j for j in jobs if not (Path(args.runs) / task / f"n{j[2]}_{j[1]}_seed{j[3]}" / "metrics_test.json").exists()]
    step_seconds = [
        SECONDS_PER_STEP * (0.5 + 0.5 * variants[j[1]].get("augment_until", 1.0) if variants[j[1]]["augment"] else 0.5)
        for j in todo
    ]
    estimate = args.steps * sum(step_seconds) / max(1, args.workers)
    pretrain_seeds = sorted({j[3] for j in todo if variants[j[1]].get("pretrain")})
    estimate += len(pretrain_seeds) * PRETRAIN_STEPS * SECONDS_PER_STEP / 2 / max(1, args.workers)
    print(f"{len(jobs)} runs, {len(todo)} to train: about {estimate / 60:.0f} min on this machine", file=sys.stderr)
    results: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for path in pool.map(pretrain_seed_encoder, [(task, seed, args.runs) for seed in pretrain_seeds]):
            print(f"pre-trained encoder: {path}", file=sys.stderr)
        for done, result in enumerate(pool.map(_train, jobs), start=1):
            results.append(result)
            print(f"[{done}/{len(jobs)}] {result['method']} n={result['n_train']} seed={result['seed']}", file=sys.stderr)
    data = load_nb201(list(TASKS[task]["targets"]))
    flops = np.array([nb201_cost(parse_nb201(a)).flops for a in data.arch_strs])
    features = onehot(data.arch_strs)
    for n in sizes:
        for seed in args.seeds:
            results += baselines(task, n, seed, data, flops, features)
    summary = summarise(results, TASKS[task]["targets"])
    meta = {
        "machine": describe_machine(),
        "command": f"python -m benchmarks.quality.sample_sizes {' '.join(sys.argv[1:])}",
        "seeds": args.seeds,
        "steps": args.steps,
        "label_facts": label_facts(data) if TASKS[task]["kind"] == "latency" else {},
    }
    saved_path = args.out / f"{task}_sizes.json"
    if args.merge and saved_path.exists():
        summary, meta = merge_results(json.loads(saved_path.read_text()), summary, meta, list(variants))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{task}_sizes.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=1) + "\n")
    text = markdown(task, summary, meta)
    (args.out / f"{task}_sizes.md").write_text(text)
    plot(task, summary, args.out / f"{task}_sizes.png")
    print(text)


if __name__ == "__main__":
    main()
