"""Graph IR: ``validate`` accepts valid DAGs and names the first problem of invalid ones; ``topological_order``."""

from __future__ import annotations

import pytest

from model.errors import ArchitectureError
from model.ir import DEFAULT_MAX_NODES, ArchGraph, Node, topological_order, validate


def graph(ops: list[str], edges: list[tuple[int, int]]) -> ArchGraph:
    return ArchGraph(nodes=tuple(Node(op) for op in ops), edges=tuple(edges))


def chain(n: int) -> ArchGraph:
    return graph(["input", *["nor_conv_3x3"] * (n - 2), "output"], [(i, i + 1) for i in range(n - 1)])


# a diamond with a shortcut: 0 -> {1, 2}, 1 -> 3, 2 -> 3, 0 -> 3, 3 -> 4
DIAMOND_OPS = ["input", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "output"]
DIAMOND_EDGES = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3), (3, 4)]


def rejects(g: ArchGraph, code: str, *fragments: str, max_nodes: int = DEFAULT_MAX_NODES) -> ArchitectureError:
    with pytest.raises(ArchitectureError) as info:
        validate(g, max_nodes=max_nodes)
    err = info.value
    assert err.code == code, f"expected code {code!r}, got {err.code!r}: {err.message}"
    for fragment in fragments:
        assert fragment in err.message, f"{fragment!r} not in {err.message!r}"
    assert str(err) == err.message
    assert isinstance(err, ValueError)
    return err


def test_accepts_valid_dag_and_returns_it():
    g = graph(DIAMOND_OPS, DIAMOND_EDGES)
    assert validate(g) is g


def test_accepts_minimal_graph_and_non_topological_numbering():
    assert validate(graph(["input", "output"], [(0, 1)])).n == 2
    # node 2 comes before node 1 in the flow: not topologically numbered, still valid
    g = graph(["input", "nor_conv_1x1", "nor_conv_3x3", "output"], [(0, 2), (2, 1), (1, 3)])
    assert not g.is_topologically_ordered()
    assert validate(g) is g


def test_accepts_exactly_max_nodes():
    assert validate(chain(DEFAULT_MAX_NODES)).n == DEFAULT_MAX_NODES
    assert validate(chain(9), max_nodes=9).n == 9


def test_rejects_cycle():
    g = graph(["input", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "output"], [(0, 1), (1, 2), (2, 3), (3, 1), (3, 4)])
    err = rejects(g, "cycle", "cycle")
    # the nodes on / after the cycle are named
    assert "[1, 2, 3, 4]" in err.message


def test_rejects_self_loop():
    g = graph(["input", "nor_conv_3x3", "output"], [(0, 1), (1, 1), (1, 2)])
    rejects(g, "cycle", "self-loop on node 1")


@pytest.mark.parametrize("edge", [(1, 5), (5, 1), (-1, 2), (0, 3)])
def test_rejects_edge_to_missing_node(edge):
    g = graph(["input", "nor_conv_3x3", "output"], [(0, 1), (1, 2), edge])
    rejects(g, "bad_edge", f"({edge[0]}, {edge[1]})", "outside 0..2")


def test_rejects_duplicate_edge():
    g = graph(["input", "nor_conv_3x3", "output"], [(0, 1), (1, 2), (0, 1)])
    rejects(g, "bad_edge", "duplicate edge (0, 1)")


def test_rejects_node_unreachable_from_input():
    # node 2 feeds node 3 but nothing feeds node 2
    g = graph(["input", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "output"], [(0, 1), (1, 3), (2, 3), (3, 4)])
    rejects(g, "disconnected", "node 2", "avg_pool_3x3", "not reachable from the input")


def test_rejects_node_not_reaching_output():
    # node 2 is fed by the input but leads nowhere
    g = graph(["input", "nor_conv_3x3", "avg_pool_3x3", "output"], [(0, 1), (0, 2), (1, 3)])
    rejects(g, "disconnected", "node 2", "avg_pool_3x3", "does not reach the output")


def test_rejects_input_without_path_to_output():
    rejects(graph(["input", "output"], []), "disconnected", "node 0")


