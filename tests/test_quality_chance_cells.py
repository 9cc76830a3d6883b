"""benchmarks.quality.chance_cells: which NB201 cells compute nothing, checked on the line-graph IR."""

from __future__ import annotations

import itertools

from benchmarks.quality.chance_cells import computes_nothing
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201


def output_reachable_in_line_graph(arch: str) -> bool:
    """Independent check on the 8-node IR: a path from the input node to the output node through op nodes not ``none``."""
    graph = parse_nb201(arch)
    successors = graph.successors()
    seen, stack = {0}, [0]
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen and graph.nodes[nxt].op != "none":
                seen.add(nxt)
                stack.append(nxt)
    return graph.n - 1 in seen


def test_cells_that_compute_nothing_match_the_line_graph() -> None:
    dead = 0
    for ops in itertools.product(NB201_OPS, repeat=6):
        arch = nb201_arch_str(ops)
        assert computes_nothing(arch) == (not output_reachable_in_line_graph(arch)), arch
        dead += computes_nothing(arch)
    assert dead == 341  # every one of them reads chance in the NB201 table (benchmarks/results/quality/chance_cells.md)
    assert computes_nothing("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")
    assert not computes_nothing("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
