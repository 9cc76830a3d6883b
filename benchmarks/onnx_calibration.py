"""`archcast calibrate` on measured ONNX models: how close does the shipped whole-network predictor land on another CPU?

    python -m benchmarks.onnx_calibration --target training/datasets/cpu-ort-1t-xeon167 \
        --realworld benchmarks/results/onnx_realworld_xeon167_zero_shot.json --out benchmarks/results/onnx_calibration_xeon167

The shipped ``--predictor`` (default ``cpu-ort-1t-v1``, read from ``model/predictors``) predicts networks of a target
dataset: the same generated networks (same generator seed: one id + family is one network) measured on a CPU the
predictor never saw. Only networks of the predictor's own test split are used (never trained on, never used to pick a
checkpoint or scale its std). For each k, 20 random draws of k of them are the "measured models" a user would give
``archcast calibrate``; the map it fits (``model.calibration.fit_network_calibration`` with each method, exactly what the
calibrated ONNX graph computes: ``tests/test_network_calibration.py``) predicts the rest of them and, with
``--realworld``, published classifiers measured on that CPU (``benchmarks/onnx_realworld.py``'s report: its
``measured_ms``; the base predictions come from ``--base-realworld`` when that report was made by another predictor).
Reported per k, mean +- std over draws: MAPE, Acc(10 %), Spearman, and the share of truths inside the calibrated
+-1 / +-2 std (log space). Also: zero-shot (no calibration), and calibrating on all real-world networks but one,
predicting that one (leave-one-out), for a user whose measured models are real ones. Writes ``<out>.json``, ``.md``,
``.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from model.calibration import Calibration, fit_network_calibration, network_design
from model.onnx_graph import ParseOptions, parse_onnx
from training.latency_data import LatencyDataset, in_domain_split, load_latency_dataset, network_keys, trained_ids_below
from training.latency_metrics import latency_metrics
from training.latency_ship import predict_onnx_rows

PREDICTORS = Path("model/predictors")
SIZES = (5, 10, 20, 50)
METHODS = ("scale", "single", "ridge", "auto")  # one factor; latency only; latency + MACs + memory traffic; the default


def base_std_part(fit: Calibration, design: np.ndarray, base_std: np.ndarray) -> np.ndarray:
    """The base ensemble's share of the calibrated log-space std: its relative spread times the map's latency weight."""
    weight_ms = dict(zip(fit.columns, fit.weights, strict=True)).get(0, 0.0)
    return weight_ms * base_std / np.maximum(design[:, 0], 1e-12)


def calibrated(fit: Calibration, design: np.ndarray, base_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated latency and its log-space std (the ONNX graph's map) from ``network_design`` rows and the base std."""
    return fit.predict(design), np.sqrt(base_std_part(fit, design, base_std) ** 2 + fit.std_log**2)


def realworld_costs(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """MACs and memory traffic of the real-world classifiers, rebuilt and parsed as ``onnx_realworld`` does (torch)."""
    from benchmarks.onnx_realworld import canonical_networks
    from training.netgen.export import build_network, export_onnx_bytes

    specs = {name: (fam, spec) for fam, name, spec in canonical_networks()}
    macs, memory = [], []
    for name in names:
        fam, spec = specs[name]
        totals = parse_onnx(export_onnx_bytes(build_network(fam, spec), 224), ParseOptions()).totals()
        macs.append(totals["macs"])
        memory.append(totals["memory_bytes"])
    return np.array(macs), np.array(memory)


def coverage(value: np.ndarray, std_log: np.ndarray, true: np.ndarray) -> dict[str, float]:
    error = np.abs(np.log(true / value))
    return {"within_1std": float(100 * np.mean(error <= std_log)), "within_2std": float(100 * np.mean(error <= 2 * std_log))}


def summarise(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = rows[0].keys()
    return {k: [float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows]))] for k in keys}


def base_test_keys(card: dict, base_data: Path) -> set[str]:
    """Keys of the networks in the base predictor's test split (in-domain seed 0 over the ids it was trained below)."""
    data = load_latency_dataset(base_data, progress=False, ids_below=trained_ids_below(card["training"]))
    return set(network_keys(data)[in_domain_split(data.families, 0).test].tolist())


