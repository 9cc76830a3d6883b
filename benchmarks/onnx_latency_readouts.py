"""Which whole-network readout generalises to unseen families? Chosen on held-out *validation families* only.

    python -m benchmarks.onnx_latency_readouts --seeds 0

Runs ``benchmarks.onnx_latency --protocol lofo --val-family`` once per readout (runs resume and are reused), so
every held-out test family gets one other whole family as validation. The readout with the lowest mean validation
MAPE is the choice; the test families' MAPE is reported next to it for every readout but decides nothing.
Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import onnx_latency
from benchmarks.machine import describe_machine
from benchmarks.report import provenance_lines, write_report
from training.whole_network import READOUTS


def per_family(report: dict) -> dict[str, dict]:
    """family -> mean validation MAPE (on its validation family), test MAPE and Acc(10 %), over the report's seeds."""
    out: dict[str, dict[str, list]] = {}
    for job in report["runs"]:
        family = job["protocol"].removeprefix("lofo:")
        entry = out.setdefault(family, {"val_mape": [], "test_mape": [], "test_acc10": [], "val_family": []})
        entry["val_mape"].append(job["archcast_val_mape"])
        entry["test_mape"].append(job["metrics"]["archcast"]["mape"])
        entry["test_acc10"].append(job["metrics"]["archcast"]["acc10"])
        entry["val_family"].append(job["split"].split("_valfam_")[1].rsplit("_seed", 1)[0])
    return {
        f: {
            "val_mape": float(np.mean(e["val_mape"])),
            "test_mape": float(np.mean(e["test_mape"])),
            "test_mape_std": float(np.std(e["test_mape"])),
            "test_acc10": float(np.mean(e["test_acc10"])),
            "val_families": e["val_family"],
        }
        for f, e in sorted(out.items())
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--runs", type=Path, default=Path("runs/lofo_screen"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency_readouts"))
    parser.add_argument("--readouts", nargs="+", choices=READOUTS, default=list(READOUTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lofo-epochs", type=int, default=10)
    args = parser.parse_args(argv)

    started = time.time()
    results = {}
    for readout in args.readouts:
        out = args.runs / f"report_{readout}_seeds{'_'.join(map(str, args.seeds))}"
        onnx_latency.main(
            ["--data", str(args.data), "--protocol", "lofo", "--val-family", "--readout", readout,
             "--runs", str(args.runs / readout), "--out", str(out), "--lofo-epochs", str(args.lofo_epochs),
             "--seeds", *map(str, args.seeds)]
        )  # fmt: skip
        report = json.loads(out.with_suffix(".json").read_text())
        families = per_family(report)
        results[readout] = {
            "families": families,
            "mean_val_mape": float(np.mean([f["val_mape"] for f in families.values()])),
            "mean_test_mape": float(np.mean([f["test_mape"] for f in families.values()])),
            "mean_test_acc10": float(np.mean([f["test_acc10"] for f in families.values()])),
            "baselines_mean_test_mape": {m: v["mape"] for m, v in report["lofo_average"].items() if m != "archcast"},
            "train_seconds": sum(j["archcast_train_seconds"] for j in report["runs"]),
        }
    chosen = min(results, key=lambda r: results[r]["mean_val_mape"])
    summary = {
        "command": "python -m benchmarks.onnx_latency_readouts " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "seeds": args.seeds,
        "lofo_epochs": args.lofo_epochs,
        "chosen_on_validation": chosen,
        "readouts": results,
        "seconds": time.time() - started,
    }
    write_report(args.out, summary, markdown(summary))


def markdown(summary: dict) -> str:
    results = summary["readouts"]
    readouts = list(results)
    lines = [
        "# Whole-network readouts, leave-one-family-out, chosen on validation families",
        "",
        f"Machine: {summary['machine']}. Command: `{summary['command']}`. Seeds {summary['seeds']}, "
        f"{summary['lofo_epochs']} epochs per split, 1 thread per run; this invocation "
        f"{summary['seconds'] / 60:.0f} min (reused runs count as zero).",
        "",
        *provenance_lines(summary, "the dataset"),
        "Each held-out test family gets one other whole family as validation (drawn per seed and test family); the "
        "checkpoint and the readout are chosen on the validation family's MAPE. Test MAPE is shown, never used.",
        "",
        "| readout | mean validation MAPE % | mean test MAPE % | mean test Acc(10 %) % | ArchCast training min |",
        "|---|---|---|---|---|",
    ]
    for r in readouts:
        mark = " (chosen)" if r == summary["chosen_on_validation"] else ""
        s = results[r]
        lines.append(
            f"| {r}{mark} | {s['mean_val_mape']:.2f} | {s['mean_test_mape']:.2f} | {s['mean_test_acc10']:.1f} | "
            f"{s['train_seconds'] / 60:.0f} |"
        )
    base = results[readouts[0]]["baselines_mean_test_mape"]
    lines += [
        "",
        "Baselines on the same test families (fitted on train + validation): "
        + ", ".join(f"{m} {v:.1f} %" for m, v in base.items())
        + ".",
        "",
        "Per test family: validation MAPE / test MAPE (validation family in brackets):",
        "",
        "| test family | " + " | ".join(readouts) + " |",
        "|---|" + "---|" * len(readouts),
    ]
    for family in results[readouts[0]]["families"]:
        cells = []
        for r in readouts:
            f = results[r]["families"].get(family)
            cells.append(f"{f['val_mape']:.1f} / {f['test_mape']:.1f}" if f else "-")
        val_families = ", ".join(results[readouts[0]]["families"][family]["val_families"])
        lines.append(f"| {family} ({val_families}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
