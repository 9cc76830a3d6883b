"""ONNX parser, cost model and whole-network tokenizer against hand-computed counts and hostile models."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_fixtures import attention_block, conv_net, kv_cache_attention, model_from

from model.errors import ArchitectureError
from model.network_domain import GraphFacts, domain_warnings
from model.network_tokenizer import (
    ALIGNED_NAMES,
    ALIGNMENT_DIM,
    ALIGNMENT_DIVISORS,
    FUSION_DIM,
    GEMM_DIM,
    GRAPH_FEATURE_DIM,
    GRAPH_FEATURE_NAMES,
    LAYOUT_DIM,
    N_NUMBERS,
    NETWORK_TOKEN_DIM,
    NETWORK_WEIGHTS_COLUMN,
    NETWORK_WEIGHTS_DIM,
    REPEAT_COLUMN,
    REPEAT_DIM,
    SMOOTH_DIM,
    TOKEN_WIDTHS,
    gemm_view,
    log2_column,
    network_weights,
    node_alignment,
    tokenize_networks,
    tokens_for_version,
    unaligned_conv,
)
from model.onnx_graph import NetNode, NetworkGraph, ParseOptions, named_length, parse_onnx


def by_op(graph: NetworkGraph, op: str) -> list:
    return [n for n in graph.nodes if n.op_type == op]


def test_conv_net_costs_by_hand() -> None:
    graph = parse_onnx(conv_net().SerializeToString(), ParseOptions(batch=1, resolution=32))
    assert [n.op_type for n in graph.nodes] == ["Conv", "Relu", "Conv", "GlobalAveragePool", "Flatten", "Gemm"]
    conv1, conv2 = by_op(graph, "Conv")
    assert conv1.output_shapes == ((1, 16, 16, 16),)
    assert conv1.cost.macs == 16 * 16 * 16 * 3 * 3 * 3
    assert conv2.cost.macs == 16 * 16 * 16 * 3 * 3  # depthwise: one input channel per group
    assert by_op(graph, "Gemm")[0].cost.macs == 160
    assert graph.totals()["params"] == 448 + 160 + 170
    assert graph.nodes[1].inputs == (0,) and graph.nodes[5].inputs == (4,)
    # memory traffic of conv1: input 3*32*32 + weights 432 + bias 16 + output 4096, 4 bytes each
    assert conv1.cost.memory_bytes == 4 * (3 * 32 * 32 + 432 + 16 + 16 * 16 * 16)


def test_dynamic_dims_follow_request() -> None:
    graph = parse_onnx(conv_net().SerializeToString(), ParseOptions(batch=4, resolution=64))
    assert graph.input_shapes == {"x": (4, 3, 64, 64)}
    assert graph.nodes[0].output_shapes == ((4, 16, 32, 32),)
    assert graph.nodes[0].cost.macs == 4 * 16 * 32 * 32 * 27


def channels_last_conv_net() -> onnx.ModelProto:
    """conv_net behind a Transpose from (N, H, W, 3), as a TF / Keras model converted to ONNX takes its images."""
    model = conv_net()
    graph = model.graph
    graph.node.insert(0, helper.make_node("Transpose", ["x_nhwc"], ["x"], perm=[0, 3, 1, 2]))
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("x_nhwc", TensorProto.FLOAT, ["N", "H", "W", 3]))
    return model


def test_channels_last_images_take_the_resolution_on_height_and_width() -> None:
    model = channels_last_conv_net()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session.run(None, {"x_nhwc": np.zeros((2, 64, 64, 3), np.float32)})  # a valid model
    graph = parse_onnx(model.SerializeToString(), ParseOptions(batch=4, resolution=64))
    assert graph.input_shapes == {"x_nhwc": (4, 64, 64, 3)}
    first_conv = by_op(graph, "Conv")[0]
    assert first_conv.output_shapes == ((4, 16, 32, 32),) and first_conv.cost.macs == 4 * 16 * 32 * 32 * 27
    same = parse_onnx(conv_net().SerializeToString(), ParseOptions(batch=4, resolution=64))
    assert graph.totals()["macs"] == same.totals()["macs"]


def test_a_kv_cache_takes_the_past_length_by_the_names_of_its_dimensions() -> None:
    """A rank-4 cache is no image: its ``past_sequence_length`` axis is the past length, the query's named
    ``sequence_length`` axis the sequence length, and nothing is read as 1."""
    data = kv_cache_attention(heads=2, head_dim=4).SerializeToString()
    graph = parse_onnx(data, ParseOptions(batch=3, sequence_length=1, past_length=37))
    assert graph.input_shapes == {"q": (3, 2, 1, 4), "past_key": (3, 2, 37, 4)} and graph.defaulted_dims == ()
    assert graph.totals()["macs"] == 2 * 3 * 2 * 1 * 38 * 4  # q K^T and A K over the 37 + 1 cached steps
    options = ParseOptions(sequence_length=5, past_length=37)
    assert named_length("past_sequence_length + sequence_length", options) == 42
    assert named_length("total_sequence_length", options) == 42
    assert named_length("past_sequence_length + 1", options) == 38
    assert named_length("H", options) is None and named_length("past + width", options) is None


def test_video_frames_take_the_sequence_length_and_unset_axes_are_named() -> None:
    """(N, C, T, H, W) with every axis symbolic: frames from sequence_length, height and width from the resolution,
    the channels read as 1 and named in a warning."""
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3, 3], pads=[1] * 6)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [8, 1, 3, 3, 3], np.zeros(8 * 27))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "T", "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = model_from([conv], [x], [y], [weight])
    graph = parse_onnx(model.SerializeToString(), ParseOptions(batch=2, resolution=32, sequence_length=8))
    assert graph.input_shapes == {"x": (2, 1, 8, 32, 32)}
    assert graph.defaulted_dims == ("x axis 1 ('C')",)
    assert graph.nodes[0].cost.macs == 2 * 8 * 8 * 32 * 32 * 27
    assert parse_onnx(conv_net().SerializeToString()).defaulted_dims == ()
    assert domain_warnings([], 1.0, 1, {}, facts=GraphFacts.of(graph)) == [
        "symbolic input dimensions that no request parameter sets, read as 1: x axis 1 ('C'); export the model with "
        "them fixed if they are larger"
    ]


def test_outputs_of_unknown_shape_are_warned_about() -> None:
    """An input declared without a shape: the MatMul's output shape stays unknown, it costs 0, and the answer says so."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [8, 8], np.zeros(64))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = parse_onnx(model_from([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [weight]).SerializeToString())
    assert graph.unknown_shapes == 1 and graph.totals()["macs"] == 0
    assert domain_warnings([], 0.0, 1, {}, facts=GraphFacts.of(graph)) == [
        "shape inference could not tell 1 node output shape; a node whose shapes are unknown costs 0, so the latency "
        "may be low (does onnxruntime load the model?)"
    ]
    assert domain_warnings([], 0.0, 1, {}, facts=GraphFacts.of(parse_onnx(conv_net().SerializeToString()))) == []


