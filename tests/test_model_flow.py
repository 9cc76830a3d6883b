"""Information flow through cells: live nodes and the label-free structural properties, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model.flow import flow_properties, live_nodes, property_names
from model.parsers import parse_nb101
from model.parsers.nb201 import nb201_graph

COUNT = ("avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect")
# arch-string edge order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3


def props(ops: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(property_names(COUNT), flow_properties(nb201_graph(ops), COUNT), strict=True))


def test_all_convolutions_four_paths_depth_one_to_three() -> None:
    p = props(("nor_conv_3x3",) * 6)
    assert p["connected"] == 1.0
    assert p["log1p_live_paths"] == pytest.approx(np.log1p(4))  # 0->3, 0->1->3, 0->2->3, 0->1->2->3
    assert (p["max_parametric_depth"], p["min_parametric_depth"]) == (3, 1)
    assert p["live_nor_conv_3x3"] == 6 and p["live_nodes"] == 8  # six ops + input + output


def test_none_cuts_paths_and_dead_ops_do_not_count() -> None:
    # 0->1 none: node 1 is unreachable, so 1->2 and 1->3 are dead; live paths 0->3 (skip) and 0->2->3 (conv, pool)
    p = props(("none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "avg_pool_3x3"))
    assert p["log1p_live_paths"] == pytest.approx(np.log1p(2))
    assert (p["max_parametric_depth"], p["min_parametric_depth"]) == (1, 0)
    assert p["live_nor_conv_1x1"] == 0  # both 1x1 convs hang off the cut node 1
    assert (p["live_nor_conv_3x3"], p["live_skip_connect"], p["live_avg_pool_3x3"]) == (1, 1, 1)
    assert live_nodes(nb201_graph(("none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "avg_pool_3x3"))) == [
        True, False, True, False, True, False, True, True,
    ]  # fmt: skip


def test_disconnected_cell_has_no_flow() -> None:
    p = props(("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none"))  # nothing reaches node 3
    assert p["connected"] == 0.0 and p["log1p_live_paths"] == 0.0
    assert p["max_parametric_depth"] == 0 and p["live_nor_conv_3x3"] == 0 and p["live_nodes"] == 0


def test_properties_work_on_other_spaces() -> None:
    """NB101 has no zero op: a chain of two convs and a pool is one path of parametric depth 2."""
    matrix = [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    g = parse_nb101(matrix, ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"])
    count = ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3")
    p = dict(zip(property_names(count), flow_properties(g, count), strict=True))
    assert p["log1p_live_paths"] == pytest.approx(np.log1p(1))
    assert (p["max_parametric_depth"], p["min_parametric_depth"]) == (2, 2)
    assert p["live_maxpool3x3"] == 1


def test_darts_ops_are_counted_per_cell() -> None:
    from model.canonical import canonicalize
    from model.flow import cell_op_counts
    from model.parsers import parse_darts

    normal = [["sep_conv_3x3", 0], ["skip_connect", 1]] * 4
    reduce = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["dil_conv_5x5", 2], ["sep_conv_3x3", 0]] * 2
    graph = parse_darts(normal, reduce)
    ops = ("dil_conv_5x5", "max_pool_3x3", "sep_conv_3x3", "skip_connect")
    expected = [0, 0, 4, 4] + [2, 4, 2, 0]  # normal cell, then reduce cell
    assert cell_op_counts(graph, ops).tolist() == expected
    assert cell_op_counts(graph.renumbered(canonicalize(graph).order), ops).tolist() == expected  # any valid numbering
    assert cell_op_counts(parse_nb101([[0, 1], [0, 0]], ["input", "output"]), ops).size == 0  # no cells, no counts
