"""Where a network's predicted latency goes: per-op-type and per-node shares read out of the predictor's own sum.

A whole-network predictor with the additive readout (``training.whole_network``) predicts each member's log-latency
as the log of a sum over the network's nodes of per-node costs, and each node's cost as a roofline sum of three terms
(compute: FLOPs x a learned rate; memory: bytes x a rate; a fixed per-node time). The exported ONNX graph keeps those
tensors: ``.../members.K/Where_output_0`` (B, L) per-node log costs and ``.../members.K/Concat_output_0`` (B, L, 3)
the three log terms. This module runs the predictor's graph with them as extra outputs, averages each node's share of
its member's sum over the members, and scales the shares to the predicted value. Nothing is fitted here: the
breakdown is the prediction itself, taken apart. It is what the predictor believes, not a measurement
(``benchmarks/onnx_breakdown.py`` compares it with onnxruntime's profiler).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from model.network_tokenizer import graph_for_version
from model.onnx_graph import NetworkGraph
from service.errors import ServiceError

NODE_COST = re.compile(r"(.*/)?members\.(\d+)/Where_output_0")
NODE_TERMS = re.compile(r"(.*/)?members\.(\d+)/Concat_output_0")
TERMS = ("compute", "memory", "per_node")
TOP_NODES = 10


@dataclass
class BreakdownSession:
    """The predictor's graph with every member's per-node log costs and roofline terms as extra outputs."""

    session: ort.InferenceSession
    cost_outputs: list[str]
    term_outputs: list[str]


_lock = threading.Lock()
ADDITIVE_READOUTS = ("additive", "local_additive")  # the readouts whose prediction is the sum over nodes, nothing else


def _build(model_bytes: bytes) -> BreakdownSession | str:
    model = onnx.load_from_string(model_bytes)
    produced = [name for node in model.graph.node for name in node.output]
    costs = sorted((n for n in produced if NODE_COST.fullmatch(n)), key=lambda n: int(NODE_COST.fullmatch(n).group(2)))
    terms = sorted((n for n in produced if NODE_TERMS.fullmatch(n)), key=lambda n: int(NODE_TERMS.fullmatch(n).group(2)))
    if not costs or len(costs) != len(terms):
        return "its ONNX graph has no per-node cost tensors (only predictors with the additive readout have them)"
    for name in costs + terms:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime refusing the extended graph: no breakdown, still an answer
        return f"onnxruntime could not expose its per-node costs ({type(exc).__name__})"
    return BreakdownSession(session, costs, terms)


def breakdown_session(predictor: Any) -> BreakdownSession:
    """The breakdown session of a loaded network predictor, built on first use and kept on it; 422 if its graph
    cannot give one. A calibrated predictor's graph holds its base's: the base's shares, scaled to the calibrated
    value."""
    with _lock:
        built = predictor.breakdown_session
        if built is None:
            readout = predictor.card.training.get("readout")
            if readout is not None and readout not in ADDITIVE_READOUTS:
                built = f"its readout {readout!r} adds a whole-network correction that no node carries"
            elif predictor.onnx_path is None:
                built = "its ONNX graph was not loaded from a file"
            else:
                built = _build(predictor.onnx_path.read_bytes())
            predictor.breakdown_session = built
    if isinstance(built, str):
        raise ServiceError(422, "breakdown_unavailable", f"predictor {predictor.name!r} cannot break its answer down: {built}")
    return built


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def node_shares(built: BreakdownSession, feeds: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) each node's share of the predicted sum and (n, 3) the split of its cost into the three roofline terms,
    both averaged over the members."""
    outputs = built.session.run(built.cost_outputs + built.term_outputs, feeds)
    members = len(built.cost_outputs)
    shares = np.mean([_softmax(np.asarray(c, np.float64)[0, :n], axis=0) for c in outputs[:members]], axis=0)
    terms = np.mean([_softmax(np.asarray(t, np.float64)[0, :n], axis=-1) for t in outputs[members:]], axis=0)
    return shares, terms


CONV_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh"})
GEMM_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh"})


