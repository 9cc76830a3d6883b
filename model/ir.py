"""The graph IR: an architecture as a DAG of operation nodes, with validation.

Node 0 is the single input and node n-1 the single output; edges are (source, destination) pairs.
Node order is not required to be topological on construction; ``validate`` checks acyclicity and that
every node lies on a path from input to output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.errors import ArchitectureError
from model.ops import INPUT, OUTPUT

DEFAULT_MAX_NODES = 63  # cell tokenizer codes distinguish positions -1..62


@dataclass(frozen=True)
class Node:
    """One operation: its type, optional attributes and optional output shape."""

    op: str
    attrs: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None

    def label(self) -> str:
        """A string that identifies the node's computation (op + attributes), used by canonical keys."""
        if not self.attrs and self.shape is None:
            return self.op
        return json.dumps([self.op, self.attrs, self.shape], sort_keys=True, default=str)


@dataclass(frozen=True)
class ArchGraph:
    """An architecture DAG in the order it was given: nodes plus directed edges (src, dst)."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int], ...]
    space: str = "graph"
    origin: tuple[int, ...] | None = None  # index of each node in the user's numbering, when renumbered

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def ops(self) -> list[str]:
        return [node.op for node in self.nodes]

    def adjacency(self) -> np.ndarray:
        """Dense adjacency matrix, ``A[j, i] = 1`` for an edge j -> i."""
        adj = np.zeros((self.n, self.n), dtype=np.uint8)
        for src, dst in self.edges:
            adj[src, dst] = 1
        return adj

    def predecessors(self) -> list[list[int]]:
        preds: list[list[int]] = [[] for _ in range(self.n)]
        for src, dst in self.edges:
            preds[dst].append(src)
        return preds

    def successors(self) -> list[list[int]]:
        succs: list[list[int]] = [[] for _ in range(self.n)]
        for src, dst in self.edges:
            succs[src].append(dst)
        return succs

    def renumbered(self, order: list[int] | np.ndarray) -> ArchGraph:
        """The same DAG with node ``order[k]`` moved to position k."""
        order = [int(i) for i in order]
        position = {old: new for new, old in enumerate(order)}
        nodes = tuple(self.nodes[old] for old in order)
        edges = tuple(sorted((position[s], position[d]) for s, d in self.edges))
        origin = tuple(self.user_index(old) for old in order)
        return ArchGraph(nodes=nodes, edges=edges, space=self.space, origin=origin)

    def user_index(self, i: int) -> int:
        """The number the user gave node ``i`` (error messages speak in the user's numbering)."""
        return i if self.origin is None else self.origin[i]

    def is_topologically_ordered(self) -> bool:
        return all(src < dst for src, dst in self.edges)


def validate(graph: ArchGraph, max_nodes: int = DEFAULT_MAX_NODES) -> ArchGraph:
    """Check a graph and return it; raise ``ArchitectureError`` naming the first problem found."""
    n = graph.n
    if n < 2:
        raise ArchitectureError("too_small", f"a graph needs at least an input and an output node, got {n} node(s)")
    if n > max_nodes:
        raise ArchitectureError("too_large", f"graph has {n} nodes, the limit is {max_nodes}")
    if graph.nodes[0].op != INPUT:
        raise ArchitectureError("bad_input_node", f"node {graph.user_index(0)} must be the input, got op {graph.nodes[0].op!r}")
    if graph.nodes[-1].op != OUTPUT:
        raise ArchitectureError(
            "bad_output_node", f"node {graph.user_index(n - 1)} must be the output, got op {graph.nodes[-1].op!r}"
        )
    for i, node in enumerate(graph.nodes[1:-1], start=1):
        if node.op in (INPUT, OUTPUT):
            raise ArchitectureError(
                "bad_node", f"node {graph.user_index(i)} is an extra {node.op!r}; a graph has one input and one output"
            )
    seen: set[tuple[int, int]] = set()
    u = graph.user_index
    for src, dst in graph.edges:
        if not (0 <= src < n and 0 <= dst < n):
            raise ArchitectureError("bad_edge", f"edge ({src}, {dst}) refers to a node outside 0..{n - 1}")
        if src == dst:
            raise ArchitectureError("cycle", f"self-loop on node {u(src)}")
        if (src, dst) in seen:
            raise ArchitectureError("bad_edge", f"duplicate edge ({u(src)}, {u(dst)})")
        seen.add((src, dst))
    order = topological_order(graph)
    forward = _reachable(0, graph.successors())
    backward = _reachable(n - 1, graph.predecessors())
    for i in order:
        if i not in forward:
            raise ArchitectureError("disconnected", f"node {u(i)} ({graph.nodes[i].op}) is not reachable from the input")
        if i not in backward:
            raise ArchitectureError("disconnected", f"node {u(i)} ({graph.nodes[i].op}) does not reach the output")
    return graph


def topological_order(graph: ArchGraph) -> list[int]:
    """Kahn's algorithm, smallest index first; ``cycle`` error if the graph has one."""
    indegree = [0] * graph.n
    for _, dst in graph.edges:
        indegree[dst] += 1
    succs = graph.successors()
    ready = sorted(i for i in range(graph.n) if indegree[i] == 0)
    order: list[int] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for nxt in succs[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
        ready.sort()
    if len(order) != graph.n:
        stuck = sorted(graph.user_index(i) for i in set(range(graph.n)) - set(order))
        raise ArchitectureError("cycle", f"graph has a cycle: nodes {stuck} lie on it or after it")
    return order


def _reachable(start: int, neighbours: list[list[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in neighbours[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
