"""DARTS genotypes (normal + reduce cell, each 8 (op, input) pairs) into one IR graph.

Each cell has two inputs (states 0 = c_{k-2}, 1 = c_{k-1}) and four intermediate states 2..5, each the sum of
two op outputs. In the IR every (op, input) pair is one op node, every intermediate state an ``add`` node and
each cell output a ``concat`` of the four states. The normal cell reads the network input as both of its
inputs; the reduce cell reads the network input as c_{k-2} and the normal cell's output as c_{k-1}; the output node
reads both cell outputs, as the next cell of a DARTS stack does (its c_{k-2} and c_{k-1}), so no cell is ever dead.
"""

from __future__ import annotations

from collections.abc import Sequence

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node
from model.ops import INPUT, OUTPUT

DARTS_OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
DARTS_PAIRS_PER_CELL = 8


def parse_darts(normal: Sequence[Sequence[object]], reduce: Sequence[Sequence[object]]) -> ArchGraph:
    """Parse two cells of ``[op, input_state]`` pairs (op by name, or by index into ``DARTS_OPS``)."""
    nodes: list[Node] = [Node(INPUT)]
    edges: list[tuple[int, int]] = []
    normal_out = _add_cell(nodes, edges, "normal", normal, inputs=(0, 0))
    reduce_out = _add_cell(nodes, edges, "reduce", reduce, inputs=(0, normal_out))
    nodes.append(Node(OUTPUT))
    edges.append((normal_out, len(nodes) - 1))
    edges.append((reduce_out, len(nodes) - 1))
    return ArchGraph(nodes=tuple(nodes), edges=tuple(dict.fromkeys(edges)), space="darts")


def _add_cell(
    nodes: list[Node], edges: list[tuple[int, int]], name: str, pairs: Sequence[Sequence[object]], inputs: tuple[int, int]
) -> int:
    if not isinstance(pairs, Sequence) or len(pairs) != DARTS_PAIRS_PER_CELL:
        got = len(pairs) if isinstance(pairs, Sequence) else type(pairs).__name__
        raise ArchitectureError("bad_genotype", f"{name} cell needs {DARTS_PAIRS_PER_CELL} (op, input) pairs, got {got}")
    op_nodes: list[tuple[int, int]] = []  # (node index, input state)
    for k, pair in enumerate(pairs):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ArchitectureError("bad_genotype", f"{name} cell pair {k} must be [op, input], got {pair!r}")
        op, state = _op_name(pair[0], name, k), pair[1]
        if not isinstance(state, int) or isinstance(state, bool):
            raise ArchitectureError("bad_genotype", f"{name} cell pair {k}: input must be an integer, got {state!r}")
        intermediate = 2 + k // 2
        if not 0 <= state < intermediate:
            raise ArchitectureError(
                "bad_genotype",
                f"{name} cell pair {k} feeds state {intermediate} and may read states 0..{intermediate - 1}, got {state}",
            )
        nodes.append(Node(op))
        op_nodes.append((len(nodes) - 1, state))
    state_node = {0: inputs[0], 1: inputs[1]}
    for intermediate in range(2, 6):
        add_index = len(nodes)
        nodes.append(Node("add"))
        for node_index, state in op_nodes[2 * (intermediate - 2) : 2 * (intermediate - 1)]:
            edges.append((state_node[state], node_index))
            edges.append((node_index, add_index))
        state_node[intermediate] = add_index
    concat = len(nodes)
    nodes.append(Node("concat"))
    for intermediate in range(2, 6):
        edges.append((state_node[intermediate], concat))
    return concat


def _op_name(op: object, cell: str, k: int) -> str:
    if isinstance(op, int) and not isinstance(op, bool):
        if not 0 <= op < len(DARTS_OPS):
            raise ArchitectureError("unknown_op", f"{cell} cell pair {k}: op index {op} outside 0..{len(DARTS_OPS) - 1}")
        return DARTS_OPS[op]
    if op not in DARTS_OPS:
        raise ArchitectureError("unknown_op", f"{cell} cell pair {k}: unknown DARTS op {op!r}; known: {', '.join(DARTS_OPS)}")
    return str(op)