def test_rejects_too_many_nodes():
    rejects(chain(10), "too_large", "10 nodes", "limit is 9", max_nodes=9)
    rejects(chain(DEFAULT_MAX_NODES + 1), "too_large", f"{DEFAULT_MAX_NODES + 1} nodes", f"limit is {DEFAULT_MAX_NODES}")


def test_rejects_too_small():
    rejects(graph(["input"], []), "too_small", "1 node")
    rejects(graph([], []), "too_small", "0 node")


def test_rejects_wrong_first_node():
    g = graph(["nor_conv_3x3", "input", "output"], [(1, 0), (0, 2)])
    rejects(g, "bad_input_node", "node 0 must be the input", "'nor_conv_3x3'")


def test_rejects_wrong_last_node():
    g = graph(["input", "output", "nor_conv_3x3"], [(0, 1), (1, 2)])
    rejects(g, "bad_output_node", "node 2 must be the output", "'nor_conv_3x3'")


def test_rejects_extra_input_and_output_node():
    g = graph(["input", "input", "nor_conv_3x3", "output"], [(0, 2), (1, 2), (2, 3)])
    rejects(g, "bad_node", "node 1 is an extra 'input'")
    g = graph(["input", "output", "nor_conv_3x3", "output"], [(0, 1), (0, 2), (2, 3)])
    rejects(g, "bad_node", "node 1 is an extra 'output'")


def test_error_messages_use_user_numbering_after_renumbering():
    # the user numbered the dangling node 7; after renumbering it sits elsewhere, but the message says 7
    g = graph(["input", "nor_conv_3x3", "avg_pool_3x3", "output"], [(0, 1), (0, 2), (1, 3)])
    renamed = ArchGraph(nodes=g.nodes, edges=g.edges, origin=(4, 9, 7, 5))
    rejects(renamed, "disconnected", "node 7 (avg_pool_3x3)")


def is_topological(g: ArchGraph, order: list[int]) -> bool:
    position = {node: k for k, node in enumerate(order)}
    return sorted(order) == list(range(g.n)) and all(position[s] < position[d] for s, d in g.edges)


def test_topological_order_is_valid_and_smallest_first():
    g = graph(DIAMOND_OPS, DIAMOND_EDGES)
    order = topological_order(g)
    assert is_topological(g, order)
    assert order == [0, 1, 2, 3, 4]
    g = graph(["input", "nor_conv_1x1", "nor_conv_3x3", "skip_connect", "output"], [(0, 3), (3, 2), (2, 1), (1, 4)])
    order = topological_order(g)
    assert order == [0, 3, 2, 1, 4]
    assert is_topological(g, order)
    assert g.renumbered(order).is_topologically_ordered()


def test_topological_order_raises_on_cycle():
    g = graph(["input", "nor_conv_3x3", "nor_conv_1x1", "output"], [(0, 1), (1, 2), (2, 1), (2, 3)])
    with pytest.raises(ArchitectureError) as info:
        topological_order(g)
    assert info.value.code == "cycle"


def test_renumbered_moves_nodes_and_records_origin():
    g = graph(DIAMOND_OPS, DIAMOND_EDGES)
    r = g.renumbered([0, 2, 1, 3, 4])
    assert r.ops == ["input", "avg_pool_3x3", "nor_conv_3x3", "skip_connect", "output"]
    assert set(r.edges) == {(0, 2), (0, 1), (2, 3), (1, 3), (0, 3), (3, 4)}
    assert r.origin == (0, 2, 1, 3, 4)
    # renumbering twice composes the origins in the user's numbering
    assert r.renumbered([0, 2, 1, 3, 4]).origin == (0, 1, 2, 3, 4)
    adj = g.adjacency()
    assert adj.sum() == len(DIAMOND_EDGES)
    assert adj[0, 3] == 1 and adj[3, 0] == 0


def test_node_label_includes_attrs_and_shape():
    assert Node("nor_conv_3x3").label() == "nor_conv_3x3"
    a = Node("nor_conv_3x3", {"channels": 16}).label()
    b = Node("nor_conv_3x3", {"channels": 32}).label()
    c = Node("nor_conv_3x3", shape=(1, 16, 32, 32)).label()
    assert len({a, b, c, "nor_conv_3x3"}) == 4
