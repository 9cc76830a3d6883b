"""The leave-one-family-out breakdown's convolution groups, on hand-built ONNX graphs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from onnx_fixtures import _weight, conv_net, conv_stack, model_from

from benchmarks.onnx_lofo_breakdown import GROUPS, group_of, grouped
from model.onnx_graph import ParseOptions, parse_onnx


def test_convolutions_split_into_depthwise_pointwise_and_dense() -> None:
    net = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=32))
    depthwise_stack = parse_onnx(conv_stack(1).SerializeToString(), ParseOptions())
    # Conv 3x3 (3->16), Relu, depthwise Conv 3x3 (group 16), GlobalAveragePool, Flatten, Gemm
    assert [group_of(n) for n in net.nodes] == [
        "dense kxk conv", "elementwise and other", "depthwise conv", "pooling", "data movement", "matrix product",
    ]  # fmt: skip
    assert {group_of(n) for n in depthwise_stack.nodes if n.op_type == "Conv"} == {"depthwise conv"}  # even 1x1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    pointwise = model_from([helper.make_node("Conv", ["x", "w"], ["y"])], [x], [y], [_weight("w", 4, 8, 1, 1)])
    (node,) = parse_onnx(pointwise.SerializeToString(), ParseOptions()).nodes
    assert group_of(node) == "1x1 conv"


def test_fused_nodes_count_in_their_kernel_and_shares_are_kept() -> None:
    net = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=32))
    shares = np.array([0.3, 0.1, 0.2, 0.1, 0.1, 0.2])
    groups = grouped(net, shares)
    assert set(groups) == set(GROUPS) and abs(sum(groups.values()) - 1.0) < 1e-12
    assert abs(groups["dense kxk conv"] - 0.4) < 1e-12  # the Relu runs inside the first convolution's kernel
    assert groups["elementwise and other"] == 0.0