def test_a_named_batch_dimension_is_the_batch_on_every_input() -> None:
    """A batch-first LSTM as torch exports it: x (batch, seq, 8) and h0 (layers, batch, 16) share the name "batch"."""
    hidden, features = 16, 8
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", features])
    h0 = helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "batch", hidden])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    rng = np.random.default_rng(0)
    weights = [
        helper.make_tensor("W", TensorProto.FLOAT, [1, 4 * hidden, features], rng.normal(size=4 * hidden * features)),
        helper.make_tensor("R", TensorProto.FLOAT, [1, 4 * hidden, hidden], rng.normal(size=4 * hidden * hidden)),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_t"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x_t", "W", "R", "", "", "h0"], ["y"], hidden_size=hidden),
    ]
    graph = helper.make_graph(nodes, "lstm", [x, h0], [out], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    parsed = parse_onnx(model.SerializeToString(), ParseOptions(batch=2, sequence_length=10))
    assert parsed.input_shapes == {"x": (2, 10, features), "h0": (1, 2, hidden)}
    assert by_op(parsed, "LSTM")[0].output_shapes[0] == (10, 1, 2, hidden)


def test_attention_matmuls_count_per_head() -> None:
    t, d, h = 50, 64, 4
    graph = parse_onnx(attention_block(t, d, h).SerializeToString())
    matmuls = by_op(graph, "MatMul")
    assert [m.cost.macs for m in matmuls] == [t * d * 3 * d, t * t * d, t * t * d, t * d * d]
    assert matmuls[1].output_shapes == ((1, h, t, t),)
    softmax = by_op(graph, "Softmax")[0]
    assert softmax.cost.flops == 5 * h * t * t
    assert graph.totals()["params"] == 2 * d + 3 * d * d + d * d  # shape constants are not parameters
    assert by_op(graph, "Reshape")[0].cost.memory_bytes == 0


def test_round_trip_through_dict() -> None:
    graph = parse_onnx(attention_block().SerializeToString())
    again = NetworkGraph.from_dict(graph.to_dict())
    assert again.totals() == graph.totals()
    np.testing.assert_array_equal(tokenize_networks([again]).tokens, tokenize_networks([graph]).tokens)


def test_tokens_shapes_and_padding() -> None:
    small = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=32))
    big = parse_onnx(attention_block().SerializeToString())
    batch = tokenize_networks([small, big])
    assert batch.tokens.shape == (2, big.n, NETWORK_TOKEN_DIM)
    assert batch.features.shape == (2, GRAPH_FEATURE_DIM)
    assert batch.mask.sum(axis=1).tolist() == [small.n, big.n]
    assert not batch.tokens[0, small.n :].any()
    # a bigger input resolution raises the FLOPs feature
    bigger = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=64))
    assert tokenize_networks([bigger]).features[0, 0] > batch.features[0, 0]


