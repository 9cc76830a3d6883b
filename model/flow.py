"""Information flow through a cell DAG: which nodes carry data, and label-free structural properties of the flow.

A node is *live* when it lies on an input -> output path that passes no zero op (``none`` cuts every path through
it). The structural properties (connectivity, number of live paths, the most and fewest parametric ops on a live
path, live op counts) need no training and no measurement; the trainer uses them to pre-train the encoder on every
architecture of a space before it sees a single label (``training.pretrain``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.ir import ArchGraph, _reachable

ZERO_OPS = frozenset({"none"})
PARAMETRIC_OPS = frozenset(
    {
        "nor_conv_1x1", "nor_conv_3x3",  # NAS-Bench-201
        "conv1x1-bn-relu", "conv3x3-bn-relu",  # NAS-Bench-101
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",  # DARTS
    }
)  # fmt: skip


def live_nodes(graph: ArchGraph) -> list[bool]:
    """Per node: on some input -> output path that passes no zero op (graph topologically numbered)."""
    n, ops = graph.n, graph.ops
    preds, succs = graph.predecessors(), graph.successors()
    forward = [False] * n
    forward[0] = True
    for i in range(n):
        if forward[i] and ops[i] not in ZERO_OPS:
            for d in succs[i]:
                forward[d] = True
    backward = [False] * n
    backward[n - 1] = True
    for i in reversed(range(n)):
        if backward[i] and ops[i] not in ZERO_OPS:
            for s in preds[i]:
                backward[s] = True
    return [forward[i] and backward[i] and ops[i] not in ZERO_OPS for i in range(n)]


def property_names(count_ops: Sequence[str]) -> list[str]:
    return ["connected", "log1p_live_paths", "max_parametric_depth", "min_parametric_depth", "live_nodes",
            *(f"live_{op}" for op in count_ops)]  # fmt: skip


def flow_properties(graph: ArchGraph, count_ops: Sequence[str]) -> np.ndarray:
    """The properties named by ``property_names(count_ops)`` (float64); a disconnected cell has zero depth and paths."""
    live = live_nodes(graph)
    ops, preds = graph.ops, graph.predecessors()
    paths = [0] * graph.n
    deepest = [0] * graph.n
    shallowest = [0] * graph.n
    paths[0] = 1
    for i in range(1, graph.n):
        sources = [p for p in preds[i] if live[p]]
        if not live[i] or not sources:
            continue
        weight = int(ops[i] in PARAMETRIC_OPS)
        paths[i] = sum(paths[p] for p in sources)
        deepest[i] = max(deepest[p] for p in sources) + weight
        shallowest[i] = min(shallowest[p] for p in sources) + weight
    out = graph.n - 1
    counts = [sum(1 for i in range(graph.n) if live[i] and ops[i] == op) for op in count_ops]
    return np.array([float(live[out]), np.log1p(paths[out]), deepest[out], shallowest[out], sum(live), *counts], dtype=np.float64)


def cell_op_counts(graph: ArchGraph, count_ops: Sequence[str]) -> np.ndarray:
    """Op counts per cell of a graph of stacked cells that each end in a ``concat`` (DARTS: normal, then reduce).

    Cell k holds the ancestors of the k-th concat (in node order) that no earlier cell holds; returns the counts
    cell by cell (``len(concats) * len(count_ops)`` values, float64). A graph without concat has none.
    """
    preds = graph.predecessors()
    taken: set[int] = set()  # every earlier cell and concat, hence every ancestor of them
    counts: list[int] = []
    for concat in (i for i, op in enumerate(graph.ops) if op == "concat"):
        ancestors = _reachable(concat, preds)
        cell = ancestors - taken - {concat}
        counts += [sum(1 for i in cell if graph.ops[i] == op) for op in count_ops]
        taken |= ancestors
    return np.array(counts, dtype=np.float64)
