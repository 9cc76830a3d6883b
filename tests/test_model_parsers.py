"""Parsers of the four spaces: NB201 arch strings, NB101 (matrix, ops), DARTS genotypes and generic JSON DAGs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model.canonical import canonicalize
from model.cell_cost import nb201_cost
from model.errors import ArchitectureError
from model.ir import validate
from model.parsers import (
    NB201_OPS,
    nb201_arch_str,
    nb201_representative,
    nb201_twin,
    parse_darts,
    parse_json_dag,
    parse_nb101,
    parse_nb201,
    parse_nb201_network,
)
from model.parsers.darts import DARTS_OPS
from model.parsers.nb201 import NB201_NUM_CELLS, nb201_graph


def raises(code: str, *fragments: str):
    """Context manager: an ArchitectureError with ``code`` whose message contains every fragment."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(ArchitectureError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            err = self.info.value
            assert err.code == code, f"expected {code!r}, got {err.code!r}: {err.message}"
            for fragment in fragments:
                assert fragment in err.message, f"{fragment!r} not in {err.message!r}"
            return suppressed

    return _Check()


# ----------------------------------------------------------------------------------------------------- NB201

EXAMPLE_201 = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def test_nb201_line_graph_exactly_as_specified():
    g = parse_nb201(EXAMPLE_201)
    assert g.space == "nb201"
    assert g.n == 8
    # node 0 input, nodes 1..6 the edge ops in arch-string order, node 7 output
    assert g.ops == ["input", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none", "nor_conv_3x3", "output"]
    expected = {(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)}
    assert set(g.edges) == expected
    assert len(g.edges) == len(expected)
    assert validate(g) is g
    assert g.is_topologically_ordered()


def test_nb201_line_graph_derived_from_cell_edges():
    """Rebuild the line graph from the cell's edge list: edge-op a feeds edge-op b iff a's destination is b's source."""
    cell_edges = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]  # arch-string order
    expected = set()
    for a, (_, dst_a) in enumerate(cell_edges, start=1):
        for b, (src_b, _) in enumerate(cell_edges, start=1):
            if dst_a == src_b:
                expected.add((a, b))
    for b, (src_b, _) in enumerate(cell_edges, start=1):
        if src_b == 0:
            expected.add((0, b))
    for a, (_, dst_a) in enumerate(cell_edges, start=1):
        if dst_a == 3:
            expected.add((a, 7))
    assert set(parse_nb201(EXAMPLE_201).edges) == expected


def test_nb201_round_trip_and_whitespace():
    g = parse_nb201(EXAMPLE_201)
    assert nb201_arch_str(g.ops[1:-1]) == EXAMPLE_201
    assert parse_nb201(f"  {EXAMPLE_201}\n") == g
    assert nb201_graph(g.ops[1:-1]) == g


def _automorphisms(n: int, edges: set[tuple[int, int]]) -> list[tuple[int, ...]]:
    return [p for p in itertools.permutations(range(n)) if {(p[s], p[d]) for s, d in edges} == edges]


def test_nb201_all_cells_round_trip_and_distinct_keys_match_isomorphism_classes():
    structure = set(nb201_graph(["none"] * 6).edges)
    autos = _automorphisms(8, structure)
    # label-preserving automorphisms must fix the (uniquely labelled) input and output
    label_autos = [p for p in autos if p[0] == 0 and p[7] == 7]
    assert (tuple(range(8))) in label_autos

    # Burnside: number of op assignments to nodes 1..6 up to automorphism
    def cycles(p: tuple[int, ...]) -> int:
        seen, count = set(), 0
        for start in range(1, 7):
            if start not in seen:
                count += 1
                node = start
                while node not in seen:
                    seen.add(node)
                    node = p[node]
        return count

    total = sum(len(NB201_OPS) ** cycles(p) for p in label_autos)
    assert total % len(label_autos) == 0
    expected_classes = total // len(label_autos)

    keys = set()
    for ops in itertools.product(NB201_OPS, repeat=6):
        arch = nb201_arch_str(ops)
        g = parse_nb201(arch)
        assert tuple(g.ops[1:-1]) == ops
        keys.add(canonicalize(g).key)
    assert len(keys) == expected_classes
    # the structure is rigid, so every cell is its own class
    assert len(label_autos) == 1
    assert len(keys) == NB201_NUM_CELLS == 15625


