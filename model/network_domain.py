"""What a whole-network predictor was trained on, and the warnings for an upload that lies outside it.

A network predictor's card carries ``domain``: the ONNX op types of its training networks, their range of MACs
and node counts, and their convolutions (``conv``: the spatial ranks, 1 for Conv1d, 2 for Conv2d, and the widest
overlapping kernel along any axis). An upload with an op type never seen in training (an LSTM, say), more MACs or
nodes than any training network, a convolution over another number of spatial axes (a video network's Conv3d) or a
wider kernel (a 31 x 31 depthwise) is answered as usual plus a warning per reason: the prediction extrapolates, and
its std may not say so (``benchmarks/results/onnx_out_of_scope.md``, ``benchmarks/results/onnx_unusual.md``). So are
uploads the parser could not read whole (``GraphFacts``): Einsums read as MatMuls, control flow, symbolic input axes
no request parameter sets, node outputs of unknown shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model.onnx_contrib import LAYOUT_DOMAIN, ir_op_type
from model.onnx_graph import NetworkGraph

CONV_OPS = frozenset({"Conv", "ConvTranspose"})


def convolutions(graph: NetworkGraph) -> dict[str, Any]:
    """``ranks``: the numbers of spatial axes the network's convolutions slide over; ``kernel``: their widest kernel
    along an axis where windows overlap (stride below the kernel; 0 where none does). A patch embedding (kernel =
    stride, a ViT's 16 or 32) is a plain matrix product per patch, so it does not count. Kernels are read from the
    weights' shapes, (C_out, C_in / groups, *kernel)."""
    ranks: set[int] = set()
    kernel = 0
    for node in graph.nodes:
        if node.op_type in CONV_OPS and len(node.input_shapes) > 1 and len(node.input_shapes[1]) > 2:
            spatial = node.input_shapes[1][2:]
            ranks.add(len(spatial))
            strides = node.attrs.get("strides") or [1] * len(spatial)
            kernel = max([kernel, *(k for k, s in zip(spatial, strides, strict=False) if s < k)])
    return {"ranks": sorted(ranks), "kernel": kernel}


@dataclass(frozen=True)
class GraphFacts:
    """What the warnings read of an upload besides its op types, MACs and nodes: ``conv`` (its ``convolutions``),
    ``einsums`` (Einsum nodes the parser read as Transposes and a MatMul, ``model.onnx_einsum``), and its control-flow
    nodes (If / Loop / Scan by op type) with the nodes inside them, which are not costed; the symbolic input dimensions
    no request parameter sets (read as 1); the node outputs whose shapes inference left unknown."""

    conv: dict[str, Any] = field(default_factory=lambda: {"ranks": [], "kernel": 0})
    einsums: int = 0
    control_flow: dict[str, int] = field(default_factory=dict)
    inner_nodes: int = 0
    defaulted_dims: tuple[str, ...] = ()
    unknown_shapes: int = 0

    @classmethod
    def of(cls, graph: NetworkGraph) -> GraphFacts:
        return cls(
            convolutions(graph),
            graph.einsums,
            dict(graph.control_flow),
            graph.inner_nodes,
            graph.defaulted_dims,
            graph.unknown_shapes,
        )

    def to_body(self) -> dict[str, Any]:
        """The answer's fields for these facts (``from_body`` reads them back)."""
        return {
            "unknown_shapes": self.unknown_shapes,
            "convolutions": self.conv,
            "einsums": self.einsums,
            "control_flow": self.control_flow,
            "inner_nodes": self.inner_nodes,
            "defaulted_dims": list(self.defaulted_dims),
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GraphFacts:
        return cls(
            body["convolutions"],
            body["einsums"],
            body["control_flow"],
            body["inner_nodes"],
            tuple(body["defaulted_dims"]),
            body["unknown_shapes"],
        )

    def to_values(self) -> dict[str, float]:
        """Flat float values, as a prediction cache stores them."""
        values = {f"conv_rank:{rank}": 1.0 for rank in self.conv["ranks"]}
        values.update({f"control_flow:{op}": float(count) for op, count in self.control_flow.items()})
        values.update({f"defaulted:{k}:{dim}": 1.0 for k, dim in enumerate(self.defaulted_dims)})
        return {**values, "conv_kernel": float(self.conv["kernel"]), "einsums": float(self.einsums),
                "inner_nodes": float(self.inner_nodes), "unknown_shapes": float(self.unknown_shapes)}  # fmt: skip

    @classmethod
    def from_values(cls, values: Mapping[str, float]) -> GraphFacts:
        def keyed(prefix: str) -> dict[str, float]:
            return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}

        conv = {"ranks": sorted(int(r) for r in keyed("conv_rank:")), "kernel": int(values.get("conv_kernel", 0))}
        control_flow = {op: int(count) for op, count in keyed("control_flow:").items()}
        defaulted = tuple(key.split(":", 1)[1] for key in sorted(keyed("defaulted:"), key=lambda k: int(k.split(":")[0])))
        einsums, inner_nodes, unknown_shapes = (int(values.get(k, 0)) for k in ("einsums", "inner_nodes", "unknown_shapes"))
        return cls(conv, einsums, control_flow, inner_nodes, defaulted, unknown_shapes)


def training_domain(graphs: Iterable[NetworkGraph]) -> dict[str, Any]:
    """The card's ``domain`` of these training networks."""
    op_types: set[str] = set()
    macs, nodes = [], []
    ranks: set[int] = set()
    kernel = 0
    for graph in graphs:
        op_types.update(node.op_type for node in graph.nodes)
        macs.append(graph.totals()["macs"])
        nodes.append(graph.n)
        conv = convolutions(graph)
        ranks.update(conv["ranks"])
        kernel = max(kernel, conv["kernel"])
    if not macs:
        raise ValueError("no training networks")
    return {
        "op_types": sorted(op_types),
        "macs": [min(macs), max(macs)],
        "nodes": [min(nodes), max(nodes)],
        "conv": {"ranks": sorted(ranks), "kernel": kernel},
    }


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
    facts: GraphFacts | None = None,
) -> list[str]:
    """One sentence per way the network lies outside the training networks; empty when it lies inside. ``dtype`` is
    the element type of the predictor's device (its card's ``device.dtype``); ``weight_types`` those of the upload;
    ``facts`` the rest (its convolutions are checked where the card records them)."""
    facts = facts or GraphFacts()
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
            warnings.append(f"{value:.4g} {_plural(value, unit)}, more than any training network ({high:.4g})")
        elif value < low:
            warnings.append(f"{value:.4g} {_plural(value, unit)}, fewer than any training network ({low:.4g})")
    warnings += _conv_warnings(facts.conv, domain.get("conv"))
    if facts.einsums:
        warnings.append(
            f"{facts.einsums} Einsum {_plural(facts.einsums, 'nodes')} read as the Transposes and MatMul computing the "
            "same product; onnxruntime's own Einsum kernel can run slower than that (attention: 1.2-1.6x, "
            "benchmarks/results/onnx_unusual.md)"
        )
    if facts.unknown_shapes:
        warnings.append(
            f"shape inference could not tell {facts.unknown_shapes} node output "
            f"{_plural(facts.unknown_shapes, 'shapes')}; a node whose shapes are unknown costs 0, so the latency may be "
            "low (does onnxruntime load the model?)"
        )
    if facts.defaulted_dims:
        warnings.append(
            f"symbolic input dimensions that no request parameter sets, read as 1: {', '.join(facts.defaulted_dims)}; "
            "export the model with them fixed if they are larger"
        )
    if facts.control_flow:
        kinds = ", ".join(f"{count} {op}" for op, count in sorted(facts.control_flow.items()))
        warnings.append(
            f"control flow ({kinds}) with {facts.inner_nodes} {_plural(facts.inner_nodes, 'nodes')} inside: what runs "
            "inside is known only at run time and is not costed, so the latency leaves it out"
        )
    return warnings


def _plural(count: float, noun: str) -> str:
    """``noun`` (a plural) for ``count``: "1 node", "2 nodes" ("MACs" stays)."""
    return noun[:-1] if count == 1 and noun.endswith("s") and noun != "MACs" else noun


def _conv_warnings(conv: dict[str, Any], seen: dict[str, Any] | None) -> list[str]:
    if not seen:
        return []
    warnings = []
    new_ranks = sorted(set(conv["ranks"]) - set(seen["ranks"]))
    if new_ranks:
        ranks = " and ".join(str(rank) for rank in new_ranks)
        known = " and ".join(str(rank) for rank in seen["ranks"]) or "no"
        warnings.append(
            f"convolutions over {ranks} spatial axes ({', '.join(f'Conv{rank}d' for rank in new_ranks)}); the training "
            f"networks convolve over {known} only: their cost is extrapolated"
        )
    if conv["kernel"] > seen["kernel"]:
        warnings.append(
            f"a convolution kernel {conv['kernel']} wide, wider than any training network's ({seen['kernel']}): "
            "its cost is extrapolated"
        )
    return warnings
