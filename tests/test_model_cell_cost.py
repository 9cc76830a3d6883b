"""NB201 FLOPs / params from the cell IR against the published NAS-Bench-201 figures and hand counts."""

from __future__ import annotations

import pytest

from model.cell_cost import nb201_cost
from model.parsers import nb201_arch_str, parse_nb201


def test_largest_and_smallest_cells_match_the_published_figures() -> None:
    # NAS-Bench-201 (Dong & Yang, 2020) lists 220.11 M multiply-adds and 1.53 MB params for the all-3x3 cell,
    # 7.78 M multiply-adds and 0.07 MB for cells whose output is cut off.
    big = nb201_cost(parse_nb201(nb201_arch_str(["nor_conv_3x3"] * 6)))
    assert big.flops / 2 / 1e6 == pytest.approx(220.11, abs=0.01)
    assert big.params / 1e6 == pytest.approx(1.53, abs=0.01)
    empty = nb201_cost(parse_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert empty.flops / 2 / 1e6 == pytest.approx(7.78, abs=0.01)


def test_ops_off_every_input_output_path_cost_nothing() -> None:
    empty = nb201_cost(parse_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    dangling = nb201_cost(parse_nb201("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert dangling == empty


def test_one_conv_on_the_direct_edge_adds_its_hand_count() -> None:
    empty = nb201_cost(parse_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    one = nb201_cost(parse_nb201("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"))
    # 5 cells per stage, 2 FLOPs per MAC, C^2 * pixels is 16^2*32^2 = 32^2*16^2 = 64^2*8^2 = 262,144 at every stage
    assert one.flops - empty.flops == pytest.approx(3 * 5 * 2 * 262_144)
    assert one.params - empty.params == pytest.approx(5 * ((16 * 16 + 32) + (32 * 32 + 64) + (64 * 64 + 128)))
