"""Random NB101 / DARTS cells: valid by each space's rules, reproducible, and covering the space's ops."""

from __future__ import annotations

import pytest

from model.canonical import canonicalize
from model.flow import live_nodes
from model.parsers.darts import DARTS_OPS
from model.parsers.nb101 import NB101_MAX_EDGES, NB101_MAX_NODES, NB101_OPS
from model.sampling import sample_space


def test_nb101_cells_are_valid_pruned_cells() -> None:
    cells = sample_space("nb101", 400, seed=0)
    for g in cells:
        assert g.space == "nb101" and 2 <= g.n <= NB101_MAX_NODES and len(g.edges) <= NB101_MAX_EDGES
        assert all(live_nodes(g)), g  # pruned: every node on an input -> output path
    assert {op for g in cells for op in g.ops[1:-1]} == set(NB101_OPS)
    assert len({canonicalize(g).key for g in cells}) > 150  # many distinct cells, not one repeated
    assert max(g.n for g in cells) >= 6


def test_darts_cells_follow_the_genotype_rules() -> None:
    cells = sample_space("darts", 200, seed=1)
    for g in cells:
        assert g.space == "darts" and g.n == 28  # input, 2 x (8 ops + 4 adds + concat), output
        preds = g.predecessors()
        for node in range(g.n):
            if g.ops[node] == "add":  # two ops that read two different earlier states
                sources = [preds[p] for p in preds[node]]
                assert len(sources) == 2 and all(len(s) == 1 for s in sources)
                assert sources[0] != sources[1] or sources[0] == [0]  # the normal cell reads the input as states 0 and 1
    assert {op for g in cells for op in g.ops} >= set(DARTS_OPS)


def test_sampling_is_reproducible_and_checks_the_space() -> None:
    first = [canonicalize(g).key for g in sample_space("darts", 20, seed=3)]
    assert first == [canonicalize(g).key for g in sample_space("darts", 20, seed=3)]
    assert first != [canonicalize(g).key for g in sample_space("darts", 20, seed=4)]
    with pytest.raises(KeyError, match="no sampler"):
        sample_space("nb201", 5, seed=0)
