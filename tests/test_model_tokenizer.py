"""Tokenizer: layout [op code | self position code | sum of predecessor position codes], padding, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_model_dags import PROPERTY, dags

from model.augment import sample_order
from model.canonical import canonicalize
from model.errors import ArchitectureError
from model.ir import DEFAULT_MAX_NODES, ArchGraph, Node
from model.ops import OP_CODES, OP_NAMES, VOCAB_SIZE, op_code
from model.parsers import parse_nb201
from model.tokenizer import CODE_DIM, TOKEN_DIM, encode_graphs, integer_code, tokenize, tokenize_graphs

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def expected_tokens(g: ArchGraph) -> np.ndarray:
    """Tokens of one topologically numbered graph, computed node by node from the definition."""
    rows = []
    preds = g.predecessors()
    for i, node in enumerate(g.nodes):
        op = integer_code([op_code(node.op)])[0]
        own = integer_code([i])[0]
        source = integer_code([-1])[0] if i == 0 else sum((integer_code([p])[0] for p in preds[i]), np.zeros(CODE_DIM))
        rows.append(np.concatenate([op, own, source]))
    return np.asarray(rows, dtype=np.float64)


def chain(n: int) -> ArchGraph:
    return ArchGraph(
        nodes=(Node("input"), *[Node("skip_connect")] * (n - 2), Node("output")), edges=tuple((i, i + 1) for i in range(n - 1))
    )


def test_dimensions():
    assert TOKEN_DIM == 3 * CODE_DIM == 192
    assert len(OP_NAMES) < VOCAB_SIZE
    assert [OP_CODES[name] for name in OP_NAMES] == list(range(len(OP_NAMES)))


def test_integer_code_quasi_orthogonal():
    values = np.arange(-1, 63)
    codes = integer_code(values).astype(np.float64)
    assert codes.shape == (64, 64) and integer_code(values).dtype == np.float32
    gram = codes @ codes.T
    np.testing.assert_allclose(np.diag(gram), 32.0, atol=1e-4)
    off = gram[~np.eye(64, dtype=bool)]
    assert np.all(np.isclose(off, 0.0, atol=1e-4) | np.isclose(off, -1.0, atol=1e-4))
    # precisely: 0 for an even difference, -1 for an odd one
    diff = values[:, None] - values[None, :]
    expected = np.where(diff == 0, 32.0, np.where(diff % 2 == 0, 0.0, -1.0))
    np.testing.assert_allclose(gram, expected, atol=1e-4)
    # period 64
    np.testing.assert_allclose(integer_code([-1]), integer_code([63]), atol=1e-5)


def test_token_layout_on_nb201():
    g = parse_nb201(ARCH)
    batch = tokenize_graphs([g])
    assert batch.tokens.shape == (1, 8, TOKEN_DIM) and batch.tokens.dtype == np.float32
    assert batch.mask.shape == (1, 8) and batch.mask.dtype == bool and batch.mask.all()
    assert batch.depth.shape == (1, CODE_DIM)
    np.testing.assert_allclose(batch.tokens[0], expected_tokens(g), atol=1e-5)
    np.testing.assert_allclose(batch.depth[0], integer_code([8])[0], atol=1e-6)
    # the input node's source part is the code of position -1; node 6 (preds 2 and 3) sums two codes
    np.testing.assert_allclose(batch.tokens[0, 0, 128:], integer_code([-1])[0], atol=1e-6)
    np.testing.assert_allclose(batch.tokens[0, 6, 128:], integer_code([2])[0] + integer_code([3])[0], atol=1e-5)
    np.testing.assert_allclose(batch.tokens[0, 3, :64], integer_code([op_code("avg_pool_3x3")])[0], atol=1e-6)
    np.testing.assert_allclose(batch.tokens[0, 5, 64:128], integer_code([5])[0], atol=1e-6)
    assert len(batch) == 1


def test_padding_to_longest_with_zero_tokens():
    short, long = chain(3), parse_nb201(ARCH)
    batch = tokenize_graphs([short, long, chain(5)])
    assert batch.tokens.shape == (3, 8, TOKEN_DIM)
    assert batch.mask.tolist() == [[True] * 3 + [False] * 5, [True] * 8, [True] * 5 + [False] * 3]
    assert not batch.tokens[0, 3:].any() and not batch.tokens[2, 5:].any()
    assert (np.abs(batch.tokens[0, :3]).sum(axis=1) > 0).all()
    np.testing.assert_allclose(batch.depth, integer_code([3, 8, 5]), atol=1e-6)
    encoded = encode_graphs([short, long])
    assert encoded.op_ids[0].tolist() == [0, op_code("skip_connect"), 1, -1, -1, -1, -1, -1]
    assert encoded.adjacency.shape == (2, 8, 8)
    assert encoded.adjacency[0].sum() == 2 and encoded.adjacency[0, :, 3:].sum() == 0


def test_deterministic():
    graphs = [parse_nb201(ARCH), chain(4)]
    a, b = tokenize_graphs(graphs), tokenize_graphs(graphs)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.mask, b.mask) and np.array_equal(a.depth, b.depth)


@PROPERTY
@given(st.lists(dags(min_nodes=3, max_nodes=14), min_size=1, max_size=6))
def test_batch_equals_single_and_definition(graphs):
    batch = tokenize_graphs(graphs)
    length = max(g.n for g in graphs)
    assert batch.tokens.shape == (len(graphs), length, TOKEN_DIM)
    for b, g in enumerate(graphs):
        single = tokenize_graphs([g])
        assert single.tokens.shape == (1, g.n, TOKEN_DIM)
        np.testing.assert_allclose(batch.tokens[b, : g.n], single.tokens[0], atol=1e-5)
        np.testing.assert_array_equal(batch.depth[b], single.depth[0])
        assert batch.mask[b].tolist() == [True] * g.n + [False] * (length - g.n)
        assert not batch.tokens[b, g.n :].any()
        np.testing.assert_allclose(single.tokens[0], expected_tokens(g), atol=1e-4)


@PROPERTY
@given(st.lists(dags(min_nodes=3, max_nodes=10), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_tokenize_with_orders_equals_tokenizing_renumbered_graphs(graphs, seed):
    rng = np.random.default_rng(seed)
    encoded = encode_graphs(graphs)
    length = encoded.op_ids.shape[1]
    orders = np.tile(np.arange(length), (len(graphs), 1))
    renumbered = []
    for b, g in enumerate(graphs):
        order = sample_order(g, rng)
        orders[b, : g.n] = order
        renumbered.append(g.renumbered(order))
    augmented = tokenize(encoded, orders)
    direct = tokenize_graphs(renumbered)
    np.testing.assert_allclose(augmented.tokens, direct.tokens, atol=1e-5)
    assert np.array_equal(augmented.mask, direct.mask)
    np.testing.assert_array_equal(augmented.depth, direct.depth)
    # the identity order changes nothing
    np.testing.assert_array_equal(
        tokenize(encoded, np.tile(np.arange(length), (len(graphs), 1))).tokens, tokenize(encoded).tokens
    )


@PROPERTY
@given(dags(), st.integers(0, 2**32 - 1))
def test_canonical_tokens_identical_for_two_renumberings(g, seed):
    rng = np.random.default_rng(seed)
    a = g.renumbered(sample_order(g, rng))
    b = g.renumbered(sample_order(g, rng))
    ta = tokenize_graphs([a.renumbered(canonicalize(a).order)])
    tb = tokenize_graphs([b.renumbered(canonicalize(b).order)])
    assert np.array_equal(ta.tokens, tb.tokens)


def test_not_topological_error():
    g = ArchGraph(
        nodes=(Node("input"), Node("skip_connect"), Node("nor_conv_3x3"), Node("output")), edges=((0, 2), (2, 1), (1, 3))
    )
    with pytest.raises(ArchitectureError) as info:
        tokenize_graphs([g])
    assert info.value.code == "not_topological"
    assert "topological order" in info.value.message
    # one bad graph in a batch fails the batch
    with pytest.raises(ArchitectureError) as info:
        tokenize_graphs([chain(4), g])
    assert info.value.code == "not_topological"


def test_empty_batch_error():
    with pytest.raises(ArchitectureError) as info:
        tokenize_graphs([])
    assert info.value.code == "empty_batch"
    assert "no architectures" in info.value.message


def test_size_limits():
    batch = tokenize_graphs([chain(DEFAULT_MAX_NODES)])
    assert batch.tokens.shape == (1, DEFAULT_MAX_NODES, TOKEN_DIM)
    np.testing.assert_allclose(batch.tokens[0, -1, 64:128], integer_code([DEFAULT_MAX_NODES - 1])[0], atol=1e-6)
    with pytest.raises(ArchitectureError) as info:
        tokenize_graphs([chain(DEFAULT_MAX_NODES + 1)])
    assert info.value.code == "too_large"
    assert f"{DEFAULT_MAX_NODES + 1} nodes" in info.value.message


def test_unknown_op_error():
    g = ArchGraph(nodes=(Node("input"), Node("conv_7x7"), Node("output")), edges=((0, 1), (1, 2)))
    with pytest.raises(ArchitectureError) as info:
        tokenize_graphs([g])
    assert info.value.code == "unknown_op"
    assert "'conv_7x7'" in info.value.message
