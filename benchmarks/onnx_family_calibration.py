"""A family the predictor never saw, then k measured networks of it: what `archcast calibrate` buys.

    python -m benchmarks.onnx_family_calibration --runs runs/lofo20_v7 --out benchmarks/results/onnx_family_calibration

Reads the leave-one-family-out runs of ``benchmarks.onnx_latency --protocol lofo --runs DIR`` (each split's
``result.json`` keeps its held-out networks' ids and predictions) and the dataset's measured latencies and costs.
For every split, k in ``--ks`` and ``--draws`` seeded draws: k networks of the held-out family play the user's
measurements, ``model.calibration.fit_network_calibration`` (method ``auto``, the map `archcast calibrate` fits) maps
the split's predictions onto them, and the family's other networks are scored before and after the map. Nothing is
retrained; the leave-one-family-out predictions are those of the report the runs belong to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.report import write_report
from model.calibration import fit_network_calibration, network_design
from training.latency_metrics import latency_metrics
from training.netgen.files import latest_records


def measured_networks(data: Path) -> dict[int, tuple[float, float, float]]:
    """id -> (latency ms, MACs, memory bytes): each network's current labelled record in the dataset."""
    return {i: (r["latency_ms"], r["totals"]["macs"], r["totals"]["memory_bytes"]) for i, r in latest_records(data).items()}


def split_runs(runs: Path) -> list[dict]:
    found = []
    for path in sorted(runs.glob("leave_out_*/result.json")):
        result = json.loads(path.read_text())
        family = result["split"].removeprefix("leave_out_").split("_valfam_")[0]
        found.append({"family": family, "seed": result["config"]["seed"], "ids": result["test_ids"],
                      "pred_ms": np.asarray(result["test_pred_ms"], dtype=np.float64)})
    if not found:
        raise SystemExit(f"no leave_out_*/result.json under {runs}")
    return found


def score(run: dict, networks: dict, k: int, draws: int, methods: list[str]) -> dict[str, float]:
    """Mean over draws of MAPE / Acc(10 %) on the family's unmeasured networks, as predicted (``before``) and
    calibrated by each method (every method sees the same draws); ``<method>_scale_share``: how often it chose one
    factor."""
    truth = np.array([networks[i][0] for i in run["ids"]])
    design = network_design(run["pred_ms"], [networks[i][1] for i in run["ids"]], [networks[i][2] for i in run["ids"]])
    rng = np.random.default_rng(zlib.crc32(f"{run['family']}/{run['seed']}/{k}".encode()))
    values: dict[str, list[float]] = defaultdict(list)
    for _ in range(draws):
        chosen = rng.choice(len(truth), size=k, replace=False)
        rest = np.setdiff1d(np.arange(len(truth)), chosen)
        for method in ["before", *methods]:
            if method == "before":
                predicted = run["pred_ms"][rest]
            else:
                calibration = fit_network_calibration(design[chosen], truth[chosen], method)
                predicted = calibration.predict(design[rest])
                values[f"{method}_scale_share"].append(float(calibration.method == "scale"))
            metrics = latency_metrics(predicted, truth[rest])
            values[f"{method}_mape"].append(metrics["mape"])
            values[f"{method}_acc10"].append(metrics["acc10"])
    return {name: float(np.mean(v)) for name, v in values.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--runs", type=Path, required=True, help="the --runs folder of a leave-one-family-out run")
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=["auto", "scale", "single"], choices=["auto", "scale", "single", "ridge"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_family_calibration"))
    args = parser.parse_args(argv)

    networks = measured_networks(args.data)
    runs = split_runs(args.runs)
    table: dict[str, dict[str, dict[str, float]]] = {}  # k -> family -> metric -> mean over seeds
    for k in args.ks:
        per_family: dict[str, list[dict]] = defaultdict(list)
        for run in runs:
            per_family[run["family"]].append(score(run, networks, k, args.draws, args.methods))
        table[str(k)] = {
            family: {name: statistics.mean(s[name] for s in scores) for name in scores[0]}
            for family, scores in sorted(per_family.items())
        }
    command = "python -m benchmarks.onnx_family_calibration " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "machine": describe_machine(),
        "command": command.strip(),
        "data": str(args.data),
        "runs": str(args.runs),
        "draws": args.draws,
        "methods": args.methods,
        "seeds": sorted({run["seed"] for run in runs}),
        "splits": len(runs),
        "table": table,
    }
    write_report(args.out, report, markdown(report))


def average(rows: dict[str, dict[str, float]], name: str, skip: tuple[str, ...] = ()) -> float:
    return statistics.mean(row[name] for family, row in rows.items() if family not in skip)


def markdown(report: dict) -> str:
    ks, methods = list(report["table"]), report["methods"]
    lines = [
        "# An unseen family plus k of its networks measured: `archcast calibrate` on leave-one-family-out predictions",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Dataset `{report['data']}`; leave-one-family-out"
        f" runs in `{report['runs']}` ({report['splits']} splits, seeds {report['seeds']}). For each split and k,"
        f" {report['draws']} seeded draws of k networks of the held-out family are the measurements"
        " (`model.calibration.fit_network_calibration`, as `archcast calibrate` fits them); MAPE and Acc(10 %) on the"
        " family's other networks, mean over draws, then over seeds, then over families. `before` = the"
        " leave-one-family-out prediction on the same networks. Methods: `scale` = one factor on the predicted latency;"
        " `single` = a factor and a slope (log-log); `ridge` = also log MACs and log memory traffic; `auto` (the"
        " default) = scale below 10 models, then the lowest leave-one-out error of scale and single (from 20 models on"
        " also of single on MACs or memory, and ridge).",
        "",
        "## Average MAPE % over the families (Acc(10 %) % in brackets)",
        "",
        "| k | " + " | ".join(["before", *methods]) + " | without rnn: " + " | ".join(["before", *methods]) + " |",
        "|---|" + "---|" * (2 * len(methods) + 2),
    ]
    for k in ks:
        rows = report["table"][k]
        cells = [f"{average(rows, f'{m}_mape'):.1f} ({average(rows, f'{m}_acc10'):.0f})" for m in ["before", *methods]]
        cells += [f"{average(rows, f'{m}_mape', ('rnn',)):.1f}" for m in ["before", *methods]]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    if "auto" in methods:
        shares = ", ".join(f"k = {k}: {100 * average(report['table'][k], 'auto_scale_share'):.0f} %" for k in ks)
        lines += ["", f"Draws where `auto` chose one factor (`scale`): {shares}."]
    shown = methods[0]
    lines += [
        "",
        f"## Per family: MAPE % before, and after `{shown}` with k measured networks",
        "",
        "| held-out family | before | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    first = report["table"][ks[0]]
    for family in first:
        cells = [f"{report['table'][k][family][f'{shown}_mape']:.1f}" for k in ks]
        lines.append(f"| {family} | {first[family]['before_mape']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", f"`before` is scored on the k = {ks[0]} draws' unmeasured networks; other k differ by sampling only."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
