"""Weight-free uploads give the same answer: the 19 published classifiers of ``benchmarks.onnx_realworld``, exported
with their weights and as ``model.onnx_weights.weight_free`` copies, predicted both ways by the shipped network
predictor (in-process, the service's own code path): bytes, and whether latency, std and costs are identical.

    python -m benchmarks.onnx_weight_free [--out benchmarks/results/onnx_weight_free]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.machine import describe_machine
from benchmarks.onnx_realworld import canonical_networks
from benchmarks.report import write_report
from model.onnx_weights import weight_free
from service.local import predict_onnx_local
from training.netgen.export import build_network, export_onnx_bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_weight_free"))
    args = parser.parse_args(argv)
    rows = []
    for family, name, spec in canonical_networks():
        whole = export_onnx_bytes(build_network(family, spec), 224)
        light = weight_free(whole)
        a, b = predict_onnx_local(whole), predict_onnx_local(light)
        rows.append({
            "network": name,
            "bytes": len(whole),
            "weight_free_bytes": len(light),
            "predictor": a["predictor"],
            "latency_ms": a["latency_ms"],
            "weight_free_latency_ms": b["latency_ms"],
            "identical": a["latency_ms"] == b["latency_ms"] and a["cost"] == b["cost"],
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    same = sum(r["identical"] for r in rows)
    total, light = sum(r["bytes"] for r in rows), sum(r["weight_free_bytes"] for r in rows)
    lines = [
        "# Weight-free uploads: the same prediction from a fraction of the bytes",
        "",
        f"Machine: {describe_machine()}. Command: `python -m benchmarks.onnx_weight_free`. Predictor: "
        f"`{rows[0]['predictor']}` as shipped, in-process (`service.local.predict_onnx_local`, the service's code path).",
        "",
        f"**{same} of {len(rows)}** networks get identical answers (latency value, std and every cost) from the copy; "
        f"{total / 1e6:.0f} MB of ONNX become {light / 1e6:.1f} MB ({total / light:.0f}x less).",
        "",
        "| network | with weights (MB) | weight-free (kB) | ratio | latency ms (both) | identical |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['network']} | {r['bytes'] / 1e6:.1f} | {r['weight_free_bytes'] / 1e3:.0f} | "
            f"{r['bytes'] / r['weight_free_bytes']:.0f}x | {r['latency_ms']['value']:.2f} | {'yes' if r['identical'] else 'NO'} |"
            for r in rows
        ],
        "",
    ]
    write_report(args.out, {"machine": describe_machine(), "command": "python -m benchmarks.onnx_weight_free", "rows": rows},
                 "\n".join(lines))  # fmt: skip


if __name__ == "__main__":
    main()
