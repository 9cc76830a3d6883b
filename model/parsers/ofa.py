"""OFA MobileNetV3 architectures (HELP's OFA table): ks / e / d / r into a 23-node chain IR, and back.

A spec is 20 kernel sizes ``ks`` (3/5/7), 20 expansion ratios ``e`` (3/4/6), 5 stage depths ``d`` (2..4) and an
input resolution ``r`` (128..224 in steps of 4). Node 0 input; node 1 the resolution (op ``ofa_res_<r>``);
nodes 2..21 the 20 slots, slot j in stage j // 4 at position j % 4, active when j % 4 < d[j // 4] (op
``ofa_k<k>_e<e>``), else ``ofa_skip`` whose ks / e values are ignored (0 is accepted there
as a placeholder, which ``ofa_spec`` reports); node 22 output; edges (i, i + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node
from model.ops import INPUT, OUTPUT
from model.parsers.fields import as_int, field_items

OFA_NUM_STAGES = 5
OFA_SLOTS_PER_STAGE = 4
OFA_NUM_SLOTS = OFA_NUM_STAGES * OFA_SLOTS_PER_STAGE
OFA_KERNELS: tuple[int, ...] = (3, 5, 7)
OFA_EXPANSIONS: tuple[int, ...] = (3, 4, 6)
OFA_DEPTHS: tuple[int, ...] = (2, 3, 4)
OFA_RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))
OFA_SKIP = "ofa_skip"
_EDGES: tuple[tuple[int, int], ...] = tuple((i, i + 1) for i in range(OFA_NUM_SLOTS + 2))
_RES_PREFIX = "ofa_res_"


def parse_ofa(ks: str | Sequence[int], e: str | Sequence[int], d: str | Sequence[int], r: int | str) -> ArchGraph:
    """Parse an OFA MobileNetV3 spec (strings of space-separated ints or int sequences) into the chain IR."""
    depths = _int_list("d", d, OFA_NUM_STAGES, OFA_DEPTHS)
    inactive = [slot % OFA_SLOTS_PER_STAGE >= depths[slot // OFA_SLOTS_PER_STAGE] for slot in range(OFA_NUM_SLOTS)]
    kernels = _int_list("ks", ks, OFA_NUM_SLOTS, OFA_KERNELS, inactive)
    expansions = _int_list("e", e, OFA_NUM_SLOTS, OFA_EXPANSIONS, inactive)
    resolution = _resolution(r)
    nodes = [Node(INPUT), Node(f"{_RES_PREFIX}{resolution}", {"resolution": resolution})]
    for slot in range(OFA_NUM_SLOTS):
        stage, position = divmod(slot, OFA_SLOTS_PER_STAGE)
        if position < depths[stage]:
            k, x = kernels[slot], expansions[slot]
            nodes.append(Node(f"ofa_k{k}_e{x}", {"kernel": k, "expansion": x, "stage": stage, "slot": slot}))
        else:
            nodes.append(Node(OFA_SKIP, {"stage": stage, "slot": slot}))
    nodes.append(Node(OUTPUT))
    return ArchGraph(nodes=tuple(nodes), edges=_EDGES, space="ofa")


def ofa_spec(graph: ArchGraph) -> dict[str, Any]:
    """``{"ks", "e", "d", "r"}`` of an OFA graph (inverse of ``parse_ofa``); inactive slots report ks = e = 0."""
    if graph.space != "ofa" or graph.n != OFA_NUM_SLOTS + 3:
        raise ArchitectureError(
            "bad_ofa", f"not an OFA graph: space {graph.space!r} with {graph.n} nodes (expected 'ofa' with {OFA_NUM_SLOTS + 3})"
        )
    res_node = graph.nodes[1]
    if not res_node.op.startswith(_RES_PREFIX) or "resolution" not in res_node.attrs:
        raise ArchitectureError("bad_ofa", f"node 1 must be an OFA resolution node, got op {res_node.op!r}")
    ks: list[int] = []
    e: list[int] = []
    d = [0] * OFA_NUM_STAGES
    for slot, node in enumerate(graph.nodes[2:-1]):
        stage, position = divmod(slot, OFA_SLOTS_PER_STAGE)
        if node.op == OFA_SKIP:
            ks.append(0)
            e.append(0)
            continue
        if "kernel" not in node.attrs or "expansion" not in node.attrs:
            raise ArchitectureError("bad_ofa", f"slot {slot} (node {slot + 2}) has op {node.op!r}, not an OFA slot op")
        if d[stage] != position:
            raise ArchitectureError("bad_ofa", f"slot {slot} is active after an inactive slot of stage {stage}")
        ks.append(int(node.attrs["kernel"]))
        e.append(int(node.attrs["expansion"]))
        d[stage] += 1
    return {"ks": ks, "e": e, "d": d, "r": int(res_node.attrs["resolution"])}


def _int_list(
    name: str, value: str | Sequence[int], count: int, allowed: tuple[int, ...], inactive: list[bool] | None = None
) -> list[int]:
    """Validated ints of one field; positions flagged ``inactive`` also accept the placeholder 0 (their value is unused)."""
    allowed_text = "/".join(str(a) for a in allowed)
    items = field_items(value, count, "bad_ofa", f"OFA field {name!r} (each {allowed_text})")
    values: list[int] = []
    for index, item in enumerate(items):
        number = as_int(item)
        placeholder = inactive is not None and inactive[index] and number == 0
        if number is None or (number not in allowed and not placeholder):
            hint = " (or 0 in an inactive slot)" if inactive is not None else ""
            raise ArchitectureError(
                "bad_ofa",
                f"OFA field {name!r} value {item!r} at position {index} is not allowed; allowed values: {allowed_text}{hint}",
            )
        values.append(number)
    return values


def _resolution(r: int | str) -> int:
    number = as_int(r)
    if number is None or number not in OFA_RESOLUTIONS:
        raise ArchitectureError(
            "bad_ofa",
            f"OFA field 'r' (input resolution) {r!r} is not allowed; allowed values: "
            f"{OFA_RESOLUTIONS[0]}..{OFA_RESOLUTIONS[-1]} in steps of 4",
        )
    return number
