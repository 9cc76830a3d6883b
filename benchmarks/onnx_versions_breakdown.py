"""Where two shipped versions of a whole-network predictor part on the same networks, op category by op category.

    python -m benchmarks.onnx_versions_breakdown --name cpu-ort-1t-epyc-v1 --revs 69cb61d HEAD --networks decoder \
        --measured-from benchmarks/results/onnx_decoder_epyc_v1110.json --out benchmarks/results/onnx_versions_breakdown_decoder

Each version's ONNX and card are read from git at a revision (as ``benchmarks.onnx_latency_versions`` does). The
networks are one of ``benchmarks.onnx_out_of_scope``'s sets, rebuilt here; each version's prediction is split into op
categories by its own per-node shares (``service.breakdown``, nodes fused at run time counted in their kernel), as
``benchmarks.onnx_lofo_breakdown`` does. With ``--measured-from`` (that set's report from a measuring sitting), the
measured latency brought to the labels' speed is shown beside them. Also per network: the weights it reads on every
run (``model.network_tokenizer.network_weights``, float32) and the largest such figure in ``--data``, the range a
predictor trained there has seen. No measurement; about 2 min for the decoder set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.machine import describe_machine
from benchmarks.onnx_latency_versions import CARD, MODEL, git_bytes
from benchmarks.onnx_lofo_breakdown import GROUPS, reference_shares
from benchmarks.onnx_out_of_scope import NETWORK_SETS
from model.network_tokenizer import network_weights
from model.onnx_graph import ParseOptions, parse_onnx
from service.predictor import load_registry
from training.latency_data import load_latency_dataset

BYTES_PER_WEIGHT = 4  # float32


def load_version(name: str, rev: str, directory: Path):  # noqa: ANN201 - service.predictor's network predictor
    """The predictor ``name`` as committed at ``rev``, loaded through the service's own registry."""
    for pattern in (CARD, MODEL):
        path = Path(pattern.format(name=name))
        (directory / path.name).write_bytes(git_bytes(rev, str(path)))
    return load_registry(directory, providers="cpu").networks[name]


def weights_mb(graph) -> float:  # noqa: ANN001 - a model.onnx_graph.NetworkGraph
    """The weights (MB, float32) the network reads in full on every run."""
    return network_weights(graph) * BYTES_PER_WEIGHT / 1e6


def largest_weights_mb(data: Path) -> dict[str, float]:
    """Per family of ``data``, the most weights (MB) any of its networks reads on every run."""
    dataset = load_latency_dataset(data, progress=False)
    out: dict[str, float] = {}
    for graph, family in zip(dataset.graphs, dataset.families, strict=True):
        out[str(family)] = max(out.get(str(family), 0.0), weights_mb(graph))
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="cpu-ort-1t-epyc-v1")
    parser.add_argument("--revs", nargs=2, required=True, help="the two git revisions holding the versions")
    parser.add_argument("--networks", choices=sorted(NETWORK_SETS), default="decoder")
    parser.add_argument("--measured-from", type=Path, default=None, help="that set's report from a measuring sitting")
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t-epyc-23"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_versions_breakdown"))
    args = parser.parse_args(argv)

    measured = {}
    if args.measured_from:
        rows = json.loads(args.measured_from.read_text())["networks"]
        measured = {r["network"]: r.get("at_label_speed_ms", r["measured_ms"]) for r in rows}
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        versions = [load_version(args.name, rev, Path(d)) for rev, d in zip(args.revs, (first, second), strict=True)]
        labels = [f"{v.card.version} ({rev})" for v, rev in zip(versions, args.revs, strict=True)]
        networks = []
        for network, (description, onnx_bytes) in NETWORK_SETS[args.networks]().items():
            graph = parse_onnx(onnx_bytes, ParseOptions())
            row = {"network": network, "description": description, "nodes": graph.n,
                   "weights_mb": weights_mb(graph),
                   "measured_ms": measured.get(network), "versions": {}}  # fmt: skip
            for label, version in zip(labels, versions, strict=True):
                shares, ms = reference_shares(version, graph)
                row["versions"][label] = {"ms": ms, "categories_ms": {g: shares[g] * ms for g in GROUPS}}
            networks.append(row)
            print(network, json.dumps({k: round(v["ms"], 2) for k, v in row["versions"].items()}), flush=True)
    report = {
        "command": "python -m benchmarks.onnx_versions_breakdown " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "versions": labels,
        "networks": networks,
        "largest_weights_mb_in_data": largest_weights_mb(args.data),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    first, second = report["versions"]
    lines = [
        "# Two predictor versions, op category by op category",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`.",
        "",
        "Predicted ms per network and per op category (each version's own per-node shares, `service.breakdown`); "
        "measured = the sitting's measurement brought to the labels' speed, where given. Categories under 0.2 ms in "
        "both versions are left out.",
        "",
        f"| network | nodes | weights read per run (MB) | measured ms | {first} ms | {second} ms "
        f"| category: {first} -> {second} ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["networks"]:
        a, b = (row["versions"][v] for v in report["versions"])
        moved = ", ".join(
            f"{g} {a['categories_ms'][g]:.2f} -> {b['categories_ms'][g]:.2f}"
            for g in a["categories_ms"]
            if max(a["categories_ms"][g], b["categories_ms"][g]) >= 0.2
        )
        measured = f"{row['measured_ms']:.2f}" if row["measured_ms"] else ""
        lines.append(
            f"| {row['network']} | {row['nodes']} | {row['weights_mb']:.0f} | {measured} | {a['ms']:.2f} | "
            f"{b['ms']:.2f} | {moved} |"
        )
    largest = ", ".join(f"{f} {mb:.0f}" for f, mb in report["largest_weights_mb_in_data"].items())
    lines += ["", f"Largest weights read per run in the training data, per family (MB): {largest}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
