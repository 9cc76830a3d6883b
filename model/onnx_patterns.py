"""Decomposed layer norms written as the one ``LayerNormalization`` onnxruntime fuses them into at load.

Opsets below 17 have no LayerNormalization op, so torch exports ``nn.LayerNorm`` there as nine nodes: ReduceMean, Sub,
Pow, ReduceMean, Add (epsilon), Sqrt, Div, then Mul (scale) and Add (bias). onnxruntime's LayerNormFusion turns the
pattern back into its LayerNormalization kernel when it loads the model, so an opset-13 ViT runs like the opset-17
export. Read node by node, it was predicted 14 % slower, with warnings for ``Pow``, ``Sqrt`` and ``Sub`` (no training
network has them: the datasets' exports are opset 17). ``fuse_layer_norms`` replaces each such chain in the IR by one
LayerNormalization node with the opset-17 export's inputs (data, scale, bias) and shapes. Like onnxruntime, it fuses a
chain only when it normalises the last axis and no node outside the chain reads its intermediate values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from model.onnx_cost import node_cost

if TYPE_CHECKING:  # the parser imports this module: no import of it at run time
    from model.onnx_graph import NetNode

CHAIN = ("ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div")
AFFINE = ("Mul", "Add")


def _last_axis(node: NetNode) -> bool:
    axes = node.attrs.get("axes")
    rank = len(node.input_shapes[0]) if node.input_shapes else 0
    return isinstance(axes, list) and len(axes) == 1 and axes[0] in (-1, rank - 1)


def _weight_at(node: NetNode, position: int) -> bool:
    return position in node.attrs.get("_weights", ())


def _match(nodes: list[NetNode], start: int, readers: Counter[int], successors: dict[int, list[int]]) -> list[int] | None:
    """Indices of the layer-norm chain whose first ReduceMean is ``nodes[start]``, or None."""
    mean = nodes[start]
    if mean.op_type != "ReduceMean" or not _last_axis(mean) or "_element_bytes" in mean.attrs:
        return None
    chain = [start]
    for op_type in CHAIN[1:]:
        wanted = [i for i in successors.get(chain[-1], []) if nodes[i].op_type == op_type]
        if not wanted:
            return None
        chain.append(wanted[0])
    _, sub, power, variance, epsilon, root, div = (nodes[i] for i in chain)
    if set(sub.inputs) != set(mean.inputs) | {chain[0]} or sub.input_shapes[:1] != mean.input_shapes[:1]:
        return None
    if not (_last_axis(variance) and _weight_at(power, 1) and _weight_at(epsilon, 1)):
        return None
    if set(div.inputs) != {chain[1], chain[5]} or div.input_shapes[0] != sub.output_shapes[0]:
        return None
    expected = {chain[0]: 1, chain[1]: 2, chain[2]: 1, chain[3]: 1, chain[4]: 1, chain[5]: 1}
    if any(readers[i] != count for i, count in expected.items()):
        return None
    for op_type in AFFINE:  # scale, then bias: both constant, each read only by the next
        last = chain[-1]
        followers = successors.get(last, [])
        if readers[last] != 1 or len(followers) != 1 or nodes[followers[0]].op_type != op_type:
            break
        node = nodes[followers[0]]
        if node.inputs != (last,) or not _weight_at(node, 1):
            break
        chain.append(followers[0])
    return chain


def _fused(nodes: list[NetNode], chain: list[int]) -> NetNode:
    first, last = nodes[chain[0]], nodes[chain[-1]]
    affine = [nodes[i].input_shapes[1] for i in chain[len(CHAIN) :]]
    shapes = (first.input_shapes[0], *affine)
    attrs = {"axis": -1, **({"_weights": list(range(1, len(shapes)))} if affine else {})}
    cost = node_cost("LayerNormalization", shapes, last.output_shapes, attrs, attrs.get("_weights", ()))
    return replace(last, op_type="LayerNormalization", inputs=first.inputs, input_shapes=shapes, attrs=attrs, cost=cost)


def fuse_layer_norms(nodes: list[NetNode], graph_outputs: set[int] | None = None) -> list[NetNode]:
    """``nodes`` (topological, inputs by index) with every decomposed last-axis layer norm fused; the same list when
    there is none. ``graph_outputs``: indices of the nodes whose outputs are graph outputs (each counts as a reader)."""
    if not any(node.op_type == "Sqrt" for node in nodes):
        return nodes
    readers: Counter[int] = Counter(p for node in nodes for p in node.inputs)
    readers.update(graph_outputs or ())
    successors: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for p in node.inputs:
            successors.setdefault(p, []).append(i)
    replaced: dict[int, NetNode] = {}  # index of a chain's last node -> the fused node
    dropped: set[int] = set()
    for start, node in enumerate(nodes):
        if node.op_type != "ReduceMean" or start in dropped:
            continue
        chain = _match(nodes, start, readers, successors)
        if chain is None or dropped.intersection(chain):
            continue
        replaced[chain[-1]] = _fused(nodes, chain)
        dropped.update(chain[:-1])
    if not replaced:
        return nodes
    out: list[NetNode] = []
    new_index: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if i in dropped:
            continue
        node = replaced.get(i, node)
        new_index[i] = len(out)
        out.append(replace(node, inputs=tuple(sorted({new_index[p] for p in node.inputs}))))
    return out
