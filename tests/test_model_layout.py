"""model.layout against onnxruntime's own NCHWc rewrite: the same reorders, on the same tensors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_fixtures import _ints, _weight, model_from

from benchmarks.onnx_layout_replay import onnxruntime_reorders
from model.layout import BLOCK, conv_layout, layout_flags
from model.network_tokenizer import NETWORK_TOKEN_DIM, TOKEN_WIDTHS, tokenize_networks
from model.onnx_graph import parse_onnx


def _conv(x: str, out: str, cin: int, cout: int, k: int = 1, group: int = 1) -> tuple[onnx.NodeProto, list]:
    node = helper.make_node("Conv", [x, f"{out}_w", f"{out}_b"], [out], kernel_shape=[k, k], pads=[k // 2] * 4, group=group)
    return node, [_weight(f"{out}_w", cout, cin // group, k, k), _weight(f"{out}_b", cout)]


def _network() -> onnx.ModelProto:
    """A stem (3 -> 32, reads NCHW directly), a depthwise conv, a squeeze-and-excitation block (its broadcasting
    Mul reads NCHW), a grouped conv with 8 channels per group (NCHW), a 24-channel MaxPool (NCHW), a residual Add,
    a Concat of whole blocks and a classifier (GlobalAveragePool, Flatten, Gemm)."""
    nodes, inits = [], []

    def conv(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        node, weights = _conv(*args, **kwargs)
        nodes.append(node)
        inits.extend(weights)

    conv("x", "stem", 3, 32, k=3)
    nodes.append(helper.make_node("Relu", ["stem"], ["stem_r"]))
    conv("stem_r", "dw", 32, 32, k=3, group=32)
    nodes.append(helper.make_node("Relu", ["dw"], ["dw_r"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["dw_r"], ["se_p"]))
    conv("se_p", "se_1", 32, 16)
    nodes.append(helper.make_node("Relu", ["se_1"], ["se_1r"]))
    conv("se_1r", "se_2", 16, 32)
    nodes.append(helper.make_node("Sigmoid", ["se_2"], ["se_s"]))
    nodes.append(helper.make_node("Mul", ["dw_r", "se_s"], ["se_out"]))
    conv("se_out", "pw", 32, 32)
    conv("pw", "grouped", 32, 32, k=3, group=4)  # 8 channels per group: stays NCHW
    conv("grouped", "narrow", 32, 24)
    nodes.append(helper.make_node("MaxPool", ["narrow"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]))
    conv("pool", "wide", 24, 32)
    conv("wide", "branch", 32, 32, k=3)
    nodes.append(helper.make_node("Add", ["wide", "branch"], ["res"]))
    conv("res", "left", 32, 16)
    conv("res", "right", 32, 16)
    nodes.append(helper.make_node("Concat", ["left", "right"], ["cat"], axis=1))
    nodes.append(helper.make_node("GlobalAveragePool", ["cat"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1))
    inits += [_weight("fc_w", 10, 32), _weight("fc_b", 10)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    return model_from(nodes, [x], [y], inits)


def _channel_shuffle() -> onnx.ModelProto:
    """Conv (32 -> 32), then a ShuffleNet channel shuffle (Reshape, Transpose, Reshape: NCHW only), then a conv."""
    stem, stem_w = _conv("x", "a", 32, 32)
    after, after_w = _conv("shuffled", "b", 32, 32)
    nodes = [
        stem,
        helper.make_node("Reshape", ["a", "split"], ["r1"]),
        helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "merged"], ["shuffled"]),
        after,
    ]
    inits = [*stem_w, *after_w, _ints("split", [1, 2, 16, 8, 8]), _ints("merged", [1, 32, 8, 8])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 8, 8])
    y = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 32, 8, 8])
    return model_from(nodes, [x], [y], inits)


def _blocked_here() -> bool:
    """onnxruntime uses 16-float blocks only where the CPU has AVX-512 (the replay assumes it)."""
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512f" in f.read()
    except OSError:
        return False


def _replayed_reorders(model: onnx.ModelProto) -> tuple[set[str], set[str]]:
    """(names of nodes whose output the replay converts to NCHW, ... into NCHWc)."""
    graph = parse_onnx(model.SerializeToString())
    flags = layout_flags(graph)
    return tuple({graph.nodes[i].name for i in np.flatnonzero(flags[:, column])} for column in (1, 2))


@pytest.mark.skipif(not _blocked_here(), reason="onnxruntime uses 16-float NCHWc blocks only on AVX-512 CPUs")
@pytest.mark.parametrize("build", [_network, _channel_shuffle])
def test_the_replay_finds_every_reorder_onnxruntime_inserts(build) -> None:  # noqa: ANN001
    model = build()
    for node in model.graph.node:
        node.name = node.output[0]  # name each node after its output tensor
    to_nchw, to_nchwc, moved = onnxruntime_reorders(model.SerializeToString())
    assert to_nchw and to_nchwc and moved == 0  # the fixtures exercise both directions
    assert _replayed_reorders(model) == (to_nchw, to_nchwc)


def test_the_network_fixture_reorders_where_the_rules_say() -> None:
    """The same fixture read without onnxruntime: which nodes run blocked and where the copies go (any CPU)."""
    model = _network()
    for node in model.graph.node:
        node.name = node.output[0]
    to_nchw, to_nchwc = _replayed_reorders(model)
    # the SE Mul and the grouped conv read NCHW; the narrow conv's 24 channels are no whole block for the MaxPool;
    # the last GlobalAveragePool feeds Flatten
    assert to_nchw == {"dw_r", "se_s", "pw", "narrow", "gap"}
    # back into blocks: the SE output for the next conv, the grouped conv's output, the MaxPool's (for "wide")
    assert to_nchwc == {"se_out", "grouped", "pool"}
    graph = parse_onnx(model.SerializeToString())
    blocked = {graph.nodes[i].op_type for i in np.flatnonzero(layout_flags(graph)[:, 0])}
    assert {"Conv", "Relu", "Sigmoid", "Add", "Concat", "GlobalAveragePool"} <= blocked
    assert not blocked & {"Mul", "MaxPool", "Flatten", "Gemm"}  # the MaxPool's 24 channels are no whole block


@pytest.mark.parametrize(
    ("cin", "cout", "group", "expected"),
    [
        (3, 24, 1, "direct"),  # fewer input channels than a block: reads NCHW, writes blocks
        (32, 24, 1, "blocked"),  # output channels are padded to a block
        (20, 32, 1, "blocked"),
        (18, 32, 1, None),
        (24, 24, 24, "blocked"),  # depthwise: channels divisible by 4
        (10, 10, 10, None),
        (32, 32, 2, "blocked"),  # 16 per group
        (48, 48, 2, None),  # 24 per group
    ],
)
def test_conv_layout_rules(cin: int, cout: int, group: int, expected: str | None) -> None:
    node, weights = _conv("x", "y", cin, cout, k=3, group=group)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 8, 8])
    graph = parse_onnx(model_from([node], [x], [y], weights).SerializeToString())
    assert conv_layout(graph.nodes[0], BLOCK) == expected


def test_tokens_carry_the_layout_flags_in_the_last_columns_of_a_version_7_token() -> None:
    model = _network()
    graph = parse_onnx(model.SerializeToString())
    tokens = tokenize_networks([graph]).tokens[0]
    assert tokens.shape[1] == NETWORK_TOKEN_DIM
    np.testing.assert_array_equal(tokens[:, TOKEN_WIDTHS["7"] - 3 : TOKEN_WIDTHS["7"]], layout_flags(graph))
