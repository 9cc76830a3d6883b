"""Where the time goes: the predictor's breakdown (``?breakdown=true``) against onnxruntime's own profiler.

    python -m benchmarks.onnx_breakdown [--predictor cpu-ort-1t-epyc-v1] [--runs 20] [--unusual]
        [--out benchmarks/results/onnx_breakdown]

Networks: the 19 published classifiers of ``benchmarks.onnx_realworld`` (with ``--unusual`` also the 15 networks of
``benchmarks.onnx_unusual``). Each is run on this machine as the dataset measures it (1 intra-op thread, all graph
optimisations) with onnxruntime's profiler on: 3 warm-up runs, then ``--runs`` profiled runs; every kernel's time is
summed per op category (onnxruntime's ``op_name``: a fused ``Conv`` + ``Relu`` counts as convolution, its layout
reorders as data movement). The predictor's breakdown is summed over the same categories as the service reports it,
the nodes onnxruntime fuses into a convolution or matrix product counted in that kernel
(``service.breakdown.runtime_roots``); the report also gives the figures with every node in its own op type.
Compared: each category's share of the network's time, predicted and profiled. Shares, not milliseconds, so the
profiled CPU need not be the predictor's device; the profiler adds a few microseconds per kernel, which inflates the
shares of small ops a little. About 3 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.onnx_realworld import canonical_networks
from model.card import PREDICTOR_DIR
from model.network_tokenizer import graph_for_version
from model.onnx_graph import ParseOptions, parse_onnx
from service.breakdown import breakdown, breakdown_session, node_shares
from service.predictor import load_registry
from training.netgen.export import build_network, export_onnx_bytes
from training.netgen.measure import make_session, session_feed

CATEGORIES: dict[str, tuple[str, ...]] = {
    "convolution": ("Conv", "FusedConv", "ConvTranspose", "NchwcConv", "QLinearConv", "ConvInteger"),
    "matrix product": ("MatMul", "Gemm", "FusedGemm", "FusedMatMul", "Einsum", "MatMulInteger", "QLinearMatMul"),
    "normalisation": ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "SkipLayerNormalization",
                      "GroupNorm", "SimplifiedLayerNormalization", "LpNormalization"),
    "pooling": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "NchwcMaxPool", "NchwcAveragePool",
                "NchwcGlobalAveragePool", "NchwcGlobalMaxPool"),
    "softmax": ("Softmax", "LogSoftmax"),
    "data movement": ("Transpose", "Reshape", "Concat", "Split", "Slice", "Gather", "Flatten", "Squeeze", "Unsqueeze",
                      "Expand", "Resize", "NchwcUpsample", "Pad", "Identity", "Shape", "ReorderInput", "ReorderOutput",
                      "DepthToSpace", "SpaceToDepth", "Tile", "ConstantOfShape", "Range", "Cast", "ScatterND"),
    "reduction": ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ArgMax"),
    "recurrent": ("LSTM", "GRU", "RNN"),
}  # fmt: skip
OTHER = "elementwise and other"  # activations, arithmetic, comparisons, anything not listed above
CATEGORY_OF = {op: category for category, ops in CATEGORIES.items() for op in ops}
ORDER = (*CATEGORIES, OTHER)
WARMUP = 3


def category(op_type: str) -> str:
    return CATEGORY_OF.get(op_type, OTHER)


def profiled_shares(data: bytes, runs: int) -> tuple[dict[str, float], float]:
    """Each category's share of the summed kernel time over ``runs`` profiled runs, and the median kernel ms per run;
    the session has the measurer's settings (``training.netgen.measure.make_session``) with the profiler on."""
    with tempfile.TemporaryDirectory(prefix="archcast-profile-") as folder:
        profiled = make_session(data, profile_prefix=os.path.join(folder, "run"))
        feed = session_feed(profiled)
        for _ in range(WARMUP + runs):
            profiled.run(None, feed)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_run = len(kernels) // (WARMUP + runs)
    kernels = kernels[WARMUP * per_run :]
    totals: dict[str, float] = defaultdict(float)
    for event in kernels:
        totals[category(event["args"]["op_name"])] += float(event["dur"])
    whole = sum(totals.values())
    run_ms = [sum(float(e["dur"]) for e in kernels[i * per_run : (i + 1) * per_run]) / 1e3 for i in range(runs)]
    return {c: totals.get(c, 0.0) / whole for c in ORDER}, float(np.median(run_ms))


