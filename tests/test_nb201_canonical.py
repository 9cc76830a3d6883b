"""The precomputed NB201 canonical table (model/nb201_canonical.npz) is what canonicalize gives, for every cell."""

from __future__ import annotations

import itertools

from model.canonical import canonicalize
from model.nb201_canonical import build_table, canonical_nb201, cell_index
from model.parsers import NB201_OPS
from model.parsers.nb201 import nb201_arch_str, nb201_graph
from service.pipeline import _canonical, _prepare_nb201


def test_the_shipped_table_holds_canonicalize_of_every_cell() -> None:
    for index, ops in enumerate(itertools.product(NB201_OPS, repeat=6)):
        assert cell_index(ops) == index
        assert canonical_nb201(ops) == canonicalize(nb201_graph(ops)), ops


def test_the_table_rebuilds_to_the_shipped_one() -> None:
    orders, keys = build_table()
    cells = list(itertools.product(NB201_OPS, repeat=6))
    for index in (0, 1, 777, 15_624):
        shipped = canonical_nb201(cells[index])
        assert tuple(orders[index]) == shipped.order and keys[index].tobytes().hex() == shipped.key


def test_the_service_prepares_a_cell_as_the_general_path_does() -> None:
    for ops in [("nor_conv_3x3",) * 6, ("none", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "none")]:
        _prepare_nb201.cache_clear()
        assert _prepare_nb201(nb201_arch_str(ops), 1000) == _canonical(nb201_graph(ops), 1000)
