"""Canonical order and key: identical for every renumbering of a DAG, different for different DAGs."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st
from test_model_dags import PROPERTY, dags, is_valid_order, isomorphic, scramble

from model.augment import sample_order, topological_orders
from model.canonical import canonicalize
from model.errors import ArchitectureError
from model.ir import ArchGraph, Node, validate
from model.parsers import parse_nb201
from model.tokenizer import tokenize_graphs


def key(g: ArchGraph) -> str:
    return canonicalize(g).key


def canonical_graph(g: ArchGraph) -> ArchGraph:
    return g.renumbered(canonicalize(g).order)


@PROPERTY
@given(st.data())
def test_key_invariant_under_topological_renumbering(data):
    g = data.draw(dags())
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = key(g)
    for order in [sample_order(g, rng) for _ in range(3)]:
        r = g.renumbered(order)
        assert r.is_topologically_ordered()
        assert key(r) == base
    orders = topological_orders(g, limit=50)
    picks = orders[data.draw(st.lists(st.integers(0, len(orders) - 1), min_size=1, max_size=3))]
    for order in picks:
        assert key(g.renumbered(order)) == base


@PROPERTY
@given(st.data())
def test_key_invariant_under_arbitrary_permutation_via_json(data):
    g = data.draw(dags())
    perm = data.draw(st.permutations(range(g.n)))
    edge_perm = data.draw(st.permutations(range(len(g.edges))))
    s = scramble(g, perm, edge_perm)
    validate(s)
    cg, cs = canonicalize(g), canonicalize(s)
    assert cs.key == cg.key
    # both orders are valid topological orders, and the canonical graphs are identical node for node
    assert is_valid_order(g, cg.order) and is_valid_order(s, cs.order)
    a, b = g.renumbered(cg.order), s.renumbered(cs.order)
    assert a.is_topologically_ordered() and b.is_topologically_ordered()
    assert a.nodes == b.nodes
    assert set(a.edges) == set(b.edges)
    # so tokenizing the canonical renumberings gives identical tokens
    ta, tb = tokenize_graphs([a]), tokenize_graphs([b])
    assert np.array_equal(ta.tokens, tb.tokens)
    assert np.array_equal(ta.mask, tb.mask) and np.array_equal(ta.depth, tb.depth)


@PROPERTY
@given(st.data())
def test_canonical_order_is_topological(data):
    g = data.draw(dags())
    perm = data.draw(st.permutations(range(g.n)))
    s = scramble(g, perm)
    for h in (g, s):
        c = canonicalize(h)
        assert len(c.key) == 32 and int(c.key, 16) >= 0
        assert is_valid_order(h, c.order)
        assert h.renumbered(c.order).is_topologically_ordered()
        # canonicalizing the canonical graph is a fixed point
        again = canonicalize(h.renumbered(c.order))
        assert again.order == tuple(range(h.n)) and again.key == c.key


@PROPERTY
@given(st.data())
def test_changing_one_op_changes_the_key(data):
    g = data.draw(dags())
    i = data.draw(st.integers(1, g.n - 2))
    new_op = data.draw(st.sampled_from([op for op in ("nor_conv_3x3", "nor_conv_1x1", "skip_connect") if op != g.ops[i]]))
    nodes = list(g.nodes)
    nodes[i] = Node(new_op)
    changed = ArchGraph(nodes=tuple(nodes), edges=g.edges)
    validate(changed)
    assert key(changed) != key(g)


@PROPERTY
@given(st.data())
def test_adding_or_removing_one_edge_changes_the_key(data):
    g = data.draw(dags())
    n = g.n
    present = set(g.edges)
    addable = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) not in present]
    removable = []
    for edge in g.edges:
        candidate = ArchGraph(nodes=g.nodes, edges=tuple(e for e in g.edges if e != edge))
        try:
            validate(candidate)
        except ArchitectureError:
            continue
        removable.append(candidate)
    choices = [ArchGraph(nodes=g.nodes, edges=tuple(sorted([*g.edges, e]))) for e in addable] + removable
    assume(choices)
    changed = data.draw(st.sampled_from(choices))
    validate(changed)
    assert key(changed) != key(g)


@st.composite
def graph_pairs(draw):
    """Pairs of small graphs over two ops that are often isomorphic and often not."""
    ops = ("nor_conv_3x3", "skip_connect")
    g = draw(dags(min_nodes=3, max_nodes=7, ops=ops))
    kind = draw(st.sampled_from(["renumbered", "op_changed", "edge_toggled", "independent"]))
    h = g
    if kind == "op_changed":
        i = draw(st.integers(1, g.n - 2))
        nodes = list(g.nodes)
        nodes[i] = Node(ops[1 - ops.index(g.ops[i])])
        h = ArchGraph(nodes=tuple(nodes), edges=g.edges)
    elif kind == "edge_toggled":
        i = draw(st.integers(0, g.n - 2))
        j = draw(st.integers(i + 1, g.n - 1))
        edges = set(g.edges) ^ {(i, j)}
        h = ArchGraph(nodes=g.nodes, edges=tuple(sorted(edges)))
        try:
            validate(h)
        except ArchitectureError:
            assume(False)
    elif kind == "independent":
        h = draw(dags(min_nodes=g.n, max_nodes=g.n, ops=ops))
    perm = draw(st.permutations(range(h.n)))
    return g, scramble(h, perm)


@PROPERTY
@given(graph_pairs())
def test_key_equal_iff_isomorphic(pair):
    g, h = pair
    same = isomorphic(g, h)
    event(f"isomorphic={same}")
    assert (key(g) == key(h)) == same


def test_key_equal_iff_isomorphic_on_all_small_graphs():
    """Exhaustive over every valid 5-node DAG (3 middle nodes, 2 ops, topologically numbered)."""
    ops = ("nor_conv_3x3", "skip_connect")
    pairs = list(itertools.combinations(range(5), 2))
    graphs = []
    for mask in range(1 << len(pairs)):
        edges = tuple(p for b, p in enumerate(pairs) if mask >> b & 1)
        for middle in itertools.product(ops, repeat=3):
            g = ArchGraph(nodes=(Node("input"), *map(Node, middle), Node("output")), edges=edges)
            try:
                validate(g)
            except ArchitectureError:
                continue
            graphs.append(g)
    keys = [key(g) for g in graphs]
    # group by key and check: within a group all isomorphic; representatives of different groups are not
    groups: dict[str, list[ArchGraph]] = {}
    for k, g in zip(keys, graphs, strict=True):
        groups.setdefault(k, []).append(g)
    reps = [members[0] for members in groups.values()]
    for members in groups.values():
        assert all(isomorphic(members[0], other) for other in members[1:])
    for a_index, a in enumerate(reps):
        for b in reps[a_index + 1 :]:
            assert not isomorphic(a, b)
    assert len(groups) < len(graphs)  # some distinct numberings really are the same DAG


def test_twins_and_symmetric_branches():
    # 0 -> {1, 2, 3} -> 4 with identical ops: all renumberings give one key, a different op gives another
    def fan(ops):
        nodes = (Node("input"), *map(Node, ops), Node("output"))
        return ArchGraph(nodes=nodes, edges=((0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4)))

    assert key(fan(["nor_conv_3x3"] * 3)) != key(fan(["nor_conv_3x3", "nor_conv_3x3", "skip_connect"]))
    assert key(fan(["skip_connect", "nor_conv_3x3", "nor_conv_3x3"])) == key(
        fan(["nor_conv_3x3", "skip_connect", "nor_conv_3x3"])
    )

    # k parallel chains input -> a_i -> b_i -> output; crossing two chains' second ops changes nothing
    def chains(seconds):
        nodes = [Node("input")]
        edges = []
        for second in seconds:
            a = len(nodes)
            nodes += [Node("nor_conv_3x3"), Node(second)]
            edges += [(0, a), (a, a + 1)]
        nodes.append(Node("output"))
        edges += [(a + 1, len(nodes) - 1) for a in range(1, len(nodes) - 1, 2)]
        return ArchGraph(nodes=tuple(nodes), edges=tuple(edges))

    g1 = chains(["skip_connect", "avg_pool_3x3", "skip_connect", "nor_conv_1x1"])
    g2 = chains(["nor_conv_1x1", "skip_connect", "avg_pool_3x3", "skip_connect"])
    g3 = chains(["nor_conv_1x1", "skip_connect", "avg_pool_3x3", "avg_pool_3x3"])
    validate(g1)
    assert key(g1) == key(g2) != key(g3)


def parallel_chains(k: int) -> ArchGraph:
    """input -> a_i -> b_i -> output for i = 1..k, all ops equal: a valid graph of 2k + 2 nodes."""
    nodes = [Node("input")]
    edges = []
    for _ in range(k):
        a = len(nodes)
        nodes += [Node("nor_conv_3x3"), Node("nor_conv_3x3")]
        edges += [(0, a), (a, a + 1), (a + 1, 2 * k + 1)]
    nodes.append(Node("output"))
    return ArchGraph(nodes=tuple(nodes), edges=tuple(edges))


def test_symmetric_parallel_branches_get_one_key():
    g = validate(parallel_chains(5))
    rng = np.random.default_rng(0)
    assert {key(g.renumbered(sample_order(g, rng))) for _ in range(5)} == {key(g)}


def test_too_symmetric_graphs_fail_fast_with_a_clear_error():
    """Known limit: k identical parallel chains need k! search leaves; the search is capped so it fails fast."""
    assert len(key(validate(parallel_chains(6)))) == 32  # 6! = 720 leaves: within the cap
    g = validate(parallel_chains(8))
    start = time.process_time()
    with pytest.raises(ArchitectureError) as err:
        key(g)
    assert err.value.code == "too_symmetric" and "too symmetric" in err.value.message
    assert time.process_time() - start < 1.0


def test_nb201_key_is_stable_under_renumbering():
    g = parse_nb201("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    keys = {key(g.renumbered(order)) for order in topological_orders(g)}
    assert keys == {key(g)}


def _searched(g: ArchGraph):
    """canonicalize with the unique-order shortcut switched off: colours and search, always."""
    import model.canonical as canonical_module

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(canonical_module, "_only_order", lambda preds, succs: None)
        return canonicalize(g)


@PROPERTY
@given(st.data())
def test_the_unique_order_shortcut_gives_what_the_search_gives(data):
    """Chains (FBNet, OFA) and chains with skips have one topological order; canonicalize then skips the search, and
    its order and key are the search's. DAGs with several orders take the search, so they agree trivially."""
    n = data.draw(st.integers(3, 30))
    ops = data.draw(st.lists(st.sampled_from(["conv3x3", "conv1x1", "maxpool3x3"]), min_size=n - 2, max_size=n - 2))
    skips = data.draw(st.sets(st.tuples(st.integers(0, n - 3), st.integers(2, n - 1)).filter(lambda e: e[1] > e[0] + 1)))
    chain = ArchGraph(
        nodes=(Node("input"), *(Node(op) for op in ops), Node("output")),
        edges=tuple(sorted({(i, i + 1) for i in range(n - 1)} | skips)),
    )
    other = data.draw(dags())
    for g in (chain, other):
        assert canonicalize(g) == _searched(g)
