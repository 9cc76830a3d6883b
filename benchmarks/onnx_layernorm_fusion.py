"""Post-LN against pre-LN transformer encoders of identical compute on the dataset's device: measured latency and
onnxruntime's per-op profile.

    python -m benchmarks.onnx_layernorm_fusion --out benchmarks/results/onnx_layernorm_fusion

Why: the ``text`` family's in-domain test error splits by norm placement (1.7.0: pre-LN networks read ~16 % slow,
post-LN ~5 % fast). Both have the same ops; only where LayerNormalization sits differs. onnxruntime fuses each
``Add -> LayerNormalization`` (post-LN) into one ``SkipLayerNormalization``; the tokenizer sees the exported graph,
not onnxruntime's optimised one. Pairs: ``text`` family samples (seeds "pair:k", at most 256 tokens and 6 blocks),
each exported with ``norm="post"`` and ``"pre"``, timed like the dataset (minimum of 3 passes); then one pair profiled
per op kind (30 runs, onnxruntime's profiler).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from training.netgen.export import export_spec
from training.netgen.measure import MeasureSettings, measure_pass
from training.netgen.registry import family

PROFILED = {"vocab": 8000, "seq_len": 256, "dim": 256, "heads": 4, "depth": 4, "mlp_ratio": 4.0, "act": "gelu",
            "norm": "post", "head": "pooled", "num_classes": 3}  # fmt: skip


def pair_specs(count: int) -> list[dict]:
    specs = []
    for k in range(count):
        spec = family("text").sample(random.Random(f"pair:{k}"))
        specs.append({**spec, "seq_len": min(spec["seq_len"], 256), "depth": min(spec["depth"], 6)})
    return specs


def profile_ms(onnx_bytes: bytes, runs: int = 30) -> dict[str, float]:
    """Mean kernel milliseconds per run by op type (after onnxruntime's graph optimisations)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling, options.log_severity_level = True, 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, PROFILED["seq_len"]), np.int64)}
    for _ in range(runs):
        session.run(None, feed)
    path = Path(session.end_profiling())
    by_op: dict[str, float] = collections.defaultdict(float)
    for event in json.loads(path.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / runs / 1e3
    path.unlink()
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_layernorm_fusion"))
    args = parser.parse_args(argv)
    settings = MeasureSettings()
    rows = []
    for spec in pair_specs(args.pairs):
        ms = {}
        for norm in ("post", "pre"):
            data = export_spec("text", {**spec, "norm": norm})
            ms[norm] = min(measure_pass(data, settings).min_ms for _ in range(3))
        rows.append({"spec": spec, "post_ms": ms["post"], "pre_ms": ms["pre"], "ratio": ms["pre"] / ms["post"]})
        print(json.dumps(rows[-1]), flush=True)
    profiles = {norm: profile_ms(export_spec("text", {**PROFILED, "norm": norm})) for norm in ("post", "pre")}
    report = {
        "command": "python -m benchmarks.onnx_layernorm_fusion " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "onnxruntime": ort.__version__,
        "pairs": rows,
        "median_ratio": float(np.median([r["ratio"] for r in rows])),
        "profiled_spec": PROFILED,
        "profile_ms": profiles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        "# Post-LN vs pre-LN encoders of identical compute (onnxruntime CPU, 1 thread)",
        "",
        f"Machine: {report['machine']}, onnxruntime {report['onnxruntime']}. Command: `{report['command']}`. "
        "Latency: minimum of 3 passes (dataset settings).",
        "",
        "| width | tokens | blocks | head | post-LN ms | pre-LN ms | pre / post |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["pairs"]:
        s = r["spec"]
        lines.append(
            f"| {s['dim']} | {s['seq_len']} | {s['depth']} | {s['head']} | {r['post_ms']:.2f} | {r['pre_ms']:.2f} | "
            f"{r['ratio']:.3f} |"
        )
    lines += ["", f"Median pre / post: **{report['median_ratio']:.3f}**.", "", "Per-op kernel ms per run (profiled pair: "
              f"width {report['profiled_spec']['dim']}, {report['profiled_spec']['seq_len']} tokens, "
              f"{report['profiled_spec']['depth']} blocks):", "", "| op (after onnxruntime's fusions) | post-LN | pre-LN |",
              "|---|---|---|"]  # fmt: skip
    post, pre = report["profile_ms"]["post"], report["profile_ms"]["pre"]
    for op in sorted(set(post) | set(pre), key=lambda o: -max(post.get(o, 0.0), pre.get(o, 0.0))):
        lines.append(f"| {op} | {post.get(op, 0.0):.2f} | {pre.get(op, 0.0):.2f} |")
    lines.append(f"| **total** | {sum(post.values()):.2f} | {sum(pre.values()):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
