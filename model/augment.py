"""Information-flow-consistency augmentation: the valid renumberings of a DAG's intermediate nodes.

A renumbering keeps the input first and the output last and keeps the adjacency upper-triangular, i.e. it is
another topological order of the same DAG: same computation, same label, different position and source codes.
``topological_orders`` enumerates them all (up to a cap); ``sample_order`` draws one.
"""

from __future__ import annotations

import numpy as np

from model.ir import ArchGraph

DEFAULT_MAX_ORDERS = 5_000


def topological_orders(graph: ArchGraph, limit: int = DEFAULT_MAX_ORDERS) -> np.ndarray:
    """All topological orders with node 0 first and node n-1 last, as rows of old indices (at most ``limit``)."""
    n = graph.n
    preds = graph.predecessors()
    succs = graph.successors()
    indegree = [len(p) for p in preds]
    placed = [False] * n
    order: list[int] = [0]
    placed[0] = True
    for nxt in succs[0]:
        indegree[nxt] -= 1
    found: list[list[int]] = []

    def extend() -> None:
        if len(found) >= limit:
            return
        if len(order) == n - 1:
            found.append([*order, n - 1])
            return
        for node in range(1, n - 1):
            if not placed[node] and indegree[node] == 0:
                placed[node] = True
                order.append(node)
                for nxt in succs[node]:
                    indegree[nxt] -= 1
                extend()
                for nxt in succs[node]:
                    indegree[nxt] += 1
                order.pop()
                placed[node] = False

    extend()
    return np.asarray(found, dtype=np.int64)


def sample_padded_orders(pools: list[np.ndarray], rng: np.random.Generator, length: int) -> np.ndarray:
    """One order per graph, drawn from its pool of valid orders, padded to ``length`` (padding positions stay put)."""
    picked = [pool[rng.integers(len(pool))] for pool in pools]
    return np.stack([np.concatenate([order, np.arange(len(order), length)]) for order in picked])


def sample_order(graph: ArchGraph, rng: np.random.Generator) -> np.ndarray:
    """One random topological order (random-priority Kahn), for graphs with too many orders to enumerate."""
    n = graph.n
    preds = graph.predecessors()
    succs = graph.successors()
    indegree = [len(p) for p in preds]
    order = [0]
    for nxt in succs[0]:
        indegree[nxt] -= 1
    ready = [i for i in range(1, n - 1) if indegree[i] == 0]
    while ready:
        node = ready.pop(int(rng.integers(len(ready))))
        order.append(node)
        for nxt in succs[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0 and nxt != n - 1:
                ready.append(nxt)
    order.append(n - 1)
    return np.asarray(order, dtype=np.int64)