def predicted_shares(predictor, data: bytes) -> tuple[dict[str, float], dict[str, float], float]:
    """Category shares as the service reports them (fused nodes in their kernel's row), the same with every node
    in its own op type's row, and the predicted ms."""
    graph = parse_onnx(data, ParseOptions())
    feeds = predictor.graph_feeds(graph)
    value, _ = predictor.run(graph, feeds)
    kernels: dict[str, float] = defaultdict(float)
    for row in breakdown(predictor, graph, value, feeds)["by_op_type"]:
        kernels[category(row["op_type"])] += row["share"]
    read = graph_for_version(graph, predictor.card.tokenizer)
    shares, _ = node_shares(breakdown_session(predictor), feeds, read.n)
    nodes: dict[str, float] = defaultdict(float)
    for node, share in zip(read.nodes, shares, strict=True):
        nodes[category(node.op_type)] += float(share)
    return {c: kernels.get(c, 0.0) for c in ORDER}, {c: nodes.get(c, 0.0) for c in ORDER}, value


def networks(unusual: bool) -> dict[str, tuple[str, bytes]]:
    """Name -> (set, ONNX bytes): the published classifiers, and with ``unusual`` the networks unlike any training
    network (the fusion rule of ``runtime_roots`` was written looking at the classifiers' profiles only)."""
    out = {
        name: ("classifiers", export_onnx_bytes(build_network(family, spec), 224))
        for family, name, spec in canonical_networks()
    }
    if unusual:
        from benchmarks.onnx_unusual import UNUSUAL

        out.update({name: ("unusual", make()) for name, (_, make) in UNUSUAL.items()})
    return out


def run(predictor_name: str, runs: int, unusual: bool, seed: int) -> dict:
    predictor = load_registry(PREDICTOR_DIR, providers="cpu").networks[predictor_name]
    models = networks(unusual)
    order = list(models)
    random.Random(seed).shuffle(order)
    rows = {}
    for i, name in enumerate(order, 1):
        subset, data = models[name]
        measured, kernel_ms = profiled_shares(data, runs)
        predicted, unfused, value = predicted_shares(predictor, data)
        gap = 0.5 * sum(abs(measured[c] - predicted[c]) for c in ORDER)  # total variation distance, 0..1
        gap_unfused = 0.5 * sum(abs(measured[c] - unfused[c]) for c in ORDER)
        rows[name] = {"set": subset, "measured": measured, "predicted": predicted, "unfused": unfused, "kernel_ms": kernel_ms,
                      "predicted_ms": value, "total_variation": gap, "total_variation_unfused": gap_unfused}  # fmt: skip
        print(f"[{i}/{len(order)}] {name}: kernels {kernel_ms:.1f} ms, predicted {value:.1f} ms, shares apart "
              f"{100 * gap:.1f} % ({100 * gap_unfused:.1f} % node by node)")  # fmt: skip
    return {"predictor": predictor_name, "version": predictor.card.version, "device": predictor.device, "networks": rows}


