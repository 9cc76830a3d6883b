"""What a whole-network predictor was trained on, and the warnings for an upload that lies outside it.

A network predictor's card carries ``domain``: the ONNX op types of its training networks and their range of MACs
and node counts. An upload with an op type never seen in training (an LSTM, say), or with more MACs or nodes than
any training network, is answered as usual plus a warning per reason: the prediction extrapolates, and its std may
not say so (``benchmarks/results/onnx_out_of_scope.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from model.onnx_contrib import LAYOUT_DOMAIN, ir_op_type
from model.onnx_graph import NetworkGraph


def training_domain(graphs: Iterable[NetworkGraph]) -> dict[str, Any]:
    """The card's ``domain`` of these training networks."""
    op_types: set[str] = set()
    macs, nodes = [], []
    for graph in graphs:
        op_types.update(node.op_type for node in graph.nodes)
        macs.append(graph.totals()["macs"])
        nodes.append(graph.n)
    if not macs:
        raise ValueError("no training networks")
    return {"op_types": sorted(op_types), "macs": [min(macs), max(macs)], "nodes": [min(nodes), max(nodes)]}


def unseen_op_types(graph: NetworkGraph, domain: dict[str, Any]) -> list[str]:
    """Op types of ``graph`` that no training network had (none when the card records no domain)."""
    if not domain.get("op_types"):
        return []
    return sorted({node.op_type for node in graph.nodes} - set(domain["op_types"]))


LAYOUT_PREFIX = ir_op_type("", LAYOUT_DOMAIN)  # "nchwc.": how the parser names onnxruntime's layout-specific ops


def other_precisions(weight_types: Iterable[str], dtype: str | None) -> list[str]:
    """Element types of the network's weights other than the predictor device's ``dtype`` (none when either is
    unknown): a float16 or int8-quantized upload runs other kernels than the float32 networks a predictor learnt."""
    if not dtype:
        return []
    return sorted(set(weight_types) - {dtype})


def domain_warnings(
    unseen: Iterable[str],
    macs: float,
    nodes: int,
    domain: dict[str, Any],
    weight_types: Iterable[str] = (),
    dtype: str | None = None,
) -> list[str]:
    """One sentence per way the network lies outside the training networks; empty when it lies inside. ``dtype`` is
    the element type of the predictor's device (its card's ``device.dtype``); ``weight_types`` those of the upload."""
    warnings = []
    unseen = sorted(unseen)
    if unseen:
        warnings.append(
            f"op types never seen in this predictor's training networks: {', '.join(unseen)}; their cost is extrapolated"
        )
    if any(op.startswith(LAYOUT_PREFIX) for op in unseen):
        warnings.append(
            "the model was saved after onnxruntime's layout optimizations for one CPU (com.microsoft.nchwc ops); "
            "send the model as exported, or as saved at optimization level ORT_ENABLE_EXTENDED or below"
        )
    others = other_precisions(weight_types, dtype)
    if others:
        warnings.append(
            f"weights in {', '.join(others)}: this predictor learnt {dtype} networks, and onnxruntime runs "
            f"{', '.join(others)} models with other kernels; the latency is extrapolated"
        )
    for name, value, unit in (("macs", macs, "MACs"), ("nodes", nodes, "nodes")):
        if name not in domain:
            continue
        low, high = domain[name]
        if value > high:
            warnings.append(f"{value:.4g} {unit}, more than any training network ({high:.4g})")
        elif value < low:
            warnings.append(f"{value:.4g} {unit}, fewer than any training network ({low:.4g})")
    return warnings
