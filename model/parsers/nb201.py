"""NAS-Bench-201 cells: arch strings (or their 6 op codes) into the 8-node line-graph IR of the method doc.

Node 0 input; nodes 1..6 the six edge ops in arch-string order (0->1, 0->2, 1->2, 0->3, 1->3, 2->3);
node 7 output. An edge-op feeds the edge-ops that leave its destination: input->{1,2,4}; 1->{3,5}; 2->6;
3->6; {4,5,6}->7. ``none`` and ``skip_connect`` nodes are kept.
"""

from __future__ import annotations

import re

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node
from model.ops import INPUT, OUTPUT

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (0, 2),
    (0, 4),
    (1, 3),
    (1, 5),
    (2, 6),
    (3, 6),
    (4, 7),
    (5, 7),
    (6, 7),
)
NB201_NUM_CELLS = len(NB201_OPS) ** 6
# (source cell node) of each of the six edges, in arch-string order, used to check the ~k suffixes
_EDGE_SOURCES = (0, 0, 1, 0, 1, 2)
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")
_OP = r"([a-z0-9_]+)"
_WELL_FORMED = re.compile(rf"\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|")  # the common case, one match
_KNOWN_OPS = frozenset(NB201_OPS)


def parse_nb201(arch: str) -> ArchGraph:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` into the 8-node IR."""
    if not isinstance(arch, str):
        raise ArchitectureError("bad_arch_string", "an NB201 architecture must be a string")
    ops = _ops_from_string(arch.strip())
    return nb201_graph(ops)


def nb201_graph(ops: list[str] | tuple[str, ...]) -> ArchGraph:
    """The IR of a cell given its six edge ops in arch-string order."""
    nodes = (Node(INPUT), *(Node(op) for op in ops), Node(OUTPUT))
    return ArchGraph(nodes=nodes, edges=NB201_EDGES, space="nb201")


def nb201_arch_str(ops: list[str] | tuple[str, ...]) -> str:
    """The arch string of six edge ops (inverse of ``parse_nb201``)."""
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def nb201_twin(ops: list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
    """The six edge ops of the cell that computes the same network with cell nodes 1 and 2 swapped, or None.

    Only a cell whose edge 1->2 is ``none`` has such a twin: swapping the two intermediate nodes then keeps every
    edge pointing forward, so both cells run the same ops on the same tensors (the ``none`` edge stays a zero of
    the same shape). Twins are different arch strings and table rows for one network: any difference between their
    measured values is measurement (or training) noise. None also when the swap gives the cell itself.
    """
    o = tuple(ops)
    if len(o) != 6 or o[2] != "none":
        return None
    twin = (o[1], o[0], "none", o[3], o[5], o[4])
    return None if twin == o else twin


def nb201_representative(ops: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """One form for a cell and its twin: of the two, the one whose op codes come first (``NB201_OPS`` order).

    The service predicts and caches this form, so a network answers the same whichever of its two arch strings is
    asked (the line-graph IR keeps ``none`` nodes, so twins have different canonical keys and token sequences).
    """
    twin = nb201_twin(ops)
    if twin is None:
        return tuple(ops)
    code = {op: i for i, op in enumerate(NB201_OPS)}
    return min(tuple(ops), twin, key=lambda o: [code[op] for op in o])


def parse_nb201_network(arch: str) -> ArchGraph:
    """The IR of an arch string's network: ``parse_nb201`` of the string, or of its twin where that is the
    representative (``nb201_representative``). What the service predicts and caches."""
    if not isinstance(arch, str):
        raise ArchitectureError("bad_arch_string", "an NB201 architecture must be a string")
    return nb201_graph(nb201_representative(_ops_from_string(arch.strip())))


def _ops_from_string(arch: str) -> list[str]:
    well_formed = _WELL_FORMED.fullmatch(arch)
    if well_formed is not None and _KNOWN_OPS.issuperset(well_formed.groups()):
        return list(well_formed.groups())
    return _ops_checked(arch)  # anything else: the step-by-step reading, which names what is wrong


def _ops_checked(arch: str) -> list[str]:
    parts = arch.split("+")
    if len(parts) != 3:
        raise ArchitectureError(
            "bad_arch_string",
            f"NB201 arch string must have 3 '+'-separated node groups, got {len(parts)}: {arch[:120]!r}",
        )
    ops: list[str] = []
    for group_index, part in enumerate(parts):
        if not (part.startswith("|") and part.endswith("|")):
            raise ArchitectureError("bad_arch_string", f"node group {group_index + 1} must be wrapped in '|': {part!r}")
        tokens = part[1:-1].split("|")
        if len(tokens) != group_index + 1:
            raise ArchitectureError(
                "bad_arch_string",
                f"node group {group_index + 1} must have {group_index + 1} edge(s), got {len(tokens)}: {part!r}",
            )
        for token in tokens:
            match = _TOKEN.match(token)
            if match is None:
                raise ArchitectureError("bad_arch_string", f"edge {token!r} is not of the form op~input")
            ops.append(match.group(1))
            expected_source = _EDGE_SOURCES[len(ops) - 1]
            if int(match.group(2)) != expected_source:
                raise ArchitectureError(
                    "bad_arch_string", f"edge {token!r} must read from node {expected_source}, got ~{match.group(2)}"
                )
    for op in ops:
        if op not in NB201_OPS:
            raise ArchitectureError("unknown_op", f"unknown NB201 operation {op!r}; NB201 operations: {', '.join(NB201_OPS)}")
    return ops
