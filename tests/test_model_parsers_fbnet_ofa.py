"""Parsers of HELP's FBNet and OFA MobileNetV3 spaces: round trips, IR shape, errors, canonical order, tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from model.canonical import canonicalize
from model.errors import ArchitectureError
from model.ir import DEFAULT_MAX_NODES, validate
from model.ops import OP_CODES, OP_NAMES, VOCAB_SIZE, op_code
from model.parsers import FBNET_CHOICES, fbnet_spec, ofa_spec, parse_fbnet, parse_ofa
from model.parsers.ofa import OFA_RESOLUTIONS
from model.tables import data_dir, read_csv_table
from model.tokenizer import TOKEN_DIM, encode_graphs, tokenize_graphs

# row 0 of HELP's FBNet table
FBNET_ROW0_IDX = "7 8 1 8 4 8 8 8 7 4 1 4 7 3 2 7 3 2 4 2 4 5"
FBNET_ROW0_NAMES = (
    "k5_e6 skip k3_e1_g2 skip k5_e1 skip skip skip k5_e6 k5_e1 k3_e1_g2 k5_e1 k5_e6 k3_e6 k3_e3 k5_e6 "
    "k3_e6 k3_e3 k5_e1 k3_e3 k5_e1 k5_e1_g2"
)
# row 0 of HELP's OFA table
OFA_ROW0 = {
    "ks": "7 5 5 5 7 7 5 7 5 7 3 7 5 3 7 3 5 3 5 3",
    "e": "6 4 4 6 6 3 4 3 3 6 3 3 3 6 3 4 6 4 3 6",
    "d": "2 2 2 2 3",
    "r": 204,
}


def raises(code: str, *fragments: str):
    """``pytest.raises`` for an ArchitectureError with ``code`` whose message contains every fragment."""
    return _Raises(code, fragments)


class _Raises:
    def __init__(self, code: str, fragments: tuple[str, ...]) -> None:
        self.code, self.fragments = code, fragments

    def __enter__(self):
        self._ctx = pytest.raises(ArchitectureError)
        self.info = self._ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self._ctx.__exit__(*exc)
        err = self.info.value
        assert err.code == self.code, f"expected {self.code!r}, got {err.code!r}: {err.message}"
        for fragment in self.fragments:
            assert fragment in err.message, f"{fragment!r} not in {err.message!r}"
        return suppressed


def _is_chain(graph) -> bool:
    return graph.edges == tuple((i, i + 1) for i in range(graph.n - 1))


# --- vocabulary ---


def test_existing_op_codes_unchanged_and_new_ops_appended():
    assert op_code("input") == 0 and op_code("output") == 1
    assert op_code("none") == 2 and op_code("skip_connect") == 3 and op_code("avg_pool_3x3") == 6
    assert op_code("conv1x1-bn-relu") == 7 and op_code("maxpool3x3") == 9
    assert op_code("max_pool_3x3") == 10 and op_code("add") == 15 and op_code("concat") == 16
    assert OP_NAMES[17:26] == tuple(f"fbnet_{c}" for c in FBNET_CHOICES)
    assert OP_NAMES[26:35] == tuple(f"ofa_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 4, 6))
    assert OP_NAMES[35] == "ofa_skip"
    assert OP_NAMES[36:] == tuple(f"ofa_res_{r}" for r in range(128, 225, 4))
    assert [op_code(f"ofa_res_{r}") for r in OFA_RESOLUTIONS] == list(range(36, 61))
    assert len(OP_NAMES) == 61 < VOCAB_SIZE
    assert len(OP_CODES) == len(OP_NAMES)


# --- FBNet ---


def test_fbnet_choice_order_matches_table_codes():
    codes = [int(c) for c in FBNET_ROW0_IDX.split()]
    assert [FBNET_CHOICES[c] for c in codes] == FBNET_ROW0_NAMES.split()
    assert FBNET_CHOICES[:3] == ("k3_e1", "k3_e1_g2", "k3_e3") and FBNET_CHOICES[8] == "skip"


@pytest.mark.parametrize(
    "layers",
    [FBNET_ROW0_NAMES, FBNET_ROW0_NAMES.split(), [int(c) for c in FBNET_ROW0_IDX.split()], np.array(FBNET_ROW0_IDX.split(), int)],
    ids=["string", "names", "codes", "numpy_codes"],
)
def test_fbnet_parse_forms_agree_and_round_trip(layers):
    graph = parse_fbnet(layers)
    assert graph == parse_fbnet(FBNET_ROW0_NAMES)
    assert fbnet_spec(graph) == FBNET_ROW0_NAMES
    assert parse_fbnet(fbnet_spec(graph)) == graph


def test_fbnet_ir_shape_and_attrs():
    graph = validate(parse_fbnet(FBNET_ROW0_NAMES))
    assert graph.space == "fbnet"
    assert graph.n == 24
    assert graph.ops[0] == "input" and graph.ops[-1] == "output"
    assert _is_chain(graph) and len(graph.edges) == 23
    layers = graph.nodes[1:-1]
    assert [node.op for node in layers] == [f"fbnet_{c}" for c in FBNET_ROW0_NAMES.split()]
    assert [node.attrs["layer"] for node in layers] == list(range(22))
    assert layers[0].attrs == {"kernel": 5, "expansion": 6, "groups": 1, "layer": 0}
    assert layers[1].op == "fbnet_skip" and layers[1].attrs == {"kernel": 0, "expansion": 0, "groups": 1, "layer": 1}
    assert layers[2].op == "fbnet_k3_e1_g2" and layers[2].attrs == {"kernel": 3, "expansion": 1, "groups": 2, "layer": 2}
    assert layers[21].op == "fbnet_k5_e1_g2" and layers[21].attrs == {"kernel": 5, "expansion": 1, "groups": 2, "layer": 21}
    assert layers[14].attrs == {"kernel": 3, "expansion": 3, "groups": 1, "layer": 14}


def test_fbnet_every_choice_attrs():
    expected = {
        "k3_e1": (3, 1, 1),
        "k3_e1_g2": (3, 1, 2),
        "k3_e3": (3, 3, 1),
        "k3_e6": (3, 6, 1),
        "k5_e1": (5, 1, 1),
        "k5_e1_g2": (5, 1, 2),
        "k5_e3": (5, 3, 1),
        "k5_e6": (5, 6, 1),
        "skip": (0, 0, 1),
    }
    for code, choice in enumerate(FBNET_CHOICES):
        node = parse_fbnet([code] * 22).nodes[5]
        assert node.op == f"fbnet_{choice}"
        assert (node.attrs["kernel"], node.attrs["expansion"], node.attrs["groups"]) == expected[choice]


@pytest.mark.parametrize("count", [0, 21, 23])
def test_fbnet_wrong_layer_count(count):
    with raises("bad_fbnet", "22 layers", f"got {count}"):
        parse_fbnet(["k3_e1"] * count)
    with raises("bad_fbnet", "22 layers", f"got {count}"):
        parse_fbnet(" ".join(["skip"] * count))


def test_fbnet_unknown_choice_lists_valid_ones():
    names = FBNET_ROW0_NAMES.split()
    names[4] = "k7_e6"
    with raises("unknown_op", "'k7_e6'", "layer 4", "valid choices", "k3_e1_g2", "skip"):
        parse_fbnet(names)


@pytest.mark.parametrize("bad", [9, -1, 100])
def test_fbnet_code_out_of_range(bad):
    codes = [0] * 22
    codes[3] = bad
    with raises("unknown_op", str(bad), "layer 3", "0..8"):
        parse_fbnet(codes)


def test_fbnet_bad_types():
    with raises("bad_fbnet"):
        parse_fbnet([True] * 22)
    with raises("bad_fbnet"):
        parse_fbnet([1.0] * 22)
    with raises("bad_fbnet"):
        parse_fbnet(None)  # type: ignore[arg-type]


def test_fbnet_spec_rejects_other_graphs():
    with raises("bad_fbnet"):
        fbnet_spec(parse_ofa(**OFA_ROW0))


# --- OFA ---


def test_ofa_parse_and_round_trip():
    graph = parse_ofa(**OFA_ROW0)
    spec = ofa_spec(graph)
    assert spec["d"] == [2, 2, 2, 2, 3] and spec["r"] == 204
    ks = [int(x) for x in OFA_ROW0["ks"].split()]
    # active slots keep their values, inactive slots report 0
    assert spec["ks"][:2] == ks[:2] and spec["ks"][2:4] == [0, 0]
    assert spec["ks"][16:19] == ks[16:19] and spec["ks"][19] == 0
    assert parse_ofa(**spec) == graph
    assert ofa_spec(parse_ofa(**spec)) == spec


def test_ofa_string_and_int_forms_agree():
    as_ints = {
        "ks": [int(x) for x in OFA_ROW0["ks"].split()],
        "e": tuple(int(x) for x in OFA_ROW0["e"].split()),
        "d": np.array([2, 2, 2, 2, 3]),
        "r": "204",
    }
    assert parse_ofa(**as_ints) == parse_ofa(**OFA_ROW0)


def test_ofa_ir_shape_and_attrs():
    graph = validate(parse_ofa(**OFA_ROW0))
    assert graph.space == "ofa"
    assert graph.n == 23
    assert _is_chain(graph) and len(graph.edges) == 22
    assert graph.nodes[0].op == "input" and graph.nodes[-1].op == "output"
    assert graph.nodes[1].op == "ofa_res_204" and graph.nodes[1].attrs == {"resolution": 204}
    slots = graph.nodes[2:-1]
    assert slots[0].op == "ofa_k7_e6" and slots[0].attrs == {"kernel": 7, "expansion": 6, "stage": 0, "slot": 0}
    assert slots[1].op == "ofa_k5_e4" and slots[1].attrs == {"kernel": 5, "expansion": 4, "stage": 0, "slot": 1}
    assert slots[2].op == "ofa_skip" and slots[2].attrs == {"stage": 0, "slot": 2}
    assert slots[3].op == "ofa_skip" and slots[3].attrs == {"stage": 0, "slot": 3}
    assert slots[18].op == "ofa_k5_e3" and slots[18].attrs == {"kernel": 5, "expansion": 3, "stage": 4, "slot": 18}
    assert slots[19].op == "ofa_skip" and slots[19].attrs == {"stage": 4, "slot": 19}
    assert [node.attrs["slot"] for node in slots] == list(range(20))
    assert [node.attrs["stage"] for node in slots] == [j // 4 for j in range(20)]
    assert sum(node.op != "ofa_skip" for node in slots) == 11


def test_ofa_depths_all_active_and_minimal():
    full = parse_ofa([3] * 20, [6] * 20, [4] * 5, 224)
    assert all(node.op == "ofa_k3_e6" for node in full.nodes[2:-1])
    minimal = parse_ofa([7] * 20, [3] * 20, [2] * 5, 128)
    assert [node.op for node in minimal.nodes[2:6]] == ["ofa_k7_e3", "ofa_k7_e3", "ofa_skip", "ofa_skip"]
    assert minimal.nodes[1].op == "ofa_res_128"


def test_ofa_inactive_slots_are_ignored():
    ks = [int(x) for x in OFA_ROW0["ks"].split()]
    e = [int(x) for x in OFA_ROW0["e"].split()]
    d = [2, 2, 2, 2, 3]
    ks2, e2 = list(ks), list(e)
    for slot in (2, 3, 6, 7, 10, 11, 14, 15, 19):  # inactive for these depths
        ks2[slot] = 3 if ks[slot] != 3 else 7
        e2[slot] = 4 if e[slot] != 4 else 6
    first, second = parse_ofa(ks, e, d, 204), parse_ofa(ks2, e2, d, 204)
    assert first == second
    assert canonicalize(first).key == canonicalize(second).key
    # an active slot does matter
    ks2[0] = 3
    assert parse_ofa(ks2, e2, d, 204) != first


@pytest.mark.parametrize(
    ("field", "count", "needed"),
    [("ks", 19, 20), ("ks", 21, 20), ("e", 0, 20), ("d", 4, 5), ("d", 6, 5)],
)
def test_ofa_wrong_counts(field, count, needed):
    spec = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}
    spec[field] = [spec[field][0]] * count
    with raises("bad_ofa", f"'{field}'", f"needs {needed} values", f"got {count}"):
        parse_ofa(**spec)


@pytest.mark.parametrize(
    ("field", "bad", "allowed"),
    [("ks", 4, "3/5/7"), ("ks", 9, "3/5/7"), ("e", 5, "3/4/6"), ("e", 1, "3/4/6"), ("d", 1, "2/3/4"), ("d", 5, "2/3/4")],
)
def test_ofa_out_of_range_values(field, bad, allowed):
    spec = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}
    values = list(spec[field])
    values[1] = bad
    spec[field] = values
    with raises("bad_ofa", f"'{field}'", str(bad), "position 1", allowed):
        parse_ofa(**spec)


def test_ofa_zero_placeholder_only_in_inactive_slots():
    d = [2, 3, 4, 2, 2]
    ks = [5] * 20
    e = [4] * 20
    for slot in (2, 3, 7, 14, 15, 18, 19):  # inactive for these depths
        ks[slot] = e[slot] = 0
    graph = parse_ofa(ks, e, d, 140)
    assert ofa_spec(graph) == {"ks": ks, "e": e, "d": d, "r": 140}
    ks[6] = 0  # stage 1 position 2: active at depth 3
    with raises("bad_ofa", "'ks'", "position 6", "3/5/7", "inactive slot"):
        parse_ofa(ks, e, d, 140)
    with raises("bad_ofa", "'e'", "position 2", "3/4/6"):
        parse_ofa([5] * 20, [4, 4, 5, *[4] * 17], d, 140)  # 5 is never allowed, even in an inactive slot


def test_ofa_non_integer_values():
    with raises("bad_ofa", "'ks'", "'x'", "3/5/7"):
        parse_ofa(" ".join(["3"] * 19 + ["x"]), [3] * 20, [2] * 5, 160)
    with raises("bad_ofa", "'e'"):
        parse_ofa([3] * 20, [3.0] * 20, [2] * 5, 160)
    with raises("bad_ofa", "'d'"):
        parse_ofa([3] * 20, [3] * 20, [True] * 5, 160)


@pytest.mark.parametrize("r", [126, 130, 228, 0, 224.0, True, "abc"])
def test_ofa_bad_resolution(r):
    with raises("bad_ofa", "'r'", "resolution", "128..224", "steps of 4"):
        parse_ofa([3] * 20, [3] * 20, [2] * 5, r)


def test_ofa_every_resolution_has_an_op():
    for r in OFA_RESOLUTIONS:
        graph = parse_ofa([3] * 20, [3] * 20, [2] * 5, r)
        assert op_code(graph.nodes[1].op) == op_code("ofa_res_128") + (r - 128) // 4


def test_ofa_spec_rejects_other_graphs():
    with raises("bad_ofa"):
        ofa_spec(parse_fbnet(FBNET_ROW0_NAMES))


# --- canonical order and tokenizer ---


def test_canonicalize_keeps_chain_order():
    for graph in (parse_fbnet(FBNET_ROW0_NAMES), parse_ofa(**OFA_ROW0)):
        canonical = canonicalize(validate(graph))
        assert canonical.order == tuple(range(graph.n))
        assert graph.renumbered(list(canonical.order)).nodes == graph.nodes
    # layer attrs make same-choice layers distinct; different specs give different keys
    assert canonicalize(parse_fbnet([0] * 22)).key != canonicalize(parse_fbnet([0] * 21 + [1])).key
    assert canonicalize(parse_ofa(**OFA_ROW0)).key != canonicalize(parse_ofa(**{**OFA_ROW0, "r": 208})).key


def test_canonicalize_is_renumbering_invariant():
    graph = parse_ofa(**OFA_ROW0)
    rng = np.random.default_rng(0)
    order = [0, *(rng.permutation(np.arange(1, graph.n - 1)).tolist()), graph.n - 1]
    shuffled = graph.renumbered(order)
    assert canonicalize(shuffled).key == canonicalize(graph).key


def test_tokenizer_on_mixed_batch():
    graphs = [
        parse_fbnet(FBNET_ROW0_NAMES),
        parse_ofa(**OFA_ROW0),
        parse_fbnet([8] * 22),
        parse_ofa([7] * 20, [6] * 20, [4] * 5, 224),
    ]
    assert max(g.n for g in graphs) <= DEFAULT_MAX_NODES
    encoded = encode_graphs(graphs)
    assert encoded.op_ids.shape == (4, 24) and encoded.adjacency.shape == (4, 24, 24)
    assert encoded.op_ids[0].tolist() == [op_code(op) for op in graphs[0].ops]
    assert encoded.op_ids[1, :23].tolist() == [op_code(op) for op in graphs[1].ops] and encoded.op_ids[1, 23] == -1
    assert encoded.op_ids.max() < VOCAB_SIZE
    assert encoded.adjacency[1].sum() == 22 and encoded.adjacency[0].sum() == 23
    batch = tokenize_graphs(graphs)
    assert batch.tokens.shape == (4, 24, TOKEN_DIM)
    assert batch.mask.sum(axis=1).tolist() == [24, 23, 24, 23]
    assert np.isfinite(batch.tokens).all()
    assert not batch.tokens[1, 23].any()
    assert not np.allclose(batch.tokens[0], batch.tokens[2])


# --- the shared HELP tables ---


def _tables_present() -> bool:
    return (data_dir() / "fbnet" / "latency_help_ms.csv.gz").exists() and (data_dir() / "ofa" / "latency_help_ms.csv.gz").exists()


@pytest.mark.skipif(
    not _tables_present(), reason="shared HELP tables fbnet/ofa latency_help_ms.csv.gz not found under the data dir"
)
def test_parse_every_row_of_the_help_tables():
    fbnet = read_csv_table("fbnet/latency_help_ms.csv.gz")
    assert len(fbnet["op_names"]) == 5000
    for names, codes in zip(fbnet["op_names"], fbnet["op_idx"], strict=True):
        graph = parse_fbnet(names)
        assert graph == parse_fbnet([int(c) for c in codes.split()])
        assert fbnet_spec(graph) == " ".join(names.split())
    ofa = read_csv_table("ofa/latency_help_ms.csv.gz")
    assert len(ofa["ks"]) == 5000
    for ks, e, d, r in zip(ofa["ks"], ofa["e"], ofa["d"], ofa["r"], strict=True):
        graph = parse_ofa(ks, e, d, int(r))
        spec = ofa_spec(graph)
        assert spec["d"] == [int(x) for x in d.split()] and spec["r"] == int(r)
        assert parse_ofa(**spec) == graph
