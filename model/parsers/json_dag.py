"""A generic DAG given as JSON: ``{"nodes": [op | {"op", "attrs"}...], "edges": [[src, dst], ...]}``.

Exactly one node must be ``input`` and one ``output``; they are moved to the first and last positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node
from model.ops import INPUT, OUTPUT, op_code


def parse_json_dag(nodes: Sequence[Any], edges: Sequence[Sequence[int]]) -> ArchGraph:
    """Parse a node list and an edge list into the IR (ops must be in the shared vocabulary)."""
    parsed: list[Node] = []
    for i, raw in enumerate(nodes):
        if isinstance(raw, str):
            parsed.append(Node(raw))
        elif isinstance(raw, Mapping) and isinstance(raw.get("op"), str):
            attrs = raw.get("attrs") or {}
            if not isinstance(attrs, Mapping):
                raise ArchitectureError("bad_node", f"node {i}: attrs must be an object")
            parsed.append(Node(raw["op"], dict(attrs)))
        else:
            raise ArchitectureError("bad_node", f"node {i} must be an op name or an object with an 'op' string")
        op_code(parsed[-1].op)
    inputs = [i for i, node in enumerate(parsed) if node.op == INPUT]
    outputs = [i for i, node in enumerate(parsed) if node.op == OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArchitectureError(
            "bad_node", f"a graph needs exactly one {INPUT!r} and one {OUTPUT!r} node, got {len(inputs)} and {len(outputs)}"
        )
    pairs: list[tuple[int, int]] = []
    for k, edge in enumerate(edges):
        if (
            not isinstance(edge, Sequence)
            or isinstance(edge, str)
            or len(edge) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in edge)
        ):
            raise ArchitectureError("bad_edge", f"edge {k} must be a pair of node indices, got {edge!r}")
        if not all(0 <= v < len(parsed) for v in edge):
            raise ArchitectureError("bad_edge", f"edge {k} {list(edge)} refers to a node outside 0..{len(parsed) - 1}")
        pairs.append((edge[0], edge[1]))
    middle = [i for i in range(len(parsed)) if i not in (inputs[0], outputs[0])]
    order = [inputs[0], *middle, outputs[0]]
    graph = ArchGraph(nodes=tuple(parsed), edges=tuple(pairs), space="graph")
    return graph.renumbered(order)