def test_nb201_twins_swap_the_intermediate_nodes_when_no_edge_joins_them():
    ops = ("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
    assert nb201_twin(ops) == ("avg_pool_3x3", "nor_conv_3x3", "none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert nb201_twin(("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none", "none", "none")) is None  # 1->2 joined
    assert nb201_twin(("nor_conv_3x3", "nor_conv_3x3", "none", "none", "none", "none")) is None  # its own mirror
    with_twin = 0
    for cell in itertools.product(NB201_OPS, repeat=6):
        twin = nb201_twin(cell)
        if twin is None:
            continue
        with_twin += 1
        assert twin != cell and nb201_twin(twin) == cell
        # one network: the cost model, which follows the tensors through the cell, counts the same work
        assert nb201_representative(cell) == nb201_representative(twin) in (cell, twin)
        assert nb201_cost(nb201_graph(twin)) == nb201_cost(nb201_graph(cell))
    assert nb201_representative(ops) == nb201_representative(nb201_twin(ops)) == ops  # conv 3x3 comes before avg pool
    assert nb201_representative(ops[:2] + ("skip_connect",) + ops[3:]) == ops[:2] + ("skip_connect",) + ops[3:]
    assert with_twin == 5**5 - 5**3  # edge 1->2 none, minus the cells that are their own mirror: 1,500 pairs


@pytest.mark.parametrize(
    "arch, fragments",
    [
        ("|none~0|+|none~0|none~1|", ["3 '+'-separated", "got 2"]),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", ["3 '+'-separated", "got 4"]),
        ("", ["3 '+'-separated", "got 1"]),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", ["node group 2 must have 2 edge(s), got 1"]),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["node group 1 must be wrapped"]),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", ["'none' is not of the form op~input"]),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", ["'none~1'", "must read from node 0, got ~1"]),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", ["'none~0'", "must read from node 1, got ~0"]),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", ["'none~3'", "must read from node 2, got ~3"]),
    ],
)
def test_nb201_bad_strings(arch, fragments):
    for parse in (parse_nb201, parse_nb201_network):  # the service's parser too (its well-formed fast path)
        with raises("bad_arch_string", *fragments):
            parse(arch)


