"""Random valid DAGs for the property tests (imported by the other test_model_* files), and checks of the generator."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.ir import ArchGraph, Node, validate
from model.ops import INPUT, OP_NAMES, OUTPUT
from model.parsers import parse_json_dag

MIDDLE_OPS: tuple[str, ...] = tuple(op for op in OP_NAMES if op not in (INPUT, OUTPUT))
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dags(draw, min_nodes: int = 3, max_nodes: int = 12, ops: tuple[str, ...] = MIDDLE_OPS) -> ArchGraph:
    """A valid DAG in topological numbering: random ops, random forward edges, then repaired so that every
    middle node has a predecessor and a successor (hence is reachable from the input and reaches the output)."""
    n = draw(st.integers(min_nodes, max_nodes))
    middle = draw(st.lists(st.sampled_from(ops), min_size=n - 2, max_size=n - 2))
    pairs = list(itertools.combinations(range(n), 2))
    density = draw(st.sampled_from([0.15, 0.3, 0.5]))
    keep = draw(st.lists(st.floats(0, 1), min_size=len(pairs), max_size=len(pairs)))
    edges = {pair for pair, x in zip(pairs, keep, strict=True) if x < density}
    for i in range(1, n - 1):
        if not any(d == i for _, d in edges):
            edges.add((draw(st.integers(0, i - 1)), i))
    for i in range(n - 2, 0, -1):
        if not any(s == i for s, _ in edges):
            edges.add((i, draw(st.integers(i + 1, n - 1))))
    nodes = (Node(INPUT), *(Node(op) for op in middle), Node(OUTPUT))
    return ArchGraph(nodes=nodes, edges=tuple(sorted(edges)))


def scramble(graph: ArchGraph, perm: list[int], edge_perm: list[int] | None = None) -> ArchGraph:
    """The same DAG written by a user in an arbitrary node order (``perm[k]`` = node placed at user index k) and
    edge order, parsed back with ``parse_json_dag``."""
    position = {old: new for new, old in enumerate(perm)}
    nodes = [graph.nodes[old].op for old in perm]
    edges = [[position[s], position[d]] for s, d in graph.edges]
    if edge_perm is not None:
        edges = [edges[k] for k in edge_perm]
    return parse_json_dag(nodes, edges)


def isomorphic(a: ArchGraph, b: ArchGraph) -> bool:
    """Brute force: some bijection (input -> input, output -> output) maps labels and edges of a onto b."""
    if a.n != b.n or len(a.edges) != len(b.edges) or sorted(a.ops) != sorted(b.ops):
        return False
    n = a.n
    target = set(b.edges)
    la = [node.label() for node in a.nodes]
    lb = [node.label() for node in b.nodes]
    for perm in itertools.permutations(range(1, n - 1)):
        m = (0, *perm, n - 1)
        if all(la[i] == lb[m[i]] for i in range(n)) and {(m[s], m[d]) for s, d in a.edges} == target:
            return True
    return False


def is_valid_order(graph: ArchGraph, order) -> bool:
    """A permutation of the nodes, input first, output last, every edge pointing forward."""
    order = [int(i) for i in order]
    if sorted(order) != list(range(graph.n)) or order[0] != 0 or order[-1] != graph.n - 1:
        return False
    position = {node: k for k, node in enumerate(order)}
    return all(position[s] < position[d] for s, d in graph.edges)


@PROPERTY
@given(dags())
def test_generated_dags_are_valid_and_topological(g):
    assert 3 <= g.n <= 12
    assert validate(g) is g
    assert g.is_topologically_ordered()
    assert len(set(g.edges)) == len(g.edges)


@PROPERTY
@given(st.data())
def test_scramble_gives_a_valid_renumbering(data):
    g = data.draw(dags())
    perm = data.draw(st.permutations(range(g.n)))
    s = scramble(g, perm)
    assert validate(s) is s
    assert isomorphic(g, s) if g.n <= 7 else sorted(s.ops) == sorted(g.ops)
    # parse_json_dag records where each node came from in the user's numbering
    assert [s.nodes[k].op for k in range(s.n)] == [g.nodes[perm[u]].op for u in s.origin]
