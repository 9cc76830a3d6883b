"""Shipped versions of a whole-network predictor compared on networks none of them trained on.

    python -m benchmarks.onnx_latency_versions --revs 4e644c2 47db3f5 HEAD --out benchmarks/results/onnx_latency_versions

Each version's ONNX and card are read from git at a revision. A version trained on the first ``training.networks``
networks of the dataset (its card), split in-domain with seed 0 on those; the dataset has grown since, so today's
split puts some of a version's training networks into validation or test. Only rows of today's validation and test
parts that no compared version trained on are scored, per family group, so the comparison is clean for every version.
With ``--aligned-to`` (a dataset of the same networks measured on another device, as ``cpu-ort-1t-epyc-v1`` is
trained), the split places each network as that dataset's in-domain split does, for today's split and every version's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from training.latency_data import aligned_in_domain_split, in_domain_split, load_latency_dataset, trained_ids_below
from training.latency_metrics import latency_metrics
from training.latency_ship import predict_onnx_rows
from training.netgen.registry import EXTENSION_FAMILY_MODULES

CARD = "model/predictors/{name}.card.json"
MODEL = "model/predictors/{name}.onnx"


def git_bytes(rev: str, path: str) -> bytes:
    return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True).stdout


def groups(families: np.ndarray) -> dict[str, np.ndarray]:
    later = EXTENSION_FAMILY_MODULES
    out = {"classifier families": ~np.isin(families, later)}
    out |= {name: families == name for name in later if (families == name).any()}
    return out | {"all": np.ones(len(families), bool)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--name", default="cpu-ort-1t-v1")
    parser.add_argument("--revs", nargs="+", required=True, help="git revisions holding the versions to compare")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency_versions"))
    parser.add_argument("--aligned-to", type=Path, default=None, help="dataset whose in-domain split placed the networks")
    args = parser.parse_args(argv)

    data = load_latency_dataset(args.data, progress=False)
    source = load_latency_dataset(args.aligned_to, progress=False) if args.aligned_to else None
    split = in_domain_split(data.families, 0) if source is None else aligned_in_domain_split(data, source)
    versions, trained = [], set()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for rev in args.revs:
        card = json.loads(git_bytes(rev, CARD.format(name=args.name)))
        below = data.ids < trained_ids_below(card["training"])
        if source is None:
            its_split = in_domain_split(data.families[below], 0)
            trained |= set(data.ids[below][its_split.train].tolist())
        else:  # placed network by network: a network's part does not depend on how many came after it
            trained |= set(data.ids[split.train][below[split.train]].tolist())
        session = ort.InferenceSession(git_bytes(rev, MODEL.format(name=args.name)), options, ["CPUExecutionProvider"])
        versions.append((f"{card['version']} ({rev})", trained_ids_below(card["training"]), session, card["tokenizer"]))
    report = {
        "command": "python -m benchmarks.onnx_latency_versions " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "versions": [{"version": v, "trained_on_first": n} for v, n, _, _ in versions],
        "parts": {},
    }
    for part in ("val", "test"):
        rows = np.array([r for r in getattr(split, part) if int(data.ids[r]) not in trained])
        preds = {v: predict_onnx_rows(session, data, rows, tokenizer)[:, 0] for v, _, session, tokenizer in versions}
        true, families = data.latency_ms[rows], data.families[rows]
        report["parts"][part] = {
            label: {"n": int(mask.sum()), **{v: latency_metrics(p[mask], true[mask]) for v, p in preds.items()}}
            for label, mask in groups(families).items()
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    names = [v["version"] for v in report["versions"]]
    lines = [
        "# Predictor versions on networks none of them trained on",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Versions (trained on the dataset's networks with ids "
        "below N): " + ", ".join(f"{v['version']} N={v['trained_on_first']}" for v in report["versions"]) + ".",
        "",
        "Rows: today's in-domain split (seed 0) minus every network any version trained on. Validation decides which "
        "version ships; test is reported.",
    ]
    for part, table in report["parts"].items():
        lines += ["", f"## {part} (MAPE % / Acc(10 %) %)", "", "| networks | n | " + " | ".join(names) + " |"]
        lines.append("|---|---|" + "---|" * len(names))
        for label, entry in table.items():
            cells = " | ".join(f"{entry[v]['mape']:.2f} / {entry[v]['acc10']:.0f}" for v in names)
            lines.append(f"| {label} | {entry['n']} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