def test_the_latency_readout_finds_each_nodes_flops_and_bytes_in_its_token() -> None:
    """The whole-network model reads ln FLOPs and ln bytes from fixed token columns: they must hold those numbers."""
    graph = parse_onnx(attention_block().SerializeToString())
    tokens = tokenize_networks([graph]).tokens[0]
    for column, key in ((log2_column("flops"), "flops"), (log2_column("memory_bytes"), "memory_bytes")):
        expected = np.log2(1.0 + np.array([getattr(node.cost, key) for node in graph.nodes]))
        np.testing.assert_allclose(tokens[: graph.n, column] * 16.0, expected, rtol=1e-5)
    assert any(node.cost.flops > 0 for node in graph.nodes)


def test_unknown_ops_get_the_shared_code_and_keep_their_shape() -> None:
    node = helper.make_node("Celu", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = parse_onnx(model_from([node], [x], [y], []).SerializeToString())
    assert graph.nodes[0].op_type == "Celu" and graph.nodes[0].output_shapes == ((1, 8),)
    tokens = tokenize_networks([graph]).tokens[0, 0]
    assert tokens[0] == 1.0  # one-hot "other"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01garbage" * 10, conv_net().SerializeToString()[:100]],
    ids=["empty", "random-bytes", "truncated"],
)
def test_invalid_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(ArchitectureError) as err:
        parse_onnx(data)
    assert err.value.code == "invalid_onnx"


def test_external_data_is_never_read(tmp_path) -> None:
    model = conv_net()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "weights.bin"  # benign relative location (unsafe ones: test_hostile_corpus.py)
    graph = parse_onnx(model.SerializeToString(), ParseOptions(resolution=32))
    assert graph.nodes[0].cost.macs == 16 * 16 * 16 * 27  # shape from the declared dims, data never loaded
    entry.value = "../../etc/passwd"
    with pytest.raises(ArchitectureError) as err:
        parse_onnx(model.SerializeToString(), ParseOptions(resolution=32))
    assert err.value.code == "unsafe_external_data"


def test_cycle_is_rejected() -> None:
    nodes = [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
    with pytest.raises(ArchitectureError) as err:
        parse_onnx(model_from(nodes, [x], [b], []).SerializeToString())
    assert err.value.code == "invalid_onnx"


def test_limits() -> None:
    with pytest.raises(ArchitectureError) as err:
        parse_onnx(conv_net().SerializeToString(), ParseOptions(max_nodes=3))
    assert err.value.code == "too_large"
    huge = conv_net(batch=1, resolution=1_000_000)
    with pytest.raises(ArchitectureError) as err:
        parse_onnx(huge.SerializeToString())
    assert err.value.code == "too_large"


def test_hand_built_models_are_valid_onnx() -> None:
    for model in (conv_net(1, 32), attention_block()):
        onnx.checker.check_model(model)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in session.get_inputs()}
        session.run(None, feed)


