"""Few-shot calibration of unseen devices on NB201: HELP's protocol, 10 and 20 measured cells per device.

For each source set and model seed, a multi-device latency predictor is trained on the source devices only (committed
split: 7,813 train / 500 val cells, checkpoint chosen on validation, resumed if interrupted, skipped if done). Its
heads' predictions on the split's test cells are the features of ``model.calibration.fit_calibration``. For each
target device, ``n`` test cells are drawn as the "measurements" (``--draws`` draws per seed) and the calibrated
predictor is scored on every other test cell: Spearman, Kendall tau, Acc(10 %), MAPE, and the share of true values
inside the predicted +-1 / +-2 sigma interval (sigma = the fit's ``std_log``: leave-one-out log RMSE times
``model.calibration.std_inflation``, measured on other devices by ``benchmarks.quality.calibration_std``).

Source sets:
- ``help9``: HELP's nine meta-training devices only, the like-for-like comparison with HELP's 0.932;
- ``all40``: every latency setting in the shared tables except HELP's six test devices (HELP, Eagle, nn-Meter).
Baseline in the same run: ridge on the one-hot cell encoding fitted on the same ``n`` cells (no transfer).

Also ``leave-one-head-out`` over the other 21 HELP settings with the ``all40`` model: the device's own head and its
other batch sizes are dropped from the features, but the shared trunk saw the device's labels (weaker evidence).

    python -m benchmarks.quality.fewshot [--seeds 0 1 2] [--epochs 60] [--draws 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.linear_model import RidgeCV

from benchmarks.machine import describe_machine
from model.calibration import fit_calibration
from model.parsers.nb201 import NB201_NUM_CELLS, NB201_OPS
from training.data import load_nb201
from training.run import train_run
from training.splits import load_split, split_path, write_split
from training.targets import HELP_FEWSHOT_DEVICES, HELP_LATENCY_TARGETS, LATENCY_TARGETS, TARGET_GROUPS
from training.trainer import TrainConfig, load_best, predict_normalised

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
SOURCES = {"help9": "help_meta_train", "all40": "fewshot_source"}
SIZES = (10, 20)
HELP_PUBLISHED = 0.932  # HELP (NeurIPS 2021), 10 samples, mean over the six meta-test devices
N_TRAIN, N_VAL = 7813, 500
SECONDS_PER_EPOCH = 9.0  # measured on the 2-core Xeon, one torch thread, 7,813 cells, d_model 96, 3 layers


def _train(job: tuple[str, int, int, str]) -> str:
    source, seed, epochs, runs = job
    run_dir = Path(runs) / f"{source}_seed{seed}"
    if (run_dir / "metrics_test.json").exists():
        return str(run_dir)
    cfg = TrainConfig(
        targets=list(TARGET_GROUPS[SOURCES[source]]),
        split=str(split_path(N_TRAIN, N_VAL, seed)),
        seed=seed,
        epochs=epochs,
        threads=1,
        network={"d_model": 96, "n_layers": 3},
    )
    train_run(cfg, run_dir)
    return str(run_dir)


def onehot(arch_strs: list[str]) -> np.ndarray:
    codes = np.array([[NB201_OPS.index(op) for op in re.findall(r"\|([a-z_0-9]+)~\d", a)] for a in arch_strs])
    out = np.zeros((len(codes), 6 * len(NB201_OPS)))
    out[np.arange(len(codes))[:, None], np.arange(6) * len(NB201_OPS) + codes] = 1.0
    return out


def score(pred: np.ndarray, true: np.ndarray, sigma: float | None) -> dict[str, float]:
    relative = np.abs(pred / true - 1.0)
    out = {
        "spearman": float(stats.spearmanr(pred, true).statistic),
        "kendall_tau": float(stats.kendalltau(pred, true).statistic),
        "acc10": float(100 * np.mean(relative <= 0.1)),
        "mape": float(100 * np.mean(relative)),
    }
    if sigma is not None:
        z = np.abs(np.log(true) - np.log(pred)) / max(sigma, 1e-9)
        out["within_1sigma"] = float(100 * np.mean(z <= 1.0))
        out["within_2sigma"] = float(100 * np.mean(z <= 2.0))
    return out


def same_hardware(a: str, b: str) -> bool:
    """HELP GPU settings that differ only in batch size (titan_rtx_1 / _32 / _256)."""
    strip = re.compile(r"_(1|32|256)_ms$")
    return strip.sub("", a) == strip.sub("", b) and bool(strip.search(a))


def evaluate_source(run_dir: Path, draws: int, truth, test_idx: np.ndarray) -> dict:
    net, normaliser, cfg = load_best(run_dir)
    test = truth.subset(test_idx)
    base = normaliser.decode(predict_normalised(net, test.encoded))  # (N_test, len(cfg.targets)) in ms
    features = onehot(test.arch_strs)
    devices = list(HELP_FEWSHOT_DEVICES)
    lofo = [t for t in HELP_LATENCY_TARGETS if t in cfg.targets]
    out: dict = {"devices": {}, "leave_one_head_out": {}, "fit_ms": []}
    rng = np.random.default_rng(cfg.seed)
    for device in devices + lofo:
        column = truth.target_names.index(device)
        y = test.y[:, column]
        usable = np.flatnonzero(np.isfinite(y))
        sources = [t for t in cfg.targets if t != device and not same_hardware(t, device)]
        columns = [cfg.targets.index(t) for t in sources]
        per_size: dict = {}
        for n in SIZES if device in devices else (10,):
            rows: dict[str, list] = {"archcast": [], "onehot_ridge": []}
            for _ in range(draws):
                pick = rng.choice(usable, n, replace=False)
                rest = np.setdiff1d(usable, pick)
                started = time.perf_counter()
                calibration = fit_calibration(base[pick], y[pick], columns, sources)
                out["fit_ms"].append(1000 * (time.perf_counter() - started))
                rows["archcast"].append(score(calibration.predict(base[rest]), y[rest], calibration.std_log))
                ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features[pick], np.log(y[pick]))
                rows["onehot_ridge"].append(score(np.exp(ridge.predict(features[rest])), y[rest], None))
            per_size[n] = {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}
        (out["devices"] if device in devices else out["leave_one_head_out"])[device] = per_size
    return out


def mean_spearman(per_seed_result: dict, n: int) -> float:
    return float(np.mean([per_seed_result["devices"][d][n]["archcast"]["spearman"] for d in HELP_FEWSHOT_DEVICES]))


def aggregate(per_seed: list[dict], section: str) -> dict:
    """mean and std over model seeds of each (device, size, method, metric)."""
    result: dict = {}
    for device, sizes in per_seed[0][section].items():
        for n, methods in sizes.items():
            for method, metrics in methods.items():
                for metric in metrics:
                    values = [s[section][device][n][method][metric] for s in per_seed]
                    result.setdefault(device, {}).setdefault(str(n), {}).setdefault(method, {})[metric] = (
                        float(np.mean(values)),
                        float(np.std(values)),
                    )
    return result


def _fmt(pair: tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        "# Few-shot calibration of unseen devices (NB201, HELP protocol)",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Model seeds {meta['seeds']}, {meta['draws']} draws of "
        f"the measured cells per seed and device; every figure is mean ± std over the model seeds of the per-seed mean "
        f"over draws. Scored on the source model's test cells ({meta['n_test']}) minus the drawn ones.",
        "",
        "Sources: `help9` = HELP's nine meta-training devices; `all40` = every latency setting in the shared tables except "
        "HELP's six test devices. For titan_rtx_256 the other Titan RTX batch sizes are never used as features. "
        "`onehot_ridge` = ridge on the one-hot cell encoding fitted on the same cells (no transfer).",
        "",
        "σ = the std the calibrated predictor serves: its leave-one-out log RMSE times `model.calibration.std_inflation(n)`, "
        "whose factors were measured on the 31 other NB201 latency settings (`calibration_std.md`), not on these six "
        "devices. The errors have heavier tails than a Gaussian, so with ±2σ tuned to 95 %, ±1σ holds more than 68 %.",
        "",
    ]
    for n in SIZES:
        lines += [f"## {n} measured cells per device", ""]
        header = (
            "| device | "
            + " | ".join(f"{s} Spearman | {s} Acc(10%) | {s} ±1σ / ±2σ" for s in summary)
            + (" | onehot_ridge Spearman | onehot_ridge Acc(10%) |")
        )
        lines += [header, "|" + "---|" * (2 + 3 * len(summary) + 1)]
        for device in HELP_FEWSHOT_DEVICES:
            cells = []
            for source in summary:
                m = summary[source]["devices"][device][str(n)]["archcast"]
                cells += [
                    _fmt(m["spearman"]),
                    _fmt(m["acc10"], 1),
                    f"{m['within_1sigma'][0]:.0f} % / {m['within_2sigma'][0]:.0f} %",
                ]
            b = summary[next(iter(summary))]["devices"][device][str(n)]["onehot_ridge"]
            lines.append(f"| {device} | " + " | ".join(cells) + f" | {_fmt(b['spearman'])} | {_fmt(b['acc10'], 1)} |")
        means = []
        for source in summary:
            per_seed = summary[source]["mean_spearman_per_seed"][str(n)]
            means.append(f"{source} {np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}")
        lines += ["", f"Mean Spearman over the six devices: {'; '.join(means)} (HELP published, 10 cells: {HELP_PUBLISHED}).", ""]
    lines += [
        "## Leave-one-head-out over the other HELP settings (all40 model, 10 cells)",
        "",
        "The device's head and its other batch sizes are dropped from the features; the shared trunk was trained with "
        "the device's labels, so this is weaker evidence than the table above.",
        "",
        "| device | Spearman | Acc(10%) | onehot_ridge Spearman |",
        "|---|---|---|---|",
    ]
    for device, sizes in summary["all40"]["leave_one_head_out"].items():
        m, b = sizes["10"]["archcast"], sizes["10"]["onehot_ridge"]
        lines.append(f"| {device} | {_fmt(m['spearman'])} | {_fmt(m['acc10'], 1)} | {_fmt(b['spearman'])} |")
    lines += [
        "",
        f"Fitting one calibration: median {meta['fit_ms_median']:.1f} ms on this machine (the base predictor's forward "
        "pass on the measured cells comes on top; `archcast calibrate` end to end is timed in the README).",
        "",
        "Source model training time (s, one torch thread): "
        + "; ".join(f"{s}: {', '.join(str(round(t)) for t in meta['train_seconds'][s])}" for s in summary),
        "",
        "![predicted vs measured](fewshot_scatter.png)",
    ]
    return "\n".join(lines) + "\n"


def scatter(run_dir: Path, truth, test_idx: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net, normaliser, cfg = load_best(run_dir)
    test = truth.subset(test_idx)
    base = normaliser.decode(predict_normalised(net, test.encoded))
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    for ax, device in zip(axes.flat, HELP_FEWSHOT_DEVICES, strict=True):
        y = test.y[:, truth.target_names.index(device)]
        usable = np.flatnonzero(np.isfinite(y))
        pick = rng.choice(usable, 10, replace=False)
        rest = np.setdiff1d(usable, pick)
        sources = [t for t in cfg.targets if not same_hardware(t, device)]
        calibration = fit_calibration(base[pick], y[pick], [cfg.targets.index(t) for t in sources], sources)
        pred = calibration.predict(base[rest])
        ax.scatter(y[rest], pred, s=2, alpha=0.3)
        ax.scatter(y[pick], calibration.predict(base[pick]), s=18, c="red", label="10 measured cells")
        lo, hi = float(np.min(y[usable])), float(np.max(y[usable]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        rho = stats.spearmanr(pred, y[rest]).statistic
        ax.set_title(f"{device.removeprefix('latency_').removesuffix('_ms')}: Spearman {rho:.3f}", fontsize=9)
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Few-shot calibration from 10 cells ({run_dir.name})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="source models trained in parallel, one thread each")
    parser.add_argument("--runs", default="runs/quality/fewshot")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    for seed in args.seeds:
        if not split_path(N_TRAIN, N_VAL, seed).exists():
            write_split(NB201_NUM_CELLS, N_TRAIN, N_VAL, seed)
    jobs = [(s, seed, args.epochs, args.runs) for s in args.sources for seed in args.seeds]
    todo = [j for j in jobs if not (Path(args.runs) / f"{j[0]}_seed{j[1]}" / "metrics_test.json").exists()]
    estimate = len(todo) * args.epochs * SECONDS_PER_EPOCH / max(1, min(args.workers, len(todo) or 1)) / 60
    print(f"{len(jobs)} source models, {len(todo)} to train: about {estimate:.0f} min on this machine", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(_train, todo))

    truth = load_nb201(list(LATENCY_TARGETS))
    summary: dict = {}
    meta: dict = {
        "machine": describe_machine(),
        "command": "python -m benchmarks.quality.fewshot " + " ".join(sys.argv[1:]),
        "seeds": args.seeds,
        "draws": args.draws,
        "train_seconds": {},
    }
    fit_ms: list[float] = []
    for source in args.sources:
        per_seed = []
        meta["train_seconds"][source] = []
        for seed in args.seeds:
            run_dir = Path(args.runs) / f"{source}_seed{seed}"
            meta["train_seconds"][source].append(json.loads((run_dir / "metrics_test.json").read_text())["train_seconds"])
            _, _, test_idx = load_split(split_path(N_TRAIN, N_VAL, seed), NB201_NUM_CELLS)
            meta["n_test"] = len(test_idx)
            result = evaluate_source(run_dir, args.draws, truth, test_idx)
            fit_ms += result.pop("fit_ms")
            per_seed.append(result)
            print(f"{source} seed {seed}: evaluated", file=sys.stderr)
        summary[source] = {
            "devices": aggregate(per_seed, "devices"),
            "leave_one_head_out": aggregate(per_seed, "leave_one_head_out"),
            "mean_spearman_per_seed": {str(n): [mean_spearman(s, n) for s in per_seed] for n in SIZES},
        }
    meta["fit_ms_median"] = float(np.median(fit_ms))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fewshot.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=1) + "\n")
    text = markdown(summary, meta)
    (args.out / "fewshot.md").write_text(text)
    if "all40" in args.sources:
        _, _, test_idx = load_split(split_path(N_TRAIN, N_VAL, args.seeds[0]), NB201_NUM_CELLS)
        scatter(Path(args.runs) / f"all40_seed{args.seeds[0]}", truth, test_idx, args.out / "fewshot_scatter.png")
    print(text)


if __name__ == "__main__":
    main()