def test_nb201_unknown_op():
    for parse in (parse_nb201, parse_nb201_network):
        with raises("unknown_op", "'conv_7x7'", "nor_conv_3x3"):
            parse("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        with raises("unknown_op", "'max_pool_3x3'"):  # a DARTS op is not an NB201 op
            parse("|none~0|+|none~0|none~1|+|none~0|none~1|max_pool_3x3~2|")


@pytest.mark.parametrize("value", [None, 123, ["|none~0|"], b"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_nb201_non_string(value):
    for parse in (parse_nb201, parse_nb201_network):
        with raises("bad_arch_string", "must be a string"):
            parse(value)


def test_nb201_service_parser_reads_every_cell_like_the_step_by_step_one():
    for ops in itertools.product(NB201_OPS, repeat=6):
        arch = nb201_arch_str(ops)
        assert parse_nb201_network(arch) == nb201_graph(nb201_representative(parse_nb201(arch).ops[1:-1]))
    assert parse_nb201_network("  |none~00|+|none~0|none~1|+|none~0|none~1|none~2| ").ops[1:-1] == ["none"] * 6


# ----------------------------------------------------------------------------------------------------- NB101

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"

INCEPTION_MATRIX = [
    [0, 1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
INCEPTION_OPS = ["input", C1, C3, C3, C3, MP, "output"]


def test_nb101_parses_full_cell():
    g = parse_nb101(INCEPTION_MATRIX, INCEPTION_OPS)
    assert g.space == "nb101"
    assert g.ops == INCEPTION_OPS
    assert sorted(g.edges) == sorted(zip(*np.nonzero(np.asarray(INCEPTION_MATRIX)), strict=True))
    assert validate(g) is g


def test_nb101_prunes_nodes_off_every_input_output_path():
    matrix = [
        [0, 1, 1, 0, 0, 0, 1],  # input -> 1, 2, 6
        [0, 0, 0, 0, 0, 1, 0],  # 1 -> 5
        [0, 0, 0, 1, 0, 0, 0],  # 2 -> 3, and 3 is a dead end: 2 and 3 never reach the output
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],  # 4 is not reachable from the input
        [0, 0, 0, 0, 0, 0, 1],  # 5 -> output
        [0, 0, 0, 0, 0, 0, 0],
    ]
    ops = ["input", C1, C3, MP, C1, MP, "output"]
    g = parse_nb101(matrix, ops)
    assert g.ops == ["input", C1, MP, "output"]  # kept old nodes 0, 1, 5, 6
    assert set(g.edges) == {(0, 1), (1, 2), (2, 3), (0, 3)}
    assert len(g.edges) == 4
    assert validate(g) is g


def test_nb101_two_node_cell():
    g = parse_nb101([[0, 1], [0, 0]], ["input", "output"])
    assert g.ops == ["input", "output"] and g.edges == ((0, 1),)


@pytest.mark.parametrize(
    "matrix, ops, code, fragment",
    [
        ([[0, 1, 0], [0, 0, 1]], ["input", C3, "output"], "bad_matrix", "square, got shape (2, 3)"),
        ([0, 1, 0], ["input", C3, "output"], "bad_matrix", "square"),
        ([[0, 1], [0, 0, 1]], ["input", "output"], "bad_matrix", "square"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "output"], "bad_matrix", "3x3 but 2 ops"),
        ([[0, 1, 0], [0, 0, 1], [1, 0, 0]], ["input", C3, "output"], "bad_matrix", "strictly upper-triangular"),
        ([[0, 1, 0], [0, 1, 1], [0, 0, 0]], ["input", C3, "output"], "bad_matrix", "strictly upper-triangular"),
        ([[0, 2, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"], "bad_matrix", "0 or 1"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, "output"], "bad_ops", "start with 'input'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, C3], "bad_ops", "end with 'output'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "nor_conv_3x3", "output"], "unknown_op", "'nor_conv_3x3'"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C3, "output"], "disconnected", "no path from input to output"),
        ([[0]], ["input"], "bad_matrix", "2..7 nodes, got 1"),
    ],
)
def test_nb101_errors(matrix, ops, code, fragment):
    with raises(code, fragment):
        parse_nb101(matrix, ops)


def test_nb101_too_many_nodes():
    n = 8
    matrix = np.eye(n, k=1, dtype=int).tolist()
    with raises("bad_matrix", "2..7 nodes, got 8"):
        parse_nb101(matrix, ["input", *[C3] * (n - 2), "output"])


def test_nb101_more_than_nine_edges():
    matrix = np.zeros((7, 7), dtype=int)
    matrix[0, 1:6] = 1  # input -> 1..5
    matrix[1:6, 6] = 1  # 1..5 -> output: 10 edges, every node live
    with raises("bad_matrix", "at most 9 edges, got 10"):
        parse_nb101(matrix.tolist(), ["input", C1, C3, MP, C1, C3, "output"])
    matrix[0, 5] = 0  # 9 edges: accepted (node 5 is then unreachable and pruned)
    g = parse_nb101(matrix.tolist(), ["input", C1, C3, MP, C1, C3, "output"])
    assert g.n == 6 and len(g.edges) == 8


def test_nb101_edge_limit_applies_after_pruning():
    matrix = np.zeros((7, 7), dtype=int)
    matrix[0, 1:6] = 1  # input -> 1..5
    matrix[1:5, 6] = 1  # 1..4 -> output
    matrix[1, 5] = 1  # 1 -> 5; node 5 is a dead end: pruned with its 2 incoming edges
    assert matrix.sum() == 10
    g = parse_nb101(matrix.tolist(), ["input", C1, C3, MP, C1, C3, "output"])
    assert g.n == 6 and len(g.edges) == 8


@pytest.mark.parametrize("bad", [0.4, 1.9])
def test_nb101_non_integer_entries_are_rejected(bad):
    with raises("bad_matrix", "0 or 1"):
        parse_nb101([[0, 1, bad], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])


# ----------------------------------------------------------------------------------------------------- DARTS

DARTS_V2_NORMAL = [
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 1),
    ("skip_connect", 0),
    ("skip_connect", 0),
    ("dil_conv_3x3", 2),
]
DARTS_V2_REDUCE = [
    ("max_pool_3x3", 0),
    ("max_pool_3x3", 1),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
    ("max_pool_3x3", 0),
    ("skip_connect", 2),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
]


def test_darts_v2_parses_to_expected_graph():
    g = parse_darts(DARTS_V2_NORMAL, DARTS_V2_REDUCE)
    assert g.space == "darts"
    assert g.n == 1 + 2 * (8 + 4 + 1) + 1 == 28
    assert validate(g) is g
    # op nodes that read an intermediate state come before that state's add node: not topologically numbered
    assert not g.is_topologically_ordered()
    # layout: input | normal: 8 ops (1..8), 4 adds (9..12), concat 13 | reduce: ops 14..21, adds 22..25, concat 26 | output
    assert g.ops[0] == "input" and g.ops[-1] == "output"
    assert g.ops[1:9] == [op for op, _ in DARTS_V2_NORMAL]
    assert g.ops[9:13] == ["add"] * 4 and g.ops[13] == "concat"
    assert g.ops[14:22] == [op for op, _ in DARTS_V2_REDUCE]
    assert g.ops[22:26] == ["add"] * 4 and g.ops[26] == "concat"
    assert len(set(g.edges)) == len(g.edges) == 2 * (8 + 8 + 4) + 2

    def expected_edges(pairs, first_op, inputs):
        state = {0: inputs[0], 1: inputs[1], 2: first_op + 8, 3: first_op + 9, 4: first_op + 10, 5: first_op + 11}
        edges = set()
        for k, (_, s) in enumerate(pairs):
            edges.add((state[s], first_op + k))
            edges.add((first_op + k, first_op + 8 + k // 2))
        edges |= {(first_op + 8 + i, first_op + 12) for i in range(4)}
        return edges

    expected = expected_edges(DARTS_V2_NORMAL, 1, (0, 0)) | expected_edges(DARTS_V2_REDUCE, 14, (0, 13)) | {(13, 27), (26, 27)}
    assert set(g.edges) == expected
    assert (9, 8) in g.edges  # normal pair 7 (dil_conv_3x3, 2) reads state 2 = the first add node
    assert (13, 15) in g.edges  # reduce pair 1 (max_pool_3x3, 1) reads the normal cell's output


def test_darts_integer_op_indices_and_lists():
    by_index_normal = [[DARTS_OPS.index(op), s] for op, s in DARTS_V2_NORMAL]
    by_index_reduce = [[DARTS_OPS.index(op), s] for op, s in DARTS_V2_REDUCE]
    assert parse_darts(by_index_normal, by_index_reduce) == parse_darts(DARTS_V2_NORMAL, DARTS_V2_REDUCE)


def test_darts_normal_cell_inputs_are_both_the_network_input():
    swapped = [(op, 1 - s) if s < 2 else (op, s) for op, s in DARTS_V2_NORMAL]
    a = parse_darts(DARTS_V2_NORMAL, DARTS_V2_REDUCE)
    b = parse_darts(swapped, DARTS_V2_REDUCE)
    assert a == b
    assert canonicalize(a).key == canonicalize(b).key


@pytest.mark.parametrize(
    "normal, reduce, code, fragments",
    [
        (DARTS_V2_NORMAL[:7], DARTS_V2_REDUCE, "bad_genotype", ["normal cell needs 8", "got 7"]),
        (DARTS_V2_NORMAL, [*DARTS_V2_REDUCE, ("skip_connect", 0)], "bad_genotype", ["reduce cell needs 8", "got 9"]),
        (DARTS_V2_NORMAL, None, "bad_genotype", ["reduce cell needs 8", "NoneType"]),
        ([("sep_conv_3x3", 2), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "bad_genotype", ["normal cell pair 0", "0..1, got 2"]),
        (DARTS_V2_NORMAL, [*DARTS_V2_REDUCE[:7], ("skip_connect", 6)], "bad_genotype", ["reduce cell pair 7", "0..4, got 6"]),
        ([("sep_conv_3x3", -1), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "bad_genotype", ["got -1"]),
        ([("sep_conv_3x3", True), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "bad_genotype", ["must be an integer"]),
        ([("sep_conv_3x3", 0, 1), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "bad_genotype", ["pair 0 must be [op, input]"]),
        (["ab", *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "bad_genotype", ["pair 0 must be [op, input]"]),
        ([("conv_9x9", 0), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "unknown_op", ["'conv_9x9'", "sep_conv_3x3"]),
        ([("nor_conv_3x3", 0), *DARTS_V2_NORMAL[1:]], DARTS_V2_REDUCE, "unknown_op", ["'nor_conv_3x3'"]),
        (DARTS_V2_NORMAL, [(7, 0), *DARTS_V2_REDUCE[1:]], "unknown_op", ["reduce cell pair 0", "op index 7 outside 0..6"]),
        (DARTS_V2_NORMAL, [(-1, 0), *DARTS_V2_REDUCE[1:]], "unknown_op", ["op index -1"]),
    ],
)
def test_darts_errors(normal, reduce, code, fragments):
    with raises(code, *fragments):
        parse_darts(normal, reduce)


def test_darts_reduce_cell_not_reading_previous_cell():
    reduce = [("max_pool_3x3", 0), ("max_pool_3x3", 0), *[("skip_connect", 2)] * 6]
    try:
        g = parse_darts(DARTS_V2_NORMAL, reduce)
    except ArchitectureError as err:
        assert err.code == "bad_genotype" and "reduce" in err.message
        return
    validate(g)


# ----------------------------------------------------------------------------------------------------- JSON DAG


def test_json_dag_moves_input_first_and_output_last():
    nodes = ["nor_conv_3x3", "output", "avg_pool_3x3", "input"]
    edges = [[3, 0], [0, 2], [2, 1], [3, 1]]
    g = parse_json_dag(nodes, edges)
    assert g.space == "graph"
    assert g.ops == ["input", "nor_conv_3x3", "avg_pool_3x3", "output"]
    assert set(g.edges) == {(0, 1), (1, 2), (2, 3), (0, 3)}
    assert g.origin == (3, 0, 2, 1)
    assert validate(g) is g


def test_json_dag_object_nodes_with_attrs():
    nodes = ["input", {"op": "nor_conv_3x3", "attrs": {"channels": 16}}, {"op": "skip_connect"}, "output"]
    g = parse_json_dag(nodes, [[0, 1], [1, 2], [2, 3]])
    assert g.nodes[1].attrs == {"channels": 16}
    assert g.nodes[2].attrs == {}
    plain = parse_json_dag(["input", "nor_conv_3x3", "skip_connect", "output"], [[0, 1], [1, 2], [2, 3]])
    assert canonicalize(g).key != canonicalize(plain).key


def test_json_dag_validation_errors_use_user_numbering():
    nodes = ["output", "skip_connect", "input", "nor_conv_3x3", "avg_pool_3x3"]
    # user node 4 is fed by the input but reaches nothing
    g = parse_json_dag(nodes, [[2, 1], [1, 3], [3, 0], [2, 4]])
    with raises("disconnected", "node 4 (avg_pool_3x3) does not reach the output"):
        validate(g)
    g = parse_json_dag(nodes[:4], [[2, 1], [1, 3], [3, 1], [3, 0]])
    with raises("cycle", "[0, 1, 3]"):
        validate(g)


@pytest.mark.parametrize(
    "nodes, code, fragments",
    [
        (["nor_conv_3x3", "output"], "bad_node", ["exactly one 'input' and one 'output'", "got 0 and 1"]),
        (["input", "input", "output"], "bad_node", ["got 2 and 1"]),
        (["input", "output", "output"], "bad_node", ["got 1 and 2"]),
        (["input", "conv_7x7", "output"], "unknown_op", ["'conv_7x7'"]),
        (["input", {"op": "conv_7x7"}, "output"], "unknown_op", ["'conv_7x7'"]),
        (["input", 5, "output"], "bad_node", ["node 1 must be an op name"]),
        (["input", {"kind": "nor_conv_3x3"}, "output"], "bad_node", ["node 1 must be an op name"]),
        (["input", {"op": "nor_conv_3x3", "attrs": [1]}, "output"], "bad_node", ["node 1: attrs must be an object"]),
    ],
)
def test_json_dag_node_errors(nodes, code, fragments):
    with raises(code, *fragments):
        parse_json_dag(nodes, [[0, 1], [1, 2]])


@pytest.mark.parametrize(
    "edge, fragment",
    [
        ([0, 1, 2], "edge 1 must be a pair"),
        ([0], "edge 1 must be a pair"),
        ("01", "edge 1 must be a pair"),
        (5, "edge 1 must be a pair"),
        ([0, True], "edge 1 must be a pair"),
        ([0.0, 2], "edge 1 must be a pair"),
        ([0, 3], "edge 1 [0, 3] refers to a node outside 0..2"),
        ([-1, 2], "outside 0..2"),
    ],
)
def test_json_dag_edge_errors(edge, fragment):
    with raises("bad_edge", fragment):
        parse_json_dag(["input", "nor_conv_3x3", "output"], [[0, 1], edge])
