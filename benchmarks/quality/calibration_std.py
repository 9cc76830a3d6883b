"""How far the few-shot calibration's leave-one-out error under-states its error on the rest of the space.

The std of a calibrated device is its leave-one-out log RMSE on the n measurements, times an inflation factor
that depends on n. This command measures that factor on devices that are neither HELP's six test devices (the
few-shot benchmark scores those) nor seen by the source model: it takes the ``help9`` source models of
``benchmarks.quality.fewshot`` (trained on HELP's nine meta-training devices only) and calibrates every other
published NB201 latency setting (Eagle, nn-Meter, the remaining HELP settings) from n drawn test cells, then pools
|log error| / LOO RMSE over the other test cells. The factor is the pooled 95.45 % quantile / 2, so value +- 2 std
covers 95 % of the space; the table it prints is ``model.calibration.STD_INFLATION``.

    python -m benchmarks.quality.calibration_std [--draws 10] [--runs runs/quality/fewshot]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.quality.fewshot import N_TRAIN, N_VAL, RESULTS
from model.calibration import STD_INFLATION, fit_calibration
from model.parsers.nb201 import NB201_NUM_CELLS
from training.data import load_nb201
from training.splits import load_split, split_path
from training.targets import HELP_FEWSHOT_DEVICES, HELP_META_TRAIN_DEVICES, LATENCY_TARGETS
from training.trainer import load_best, predict_normalised

SIZES = (5, 10, 15, 20, 30, 50)
PSEUDO_TARGETS = tuple(t for t in LATENCY_TARGETS if t not in HELP_META_TRAIN_DEVICES and t not in HELP_FEWSHOT_DEVICES)


def ratios(run_dir: Path, truth, test_idx: np.ndarray, draws: int, seed: int) -> dict[int, list[np.ndarray]]:
    """|log error| / LOO RMSE on the undrawn test cells, per size, one array per (device, draw)."""
    net, normaliser, cfg = load_best(run_dir)
    test = truth.subset(test_idx)
    base = normaliser.decode(predict_normalised(net, test.encoded))
    columns = list(range(len(cfg.targets)))
    rng = np.random.default_rng(seed)
    out: dict[int, list[np.ndarray]] = {n: [] for n in SIZES}
    for device in PSEUDO_TARGETS:
        y = test.y[:, truth.target_names.index(device)]
        usable = np.flatnonzero(np.isfinite(y))
        for n in SIZES:
            for _ in range(draws):
                pick = rng.choice(usable, n, replace=False)
                rest = np.setdiff1d(usable, pick)
                fit = fit_calibration(base[pick], y[pick], columns, list(cfg.targets))
                error = np.abs(np.log(y[rest]) - np.log(fit.predict(base[rest])))
                out[n].append(error / max(fit.loo_rmse_log, 1e-9))
    return out


def pooled_quantile(arrays: list[np.ndarray], q: float, per_draw: int = 1000) -> float:
    """Quantile of the pooled ratios, each (device, draw) weighted equally (``per_draw`` quantile points each)."""
    grid = np.linspace(0.0, 1.0, per_draw)
    return float(np.quantile(np.concatenate([np.quantile(a, grid) for a in arrays]), q))


def within(arrays: list[np.ndarray], bound: float) -> float:
    """Share (%) of ratios <= bound, each (device, draw) weighted equally."""
    return float(100 * np.mean([np.mean(a <= bound) for a in arrays]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--runs", default="runs/quality/fewshot")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    truth = load_nb201(list(LATENCY_TARGETS))
    pooled: dict[int, list[np.ndarray]] = {n: [] for n in SIZES}
    for seed in args.seeds:
        run_dir = Path(args.runs) / f"help9_seed{seed}"
        if not (run_dir / "best.pt").exists():
            sys.exit(f"{run_dir} has no trained model: run `python -m benchmarks.quality.fewshot --sources help9` first")
        _, _, test_idx = load_split(split_path(N_TRAIN, N_VAL, seed), NB201_NUM_CELLS)
        for n, arrays in ratios(run_dir, truth, test_idx, args.draws, seed).items():
            pooled[n] += arrays
        print(f"help9 seed {seed}: done", file=sys.stderr)
    rows = {}
    for n in SIZES:
        factor = pooled_quantile(pooled[n], 0.9545) / 2.0
        rows[n] = {
            "factor": round(factor, 3),
            "raw_within_1sigma": within(pooled[n], 1.0),
            "raw_within_2sigma": within(pooled[n], 2.0),
            "inflated_within_1sigma": within(pooled[n], factor),
            "inflated_within_2sigma": within(pooled[n], 2.0 * factor),
        }
    meta = {
        "machine": describe_machine(),
        "command": "python -m benchmarks.quality.calibration_std " + " ".join(sys.argv[1:]),
        "pseudo_targets": list(PSEUDO_TARGETS),
        "draws_per_device": args.draws * len(args.seeds),
        "shipped_table": {str(k): v for k, v in STD_INFLATION.items()},
    }
    lines = [
        "# Few-shot calibration: std inflation against the number of measurements",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Source models: `help9` (HELP's nine meta-training "
        f"devices), seeds {args.seeds}; pseudo-new devices: the {len(PSEUDO_TARGETS)} other NB201 latency settings "
        f"(HELP's six test devices excluded); {meta['draws_per_device']} draws per device and size.",
        "",
        "| measurements | factor (95.45 % quantile / 2) | raw ±1σ / ±2σ | inflated ±1σ / ±2σ |",
        "|---|---|---|---|",
    ]
    for n, r in rows.items():
        lines.append(
            f"| {n} | {r['factor']:.3f} | {r['raw_within_1sigma']:.0f} % / {r['raw_within_2sigma']:.0f} % | "
            f"{r['inflated_within_1sigma']:.0f} % / {r['inflated_within_2sigma']:.0f} % |"
        )
    table = "{" + ", ".join(f"{n}: {r['factor']:.2f}" for n, r in rows.items()) + "}"
    lines += ["", f"As `model.calibration.STD_INFLATION`: `{table}` (shipped: `{STD_INFLATION}`).", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration_std.json").write_text(json.dumps({"meta": meta, "sizes": rows}, indent=1) + "\n")
    text = "\n".join(lines)
    (args.out / "calibration_std.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
