"""Which shipped predictor should a new CPU be calibrated from? Each base alone, against the base chosen per draw by
leave-one-out error (what `archcast calibrate` does when no ``--base`` is named).

    python -m benchmarks.onnx_calibration_bases --target training/datasets/cpu-ort-1t-zen4 \
        --realworld benchmarks/results/onnx_realworld_zen4_epyc_card.json --out benchmarks/results/onnx_calibration_bases_zen4

The target dataset holds generated networks measured on a CPU none of the ``--bases`` learnt (same generator seed as
their data: one id + family is one network). Only networks that no base trained on or chose a checkpoint with are
scored: the intersection of the bases' test splits (``benchmarks.onnx_calibration.base_test_keys``); a base whose
split cannot be rebuilt from its card (no ``ids_below``, another dataset than ``--base-data``) has every network of
its dataset left out instead. For each k, ``--draws`` random draws of k networks are the measured models; every base
is fitted with the shipped ``auto`` map (``model.calibration.fit_network_calibration``) and
``model.calibration.choose_network_base`` keeps the one whose one-factor fit has the lowest leave-one-out error. The
rest of the pool, and with ``--realworld`` the published classifiers measured on that CPU (the report's
``measured_ms``; each base predicts them here), are predicted. Mean +- std over draws. Writes ``<out>.json`` and
``.md``.
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
from benchmarks.onnx_calibration import (
    PREDICTORS,
    add_draw_arguments,
    base_test_keys,
    calibrated,
    coverage,
    summarise,
)
from benchmarks.report import write_report
from model.calibration import choose_network_base, fit_network_calibration, network_design
from model.onnx_graph import ParseOptions, parse_onnx
from service.predictor import load_registry
from training.latency_data import load_latency_dataset, network_keys
from training.latency_metrics import latency_metrics
from training.latency_ship import predict_onnx_rows

BASES = ("cpu-ort-1t-v1", "cpu-ort-1t-epyc-v1", "cuda-ort-h200-v1")
CHOSEN = "chosen by leave-one-out"


def pool_keys(cards: dict[str, dict], base_data: Path) -> set[str]:
    """Networks no base saw in training or validation: the common test split, minus datasets whose split is unknown."""
    keys: set[str] | None = None
    excluded: set[str] = set()
    for card in cards.values():
        training = card["training"]
        if Path(training["dataset"]) == base_data or "ids_below" in training:
            test = base_test_keys(card, base_data)
            keys = test if keys is None else keys & test
        else:
            excluded |= set(network_keys(load_latency_dataset(Path(training["dataset"]), progress=False)).tolist())
    if keys is None:
        raise SystemExit("no base has a split that can be rebuilt from its card; name another --bases")
    return keys - excluded


def realworld_designs(report: Path, names: list[str]) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Names and measured ms of the report's networks, and per base their ``network_design`` rows and std (N, 4)."""
    from benchmarks.onnx_realworld import canonical_networks
    from training.netgen.export import build_network, export_onnx_bytes

    measured = {n["network"]: n["measured_ms"] for n in json.loads(report.read_text())["networks"]}
    registry = load_registry(PREDICTORS, "cpu", 1)
    specs = {name: (fam, spec) for fam, name, spec in canonical_networks()}
    order = sorted(measured)
    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in names}
    for network in order:
        fam, spec = specs[network]
        graph = parse_onnx(export_onnx_bytes(build_network(fam, spec), 224), ParseOptions())
        totals = graph.totals()
        for name in names:
            ms, std = registry.networks[name].run(graph)
            rows[name].append((ms, totals["macs"], totals["memory_bytes"], std))
    designs = {}
    for name, values in rows.items():
        array = np.asarray(values)
        designs[name] = np.column_stack([network_design(array[:, 0], array[:, 1], array[:, 2]), array[:, 3]])
    return order, np.array([measured[n] for n in order]), designs


