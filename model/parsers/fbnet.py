"""FBNet architectures (HELP's FBNet table): 22 layer choices into a 24-node chain IR, and back.

A spec is 22 choice names (space-separated string or sequence) or 22 integer codes 0..8 (the table's
``op_idx`` column, indices into ``FBNET_CHOICES``). Node 0 input; nodes 1..22 the layers in order, op
``fbnet_<choice>`` with attrs kernel / expansion / groups / layer; node 23 output; edges (i, i + 1).
``skip`` layers are kept as nodes (kernel 0, expansion 0, groups 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from model.errors import ArchitectureError
from model.ir import ArchGraph, Node
from model.ops import INPUT, OUTPUT
from model.parsers.fields import as_int, field_items

FBNET_CHOICES: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_NUM_LAYERS = 22
FBNET_OP_PREFIX = "fbnet_"
_CHOICE_INDEX = {choice: code for code, choice in enumerate(FBNET_CHOICES)}
_EDGES: tuple[tuple[int, int], ...] = tuple((i, i + 1) for i in range(FBNET_NUM_LAYERS + 1))


def _choice_attrs(choice: str) -> dict[str, int]:
    if choice == "skip":
        return {"kernel": 0, "expansion": 0, "groups": 1}
    parts = choice.split("_")
    groups = int(parts[2][1:]) if len(parts) == 3 else 1
    return {"kernel": int(parts[0][1:]), "expansion": int(parts[1][1:]), "groups": groups}


_CHOICE_ATTRS: dict[str, dict[str, int]] = {choice: _choice_attrs(choice) for choice in FBNET_CHOICES}


def parse_fbnet(layers: str | Sequence[str] | Sequence[int]) -> ArchGraph:
    """Parse 22 FBNet layer choices (names, space-separated names, or op_idx codes 0..8) into the chain IR."""
    choices = _choices(layers)
    nodes = [Node(INPUT)]
    for index, choice in enumerate(choices):
        nodes.append(Node(FBNET_OP_PREFIX + choice, {**_CHOICE_ATTRS[choice], "layer": index}))
    nodes.append(Node(OUTPUT))
    return ArchGraph(nodes=tuple(nodes), edges=_EDGES, space="fbnet")


def fbnet_spec(graph: ArchGraph) -> str:
    """The space-separated choice names of an FBNet graph (inverse of ``parse_fbnet``)."""
    if graph.space != "fbnet" or graph.n != FBNET_NUM_LAYERS + 2:
        raise ArchitectureError(
            "bad_fbnet", f"not an FBNet graph: space {graph.space!r} with {graph.n} nodes (expected 'fbnet' with 24)"
        )
    choices: list[str] = []
    for node in graph.nodes[1:-1]:
        choice = node.op.removeprefix(FBNET_OP_PREFIX)
        if not node.op.startswith(FBNET_OP_PREFIX) or choice not in _CHOICE_INDEX:
            raise ArchitectureError("unknown_op", f"node op {node.op!r} is not an FBNet layer choice")
        choices.append(choice)
    return " ".join(choices)


def _choices(layers: str | Sequence[str] | Sequence[int]) -> list[str]:
    what = f"an FBNet architecture ({FBNET_NUM_LAYERS} layers, one choice each)"
    items = field_items(layers, FBNET_NUM_LAYERS, "bad_fbnet", what)
    choices: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            if item not in _CHOICE_INDEX:
                raise ArchitectureError(
                    "unknown_op",
                    f"unknown FBNet choice {item!r} at layer {index}; valid choices: {', '.join(FBNET_CHOICES)}",
                )
            choices.append(item)
        elif (code := as_int(item)) is not None:
            if not 0 <= code < len(FBNET_CHOICES):
                raise ArchitectureError(
                    "unknown_op",
                    f"FBNet choice code {code} at layer {index} is outside 0..{len(FBNET_CHOICES) - 1}; "
                    f"codes index {', '.join(FBNET_CHOICES)}",
                )
            choices.append(FBNET_CHOICES[code])
        else:
            raise ArchitectureError(
                "bad_fbnet", f"FBNet layer {index} must be a choice name or an integer code, got {type(item).__name__}"
            )
    return choices
