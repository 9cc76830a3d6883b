"""Property-based fuzzing of every parser in model/: each returns a valid result or raises ArchitectureError, nothing else.

Fuzz settings (all tests: ``deadline=None, derandomize=True`` so runs are reproducible and bounded):

* NB201 arch strings (``parse_nb201``), 300 examples: well-formed strings of random ops (incl. an unknown one), text
  over the arch-string alphabet, 1-4 character mutations (replace/insert/delete) of a valid string, non-strings.
* NB101 (``parse_nb101``), 300 examples: half well-formed cells (upper-triangular 0/1 matrices of 1..8 nodes, op
  lists input..output), half ragged nested lists of ints/bools/floats/strings/None up to 8x8 plus op lists.
* DARTS genotypes (``parse_darts``), 300 examples: valid cells (8 pairs, legal input states) and lists of pairs of
  (op name | int | junk, int | junk), 0..10 pairs.
* Generic JSON DAG (``parse_json_dag``), 2 x 300 examples: structured (input, output and vocabulary ops in any order,
  random in-range edges) and junk (node lists of op names, {op, attrs} objects, junk; edge lists of pairs, wrong
  arities, junk).
  For the four cell parsers a returned graph must also pass ``validate`` / ``canonicalize`` / ``tokenize_graphs`` or
  be refused by them with ArchitectureError (what the service does with it).
* ONNX bytes (``parse_onnx``): random bytes (200 examples); byte-level mutations of a valid small model: flips,
  truncation, insertion, deletion, splicing (300 examples); protobuf-level mutations of a valid model: random op types,
  attributes (name, type, ints incl. huge/negative/zero), input and initializer dims (negative, zero, huge, up to 24),
  dangling/renamed tensor names, extra nodes, opset versions (400 examples). A parsed network must also tokenize
  (``tokenize_networks``) to finite tokens and finite cost totals.

``pytest tests/test_fuzz_parsers.py --hypothesis-show-statistics`` shows how many examples each parser accepted and
which error codes refused the rest (``event``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from hostile.generators import small_conv_net
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from model.canonical import canonicalize
from model.errors import ArchitectureError
from model.ir import ArchGraph, validate
from model.network_tokenizer import tokenize_networks
from model.onnx_graph import ParseOptions, parse_onnx
from model.ops import OP_NAMES
from model.parsers import NB201_OPS, nb201_arch_str, parse_darts, parse_json_dag, parse_nb101, parse_nb201
from model.parsers.darts import DARTS_OPS
from model.tokenizer import tokenize_graphs

QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
CELL_EXAMPLES = 300
ONNX_RANDOM_EXAMPLES = 200
ONNX_BYTE_MUTATIONS = 300
ONNX_PROTO_MUTATIONS = 400
VALID_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
VALID_ONNX = small_conv_net().SerializeToString()

junk = st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=6) | st.integers(-(2**70), 2**70)
small_ints = st.integers(-3, 12)
ops = st.sampled_from([*OP_NAMES, "conv_7x7", "", "INPUT"])


def _accepts_or_refuses(parse: Any, *args: Any) -> ArchGraph | None:
    """Run a cell parser, then what the service runs on its graph; only ArchitectureError may escape."""
    try:
        graph = parse(*args)
        validate(graph)
        canonical = canonicalize(graph)
        tokenize_graphs([graph.renumbered(canonical.order)])
    except ArchitectureError as exc:
        assert exc.code and exc.message
        event(f"refused: {exc.code}")
        return None
    event("accepted")
    return graph


def _mutate_text(text: str, data: st.DataObject) -> str:
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(chars)))
        what = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        char = data.draw(st.sampled_from("|+~0123456789_abcnorvxkp "))
        if what == "insert" or not chars:
            chars.insert(where, char)
        elif what == "replace":
            chars[min(where, len(chars) - 1)] = char
        else:
            del chars[min(where, len(chars) - 1)]
    return "".join(chars)


@settings(max_examples=CELL_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(data=st.data(), kind=st.sampled_from(["cell", "mutated", "alphabet", "junk"]))
def test_fuzz_nb201(data: st.DataObject, kind: str) -> None:
    if kind == "cell":
        arch: Any = nb201_arch_str(data.draw(st.lists(st.sampled_from([*NB201_OPS, "conv_7x7"]), min_size=6, max_size=6)))
    elif kind == "mutated":
        arch = _mutate_text(VALID_NB201, data)
    elif kind == "alphabet":
        arch = data.draw(st.text(alphabet="|+~0123_abcdeimnoprstvxyk", max_size=100))
    else:
        arch = data.draw(junk | st.lists(junk, max_size=3))
    _accepts_or_refuses(parse_nb201, arch)


NB101_OP_NAMES = ["conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"]


@st.composite
def nb101_specs(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """Mostly well-formed cells (upper-triangular 0/1, input..output ops) so pruning and the edge limit are reached."""
    n = draw(st.integers(1, 8))
    matrix = [[draw(st.integers(0, 1)) if j > i else 0 for j in range(n)] for i in range(n)]
    middle = draw(st.lists(st.sampled_from([*NB101_OP_NAMES, "x"]), min_size=max(n - 2, 0), max_size=max(n - 2, 0)))
    op_list = ["input", *middle, "output"][:n]
    return matrix, op_list


@settings(max_examples=CELL_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(
    matrix=st.lists(st.lists(st.integers(0, 1) | st.integers(-2, 3) | junk, max_size=8), max_size=8) | junk,
    op_list=st.lists(st.sampled_from(["input", "output", *NB101_OP_NAMES, "x"]), max_size=8),
    spec=nb101_specs(),
    structured=st.booleans(),
)
def test_fuzz_nb101(matrix: Any, op_list: list[str], spec: tuple[Any, list[str]], structured: bool) -> None:
    _accepts_or_refuses(parse_nb101, *(spec if structured else (matrix, op_list)))


darts_pair = st.tuples(st.sampled_from(DARTS_OPS) | st.integers(-2, 9) | junk, small_ints | junk) | st.lists(junk, max_size=3)
valid_darts_cell = st.tuples(*[st.tuples(st.sampled_from(DARTS_OPS) | st.integers(0, 6), st.integers(0, 2 + k // 2 - 1))
                               for k in range(8)]).map(list)


@settings(max_examples=CELL_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(normal=valid_darts_cell | st.lists(darts_pair, min_size=6, max_size=10) | junk,
       reduce=valid_darts_cell | st.lists(darts_pair, max_size=10))
def test_fuzz_darts(normal: Any, reduce: Any) -> None:
    _accepts_or_refuses(parse_darts, normal, reduce)


graph_node = ops | st.fixed_dictionaries({"op": ops}, optional={"attrs": st.dictionaries(st.text(max_size=4), junk,
                                                                                          max_size=2) | junk}) | junk


@st.composite
def dag_specs(draw: st.DrawFn) -> tuple[list[Any], list[list[int]]]:
    """Connected DAGs of vocabulary ops, renumbered at random, plus random extra edges (cycles, duplicates, self-loops)."""
    middle = draw(st.lists(st.sampled_from(OP_NAMES[2:]), max_size=9))
    ordered = ["input", *middle, "output"]
    n = len(ordered)
    edges = [(draw(st.integers(0, k - 1)), k) for k in range(1, n)]  # every node reachable from the input
    edges += [(k, draw(st.integers(k + 1, n - 1))) for k in range(1, n - 1)]  # every node reaches the output
    edges += draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3))
    new_index = draw(st.permutations(range(n)))
    nodes = [""] * n
    for old, op in enumerate(ordered):
        nodes[new_index[old]] = op
    return nodes, [[new_index[a], new_index[b]] for a, b in edges]


@settings(max_examples=CELL_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(spec=dag_specs())
def test_fuzz_json_dag_structured(spec: tuple[list[Any], list[list[int]]]) -> None:
    _accepts_or_refuses(parse_json_dag, *spec)


@settings(max_examples=CELL_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(
    nodes=st.lists(graph_node, max_size=10),
    edges=st.lists(st.lists(small_ints, min_size=2, max_size=2) | st.lists(small_ints | junk, max_size=3) | junk, max_size=14),
)
def test_fuzz_json_dag(nodes: list[Any], edges: list[Any]) -> None:
    _accepts_or_refuses(parse_json_dag, nodes, edges)


def _onnx_accepts_or_refuses(data: bytes) -> None:
    try:
        graph = parse_onnx(data, ParseOptions(resolution=32))
    except ArchitectureError as exc:
        assert exc.code and exc.message
        event(f"refused: {exc.code}")
        return
    event("parsed")
    tokens = tokenize_networks([graph])
    assert np.isfinite(tokens.tokens).all() and np.isfinite(tokens.features).all()
    assert all(math.isfinite(v) for v in graph.totals().values())


@settings(max_examples=ONNX_RANDOM_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(data=st.binary(max_size=2048))
def test_fuzz_onnx_random_bytes(data: bytes) -> None:
    _onnx_accepts_or_refuses(data)


@settings(max_examples=ONNX_BYTE_MUTATIONS, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(data=st.data())
def test_fuzz_onnx_byte_mutations(data: st.DataObject) -> None:
    raw = bytearray(VALID_ONNX)
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, len(raw) - 1))
        what = data.draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "splice"]))
        if what == "flip":
            raw[where] ^= 1 << data.draw(st.integers(0, 7))
        elif what == "set":
            raw[where] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12, 0x3A]))
        elif what == "truncate":
            del raw[where:]
        elif what == "insert":
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=8))
        elif what == "delete":
            del raw[where:where + data.draw(st.integers(1, 8))]
        else:
            start = data.draw(st.integers(0, len(VALID_ONNX) - 1))
            raw[where:where] = VALID_ONNX[start:start + data.draw(st.integers(1, 64))]
        if not raw:
            break
    _onnx_accepts_or_refuses(bytes(raw))


ONNX_OPS = ["Conv", "Relu", "MatMul", "Gemm", "Reshape", "Flatten", "Add", "Concat", "MaxPool", "AveragePool",
            "GlobalAveragePool", "Transpose", "Softmax", "Split", "Slice", "Resize", "ConvTranspose", "BatchNormalization",
            "Loop", "If", "Constant", "Identity", "Shape", "Gather", "Expand", "Tile", "NotAnOp", ""]
HUGE_INTS = st.sampled_from([0, -1, -(2**63), 2**63 - 1, 2**31, 10**9, 1, 2, 3]) | st.integers(-8, 64)
ATTR_NAMES = ["kernel_shape", "strides", "pads", "dilations", "group", "axis", "perm", "transA", "transB", "to", "epsilon",
              "keepdims", "auto_pad", "mode", "value", "split", "shape", "junk"]


def _attribute(data: st.DataObject) -> onnx.AttributeProto:
    name = data.draw(st.sampled_from(ATTR_NAMES))
    kind = data.draw(st.sampled_from(["int", "ints", "float", "string", "tensor"]))
    if kind == "int":
        return helper.make_attribute(name, data.draw(HUGE_INTS))
    if kind == "ints":
        return helper.make_attribute(name, data.draw(st.lists(HUGE_INTS, min_size=1, max_size=20)))
    if kind == "float":
        return helper.make_attribute(name, data.draw(st.floats(width=32)))
    if kind == "string":
        return helper.make_attribute(name, data.draw(st.binary(max_size=40)))
    dims = data.draw(st.lists(HUGE_INTS, max_size=4))
    tensor = TensorProto(name="t", data_type=TensorProto.INT64, dims=dims)
    return helper.make_attribute(name, tensor)


def _dims(data: st.DataObject) -> list[int]:
    return data.draw(st.lists(HUGE_INTS, max_size=24))


@settings(max_examples=ONNX_PROTO_MUTATIONS, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(data=st.data())
def test_fuzz_onnx_proto_mutations(data: st.DataObject) -> None:
    model = small_conv_net()
    graph = model.graph
    for _ in range(data.draw(st.integers(1, 4))):
        what = data.draw(st.sampled_from(["op_type", "attribute", "input_dims", "init_dims", "rename", "add_node", "opset"]))
        node = graph.node[data.draw(st.integers(0, len(graph.node) - 1))]
        if what == "op_type":
            node.op_type = data.draw(st.sampled_from(ONNX_OPS))
        elif what == "attribute":
            if data.draw(st.booleans()):
                del node.attribute[:]
            node.attribute.append(_attribute(data))
        elif what == "input_dims":
            shape = graph.input[0].type.tensor_type.shape
            del shape.dim[:]
            for value in _dims(data):
                shape.dim.add().dim_value = value
        elif what == "init_dims" and len(graph.initializer):
            tensor = graph.initializer[0]
            del tensor.dims[:]
            tensor.dims.extend(_dims(data))
        elif what == "rename":
            names = [*node.input, *node.output, "ghost", ""]
            if node.input:
                node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(names))
        elif what == "add_node":
            op_type = data.draw(st.sampled_from(ONNX_OPS))
            inputs = data.draw(st.lists(st.sampled_from(["x", "w", "c", "r", "y", "ghost"]), max_size=3))
            graph.node.append(helper.make_node(op_type, inputs, [f"extra{len(graph.node)}"]))
        elif what == "opset":
            model.opset_import[0].version = data.draw(st.sampled_from([1, 7, 11, 13, 17, 21, 99, -1]))
    _onnx_accepts_or_refuses(model.SerializeToString())
