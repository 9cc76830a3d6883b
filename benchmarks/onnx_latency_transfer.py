"""A device (another CPU, or a GPU) the whole-network predictor never saw: how far off is it, and what do 10-50 measurements buy?

    python -m benchmarks.onnx_latency_transfer --target training/datasets/cpu-ort-1t-epyc

The target dataset holds networks of the source dataset (same generator seed, so one id is one network) measured on
another CPU. Its split follows the source's in-domain split by network id (``aligned_split``), so no method below
saw a test network, on either device. On the target's test networks:

- ``zero_shot``: the shipped source predictor (``--predictor``) as it is;
- ``calibrated_k``: the same with ``log y = a + b log p`` fitted on k target training networks (``fit_calibration``,
  the map ``archcast calibrate`` uses), 20 random draws per k, mean +- std over draws;
- ``trained``: the whole-network transformer trained on the target's training networks only (3 seeds);
- ``fine_tuned``: the source's in-domain members (``--source-runs``; trained if missing) fine-tuned on them;
- ``zero_shot_<name>`` / ``calibrated_multi_k``, with ``--also-predictors``: shipped predictors of further devices as
  they are, and the map fitted on all the predictors' latencies at once (``fit_calibration``'s ``auto``: the better of
  one source device or a ridge over all, by leave-one-out error on the k networks);
- ``fine_tuned_k``, with ``--few-shot-tune K ...``: the source members fine-tuned on k target networks only, one random
  draw per seed, of which a fifth (at least 5) is the validation that picks the checkpoint: what a user who measured
  k networks of a new device could do, with no other target network in sight (``--few-shot-min-steps``: at least
  that many optimiser steps, however few the networks);
- baselines fitted on the target's training (+ validation) networks: trees, kernel sum, FLOPs fit.

Also: the target's noise floor (pass A vs B) and the device shift per family (target / source latency of the same
networks). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy import stats

from benchmarks.machine import describe_machine
from benchmarks.onnx_latency import baseline_predictions, noise_floor
from benchmarks.report import provenance_lines, write_report
from model.calibration import fit_calibration
from model.card import PREDICTOR_DIR
from training.latency_baselines import kind_sums
from training.latency_data import (
    LatencyDataset,
    Split,
    aligned_in_domain_split,
    in_domain_split,
    load_latency_dataset,
)
from training.latency_metrics import latency_metrics
from training.latency_ship import predict_onnx_rows
from training.latency_trainer import LatencyTrainConfig, make_batches, train_latency
from training.netgen.files import META

SHOTS = (10, 20, 50)
DRAWS = 20
METRICS = ("mape", "acc10", "spearman")
FINE_TUNE = {"epochs": 20, "lr": 5e-4}  # gentler than training from scratch (40 epochs at 2e-3)


def _summary(values: list[dict]) -> dict:
    return {m: [float(np.mean([v[m] for v in values])), float(np.std([v[m] for v in values]))] for m in METRICS}


def device_shift(source: LatencyDataset, target: LatencyDataset) -> dict:
    """Target / source latency of the networks both measured: median ratio per family, overall rank agreement."""
    index = {int(i): r for r, i in enumerate(source.ids)}
    rows = [(index[int(i)], r) for r, i in enumerate(target.ids) if int(i) in index]
    src, tgt = np.array([s for s, _ in rows]), np.array([t for _, t in rows])
    ratio = target.latency_ms[tgt] / source.latency_ms[src]
    families = target.families[tgt]
    return {
        "networks": len(rows),
        "median_ratio": float(np.median(ratio)),
        "spearman": float(stats.spearmanr(source.latency_ms[src], target.latency_ms[tgt]).statistic),
        "per_family": {
            f: {"median": float(np.median(ratio[families == f])), "p10": float(np.percentile(ratio[families == f], 10)),
                "p90": float(np.percentile(ratio[families == f], 90))}
            for f in sorted(set(families))
        },
    }  # fmt: skip


def shipped_predictions(name: str, target: LatencyDataset) -> np.ndarray:
    """Latency (ms) of every target network by the shipped network predictor ``name``, read in its own tokenizer."""
    session = ort.InferenceSession(str(PREDICTOR_DIR / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = json.loads((PREDICTOR_DIR / f"{name}.card.json").read_text())["tokenizer"]
    return predict_onnx_rows(session, target, np.arange(len(target)), tokenizer)[:, 0]


def calibrated(
    shipped: np.ndarray, names: list[str], method: str, target: LatencyDataset, split: Split, rng: np.random.Generator,
    prefix: str,
) -> dict[str, dict]:
    """``<prefix>_k``: the map ``fit_calibration`` fits on k random training networks from the shipped predictors'
    latencies (``shipped``, one column per name), scored on the test networks; ``DRAWS`` draws per k in ``SHOTS``,
    one with every training network. With several predictors, which one (or ``ridge``) each draw chose."""
    true = target.latency_ms[split.test]
    results = {}
    for k in (*SHOTS, len(split.train)):
        draws, chosen = [], []
        for _ in range(DRAWS if k < len(split.train) else 1):
            rows = rng.choice(split.train, size=k, replace=False)
            calibration = fit_calibration(shipped[rows], target.latency_ms[rows], list(range(len(names))), names, method)
            chosen.append(calibration.method if calibration.method == "ridge" else calibration.sources[0])
            draws.append(latency_metrics(calibration.predict(shipped[split.test]), true))
        key = f"{prefix}_{k if k < len(split.train) else 'all_train'}"
        results[key] = _summary(draws)
        if len(names) > 1:
            results[key]["chosen"] = {c: chosen.count(c) for c in sorted(set(chosen))}
    return results


def few_shot_validation_size(k: int) -> int:
    """Networks of a k-network few-shot draw that validate: a fifth, at least 5."""
    return max(5, k // 5)


def few_shot_epochs(data: LatencyDataset, few: Split, cfg: LatencyTrainConfig, min_steps: int) -> int:
    """Epochs for a fine-tune on ``few.train``: ``cfg.epochs``, or more where that is under ``min_steps`` optimiser
    steps (k = 20 networks make one batch an epoch: 20 steps, which the weight average (EMA) hardly follows)."""
    batches = len(make_batches(few.train, data.lengths, cfg.max_tokens, cfg.max_batch, random.Random(0)))
    return max(cfg.epochs, math.ceil(min_steps / max(batches, 1)))


def few_shot_split(split: Split, k: int, seed: int) -> Split:
    """k random training networks of ``split`` (drawn by ``seed``): a fifth of them (at least 5) validate, the rest
    train; the test networks stay those of ``split``."""
    if not 10 <= k <= len(split.train):
        raise SystemExit(f"--few-shot-tune {k}: k must lie in 10..{len(split.train)}")
    drawn = np.random.default_rng([seed, k]).choice(split.train, size=k, replace=False)
    n_val = few_shot_validation_size(k)
    return Split(f"few_shot_{k}_seed{seed}", np.sort(drawn[n_val:]), np.sort(drawn[:n_val]), split.test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--predictor", default="cpu-ort-1t-v1", help="shipped predictor of the source device")
    parser.add_argument(
        "--source-runs", type=Path, default=Path("runs/onnx_latency_additive"), help="source in_domain_seed{s} runs"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency_transfer"))
    parser.add_argument(
        "--ids-below", type=int, default=None, help="only networks with smaller ids (the datasets before an extension)"
    )
    parser.add_argument(
        "--also-predictors", nargs="+", default=[], metavar="NAME", help="shipped predictors of further devices"
    )
    parser.add_argument(
        "--few-shot-tune", nargs="+", type=int, default=[], metavar="K", help="fine-tune the source members on k networks"
    )
    parser.add_argument(
        "--few-shot-min-steps",
        type=int,
        default=0,
        help="few-shot fine-tunes take at least this many optimiser steps (more epochs; 0: the full fine-tune's epochs)",
    )
    args = parser.parse_args(argv)

    started = time.time()
    source = load_latency_dataset(args.source, progress=False, ids_below=args.ids_below)
    target = load_latency_dataset(args.target, progress=False, ids_below=args.ids_below)
    source_meta, target_meta = (json.loads((d / META).read_text()) for d in (args.source, args.target))
    if source_meta["seed"] != target_meta["seed"] or source_meta["families"] != target_meta["families"]:
        raise SystemExit("the two datasets come from different generator seeds or family lists: ids do not match")
    source_split = in_domain_split(source.families, 0)  # the fine-tuned members' split
    split = aligned_in_domain_split(target, source)
    true = target.latency_ms[split.test]
    results: dict[str, dict] = {}

    names = [args.predictor, *args.also_predictors]
    shipped = np.stack([shipped_predictions(name, target) for name in names], axis=1)  # (networks, predictors) ms
    results["zero_shot"] = latency_metrics(shipped[split.test, 0], true)
    for j, name in enumerate(args.also_predictors, start=1):
        results[f"zero_shot_{name}"] = latency_metrics(shipped[split.test, j], true)
    rng = np.random.default_rng(0)
    results |= calibrated(shipped[:, :1], names[:1], "single", target, split, rng, "calibrated")
    if args.also_predictors:
        results |= calibrated(shipped, names, "auto", target, split, rng, "calibrated_multi")

    trained, tuned = [], []
    few_tuned: dict[int, list[dict]] = {}
    for seed in args.seeds:
        cfg = LatencyTrainConfig(seed=seed, epochs=40, readout="additive")
        trained.append(train_latency(target, split, cfg, args.runs / f"trained_seed{seed}", progress=False))
        member = args.source_runs / f"in_domain_seed{seed}"
        if not (member / "result.json").exists():  # a member like those the shipped predictor was made of
            train_latency(source, source_split, cfg, member, progress=False)
        made = json.loads((member / "result.json").read_text())
        same_test = made["test_ids"] == source.ids[source_split.test].tolist()
        if not same_test or (made["config"]["readout"], made["config"]["network"]) != (cfg.readout, cfg.network):
            raise SystemExit(f"{member} is not an in-domain {cfg.readout} run of the default size; pass --source-runs")
        tuned_cfg = LatencyTrainConfig(seed=seed, readout="additive", init=str(member / "best.pt"), **FINE_TUNE)
        tuned.append(train_latency(target, split, tuned_cfg, args.runs / f"fine_tuned_seed{seed}", progress=False))
        for k in args.few_shot_tune:
            few = few_shot_split(split, k, seed)
            few_cfg = replace(tuned_cfg, epochs=few_shot_epochs(target, few, tuned_cfg, args.few_shot_min_steps))
            suffix = f"_min{args.few_shot_min_steps}steps" if args.few_shot_min_steps else ""
            run = train_latency(target, few, few_cfg, args.runs / f"fine_tuned_{k}{suffix}_seed{seed}", progress=False)
            few_tuned.setdefault(k, []).append(run)
    for name, runs in (("trained", trained), ("fine_tuned", tuned), *((f"fine_tuned_{k}", r) for k, r in few_tuned.items())):
        results[name] = _summary([r["test"] for r in runs])
        results[name]["val_mape"] = float(np.mean([r["best_val_mape"] for r in runs]))
        results[name]["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
        ensemble = np.exp(np.mean([np.log(r["test_pred_ms"]) for r in runs], axis=0))
        results[f"{name}_ensemble"] = latency_metrics(ensemble, true)

    sums = np.stack([kind_sums(g) for g in target.graphs])
    baselines, _ = baseline_predictions(target, split, sums, 0)  # (test predictions, the trees' validation ones)
    for name, pred in baselines.items():
        results[name] = latency_metrics(pred, true)

    report = {
        "command": "python -m benchmarks.onnx_latency_transfer " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "source": {"dataset": str(args.source), "cpu": source_meta.get("cpu"), "device": source_meta.get("device")},
        "target": {
            "dataset": str(args.target),
            "cpu": target_meta.get("gpu") or target_meta.get("cpu"),
            "device": target_meta.get("device"),
        },
        "predictor": args.predictor,
        "also_predictors": args.also_predictors,
        "few_shot_tune": args.few_shot_tune,
        "few_shot_min_steps": args.few_shot_min_steps,
        "seeds": args.seeds,
        "sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "ids_below": args.ids_below,
        "noise_floor": noise_floor(target),
        "device_shift": device_shift(source, target),
        "results": results,
        "seconds": time.time() - started,
    }
    write_report(args.out, report, markdown(report))


def _cell(value: float | list[float], metric: str) -> str:
    digits = 3 if metric == "spearman" else 1
    if isinstance(value, list):
        return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
    return f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    shift, noise, sizes = report["device_shift"], report["noise_floor"], report["sizes"]
    lines = [
        f"# Whole-network latency on a device the predictor never saw: {report['target']['device']}",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Source: `{report['predictor']}`, trained on "
        f"latencies measured on {report['source']['cpu']}. Target: {report['target']['cpu']} "
        f"(`{report['target']['dataset']}`), {sizes['train']} / {sizes['val']} / {sizes['test']} train / validation / "
        "test networks, placed by network id in the source's in-domain split: no method saw a test network on either "
        f"device. This invocation {report['seconds'] / 60:.0f} min.",
        "",
        *provenance_lines(report, "the target dataset"),
        f"Target noise floor (pass A vs B, median |diff| / mean): **{noise['median_abs_pct']:.2f} %** "
        f"(p90 {noise['p90_abs_pct']:.2f} %).",
        "",
        f"Device shift on {shift['networks']} networks measured on both: target / source latency median "
        f"{shift['median_ratio']:.2f}x, Spearman between the devices {shift['spearman']:.3f}; per family (median, "
        "p10-p90): "
        + ", ".join(f"{f} {v['median']:.2f}x ({v['p10']:.2f}-{v['p90']:.2f})" for f, v in shift["per_family"].items())
        + ".",
        "",
        "| method | target networks used | MAPE % | Acc(10 %) % | Spearman |",
        "|---|---|---|---|---|",
    ]
    used = {"zero_shot": "0", "trained": f"{sizes['train']} + {sizes['val']} validation",
            "fine_tuned": f"{sizes['train']} + {sizes['val']} validation"}  # fmt: skip
    used |= {f"zero_shot_{name}": "0" for name in report.get("also_predictors", [])}
    for k in report.get("few_shot_tune", []):
        used[f"fine_tuned_{k}"] = f"{k - few_shot_validation_size(k)} + {few_shot_validation_size(k)} validation"
    for name, r in report["results"].items():
        if name.startswith("calibrated_"):
            k = name.removeprefix("calibrated_multi_").removeprefix("calibrated_")
            n = str(sizes["train"]) if k == "all_train" else k
            label = f"{name} ({DRAWS} draws)" if k != "all_train" else name
            if "chosen" in r:
                label += " (chosen: " + ", ".join(f"{c} {v}" for c, v in r["chosen"].items()) + ")"
        else:
            base = name.removesuffix("_ensemble")
            n = used.get(base, f"{sizes['train']} + {sizes['val']}")
            label = f"{name} ({len(report['seeds'])} seeds, geometric mean)" if name.endswith("_ensemble") else name
            few_shot = base.removeprefix("fine_tuned_").isdigit()
            if few_shot and report.get("few_shot_min_steps"):
                label += f" (>= {report['few_shot_min_steps']} steps)"
            if name in ("trained", "fine_tuned") or (few_shot and not name.endswith("_ensemble")):
                label += f" (mean ± std over seeds; validation MAPE {r['val_mape']:.2f} %, {r['train_seconds']:.0f} s)"
        lines.append(f"| {label} | {n} | " + " | ".join(_cell(r[m], m) for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