def test_thousands_of_nodes_parse_and_tokenize() -> None:
    """A 4,000-op graph (residual chain of Relu/Add) stays within the documented node limit (4,096) and parses."""
    nodes, previous = [], "x"
    for i in range(2000):
        nodes.append(helper.make_node("Relu", [previous], [f"r{i}"]))
        nodes.append(helper.make_node("Add", [f"r{i}", previous], [f"a{i}"]))
        previous = f"a{i}"
    nodes[-1].output[0] = "y"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    graph = parse_onnx(model_from(nodes, [x], [y], []).SerializeToString())
    assert graph.n == 4000 and graph.unknown_shapes == 0
    assert graph.nodes[-1].inputs == (3997, 3998)
    batch = tokenize_networks([graph])
    assert batch.tokens.shape == (1, 4000, NETWORK_TOKEN_DIM) and np.isfinite(batch.tokens).all()


def _grouped_conv(channels: int, groups: int) -> NetworkGraph:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [channels, channels // groups, 3, 3], np.zeros(channels * channels // groups * 9)
    )
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=groups)
    return parse_onnx(model_from([conv], [x], [y], [weight]).SerializeToString())


def test_alignment_flags_say_which_channel_counts_divide_by_the_simd_widths() -> None:
    """48 channels in 2 groups of 24: the counts divide by 4, 8 and 16 (+1); the 24 per group by 4 and 8, not 16 (-1)."""
    graph = _grouped_conv(48, 2)
    flags = _flags(graph.nodes[0])
    assert [flags[f"in_channels%{d}"] for d in (4, 8, 16)] == [1, 1, 1]
    assert [flags[f"out_channels%{d}"] for d in (4, 8, 16)] == [1, 1, 1]
    assert [flags[f"in_channels_per_group%{d}"] for d in (4, 8, 16)] == [1, 1, -1]
    assert [flags[f"out_channels_per_group%{d}"] for d in (4, 8, 16)] == [1, 1, -1]
    assert [flags[f"out_last_dim%{d}"] for d in (4, 8, 16)] == [1, 1, -1]  # width 8
    # the flags sit in each token, after the number codes
    start = log2_column("flops") + N_NUMBERS * SMOOTH_DIM
    np.testing.assert_array_equal(
        tokenize_networks([graph]).tokens[0, 0, start : start + ALIGNMENT_DIM], node_alignment(graph.nodes[0])
    )


def _flags(node: NetNode) -> dict[str, float]:
    names = [f"{name}%{d}" for name in ALIGNED_NAMES for d in ALIGNMENT_DIVISORS]
    return dict(zip(names, node_alignment(node).tolist(), strict=True))


