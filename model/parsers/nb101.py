"""NAS-Bench-101 cells: an upper-triangular adjacency matrix (<= 7x7) plus an op list, pruned as the benchmark does.

Nodes that are not on a path from input to output are removed (NAS-Bench-101's ModelSpec pruning), so the IR
is the computation the benchmark actually trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node, _reachable
from model.ops import INPUT, OUTPUT

NB101_OPS: tuple[str, ...] = ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3")
NB101_MAX_NODES = 7
NB101_MAX_EDGES = 9


def parse_nb101(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> ArchGraph:
    """Parse a NAS-Bench-101 (matrix, ops) spec into the IR."""
    try:
        raw = np.asarray(matrix, dtype=object)
    except (TypeError, ValueError):
        raise ArchitectureError("bad_matrix", "NB101 matrix must be a square list of 0/1 rows") from None
    if raw.ndim != 2 or not all(type(v) is int and v in (0, 1) for v in raw.flat):
        raise ArchitectureError("bad_matrix", "NB101 matrix must be a square list of rows of integers 0 or 1")
    adj = raw.astype(np.int64)
    n = len(ops)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ArchitectureError("bad_matrix", f"NB101 matrix must be square, got shape {tuple(adj.shape)}")
    if adj.shape[0] != n:
        raise ArchitectureError("bad_matrix", f"NB101 matrix is {adj.shape[0]}x{adj.shape[0]} but {n} ops were given")
    if not 2 <= n <= NB101_MAX_NODES:
        raise ArchitectureError("bad_matrix", f"NB101 cells have 2..{NB101_MAX_NODES} nodes, got {n}")
    if np.tril(adj).any():
        raise ArchitectureError("bad_matrix", "NB101 matrix must be strictly upper-triangular (a DAG in order)")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ArchitectureError("bad_ops", f"NB101 ops must start with {INPUT!r} and end with {OUTPUT!r}")
    for op in ops[1:-1]:
        if op not in NB101_OPS:
            raise ArchitectureError("unknown_op", f"unknown NB101 operation {op!r}; NB101 operations: {', '.join(NB101_OPS)}")

    succs = [list(np.flatnonzero(adj[i])) for i in range(n)]
    preds = [list(np.flatnonzero(adj[:, i])) for i in range(n)]
    live = sorted(_reachable(0, succs) & _reachable(n - 1, preds))
    if n - 1 not in live or 0 not in live:
        raise ArchitectureError("disconnected", "NB101 cell has no path from input to output")
    index = {old: new for new, old in enumerate(live)}
    edges = tuple((index[s], index[d]) for s in live for d in live if adj[s, d])
    if len(edges) > NB101_MAX_EDGES:  # counted after pruning, as NAS-Bench-101 does
        message = f"NB101 cells have at most {NB101_MAX_EDGES} edges, got {len(edges)} (after pruning)"
        raise ArchitectureError("bad_matrix", message)
    nodes = tuple(Node(ops[i]) for i in live)
    return ArchGraph(nodes=nodes, edges=edges, space="nb101")
