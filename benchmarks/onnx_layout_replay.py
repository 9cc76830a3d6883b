"""How closely ``model.layout`` replays onnxruntime's NCHWc rewrite on the dataset's own networks.

Tokenizer 7 says, for every node, whether onnxruntime copies its output between NCHW and the blocked NCHWc layout.
It works that out without onnxruntime (``model/`` is numpy and onnx only). This benchmark checks the replay against
the real optimiser: it exports ``--per-family`` networks of every family from their specs, lets onnxruntime (this
machine, all optimisations, one thread) write its optimised graph, reads which original tensors its
``ReorderOutput`` / ``ReorderInput`` nodes convert, and counts agreements per family. A reorder onnxruntime moved
onto a tensor it created itself (it fuses a channels-last ``Transpose`` into the reorder) has no original tensor to
match; those are counted apart as "moved". The replay flags such a ``Transpose`` itself (it is the copy), and is
credited with its input here.

    python -m benchmarks.onnx_layout_replay --out benchmarks/results/onnx_layout_replay
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import onnx
import onnxruntime as ort

from benchmarks.machine import describe_machine
from model.layout import layout_flags
from model.onnx_graph import NetworkGraph, parse_onnx
from training.netgen.export import export_spec
from training.netgen.files import latest_records


def onnxruntime_reorders(data: bytes) -> tuple[set[str], set[str], int]:
    """(node names whose output onnxruntime converts to NCHW, ... into NCHWc, reorders on tensors of its own) for
    one exported network; reorders of graph inputs are not counted (no node to flag)."""
    model = onnx.load_from_string(data)
    producer = {out: node.name for node in model.graph.node for out in node.output}
    for node in model.graph.node:  # the parser drops Identity nodes: their tensors belong to their input's producer
        if node.op_type == "Identity" and node.input[0] in producer:
            producer[node.output[0]] = producer[node.input[0]]
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        optimised = onnx.load(options.optimized_model_filepath)
    graph_inputs = {value.name for value in model.graph.input}
    to_nchw, to_nchwc, moved = set(), set(), 0
    for node in optimised.graph.node:
        tensor = node.output[0] if node.op_type == "ReorderOutput" else node.input[0] if node.op_type == "ReorderInput" else None
        if tensor is None:
            continue
        if tensor in producer:
            (to_nchw if node.op_type == "ReorderOutput" else to_nchwc).add(producer[tensor])
        elif tensor not in graph_inputs:
            moved += 1
    return to_nchw, to_nchwc, moved


def credited(graph: NetworkGraph, i: int, column: int) -> str:
    """The node whose output a flag of node ``i`` stands for in onnxruntime's graph: a channels-last to NCHW
    ``Transpose`` feeding a blocked conv is flagged itself, and onnxruntime fuses it into a reorder of its input."""
    node = graph.nodes[i]
    if column == 2 and node.op_type == "Transpose" and list(node.attrs.get("perm", [])) == [0, 3, 1, 2] and node.inputs:
        return graph.nodes[node.inputs[0]].name
    return node.name


def compare(directory: Path, per_family: int, seed: int) -> dict[str, Counter]:
    records = latest_records(directory)
    by_family: dict[str, list[dict]] = defaultdict(list)
    for _, record in sorted(records.items()):
        if "latency_ms" in record:
            by_family[record["family"]].append(record)
    rng = random.Random(seed)
    counts: dict[str, Counter] = {}
    for family in sorted(by_family):
        c: Counter = Counter()
        for record in rng.sample(by_family[family], min(per_family, len(by_family[family]))):
            data = export_spec(family, record["spec"])
            to_nchw, to_nchwc, moved = onnxruntime_reorders(data)
            graph = parse_onnx(data)
            flags = layout_flags(graph)
            names = {node.name for node in graph.nodes}
            for column, truth in ((1, to_nchw), (2, to_nchwc)):
                flagged = {credited(graph, i, column) for i in range(graph.n) if flags[i, column]}
                truth = truth & names
                c[(column, True, True)] += len(flagged & truth)
                c[(column, True, False)] += len(truth - flagged)
                c[(column, False, True)] += len(flagged - truth)
            c["moved"] += moved
            c["networks"] += 1
        counts[family] = c
        print(family, dict(c), flush=True)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_layout_replay"))
    args = parser.parse_args(argv)
    counts = compare(args.data, args.per_family, args.seed)

    def cell(c: Counter, column: int) -> str:
        hit, missed, extra = c[(column, True, True)], c[(column, True, False)], c[(column, False, True)]
        return f"{hit} / {hit + missed} ({extra} extra)"

    total: Counter = sum(counts.values(), Counter())
    lines = [
        "# Layout replay (`model.layout`) against onnxruntime's NCHWc rewrite",
        "",
        f"Machine: {describe_machine()}, onnxruntime {ort.__version__}. Command: `python -m benchmarks.onnx_layout_replay "
        f"--per-family {args.per_family} --out {args.out}`. {total['networks']} networks of `{args.data}` exported "
        "from their specs; onnxruntime's optimised graph (all optimisations, 1 thread) against the tokenizer's flags.",
        "",
        "Cells: reorders the replay flags on the same tensor / reorders onnxruntime inserts on original tensors "
        "(flags where onnxruntime has none). Moved: reorders onnxruntime put on tensors it made itself.",
        "",
        "| family | networks | to NCHW (ReorderOutput) | to NCHWc (ReorderInput) | moved |",
        "|---|---|---|---|---|",
    ]
    for family, c in counts.items():
        lines.append(f"| {family} | {c['networks']} | {cell(c, 1)} | {cell(c, 2)} | {c['moved']} |")
    lines.append(f"| **all** | {total['networks']} | {cell(total, 1)} | {cell(total, 2)} | {total['moved']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    serial = {f: {"|".join(map(str, k)) if isinstance(k, tuple) else k: v for k, v in c.items()} for f, c in counts.items()}
    args.out.with_suffix(".json").write_text(json.dumps({"command": lines[2], "counts": serial}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