def runtime_roots(graph: NetworkGraph) -> list[int]:
    """Per node, the node whose kernel runs it on onnxruntime's CPU provider: itself, or the ``Conv`` / ``MatMul`` /
    ``Gemm`` it is fused into. A convolution absorbs one ``Add`` (a residual sum) and then one activation; a matrix
    product one bias ``Add`` (an added weight) and then one activation; each only when the node before is read by
    nothing else. These are the fusions the profiler shows on the published classifiers
    (``benchmarks/onnx_breakdown.py``): there every ``Relu``, ``Clip``, ``HardSwish`` and residual ``Add`` after a
    convolution, and every bias ``Add`` after a ``MatMul``, has no kernel of its own."""
    consumers = [0] * graph.n
    for node in graph.nodes:
        for p in set(node.inputs):
            consumers[p] += 1
    root = list(range(graph.n))
    stage = [0] * graph.n  # per root: 0 nothing absorbed, 1 an Add, 2 an activation
    for j, node in enumerate(graph.nodes):
        for p in reversed(node.inputs):
            r = root[p]
            kind = graph.nodes[r].op_type
            if consumers[p] != 1 or kind not in ("Conv", "MatMul", "Gemm"):
                continue
            if node.op_type == "Add" and stage[r] == 0:
                bias = len(node.inputs) == 1 and bool(node.attrs.get("_weights"))
                joins = kind == "Conv" or bias
                new_stage = 1
            else:
                joins = node.op_type in (CONV_ACTIVATIONS if kind == "Conv" else GEMM_ACTIVATIONS) and stage[r] < 2
                new_stage = 2
            if joins:
                root[j], stage[r] = r, new_stage
                break
    return root


def breakdown(
    predictor: Any, graph: NetworkGraph, value_ms: float, feeds: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Per op type (sorted by time) and the top kernels: predicted ms, share, and the compute / memory / per-node
    split. Nodes onnxruntime fuses into a convolution or matrix product (``runtime_roots``) count in its row and are
    listed under ``fused``."""
    built = breakdown_session(predictor)
    read = graph_for_version(graph, predictor.card.tokenizer)  # the nodes the predictor sees, in token order
    feeds = feeds if feeds is not None else predictor.graph_feeds(graph)  # the same inputs the answer came from
    shares, terms = node_shares(built, feeds, read.n)
    roots = runtime_roots(read)
    members: dict[int, list[int]] = defaultdict(list)
    for j, r in enumerate(roots):
        members[r].append(j)
    kernel_share = {r: float(shares[rows].sum()) for r, rows in members.items()}
    kernel_terms = {
        r: (shares[rows, None] * terms[rows]).sum(axis=0) / max(kernel_share[r], 1e-30) for r, rows in members.items()
    }
    by_type: dict[str, list[int]] = defaultdict(list)
    for r in members:
        by_type[read.nodes[r].op_type].append(r)
    op_types = []
    for op_type, kernels in by_type.items():
        share = sum(kernel_share[r] for r in kernels)
        split = sum(kernel_share[r] * kernel_terms[r] for r in kernels) / max(share, 1e-30)
        fused: dict[str, int] = defaultdict(int)
        for r in kernels:
            for j in members[r][1:]:
                fused[read.nodes[j].op_type] += 1
        op_types.append({
            "op_type": op_type, "nodes": len(kernels), "fused": dict(fused), "ms": share * value_ms, "share": share,
            **{term: float(x) for term, x in zip(TERMS, split, strict=True)},
        })  # fmt: skip
    op_types.sort(key=lambda row: -row["share"])
    top = sorted(members, key=lambda r: -kernel_share[r])[:TOP_NODES]
    nodes = [
        {
            "index": r, "name": read.nodes[r].name, "op_type": read.nodes[r].op_type,
            "ops": [read.nodes[j].op_type for j in members[r]],
            "output_shape": list(read.nodes[members[r][-1]].output_shapes[0]) if read.nodes[members[r][-1]].output_shapes else [],
            "ms": kernel_share[r] * value_ms, "share": kernel_share[r],
            **{term: float(x) for term, x in zip(TERMS, kernel_terms[r], strict=True)},
        }
        for r in top
    ]  # fmt: skip
    return {
        "by_op_type": op_types, "top_nodes": nodes, "nodes": read.n, "kernels": len(members),
        "members": len(built.cost_outputs),
    }  # fmt: skip