def base_design(predictor: str, card: dict, target: LatencyDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shipped predictor's answers on ``rows`` of ``target``: ``network_design`` rows (base ms, MACs, memory
    traffic) and its (N, 2) output (ms, std ms)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(PREDICTORS / f"{predictor}.onnx"), options, ["CPUExecutionProvider"])
    base = predict_onnx_rows(session, target, rows, card["tokenizer"])
    totals = [target.graphs[r].totals() for r in rows]
    return network_design(base[:, 0], [t["macs"] for t in totals], [t["memory_bytes"] for t in totals]), base


def realworld_pairs(report: Path, base_report: Path | None, version: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, base predictions (N, 2) = (ms, std ms) and measured ms of the real-world networks."""
    measured = json.loads(report.read_text())
    based = json.loads((base_report or report).read_text())
    if based["predictor"] != version:
        raise SystemExit(f"{base_report or report} holds predictions of {based['predictor']}, not {version}")
    base = {n["network"]: (n["archcast_ms"], n["archcast_std_ms"]) for n in based["networks"]}
    names = [n["network"] for n in measured["networks"]]
    return names, np.array([base[n] for n in names]), np.array([n["measured_ms"] for n in measured["networks"]])


def add_draw_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every calibration benchmark shares: measured-model counts, draws per count, their seed, output."""
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="measured models per calibration")
    parser.add_argument("--draws", type=int, default=20, help="random draws of that many models per size")
    parser.add_argument("--seed", type=int, default=0, help="seeds the draws")
    parser.add_argument("--out", type=Path, required=True, help="report path without a suffix")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, required=True, help="dataset of the same networks measured on another CPU")
    parser.add_argument("--base-data", type=Path, default=Path("training/datasets/cpu-ort-1t"), help="the predictor's data")
    parser.add_argument("--predictor", default="cpu-ort-1t-v1")
    parser.add_argument(
        "--common-with",
        nargs="+",
        default=[],
        metavar="PREDICTOR",
        help="keep only networks that are also in these shipped predictors' test splits, so that reports with "
        "different --predictor score the same networks",
    )
    parser.add_argument(
        "--pool",
        choices=("base-test", "unseen"),
        default="base-test",
        help="the networks scored: those of the predictor's test split (base-test), or the target's networks with ids "
        "at or above the bound of the ids the predictor was trained below (unseen: generated after its training)",
    )
    parser.add_argument("--realworld", type=Path, default=None, help="onnx_realworld report measured on the target CPU")
    parser.add_argument("--base-realworld", type=Path, default=None, help="onnx_realworld report of --predictor's version")
    add_draw_arguments(parser)
    args = parser.parse_args(argv)
    started = time.time()

    card = json.loads((PREDICTORS / f"{args.predictor}.card.json").read_text())
    meta = json.loads((args.target / "meta.json").read_text())
    version = f"{args.predictor} {card['version']}"
    target = load_latency_dataset(args.target, progress=False)
    if args.pool == "unseen":
        rows = np.flatnonzero(target.ids >= trained_ids_below(card["training"]))
        pool = f"generated after {args.predictor}'s training (ids from {trained_ids_below(card['training'])} on)"
    else:
        keys = base_test_keys(card, args.base_data)
        for other in args.common_with:
            keys &= base_test_keys(json.loads((PREDICTORS / f"{other}.card.json").read_text()), args.base_data)
        rows = np.flatnonzero(np.isin(network_keys(target), sorted(keys)))
        pool = "in the test split of " + ", ".join([args.predictor, *args.common_with])
    design, base = base_design(args.predictor, card, target, rows)
    true = target.latency_ms[rows]
    real = None
    if args.realworld:
        names, real_base, real_true = realworld_pairs(args.realworld, args.base_realworld, version)
        real = names, network_design(real_base[:, 0], *realworld_costs(names)), real_base[:, 1], real_true
    print(
        f"{len(rows)} target networks {pool}; "
        f"predicted in {time.time() - started:.0f} s"
    )

    report: dict = {
        "command": "python -m benchmarks.onnx_calibration " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "predictor": version,
        "target": str(args.target),
        "target_cpu": {k: meta.get(k) for k in ("cpu", "cpu_id", "onnxruntime", "gpu") if k in meta},
        "networks": len(rows),
        "pool": args.pool,
        "common_with": args.common_with,
        "draws": args.draws,
        "zero_shot": {"pool": latency_metrics(base[:, 0], true)},
        "calibrated": {},
    }
    if real is not None:
        report["zero_shot"]["realworld"] = latency_metrics(real[1][:, 0], real[3])
    for method in METHODS:
        rng = np.random.default_rng(args.seed)  # the same draws for every method
        report["calibrated"][method] = {}
        for k in args.sizes:
            pool_rows, real_rows, ridge, scale, fit_seconds = [], [], 0, 0, []
            for _ in range(args.draws):
                chosen = rng.choice(len(rows), size=k, replace=False)
                rest = np.setdiff1d(np.arange(len(rows)), chosen)
                t0 = time.perf_counter()
                fit = fit_network_calibration(design[chosen], true[chosen], method)
                fit_seconds.append(time.perf_counter() - t0)
                ridge += fit.method == "ridge"
                scale += fit.method == "scale"
                value, std_log = calibrated(fit, design[rest], base[rest, 1])
                pool_rows.append({**latency_metrics(value, true[rest]), **coverage(value, std_log, true[rest])})
                if real is not None:
                    value, std_log = calibrated(fit, real[1], real[2])
                    real_rows.append({**latency_metrics(value, real[3]), **coverage(value, std_log, real[3])})
            entry = {"pool": summarise(pool_rows), "ridge_share": ridge / args.draws, "scale_share": scale / args.draws}
            entry["fit_seconds_median"] = float(np.median(fit_seconds))
            if real_rows:
                entry["realworld"] = summarise(real_rows)
            report["calibrated"][method][str(k)] = entry
            print(
                f"{method} k={k}: pool MAPE {entry['pool']['mape'][0]:.1f} +- {entry['pool']['mape'][1]:.1f} %"
                + (f", real-world {entry['realworld']['mape'][0]:.1f} %" if real_rows else "")
            )
    if real is not None:
        names, real_design, real_std, real_true = real
        report["realworld_leave_one_out"] = {}
        for method in METHODS:
            values, stds = np.zeros(len(names)), np.zeros(len(names))
            for i in range(len(names)):
                keep = np.arange(len(names)) != i
                fit = fit_network_calibration(real_design[keep], real_true[keep], method)
                value, std_log = calibrated(fit, real_design[i : i + 1], real_std[i : i + 1])
                values[i], stds[i] = value[0], std_log[0]
            report["realworld_leave_one_out"][method] = {
                **latency_metrics(values, real_true),
                **coverage(values, stds, real_true),
                "per_network": {
                    n: {"measured_ms": float(t), "calibrated_ms": float(v)}
                    for n, t, v in zip(names, real_true, values, strict=True)
                },
            }
    report["seconds"] = time.time() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out.with_suffix(".png"))
    print(markdown(report))


