"""Channel alignment: why the whole-network tokenizer carries divisibility flags, measured two ways.

    python -m benchmarks.onnx_latency_alignment --before runs/epyc6300 --after runs/align

1. ``micro`` (needs a quiet machine, ~1 min): single-thread onnxruntime latency of small conv stacks whose only
   difference is the channels per group (192 channels, 3x3 grouped conv, groups of 8 ... 64 channels) or the
   channel count of a plain 3x3 conv (96 ... 128). Reported as ms per GMAC relative to the best of its set,
   median of ``--repeats`` interleaved passes (each the minimum of a pass, as the dataset's measurer takes it).
2. ``residuals``: leave-one-family-out predictions of two runs directories of ``benchmarks.onnx_latency``
   (``--before``: a tokenizer without the flags, ``--after``: with them) on the same dataset. Per held-out family:
   MAPE, and the median signed error of the networks with little (< 20 %) and much (>= 50 %) of their MACs in
   convs whose channels per group do not divide by 16 (``model.network_tokenizer.unaligned_conv``); for RegNet
   also per group width.

Writes ``<out>.json``, ``<out>.md`` and ``<out>.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper
from tqdm import tqdm

from benchmarks.machine import describe_machine
from benchmarks.report import write_report
from model.network_tokenizer import GRAPH_FEATURE_NAMES, graph_features
from model.onnx_graph import NetworkGraph
from training.netgen.files import MEASUREMENTS, read_graphs, read_jsonl
from training.netgen.measure import MeasureSettings, measure_pass

GROUP_WIDTHS = (8, 12, 16, 24, 32, 48, 64)
PLAIN_CHANNELS = (96, 100, 104, 112, 120, 128)
UNALIGNED_16 = GRAPH_FEATURE_NAMES.index("share_unaligned_conv_16")  # the tokenizer's own share, not a copy


def conv_stack(channels: int, group_width: int, blocks: int = 4, size: int = 28) -> bytes:
    """``blocks`` x (1x1 conv -> ReLU -> 3x3 conv in groups of ``group_width`` channels -> ReLU), input (1, C, s, s)."""
    rng = np.random.default_rng(0)
    nodes, inits, previous = [], [], "x"
    for b in range(blocks):
        for kind, k, groups in (("pw", 1, 1), ("gc", 3, channels // group_width)):
            name = f"{kind}{b}"
            weight = rng.standard_normal((channels, channels // groups, k, k)).astype(np.float32) * 0.05
            inits.append(helper.make_tensor(f"{name}_w", TensorProto.FLOAT, weight.shape, weight.ravel()))
            pad = k // 2
            nodes.append(
                helper.make_node("Conv", [previous, f"{name}_w"], [name], kernel_shape=[k, k], pads=[pad] * 4, group=groups)
            )
            nodes.append(helper.make_node("Relu", [name], [f"{name}_r"]))
            previous = f"{name}_r"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])
    y = helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "stack", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def stack_macs(channels: int, group_width: int, blocks: int = 4, size: int = 28) -> float:
    return blocks * size * size * (channels * channels + channels * group_width * 9)


def micro(repeats: int, seed: int = 0) -> dict:
    cases = [("grouped", 192, g) for g in GROUP_WIDTHS] + [("plain", c, c) for c in PLAIN_CHANNELS]
    models = {case: conv_stack(case[1], case[2]) for case in cases}
    times: dict[tuple, list[float]] = defaultdict(list)
    order = list(cases)
    for _ in tqdm(range(repeats), desc="micro passes"):
        random.Random(seed + len(times[cases[0]])).shuffle(order)
        for case in order:
            times[case].append(measure_pass(models[case], MeasureSettings()).min_ms)
    rows = []
    for kind in ("grouped", "plain"):
        subset = [c for c in cases if c[0] == kind]
        per_gmac = {c: float(np.median(times[c])) / (stack_macs(c[1], c[2]) / 1e9) for c in subset}
        best = min(per_gmac.values())
        for c in subset:
            rows.append(
                {
                    "kind": kind,
                    "channels": c[1],
                    "group_width": c[2],
                    "median_ms": float(np.median(times[c])),
                    "ms_per_gmac": per_gmac[c],
                    "relative": per_gmac[c] / best,
                    "divides_by_16": c[2] % 16 == 0 and c[1] % 16 == 0,
                }
            )
    return {"repeats": repeats, "rows": rows}


def lofo_residuals(runs: Path, latency: dict[int, float], share: dict[int, float], spec: dict[int, dict]) -> dict:
    by_family: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for result_file in sorted(runs.glob("leave_out_*/result.json")):
        result = json.loads(result_file.read_text())
        family = result["split"].removeprefix("leave_out_").split("_valfam")[0]
        for i, predicted in zip(result["test_ids"], result["test_pred_ms"], strict=True):
            true = latency[int(i)]
            by_family[family]["ape"].append(abs(predicted - true) / true * 100)
            by_family[family]["log_error"].append(float(np.log(predicted / true) * 100))
            by_family[family]["share"].append(share[int(i)])
            by_family[family]["group_width"].append(spec[int(i)].get("group_width"))
    out = {}
    for family, v in sorted(by_family.items()):
        err, s = np.array(v["log_error"]), np.array(v["share"])
        low, high = err[s < 0.2], err[s >= 0.5]
        out[family] = {
            "n": int(len(err)),
            "mape": float(np.mean(v["ape"])),
            "median_error_aligned": float(np.median(low)) if len(low) else None,
            "n_aligned": int(len(low)),
            "median_error_unaligned": float(np.median(high)) if len(high) else None,
            "n_unaligned": int(len(high)),
            "points": [[float(a), float(b)] for a, b in zip(s, err, strict=True)],
        }
        if family == "regnet":
            widths = defaultdict(list)
            for w, e in zip(v["group_width"], err, strict=True):
                widths[int(w)].append(e)
            out[family]["median_error_by_group_width"] = {str(w): float(np.median(e)) for w, e in sorted(widths.items())}
    return out


def markdown(report: dict) -> str:
    lines = [
        "# Channel alignment and whole-network latency",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`.",
        "",
    ]
    if report.get("micro"):
        m = report["micro"]
        lines += [
            f"## Micro-benchmark (onnxruntime CPU, 1 thread; median of {m['repeats']} interleaved passes, each the minimum)",
            "",
            "4 x (1x1 conv, 3x3 conv) at 28 x 28. Relative = ms per GMAC / the best of its set.",
            "",
            "| set | channels | channels per group | ms | ms / GMAC | relative |",
            "|---|---|---|---|---|---|",
        ]
        for r in m["rows"]:
            lines.append(
                f"| {r['kind']} | {r['channels']} | {r['group_width']} | "
                f"{r['median_ms']:.3f} | {r['ms_per_gmac']:.2f} | {r['relative']:.2f} |"
            )
        lines.append("")
    for label in ("before", "after"):
        if not report.get(label):
            continue
        res = report[label]
        lines += [
            f"## Leave-one-family-out, {label} (`{report[label + '_runs']}`)",
            "",
            "Median signed error % (log ratio predicted / measured) of networks with < 20 % and >= 50 % of their MACs in "
            "convs whose channels per group do not divide by 16.",
            "",
            "| held-out family | MAPE % | median error, aligned (n) | median error, unaligned (n) |",
            "|---|---|---|---|",
        ]
        for family, r in res.items():
            a = "-" if r["median_error_aligned"] is None else f"{r['median_error_aligned']:+.1f} ({r['n_aligned']})"
            u = "-" if r["median_error_unaligned"] is None else f"{r['median_error_unaligned']:+.1f} ({r['n_unaligned']})"
            lines.append(f"| {family} | {r['mape']:.1f} | {a} | {u} |")
        lines.append(f"| **average** | **{np.mean([r['mape'] for r in res.values()]):.1f}** | | |")
        if "regnet" in res and "median_error_by_group_width" in res["regnet"]:
            widths = res["regnet"]["median_error_by_group_width"]
            lines += [
                "",
                "RegNet median signed error % by channels per group: " + ", ".join(f"{w}: {e:+.1f}" for w, e in widths.items()),
            ]
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in ("regnet", "shufflenet", "densenet", "inception") if f in (report.get("before") or {})]
    if not families:
        return
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.6), sharey=True)
    for ax, family in zip(np.atleast_1d(axes), families, strict=True):
        for label, colour in (("before", "tab:red"), ("after", "tab:blue")):
            if family in (report.get(label) or {}):
                pts = np.array(report[label][family]["points"])
                ax.scatter(
                    pts[:, 0], pts[:, 1], s=4, alpha=0.4, color=colour, label=f"{label} ({report[label][family]['mape']:.1f} %)"
                )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"held out: {family}")
        ax.set_xlabel("MAC share in unaligned convs (/16)")
        ax.legend(fontsize=7, markerscale=3)
    np.atleast_1d(axes)[0].set_ylabel("signed error % (log ratio)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t-epyc"))
    parser.add_argument("--before", type=Path, help="runs directory of a tokenizer without alignment flags")
    parser.add_argument("--after", type=Path, help="runs directory of a tokenizer with them")
    parser.add_argument("--repeats", type=int, default=7, help="micro-benchmark passes (0 skips it)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency_alignment"))
    args = parser.parse_args(argv)
    report: dict = {
        "machine": describe_machine(),
        "command": "python -m benchmarks.onnx_latency_alignment " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.repeats:
        report["micro"] = micro(args.repeats)
    if args.before or args.after:
        records = {int(r["id"]): r for r in read_jsonl(args.data / MEASUREMENTS) if "latency_ms" in r and "error" not in r}
        graphs = read_graphs(args.data)
        share = {}
        for i in tqdm(records, desc="unaligned share"):
            graph = NetworkGraph.from_dict(graphs[i])
            share[i] = float(graph_features(graph)[UNALIGNED_16])
        latency = {i: float(r["latency_ms"]) for i, r in records.items()}
        spec = {i: r.get("spec", {}) for i, r in records.items()}
        for label in ("before", "after"):
            runs = getattr(args, label)
            if runs:
                report[label] = lofo_residuals(runs, latency, share, spec)
                report[label + "_runs"] = str(runs)
    write_report(args.out, report, markdown(report))
    plot(report, args.out)


if __name__ == "__main__":
    main()
