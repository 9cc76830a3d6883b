"""Canonical node order and key of an architecture: identical for every renumbering of the same DAG.

The canonical order is the topological order whose encoding (per position: node label, sorted predecessor
positions) is lexicographically smallest among the orders that, at every step, place an available node of the
smallest colour. Colours come from Weisfeiler-Lehman refinement over predecessors and successors, so they are
invariant to renumbering and the search only branches between nodes that refinement cannot tell apart.
The encoding describes the graph completely, so two graphs share a key exactly when they are isomorphic
(same ops, same wiring). Tokenizing in canonical order makes predictions exactly renumbering-invariant.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from model.errors import ArchitectureError
from model.ir import ArchGraph

MAX_SEARCH_LEAVES = 2_000  # bounds the CPU one request can cost (~0.2 s); only highly symmetric graphs reach it


@dataclass(frozen=True)
class Canonical:
    order: tuple[int, ...]
    key: str


def canonicalize(graph: ArchGraph) -> Canonical:
    """Canonical order (old indices, in canonical sequence) and hex key of a validated graph."""
    labels = [node.label() for node in graph.nodes]
    preds = graph.predecessors()
    succs = graph.successors()
    only = _only_order(preds, succs)
    if only is not None:  # a chain-like DAG: every search takes this order, so colours and search are skipped
        position = {node: k for k, node in enumerate(only)}
        encoding = [(labels[i], tuple(sorted(position[p] for p in preds[i]))) for i in only]
        return Canonical(order=tuple(only), key=_digest(encoding))
    colours = _refine_colours(labels, preds, succs)
    best: list[tuple[str, tuple[int, ...]]] | None = None
    best_order: list[int] = []
    leaves = 0

    indegree = [len(p) for p in preds]
    position: dict[int, int] = {}
    order: list[int] = []
    encoding: list[tuple[str, tuple[int, ...]]] = []

    def search() -> None:
        nonlocal best, best_order, leaves
        if len(order) == graph.n:
            leaves += 1
            if best is None or encoding < best:
                best, best_order = list(encoding), list(order)
            return
        if leaves >= MAX_SEARCH_LEAVES:
            raise ArchitectureError("too_symmetric", f"graph is too symmetric to canonicalize within {MAX_SEARCH_LEAVES} orders")
        ready = [i for i in range(graph.n) if indegree[i] == 0 and i not in position]
        smallest = min(colours[i] for i in ready)
        k = len(encoding)
        items = {i: (labels[i], tuple(sorted(position[p] for p in preds[i]))) for i in ready if colours[i] == smallest}
        item = min(items.values())  # a larger item at position k can never give the smallest encoding
        if best is not None and encoding == best[:k] and item > best[k]:
            return
        tied = [i for i, candidate in items.items() if candidate == item]
        # nodes with the same label, predecessors and successors are twins: swapping them is an automorphism,
        # so exploring one of them is enough
        representatives = {tuple(sorted(succs[i])): i for i in reversed(tied)}
        for node in sorted(representatives.values()):
            position[node] = k
            order.append(node)
            encoding.append(item)
            for nxt in succs[node]:
                indegree[nxt] -= 1
            search()
            for nxt in succs[node]:
                indegree[nxt] += 1
            encoding.pop()
            order.pop()
            del position[node]

    search()
    assert best is not None
    return Canonical(order=tuple(best_order), key=_digest(best))


def _digest(encoding: list[tuple[str, tuple[int, ...]]]) -> str:
    return hashlib.sha256(repr(encoding).encode()).hexdigest()[:32]


def _only_order(preds: list[list[int]], succs: list[list[int]]) -> list[int] | None:
    """The graph's topological order when it has exactly one (one node ready at every step, as in a chain of layers:
    FBNet, OFA), else None."""
    indegree = [len(p) for p in preds]
    ready = [i for i, d in enumerate(indegree) if d == 0]
    order: list[int] = []
    while len(ready) == 1:
        node = ready.pop()
        order.append(node)
        for nxt in succs[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return order if len(order) == len(preds) else None


def _refine_colours(labels: list[str], preds: list[list[int]], succs: list[list[int]]) -> list[int]:
    """Weisfeiler-Lehman colour refinement on a directed graph; colours are ranks of invariant signatures."""
    colours = _ranks(labels)
    for _ in range(len(labels)):
        signatures = [
            (colours[i], tuple(sorted(colours[p] for p in preds[i])), tuple(sorted(colours[s] for s in succs[i])))
            for i in range(len(labels))
        ]
        refined = _ranks(signatures)
        if len(set(refined)) == len(set(colours)):
            return refined
        colours = refined
    return colours


def _ranks(values: list) -> list[int]:
    table = {value: rank for rank, value in enumerate(sorted(set(values)))}
    return [table[value] for value in values]