def markdown(result: dict, meta: dict) -> str:
    rows = result["networks"]
    gaps = [r["total_variation"] for r in rows.values()]
    unfused = [r["total_variation_unfused"] for r in rows.values()]
    top_agrees = sum(max(ORDER, key=lambda c, r=r: r["measured"][c]) == max(ORDER, key=lambda c, r=r: r["predicted"][c])
                     for r in rows.values())  # fmt: skip
    lines = [
        "# Where the time goes: the predictor's breakdown against onnxruntime's profiler",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Predictor `{result['predictor']}` "
        f"{result['version']} (device `{result['device']}`). Profiled here with 1 intra-op thread, all graph "
        f"optimisations, {meta['warmup']} warm-up and {meta['runs']} profiled runs per network, networks in a "
        "shuffled order, nothing else running. Shares of each network's time per op category.",
        "",
        f"Over {len(rows)} networks the predicted and profiled category shares are a median "
        f"**{100 * float(np.median(gaps)):.1f} %** apart (total variation distance: the share of the time that would "
        f"have to move between categories; max {100 * max(gaps):.1f} %). The largest category agrees on "
        f"{top_agrees} of {len(rows)}. Reported as the service does, with the nodes onnxruntime fuses into a "
        "convolution or matrix product counted in that kernel (`service.breakdown.runtime_roots`); with every node in "
        f"its own op type instead, the median is {100 * float(np.median(unfused)):.1f} % (max "
        f"{100 * max(unfused):.1f} %). The fusion rule was written after looking at the classifiers' profiles, so the "
        "gain on them describes onnxruntime rather than tests the rule; the unusual networks (`--unusual`) were not "
        "looked at before.",
        "",
        "Mean |predicted - profiled| share per category, points (mean profiled share in brackets):",
        "",
        "| category | mean abs. difference | mean profiled share | mean predicted share |",
        "|---|---|---|---|",
    ]
    for c in ORDER:
        diff = np.mean([abs(r["measured"][c] - r["predicted"][c]) for r in rows.values()])
        lines.append(f"| {c} | {100 * diff:.1f} | {100 * np.mean([r['measured'][c] for r in rows.values()]):.1f} | "
                     f"{100 * np.mean([r['predicted'][c] for r in rows.values()]):.1f} |")  # fmt: skip
    sets = sorted({r["set"] for r in rows.values()})
    if len(sets) > 1:
        lines += ["", "| networks | count | median apart, as reported | node by node |", "|---|---|---|---|"]
        for subset in sets:
            part = [r for r in rows.values() if r["set"] == subset]
            lines.append(f"| {subset} | {len(part)} | {100 * np.median([r['total_variation'] for r in part]):.1f} % | "
                         f"{100 * np.median([r['total_variation_unfused'] for r in part]):.1f} % |")  # fmt: skip
    lines += [
        "",
        "## Per network (profiled / predicted share, %; the three largest profiled categories)",
        "",
        "| network | set | kernel ms here | predicted ms | apart | node by node | largest | second | third |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["total_variation"]):
        top = sorted(ORDER, key=lambda c, r=r: -r["measured"][c])[:3]
        cells = [f"{c} {100 * r['measured'][c]:.0f} / {100 * r['predicted'][c]:.0f}" for c in top]
        lines.append(f"| {name} | {r['set']} | {r['kernel_ms']:.1f} | {r['predicted_ms']:.1f} | "
                     f"{100 * r['total_variation']:.1f} % | {100 * r['total_variation_unfused']:.1f} % | "
                     + " | ".join(cells) + " |")  # fmt: skip
    lines += ["", f"![predicted against profiled shares]({meta['figure']})", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    for c in ORDER:
        x = [100 * r["measured"][c] for r in result["networks"].values()]
        y = [100 * r["predicted"][c] for r in result["networks"].values()]
        ax.scatter(x, y, s=14, label=c, alpha=0.8)
    ax.plot([0, 100], [0, 100], color="black", lw=0.8)
    ax.set_xlabel("profiled share of the network's time, % (onnxruntime profiler)")
    ax.set_ylabel("predicted share, % (?breakdown=true)")
    ax.set_title(f"{result['predictor']}: one point per network and op category", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="cpu-ort-1t-epyc-v1")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--unusual", action="store_true", help="also the 15 networks of benchmarks.onnx_unusual")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_breakdown"))
    args = parser.parse_args()
    result = run(args.predictor, args.runs, args.unusual, args.seed)
    command = "python -m benchmarks.onnx_breakdown" + (f" --predictor {args.predictor}" if args.predictor else "")
    command += " --unusual" * args.unusual + f" --runs {args.runs} --out {args.out}"
    meta = {"machine": describe_machine(), "command": command, "runs": args.runs, "warmup": WARMUP,
            "figure": args.out.with_suffix(".png").name}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    text = markdown(result, meta)
    args.out.with_suffix(".md").write_text(text)
    plot(result, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