def scored(fit, design: np.ndarray, true: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    """Metrics and ±1σ / ±2σ coverage of one calibration on rows of (network_design | base std)."""
    value, std_log = calibrated(fit, design[:, :3], design[:, 3])
    return {**latency_metrics(value, true), **coverage(value, std_log, true)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, required=True, help="dataset of the same networks measured on a new CPU")
    parser.add_argument("--bases", nargs="+", default=list(BASES), help="shipped network predictors to calibrate from")
    parser.add_argument("--base-data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--realworld", type=Path, default=None, help="onnx_realworld report measured on the target CPU")
    add_draw_arguments(parser)
    args = parser.parse_args(argv)
    started = time.time()

    cards = {name: json.loads((PREDICTORS / f"{name}.card.json").read_text()) for name in args.bases}
    meta = json.loads((args.target / "meta.json").read_text())
    target = load_latency_dataset(args.target, progress=False)
    rows = np.flatnonzero(np.isin(network_keys(target), sorted(pool_keys(cards, args.base_data))))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    pool: dict[str, np.ndarray] = {}
    totals = [target.graphs[r].totals() for r in rows]
    macs, memory = [t["macs"] for t in totals], [t["memory_bytes"] for t in totals]
    for name, card in cards.items():
        session = ort.InferenceSession(str(PREDICTORS / f"{name}.onnx"), options, ["CPUExecutionProvider"])
        base = predict_onnx_rows(session, target, rows, card["tokenizer"])
        pool[name] = np.column_stack([network_design(base[:, 0], macs, memory), base[:, 1]])
    true = target.latency_ms[rows]
    real = realworld_designs(args.realworld, args.bases) if args.realworld else None
    print(f"{len(rows)} target networks no base trained on; predicted in {time.time() - started:.0f} s")

    report: dict = {
        "command": "python -m benchmarks.onnx_calibration_bases " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "bases": {name: f"{name} {card['version']} (device {card['device'].get('device')})" for name, card in cards.items()},
        "target": str(args.target),
        "target_cpu": {k: meta.get(k) for k in ("cpu", "cpu_id", "onnxruntime")},
        "networks": len(rows),
        "draws": args.draws,
        "zero_shot": {name: {"pool": latency_metrics(design[:, 0], true)} for name, design in pool.items()},
        "calibrated": {name: {} for name in [*args.bases, CHOSEN]},
    }
    if real is not None:
        for name in args.bases:
            report["zero_shot"][name]["realworld"] = latency_metrics(real[2][name][:, 0], real[1])
    rng = np.random.default_rng(args.seed)
    for k in args.sizes:
        results: dict[str, list[dict]] = {name: [] for name in report["calibrated"]}
        real_results: dict[str, list[dict]] = {name: [] for name in report["calibrated"]}
        picks: list[str] = []
        for _ in range(args.draws):
            chosen_rows = rng.choice(len(rows), size=k, replace=False)
            rest = np.setdiff1d(np.arange(len(rows)), chosen_rows)
            designs = {n: pool[n][chosen_rows, :3] for n in args.bases}
            fits = {n: fit_network_calibration(design, true[chosen_rows]) for n, design in designs.items()}
            pick = choose_network_base(designs, true[chosen_rows])[0]
            picks.append(pick)
            for name in report["calibrated"]:
                base = pick if name == CHOSEN else name
                results[name].append(scored(fits[base], pool[base][rest], true[rest]))
                if real is not None:
                    real_results[name].append(scored(fits[base], real[2][base], real[1]))
        for name in report["calibrated"]:
            entry: dict = {"pool": summarise(results[name])}
            if real is not None:
                entry["realworld"] = summarise(real_results[name])
            if name == CHOSEN:
                entry["chosen_share"] = {n: picks.count(n) / args.draws for n in args.bases}
            report["calibrated"][name][str(k)] = entry
        shares = ", ".join(f"{n} {100 * picks.count(n) / args.draws:.0f} %" for n in args.bases)
        mapes = ", ".join(f"{n} {report['calibrated'][n][str(k)]['pool']['mape'][0]:.1f} %" for n in report["calibrated"])
        print(f"k={k}: MAPE {mapes}; chosen: {shares}")
    report["seconds"] = time.time() - started
    write_report(args.out, report, markdown(report))


def _cell(summary: dict[str, list[float]], key: str) -> str:
    mean, std = summary[key]
    return f"{mean:.1f} ± {std:.1f}"


def markdown(report: dict) -> str:
    cpu = report["target_cpu"]
    real = any("realworld" in z for z in report["zero_shot"].values())
    lines = [
        "# Which shipped predictor to calibrate a new CPU from",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}` ({report['seconds']:.0f} s).",
        "",
        f"Target: `{report['target']}`, measured on {cpu.get('cpu', '?')} ({cpu.get('cpu_id', '?')}), onnxruntime "
        f"{cpu.get('onnxruntime', '?')}: {report['networks']} of its networks lie in every base's test split (no base "
        f"trained on them or chose a checkpoint with them). Bases: {'; '.join(report['bases'].values())}. Each k: "
        f"{report['draws']} random draws of k networks calibrate every base with the shipped `auto` map; `{CHOSEN}` "
        "keeps, per draw, the base whose one-factor fit has the lowest leave-one-out error on those k networks (what "
        "`archcast calibrate` does when no `--base` is named). The other networks"
        + (", and the published classifiers measured on that CPU," if real else "")
        + " are predicted. Mean ± std over draws.",
        "",
        "| base | measured networks | MAPE % | Acc(10 %) | Spearman | within ±2σ % | "
        + ("real-world MAPE % | real-world Acc(10 %) | " if real else "")
        + "chosen (share of draws) |",
        "|---|---|---|---|---|---|" + ("---|---|" if real else "") + "---|",
    ]
    for name, zero in report["zero_shot"].items():
        cells = f"| {name} | 0 | {zero['pool']['mape']:.1f} | {zero['pool']['acc10']:.1f} | {zero['pool']['spearman']:.3f} | |"
        if real:
            cells += f" {zero['realworld']['mape']:.1f} | {zero['realworld']['acc10']:.1f} |"
        lines.append(cells + " |")
    for name, sizes in report["calibrated"].items():
        for k, entry in sizes.items():
            pool = entry["pool"]
            cells = (
                f"| {'**' + name + '**' if name == CHOSEN else name} | {k} | {_cell(pool, 'mape')} | "
                f"{_cell(pool, 'acc10')} | {pool['spearman'][0]:.3f} | {_cell(pool, 'within_2std')} |"
            )
            if real:
                cells += f" {_cell(entry['realworld'], 'mape')} | {_cell(entry['realworld'], 'acc10')} |"
            shares = entry.get("chosen_share")
            cells += " " + (", ".join(f"{n} {100 * s:.0f} %" for n, s in shares.items() if s) if shares else "") + " |"
            lines.append(cells)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
