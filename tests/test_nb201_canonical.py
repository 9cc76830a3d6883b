"""The precomputed NB201 canonical table (model/nb201_canonical.npz) is what canonicalize gives, for every cell."""

from __future__ import annotations

import itertools

from model.canonical import Canonical, canonicalize
from model.nb201_canonical import build_table, canonical_nb201, cell_index
from model.parsers import NB201_OPS
from model.parsers.nb201 import nb201_arch_str, nb201_graph
from service.pipeline import _canonical, _prepare_nb201


def test_the_shipped_table_is_what_canonicalize_gives_for_every_cell() -> None:
    orders, keys = build_table()  # canonicalize of every cell, in cell_index order
    for index, ops in enumerate(itertools.product(NB201_OPS, repeat=6)):
        assert cell_index(ops) == index
        assert canonical_nb201(ops) == Canonical(order=tuple(orders[index]), key=keys[index].tobytes().hex()), ops
    assert canonical_nb201(("nor_conv_3x3",) * 6) == canonicalize(nb201_graph(("nor_conv_3x3",) * 6))


def test_the_service_prepares_a_cell_as_the_general_path_does() -> None:
    for ops in [("nor_conv_3x3",) * 6, ("none", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "none")]:
        _prepare_nb201.cache_clear()
        assert _prepare_nb201(nb201_arch_str(ops), 1000) == _canonical(nb201_graph(ops), 1000)