def test_channel_flags_apply_to_convolutions_only() -> None:
    """Dimension 1 of a (batch, tokens, width) tensor is the token count, not channels: a MatMul gets 0 (not
    applicable) for every channel flag, and only its last dimension (the width, 192) is flagged."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 197, 192])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [192, 192], np.zeros(192 * 192))
    graph = parse_onnx(model_from([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [weight]).SerializeToString())
    flags = _flags(graph.nodes[0])
    assert all(v == 0.0 for k, v in flags.items() if not k.startswith("out_last_dim"))
    assert [flags[f"out_last_dim%{d}"] for d in (4, 8, 16)] == [1, 1, 1]


def test_graph_features_give_the_share_of_conv_work_in_unaligned_convs() -> None:
    names = list(GRAPH_FEATURE_NAMES)
    features = tokenize_networks([_grouped_conv(48, 2), _grouped_conv(64, 2), _grouped_conv(32, 32)]).features
    unaligned_8, unaligned_16 = names.index("share_unaligned_conv_8"), names.index("share_unaligned_conv_16")
    assert features[0, unaligned_8] == 0.0 and features[0, unaligned_16] == 1.0  # 24 per group
    assert features[1, unaligned_8] == 0.0 and features[1, unaligned_16] == 0.0  # 32 per group
    assert features[2, unaligned_16] == 0.0  # depthwise convs have their own kernel: never counted


@pytest.mark.parametrize(("channels", "group_width"), [(192, 24), (100, 100)])
def test_alignment_micro_benchmark_models_cost_what_the_report_divides_by(channels: int, group_width: int) -> None:
    from benchmarks.onnx_latency_alignment import conv_stack, stack_macs

    data = conv_stack(channels, group_width, blocks=2, size=8)
    graph = parse_onnx(data)
    assert graph.totals()["macs"] == stack_macs(channels, group_width, blocks=2, size=8)
    assert all(unaligned_conv(n, 16) == (group_width % 16 != 0) for n in by_op(graph, "Conv") if n.attrs.get("group", 1) > 1)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.ones((1, channels, 8, 8), np.float32)})
    assert out.shape == (1, channels, 8, 8)


@pytest.mark.parametrize(
    ("op", "gates", "direction", "dirs"),
    [("LSTM", 4, "forward", 1), ("GRU", 3, "bidirectional", 2), ("RNN", 1, "forward", 1)],
)
def test_recurrent_ops_cost_one_product_with_w_and_r_per_step(op: str, gates: int, direction: str, dirs: int) -> None:
    """x (seq 5, batch 2, input 3), hidden 4: MACs = 5 * 2 * dirs * gates * 4 * (3 + 4); FLOPs add 4 per gate unit."""
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((dirs, gates * 4, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((dirs, gates * 4, 4)).astype(np.float32), "R"),
    ]
    node = helper.make_node(op, ["x", "W", "R"], ["y"], hidden_size=4, direction=direction)
    model = model_from(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        weights,
    )
    (recurrent,) = [n for n in parse_onnx(model.SerializeToString()).nodes if n.op_type == op]
    macs = 5 * 2 * dirs * gates * 4 * (3 + 4)
    assert recurrent.cost.macs == macs
    assert recurrent.cost.flops == 2 * macs + 4 * 5 * 2 * dirs * gates * 4
    assert recurrent.cost.params == dirs * gates * 4 * 7


def test_domain_warnings_name_each_way_out_of_the_training_range() -> None:
    from model.network_domain import domain_warnings

    domain = {"op_types": ["Conv"], "macs": [1e6, 1e9], "nodes": [10, 500]}
    assert domain_warnings([], 5e8, 100, domain) == []
    small = domain_warnings([], 1e5, 5, domain)
    assert small == ["1e+05 MACs, fewer than any training network (1e+06)", "5 nodes, fewer than any training network (10)"]
    assert domain_warnings(["LSTM", "GRU"], 5e8, 100, domain)[0].endswith("GRU, LSTM; their cost is extrapolated")
    assert domain_warnings(["LSTM"], 1e12, 10_000, {}) == ["op types never seen in this predictor's training networks: "
                                                           "LSTM; their cost is extrapolated"]


def _residual_norm(pre: bool, shape: tuple[int, ...] = (1, 8, 16)) -> onnx.ModelProto:
    """x -> MatMul W -> h; s = x + h; post-LN: y = LN(s). Pre-LN: n = LN(s), y = s + n.W (s feeds two ops)."""
    dim = shape[-1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    rng = np.random.default_rng(0)
    inits = [
        onnx.numpy_helper.from_array(rng.standard_normal((dim, dim)).astype(np.float32), name)
        for name in ("w1", "w2")
    ] + [
        onnx.numpy_helper.from_array(np.ones(dim, np.float32), "g"),
        onnx.numpy_helper.from_array(np.zeros(dim, np.float32), "b"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["x", "h"], ["s"])]
    if pre:
        nodes += [
            helper.make_node("LayerNormalization", ["s", "g", "b"], ["n"], axis=-1),
            helper.make_node("MatMul", ["n", "w2"], ["m"]),
            helper.make_node("Add", ["s", "m"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1))
    return model_from(nodes, [x], [y], inits)


def _fused_by_onnxruntime(model: onnx.ModelProto, tmp_path) -> int:  # noqa: ANN001
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sum(n.op_type == "SkipLayerNormalization" for n in onnx.load(options.optimized_model_filepath).graph.node)


@pytest.mark.parametrize(("pre", "shape"), [(False, (1, 8, 16)), (True, (1, 8, 16)), (False, (1, 4, 4, 16))])
def test_the_fusion_flag_marks_what_onnxruntime_fuses_into_a_skip_layer_norm(pre: bool, shape: tuple, tmp_path) -> None:  # noqa: ANN001
    """Post-LN: the residual Add and its LayerNormalization become one SkipLayerNormalization kernel (flag 1 on
    both); pre-LN (the Add also feeds the next residual) and 4-D tensors stay apart (flag 0), in the real optimiser."""
    model = _residual_norm(pre, shape)
    graph = parse_onnx(model.SerializeToString())
    flags = tokenize_networks([graph]).tokens[0, :, TOKEN_WIDTHS["4"] - FUSION_DIM]
    fused = _fused_by_onnxruntime(model, tmp_path)
    assert fused == (0 if pre or len(shape) != 3 else 1)
    marked = {graph.nodes[i].op_type for i in np.flatnonzero(flags)}
    assert marked == ({"Add", "LayerNormalization"} if fused else set())


def test_older_tokens_are_prefixes_of_the_current_token() -> None:
    """Predictors trained on tokenizers 3 to 9 keep working: the service cuts the newer columns off."""
    graph = parse_onnx(_residual_norm(False).SerializeToString())
    tokens = tokenize_networks([graph]).tokens
    assert TOKEN_WIDTHS["10"] == NETWORK_TOKEN_DIM == TOKEN_WIDTHS["9"] + NETWORK_WEIGHTS_DIM
    assert TOKEN_WIDTHS["9"] == TOKEN_WIDTHS["7"] + REPEAT_DIM
    assert TOKEN_WIDTHS["7"] == TOKEN_WIDTHS["6"] + LAYOUT_DIM == TOKEN_WIDTHS["5"] + LAYOUT_DIM
    assert TOKEN_WIDTHS["5"] == TOKEN_WIDTHS["4"] + GEMM_DIM == TOKEN_WIDTHS["3"] + FUSION_DIM + GEMM_DIM
    for version in ("3", "4", "5", "6", "7"):
        np.testing.assert_array_equal(tokens_for_version(tokens, version), tokens[..., : TOKEN_WIDTHS[version]])
    assert tokens_for_version(tokens, "10").shape == tokens.shape
    np.testing.assert_array_equal(tokens_for_version(tokens, "9"), tokens[..., :NETWORK_WEIGHTS_COLUMN])
    assert not tokens[..., REPEAT_COLUMN].any()  # no node of this network repeats its work
    # every node carries its network's parameter count: what version 9 does not see
    params = graph.totals()["params"]
    assert params > 0 and network_weights(graph) == params  # no Gather here
    assert 2.0 ** (16.0 * tokens[0, :, NETWORK_WEIGHTS_COLUMN]) - 1 == pytest.approx(params, rel=1e-5)
    assert tokens[0, :, TOKEN_WIDTHS["3"] : TOKEN_WIDTHS["4"]].any()  # the fusion flags: what version 3 does not see
    assert tokens[0, :, TOKEN_WIDTHS["4"] : TOKEN_WIDTHS["5"]].any()  # the MatMul's GEMM view: what version 4 does not see
    with pytest.raises(ValueError, match="not served"):
        tokens_for_version(tokens, "2")


def test_network_weights_leave_an_embedding_table_out() -> None:
    """An embedding lookup reads a few rows, a product its whole weight: only the product's weight counts."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        onnx.numpy_helper.from_array(np.zeros((1000, 16), np.float32), "table"),
        onnx.numpy_helper.from_array(np.zeros((16, 32), np.float32), "w"),
    ]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"]), helper.make_node("MatMul", ["e", "w"], ["y"])]
    graph = parse_onnx(model_from(nodes, [ids], [y], inits).SerializeToString())
    assert graph.totals()["params"] == 1000 * 16 + 16 * 32
    assert network_weights(graph) == 16 * 32
    tokens = tokenize_networks([graph]).tokens[0]
    assert 2.0 ** (16.0 * tokens[:, NETWORK_WEIGHTS_COLUMN]) - 1 == pytest.approx([16 * 32] * 2, rel=1e-5)


