"""``model.onnx_weights.weight_free``: large float weights leave, everything a prediction reads stays."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import attention_block, conv_net

from model.network_tokenizer import tokenize_networks
from model.onnx_graph import ParseOptions, parse_onnx
from model.onnx_weights import MISSING_FILE, weight_free


def with_branch_weights() -> onnx.ModelProto:
    """An If whose branches hold their own 4,000-float initializers (weights inside subgraphs)."""

    def branch(name: str, scale: float) -> onnx.GraphProto:
        weight = numpy_helper.from_array(np.full((1000, 4), scale, dtype=np.float32), f"{name}_w")
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1000, 4])
        return helper.make_graph([helper.make_node("Add", ["x", f"{name}_w"], [f"{name}_y"])], name, [], [out], [weight])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1000, 4])
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1000, 4])
    node = helper.make_node("If", ["flag"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", 2.0))
    graph = helper.make_graph([node], "g", [x, flag], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_weight_free_keeps_what_parsing_reads() -> None:
    for model, options in ((attention_block(), ParseOptions()), (conv_net(), ParseOptions(resolution=96))):
        data = model.SerializeToString()
        light = weight_free(data)
        before, after = parse_onnx(data, options), parse_onnx(light, options)
        assert after.totals() == before.totals()  # FLOPs, MACs, params, memory traffic
        tokens_before, tokens_after = tokenize_networks([before], version="7"), tokenize_networks([after], version="7")
        np.testing.assert_array_equal(tokens_after.tokens, tokens_before.tokens)  # what the predictor reads
        np.testing.assert_array_equal(tokens_after.features, tokens_before.features)
    data = attention_block().SerializeToString()
    light = weight_free(data)
    assert len(light) < len(data) / 5
    stripped = onnx.load_from_string(light)
    for tensor in stripped.graph.initializer:
        if tensor.data_type == TensorProto.INT64:  # Reshape shapes and axes: kept, shape inference needs them
            assert tensor.data_location == TensorProto.DEFAULT and numpy_helper.to_array(tensor).size > 0
        elif tensor.data_location == TensorProto.EXTERNAL:
            assert not tensor.raw_data and tensor.external_data[0].value == MISSING_FILE


def test_weight_free_leaves_subgraphs_and_small_tensors() -> None:
    """The parser refuses external data inside subgraphs, so their weights travel: the copy still parses the same."""
    data = with_branch_weights().SerializeToString()
    light = weight_free(data)
    branches = [a.g for a in onnx.load_from_string(light).graph.node[0].attribute]
    assert all(b.initializer[0].data_location == TensorProto.DEFAULT for b in branches)
    assert parse_onnx(light).totals() == parse_onnx(data).totals()
    kept = onnx.load_from_string(weight_free(data, min_bytes=1 << 20))  # nothing is that large: nothing changes
    assert kept.SerializeToString() == onnx.load_from_string(data).SerializeToString()
