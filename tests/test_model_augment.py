"""Augmentation: ``topological_orders`` enumerates exactly the valid renumberings; ``sample_order`` draws one."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from test_model_dags import PROPERTY, dags, is_valid_order

from model.augment import DEFAULT_MAX_ORDERS, sample_order, topological_orders
from model.ir import ArchGraph, Node
from model.parsers import parse_darts, parse_nb201
from model.parsers.nb201 import nb201_graph


def brute_force_orders(g: ArchGraph) -> set[tuple[int, ...]]:
    n = g.n
    return {order for middle in itertools.permutations(range(1, n - 1)) if is_valid_order(g, order := (0, *middle, n - 1))}


@PROPERTY
@given(dags(max_nodes=8))
def test_topological_orders_match_brute_force(g):
    orders = topological_orders(g)
    assert orders.dtype == np.int64
    assert orders.shape[1] == g.n
    rows = [tuple(int(v) for v in row) for row in orders]
    assert len(rows) == len(set(rows))  # no order twice
    assert set(rows) == brute_force_orders(g)
    for row in orders:
        r = g.renumbered(row)
        assert r.is_topologically_ordered()
        assert np.array_equal(np.triu(r.adjacency(), k=1), r.adjacency())  # adjacency stays upper-triangular
        assert r.ops[0] == "input" and r.ops[-1] == "output"


def test_nb201_has_exactly_the_brute_force_number_of_orders():
    g = parse_nb201("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    expected = brute_force_orders(g)
    orders = topological_orders(g)
    assert {tuple(map(int, row)) for row in orders} == expected
    assert len(orders) == len(expected)
    # linear extensions of 1<3<6, 2<6, 1<5 with 4 free: 11 orders of {1,2,3,5,6} times 6 slots for node 4
    assert len(expected) == 66
    # the count depends on the wiring only, not on the ops
    assert len(topological_orders(nb201_graph(["none"] * 6))) == 66


@PROPERTY
@given(dags(max_nodes=9), st.integers(1, 30))
def test_limit_caps_the_count_and_keeps_the_enumeration_prefix(g, limit):
    full = topological_orders(g)
    capped = topological_orders(g, limit=limit)
    assert len(capped) == min(limit, len(full))
    assert np.array_equal(capped, full[: len(capped)])


def test_limit_on_a_graph_with_many_orders():
    # input -> 7 independent nodes -> output: 7! = 5040 orders, more than the default cap
    nodes = (Node("input"), *[Node("nor_conv_3x3")] * 7, Node("output"))
    edges = tuple((0, i) for i in range(1, 8)) + tuple((i, 8) for i in range(1, 8))
    g = ArchGraph(nodes=nodes, edges=edges)
    assert len(topological_orders(g)) == DEFAULT_MAX_ORDERS < 5040
    assert len(topological_orders(g, limit=10_000)) == 5040
    assert len(topological_orders(g, limit=17)) == 17


def test_single_order_graphs():
    chain = ArchGraph(nodes=(Node("input"), Node("skip_connect"), Node("output")), edges=((0, 1), (1, 2)))
    assert topological_orders(chain).tolist() == [[0, 1, 2]]
    two = ArchGraph(nodes=(Node("input"), Node("output")), edges=((0, 1),))
    assert topological_orders(two).tolist() == [[0, 1]]


@PROPERTY
@given(dags(), st.integers(0, 2**32 - 1))
def test_sample_order_is_always_valid(g, seed):
    rng = np.random.default_rng(seed)
    for _ in range(5):
        order = sample_order(g, rng)
        assert order.dtype == np.int64
        assert is_valid_order(g, order)
        assert g.renumbered(order).is_topologically_ordered()


def test_sample_order_reaches_every_nb201_order_and_is_seeded():
    g = parse_nb201("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    rng = np.random.default_rng(0)
    seen = {tuple(map(int, sample_order(g, rng))) for _ in range(3000)}
    assert seen == {tuple(map(int, row)) for row in topological_orders(g)}
    a = [sample_order(g, np.random.default_rng(7)).tolist() for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_sample_order_on_darts_graph():
    normal = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 2 + [("skip_connect", 2), ("dil_conv_3x3", 3)] * 2
    reduce = [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 2 + [("skip_connect", 2), ("skip_connect", 3)] * 2
    g = parse_darts(normal, reduce)
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert is_valid_order(g, sample_order(g, rng))