def _gemm_views(nodes: list, inputs: list, inits: list) -> dict[str, tuple[float, ...]]:
    """Each node's GEMM view; every product it names does exactly the MACs the cost model counts for the node."""
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = parse_onnx(model_from(nodes, inputs, [y], inits).SerializeToString())
    views = {node.name: gemm_view(node) for node in graph.nodes}
    for node in graph.nodes:
        if any(views[node.name]):
            assert np.prod(views[node.name]) == node.cost.macs, node.name
    return views


def test_the_gemm_view_is_the_product_each_op_computes() -> None:
    """Hand-computed (batch, M, N, K): a channels-last MatMul, a 1x1 Conv and a Gemm doing one product read alike."""
    f = TensorProto.FLOAT
    w = onnx.numpy_helper.from_array
    views = _gemm_views(
        [
            helper.make_node("MatMul", ["nhwc", "w_fc"], ["fc"], name="channels_last_matmul"),
            helper.make_node("Conv", ["nchw", "w_1x1"], ["pw"], name="pointwise_conv"),
            helper.make_node("Gemm", ["rows", "w_gemm"], ["g"], name="gemm", transB=1),
            helper.make_node("Conv", ["nchw", "w_grouped"], ["gc"], name="grouped_conv", kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1], strides=[2, 2], group=4),  # fmt: skip
            helper.make_node("Conv", ["nchw", "w_dw"], ["dw"], name="depthwise_conv", kernel_shape=[7, 7],
                             pads=[3, 3, 3, 3], group=32),  # fmt: skip
            helper.make_node("MatMul", ["q", "k"], ["scores"], name="attention_matmul"),
            helper.make_node("MatMul", ["vec", "w_fc"], ["v1"], name="vector_matmul"),
            helper.make_node("Relu", ["nchw"], ["r"], name="relu"),
        ],
        [
            helper.make_tensor_value_info("nhwc", f, [1, 7, 7, 32]),
            helper.make_tensor_value_info("nchw", f, [1, 32, 7, 7]),
            helper.make_tensor_value_info("rows", f, [49, 32]),
            helper.make_tensor_value_info("q", f, [2, 4, 10, 16]),
            helper.make_tensor_value_info("k", f, [2, 4, 16, 10]),
            helper.make_tensor_value_info("vec", f, [32]),
        ],
        [
            w(np.zeros((32, 128), np.float32), "w_fc"),
            w(np.zeros((128, 32, 1, 1), np.float32), "w_1x1"),
            w(np.zeros((128, 32), np.float32), "w_gemm"),
            w(np.zeros((64, 8, 3, 3), np.float32), "w_grouped"),
            w(np.zeros((32, 1, 7, 7), np.float32), "w_dw"),
        ],
    )
    assert views["channels_last_matmul"] == views["pointwise_conv"] == views["gemm"] == (1.0, 49.0, 128.0, 32.0)
    assert views["grouped_conv"] == (4.0, 16.0, 16.0, 72.0)  # 4 groups of (4x4 pixels) x (72) by (72 x 16)
    assert views["depthwise_conv"] == (32.0, 49.0, 1.0, 49.0)
    assert views["attention_matmul"] == (8.0, 10.0, 10.0, 16.0)  # batch x heads independent products
    assert views["vector_matmul"] == (1.0, 1.0, 128.0, 32.0)
    assert views["relu"] == (0.0, 0.0, 0.0, 0.0)


def test_the_gemm_view_is_zero_where_a_shape_is_unknown() -> None:
    f = TensorProto.FLOAT
    y = helper.make_tensor_value_info("y", f, None)
    x = helper.make_tensor_value_info("x", f, [4, 32])
    weight = onnx.numpy_helper.from_array(np.zeros((32, 8), np.float32), "w")
    model = model_from([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [x], [y], [weight])
    node = parse_onnx(model.SerializeToString()).nodes[0]
    assert gemm_view(node) == (1.0, 4.0, 8.0, 32.0)
    assert gemm_view(dataclasses.replace(node, input_shapes=((-1, 32), (32, 8)))) == (0.0, 0.0, 0.0, 0.0)
