"""Nodes of an ONNX graph put in topological order, as onnxruntime does when it loads a model.

The ONNX spec asks for topologically sorted nodes, but onnxruntime sorts them itself and runs graphs that are not:
``onnxruntime.transformers.float16.convert_float_to_float16``, the usual float16 converter, appends its input casts
at the end of the node list. ``sort_nodes`` leaves a sorted graph untouched and otherwise reorders it stably (each
node as early as its inputs allow, ties in file order); a graph with a cycle is refused.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import onnx

from model.errors import ArchitectureError


def _subgraph_inputs(node: onnx.NodeProto) -> Iterator[str]:
    """Every name read inside a node's subgraphs (If / Loop / Scan bodies read outer values by name)."""
    for attr in node.attribute:
        for graph in [attr.g, *attr.graphs]:
            for inner in graph.node:
                yield from inner.input
                yield from _subgraph_inputs(inner)


def _reads(node: onnx.NodeProto) -> set[str]:
    return {name for name in [*node.input, *_subgraph_inputs(node)] if name}


def is_sorted(graph: onnx.GraphProto) -> bool:
    """Whether every node-produced name a node reads comes from an earlier node."""
    produced_by = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    return all(produced_by.get(name, -1) < i for i, node in enumerate(graph.node) for name in _reads(node))


def sort_nodes(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically in place (stable); no change when already sorted; a cycle is refused."""
    if is_sorted(graph):
        return
    nodes = list(graph.node)
    produced_by = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    waiting_on = [0] * len(nodes)
    readers: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        sources = {produced_by[name] for name in _reads(node) if name in produced_by} - {i}
        waiting_on[i] = len(sources)
        for source in sources:
            readers[source].append(i)
        if any(produced_by.get(name) == i for name in _reads(node)):
            waiting_on[i] = -1  # reads its own output: never ready
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for reader in readers[i]:
            waiting_on[reader] -= 1
            if waiting_on[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) < len(nodes):
        placed = set(order)
        stuck = next(node for i, node in enumerate(nodes) if i not in placed)
        raise ArchitectureError(
            "invalid_onnx", f"the ONNX graph has a cycle through node {stuck.name or stuck.op_type!r}"
        )
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)