def chosen(entry: dict) -> str:
    """How often the fit was one factor / a ridge map (reports before ``scale`` existed lack its share)."""
    scale = entry.get("scale_share")
    return ("-" if scale is None else f"{100 * scale:.0f} %") + f" / {100 * entry['ridge_share']:.0f} %"


def _cell(summary: dict[str, list[float]], key: str) -> str:
    mean, std = summary[key]
    return f"{mean:.1f} ± {std:.1f}"


def markdown(report: dict) -> str:
    cpu = report["target_cpu"]
    common = report.get("common_with") or []
    split = "the predictor's test split" + (f" and in that of {', '.join(common)}" if common else "")
    if report.get("pool") == "unseen":
        split = "no data the predictor was made from (generated after its training)"
    lines = [
        f"# Calibrating {report['predictor']} to another {'machine' if cpu.get('gpu') else 'CPU'} from measured ONNX models",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}` ({report['seconds']:.0f} s).",
        "",
        f"Target: `{report['target']}`, measured on {cpu['gpu'] + ' with host ' if cpu.get('gpu') else ''}"
        f"{cpu.get('cpu', '?')} ({cpu.get('cpu_id', '?')}), onnxruntime "
        f"{cpu.get('onnxruntime', '?')}; {report['networks']} of its networks lie in {split} (never "
        f"trained on, never used to choose a checkpoint). Each k: {report['draws']} random draws of k networks calibrate "
        "(`model.calibration.fit_network_calibration`, the map `archcast calibrate` appends to the ONNX graph); the "
        "other networks of the split, and the real-world classifiers, are predicted. Mean ± std over draws. Methods: "
        "`scale` = log y = a + log p (one factor on the base prediction p); `single` = log y = a + b log p; `ridge` = "
        "also log MACs and log memory traffic, ridge-penalised (penalty by leave-one-out); `auto` (the default) = the "
        "lowest leave-one-out error on the k models of scale and single, from 20 models on also of ridge (and of single "
        "on MACs or memory traffic).",
        "",
        "| method | measured networks | MAPE % | Acc(10 %) | Spearman | within ±1σ % | within ±2σ % | chosen: scale / ridge | "
        "real-world MAPE % | real-world Acc(10 %) | real-world ±2σ % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    zero, real_zero = report["zero_shot"]["pool"], report["zero_shot"].get("realworld")
    lines.append(
        f"| zero-shot | 0 | {zero['mape']:.1f} | {zero['acc10']:.1f} | {zero['spearman']:.3f} | | | | "
        + (f"{real_zero['mape']:.1f} | {real_zero['acc10']:.1f} | |" if real_zero else "| | |")
    )
    for method, sizes in report["calibrated"].items():
        for k, entry in sizes.items():
            pool, real = entry["pool"], entry.get("realworld")
            lines.append(
                f"| {method} | {k} | {_cell(pool, 'mape')} | {_cell(pool, 'acc10')} | {pool['spearman'][0]:.3f} | "
                f"{_cell(pool, 'within_1std')} | {_cell(pool, 'within_2std')} | {chosen(entry)} | "
                + (f"{_cell(real, 'mape')} | {_cell(real, 'acc10')} | {_cell(real, 'within_2std')} |" if real else "| | |")
            )
    loo = report.get("realworld_leave_one_out")
    if loo:
        n = int(next(iter(loo.values()))["n"])
        lines += ["", f"Calibrated on the other {n - 1} real-world classifiers, each one predicted (leave-one-out):", ""]
        lines += ["| method | MAPE % | Acc(10 %) | Spearman | within ±1σ % | within ±2σ % |", "|---|---|---|---|---|---|"]
        for method, item in loo.items():
            lines.append(
                f"| {method} | {item['mape']:.1f} | {item['acc10']:.1f} | {item['spearman']:.3f} | "
                f"{item['within_1std']:.0f} | {item['within_2std']:.0f} |"
            )
        lines += ["", "| network | measured ms | " + " | ".join(f"{m} ms (error %)" for m in loo) + " |"]
        lines.append("|---|---|" + "---|" * len(loo))
        for name in next(iter(loo.values()))["per_network"]:
            measured = loo["single"]["per_network"][name]["measured_ms"]
            cells = []
            for item in loo.values():
                value = item["per_network"][name]["calibrated_ms"]
                cells.append(f"{value:.2f} ({100 * (value - measured) / measured:+.1f})")
            lines.append(f"| {name} | {measured:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(k) for k in report["calibrated"]["auto"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for part, label in (("pool", "generated test networks"), ("realworld", "real-world classifiers")):
        if part not in report["zero_shot"]:
            continue
        for method, style in (("single", ":"), ("auto", "-")):  # auto offers scale too
            means = [report["calibrated"][method][str(k)][part]["mape"][0] for k in sizes]
            stds = [report["calibrated"][method][str(k)][part]["mape"][1] for k in sizes]
            color = "tab:blue" if part == "pool" else "tab:orange"
            ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, linestyle=style, color=color, label=f"{method}: {label}")
        ax.axhline(report["zero_shot"][part]["mape"], linestyle="--", color=color, alpha=0.5, label=f"zero-shot: {label}")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("measured networks given to archcast calibrate")
    ax.set_ylabel("MAPE %")
    ax.set_title(f"{report['predictor']} on {Path(report['target']).name}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
