"""ONNX files as pipelines ship them: saved by onnxruntime after its optimizations, converted to float16, quantized
to int8, or with nodes out of order. Each is made with onnxruntime's own tools and parsed for real; the shipped
``cpu-ort-1t-v1`` predictor answers where a prediction is checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient
from onnx import TensorProto, helper
from onnx_fixtures import conv_net

from benchmarks.onnx_realworld import canonical_networks
from benchmarks.onnx_variants import export_as
from model.card import PREDICTOR_DIR
from model.errors import ArchitectureError
from model.onnx_cost import node_cost
from model.onnx_graph import ParseOptions, parse_onnx
from model.onnx_weights import weight_free
from service.app import create_app
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.settings import Settings
from training.netgen.export import build_network, export_onnx_bytes

RESOLUTION = 64


def module_of(name: str) -> torch.nn.Module:
    """The canonical zoo member ``name`` at RESOLUTION."""
    family, spec = next((f, s) for f, n, s in canonical_networks() if n == name)
    return build_network(family, {**spec, "resolution": RESOLUTION})


def canonical(name: str) -> bytes:
    return export_onnx_bytes(module_of(name), RESOLUTION)


def ort_optimized(data: bytes, tmp_path: Path, level: ort.GraphOptimizationLevel) -> bytes:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return (tmp_path / "optimized.onnx").read_bytes()


def op_types(data: bytes) -> set[tuple[str, str]]:
    return {(node.domain, node.op_type) for node in onnx.load_from_string(data).graph.node}


@pytest.fixture(scope="module")
def shipped():
    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    return registry.networks["cpu-ort-1t-v1"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_an_onnxruntime_optimized_cnn_parses_like_its_export(name: str, tmp_path: Path, shipped) -> None:
    export = canonical(name)
    optimized = ort_optimized(export, tmp_path, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    assert ("com.microsoft", "FusedConv") in op_types(optimized)  # the file really holds fused convolutions
    a, b = parse_onnx(export), parse_onnx(optimized)
    assert b.totals() == a.totals()  # MACs, FLOPs, params, memory and node count: FusedConv became Conv (+Add) + activation
    assert sorted(n.op_type for n in b.nodes) == sorted(n.op_type for n in a.nodes)
    assert not {n.op_type for n in b.nodes} - set(shipped.card.domain["op_types"])
    fp32 = predict_onnx_bytes(shipped, export, ParseOptions())
    opt = predict_onnx_bytes(shipped, optimized, ParseOptions())
    assert opt["warnings"] == [] and opt["unseen_op_types"] == []
    # onnxruntime runs both at the same speed (benchmarks/results/onnx_variants.md); read fused, it was 20-50x too fast
    assert opt["latency_ms"]["value"] == pytest.approx(fp32["latency_ms"]["value"], rel=0.02)


def test_an_onnxruntime_optimized_vit_keeps_its_attention_macs(tmp_path: Path, shipped) -> None:
    export = canonical("vit_tiny_16")
    optimized = ort_optimized(export, tmp_path, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    fused = {op for domain, op in op_types(optimized) if domain == "com.microsoft"}
    assert {"FusedMatMul", "Gelu", "SkipLayerNormalization"} <= fused
    a, b = parse_onnx(export), parse_onnx(optimized)
    assert b.totals()["macs"] == a.totals()["macs"]  # Q.K^T and A.V included: FusedMatMul has shapes now
    assert b.unknown_shapes == 0
    assert not {n.op_type for n in b.nodes} - set(shipped.card.domain["op_types"])
    fp32 = predict_onnx_bytes(shipped, export, ParseOptions())["latency_ms"]["value"]
    assert predict_onnx_bytes(shipped, optimized, ParseOptions())["latency_ms"]["value"] == pytest.approx(fp32, rel=0.1)


def test_layout_optimized_models_are_named_by_domain_and_warned_about(tmp_path: Path, shipped) -> None:
    optimized = ort_optimized(canonical("resnet18"), tmp_path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if not any(domain == "com.microsoft.nchwc" for domain, _ in op_types(optimized)):
        pytest.skip("onnxruntime wrote no NCHWc ops on this CPU")
    body = predict_onnx_bytes(shipped, optimized, ParseOptions())
    assert "nchwc.Conv" in body["unseen_op_types"]  # not read as a plain Conv: its tensors are blocked
    assert any("com.microsoft.nchwc" in w and "ORT_ENABLE_EXTENDED" in w for w in body["warnings"])


def test_a_float16_conversion_out_of_topological_order_is_accepted(shipped) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    export = canonical("resnet18")
    half = convert_float_to_float16(onnx.load_from_string(export), keep_io_types=True)
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(half)  # the converter appends its input Cast at the end
    data = half.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])  # onnxruntime sorts and runs it
    feed = {session.get_inputs()[0].name: np.ones((1, 3, RESOLUTION, RESOLUTION), np.float32)}
    assert session.run(None, feed)[0].shape == (1, 1000)
    a, b = parse_onnx(export), parse_onnx(data)
    assert a.weight_types == ("float32",) and b.weight_types == ("float16",)
    assert b.totals()["macs"] == a.totals()["macs"] and b.totals()["params"] == a.totals()["params"]
    conv_a = next(n for n in a.nodes if n.op_type == "Conv")
    conv_b = next(n for n in b.nodes if n.op_type == "Conv")
    assert conv_b.cost.memory_bytes == conv_a.cost.memory_bytes / 2  # 2 bytes an element
    body = predict_onnx_bytes(shipped, data, ParseOptions())
    assert body["weight_types"] == ["float16"]
    assert any(w.startswith("weights in float16: this predictor learnt float32 networks") for w in body["warnings"])
    assert not any("float16" in w for w in predict_onnx_bytes(shipped, export, ParseOptions())["warnings"])


def test_nodes_in_any_order_parse_the_same_and_a_cycle_is_refused() -> None:
    model = conv_net(1, 32)
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(model)
    nodes = list(shuffled.graph.node)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(reversed(nodes))
    assert parse_onnx(shuffled.SerializeToString()).to_dict() == parse_onnx(model.SerializeToString()).to_dict()

    cyclic = onnx.ModelProto()
    cyclic.CopyFrom(model)
    cyclic.graph.node[0].input[0] = "y"  # the first Conv reads the Gemm's output
    with pytest.raises(ArchitectureError, match="cycle"):
        parse_onnx(cyclic.SerializeToString())


class RandomInputs:
    def __init__(self, shape: tuple[int, ...], count: int = 4) -> None:
        self.rng, self.shape, self.left = np.random.default_rng(0), shape, count

    def get_next(self) -> dict[str, np.ndarray] | None:
        self.left -= 1
        return {"x": self.rng.random(self.shape, dtype=np.float32)} if self.left >= 0 else None


@pytest.mark.parametrize("kind", ["qdq", "qoperator", "dynamic"])
def test_quantized_models_keep_their_macs_and_parameters_and_are_warned_about(kind: str, tmp_path: Path, shipped) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    source = tmp_path / "fp32.onnx"
    onnx.save(conv_net(1, 32), source)
    target = tmp_path / f"{kind}.onnx"
    if kind == "dynamic":
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    else:
        reader = type("Reader", (RandomInputs, CalibrationDataReader), {})((1, 3, 32, 32))
        quant_format = QuantFormat.QDQ if kind == "qdq" else QuantFormat.QOperator
        quantize_static(source, target, reader, quant_format=quant_format)
    data = target.read_bytes()
    expected_op = {"qdq": "DequantizeLinear", "qoperator": "QLinearConv", "dynamic": "ConvInteger"}[kind]
    assert any(op == expected_op for _, op in op_types(data))
    fp32, quantized = parse_onnx(source.read_bytes()), parse_onnx(data)
    assert quantized.totals()["macs"] == fp32.totals()["macs"]  # 110592 + 36864 + 160 (tests/onnx_fixtures.py)
    assert "int8" in quantized.weight_types or "uint8" in quantized.weight_types
    weights = 16 * 27 + 16 * 9 + 160  # conv1, depthwise and Gemm weights
    assert quantized.totals()["params"] >= weights  # the int8 weights count (float biases too where they stay float)
    body = predict_onnx_bytes(shipped, data, ParseOptions())
    assert any("int8" in w and "this predictor learnt float32 networks" in w for w in body["warnings"])
    light = weight_free(data, min_bytes=64)
    assert len(light) < len(data)  # int8 weights are left out of the weight-free copy too
    same = predict_onnx_bytes(shipped, light, ParseOptions())
    assert same["latency_ms"] == body["latency_ms"] and same["cost"] == body["cost"]


def test_quantized_and_fused_products_cost_what_their_float_op_costs() -> None:
    conv = node_cost("Conv", ((1, 8, 16, 16), (16, 8, 3, 3)), ((1, 16, 16, 16),), {})
    quantized_shapes = ((1, 8, 16, 16), (), (), (16, 8, 3, 3), (), (), (), ())
    assert node_cost("QLinearConv", quantized_shapes, ((1, 16, 16, 16),), {}).macs == conv.macs == 16 * 256 * 72
    assert node_cost("ConvInteger", ((1, 8, 16, 16), (16, 8, 3, 3)), ((1, 16, 16, 16),), {}).macs == conv.macs
    matmul = node_cost("MatMul", ((2, 5, 7), (7, 3)), ((2, 5, 3),), {}).macs
    assert node_cost("MatMulInteger", ((2, 5, 7), (7, 3)), ((2, 5, 3),), {}).macs == matmul == 2 * 5 * 3 * 7
    assert node_cost("QLinearMatMul", ((2, 5, 7), (), (), (7, 3)), ((2, 5, 3),), {}).macs == matmul
    # FusedMatMul with transA: A is (K, M) = (7, 5)
    assert node_cost("FusedMatMul", ((2, 7, 5), (7, 3)), ((2, 5, 3),), {"transA": 1}).macs == matmul
    assert node_cost("QGemm", ((5, 7), (), (), (3, 7)), ((5, 3),), {"transB": 1}).macs == 5 * 7 * 3
    # memory at each tensor's own width: int8 in, int8 weights, int32 out
    int8 = node_cost("ConvInteger", ((1, 8, 16, 16), (16, 8, 3, 3)), ((1, 16, 16, 16),), {}, (), (1, 1, 4))
    assert int8.memory_bytes == 8 * 256 + 16 * 72 + 4 * 16 * 256


def test_the_service_answers_float16_uploads_with_their_weight_types_fresh_and_cached() -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = helper.make_model(conv_net(1, 32).graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = convert_float_to_float16(model, keep_io_types=True).SerializeToString()
    with TestClient(create_app(Settings())) as client:
        first = client.post("/v1/predict/onnx?predictor=cpu-ort-1t-v1", content=data)
        second = client.post("/v1/predict/onnx?predictor=cpu-ort-1t-v1", content=data)
    assert first.status_code == 200, first.text
    assert first.json()["weight_types"] == ["float16"] and not first.json()["cached"]
    assert second.json()["cached"] and second.json()["weight_types"] == ["float16"]
    assert second.json()["warnings"] == first.json()["warnings"]
    assert any(w.startswith("weights in float16") for w in first.json()["warnings"])
    assert TensorProto.FLOAT16 in {t.data_type for t in onnx.load_from_string(data).graph.initializer}


def _conv_net_unfolded(shared_conv_output: bool = False) -> onnx.ModelProto:
    """conv_net with its first Conv written without bias and followed by a BatchNormalization (as unfolded exports
    and older zoo files have it), and a Dropout before the Gemm; its BN statistics make the same function as b1."""
    model = conv_net(1, 32)
    graph = model.graph
    conv1 = graph.node[0]
    del conv1.input[2]
    conv1.output[0] = "c1_raw"
    zeros, ones = np.zeros(16, np.float32), np.ones(16, np.float32)
    graph.initializer.extend(
        [onnx.numpy_helper.from_array(a, n) for a, n in ((ones, "bn_s"), (zeros, "bn_m"), (ones, "bn_v"))]
    )
    bn = helper.make_node("BatchNormalization", ["c1_raw", "bn_s", "b1", "bn_m", "bn_v"], ["c1"], epsilon=0.0)
    dropout = helper.make_node("Dropout", ["f"], ["f_dropped"], name="dropout")
    nodes = list(graph.node)
    nodes.insert(1, bn)
    gemm = nodes[-1]
    gemm.input[0] = "f_dropped"
    nodes.insert(len(nodes) - 1, dropout)
    if shared_conv_output:  # the raw Conv output is also a graph output: the BN cannot fold
        graph.output.append(helper.make_tensor_value_info("c1_raw", TensorProto.FLOAT, [1, 16, 16, 16]))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def test_batch_norm_after_a_conv_folds_and_dropout_drops_as_onnxruntime_does_at_load() -> None:
    reference = conv_net(1, 32)
    unfolded = _conv_net_unfolded()
    x = {"x": np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)}
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (reference, unfolded)]
    run = [session.run(None, x)[0] for session in sessions]
    np.testing.assert_allclose(run[0], run[1], rtol=1e-5, atol=1e-5)  # one function, two spellings
    assert parse_onnx(unfolded.SerializeToString()).to_dict() == parse_onnx(reference.SerializeToString()).to_dict()
    kept = parse_onnx(_conv_net_unfolded(shared_conv_output=True).SerializeToString())
    assert [n.op_type for n in kept.nodes][:3] == ["Conv", "BatchNormalization", "Relu"]


def test_torch_exports_without_constant_folding_and_from_dynamo_read_like_the_default_export(shipped) -> None:
    module = module_of("mobilenet_v2")
    reference = parse_onnx(export_onnx_bytes(module, RESOLUTION))
    for exporter in ("torch_unfolded", "torch_dynamo"):
        data = export_as(module, RESOLUTION, exporter)
        graph = parse_onnx(data)
        assert graph.totals()["macs"] == reference.totals()["macs"]
        if exporter == "torch_unfolded":  # (dynamo leaves out the all-zero conv biases of this untrained network)
            assert graph.totals()["params"] == reference.totals()["params"]
            assert ("", "BatchNormalization") in op_types(data)  # 52 of them in the file; none in the IR
            assert graph.to_dict()["nodes"] == reference.to_dict()["nodes"]
        assert predict_onnx_bytes(shipped, data, ParseOptions())["warnings"] == []


def test_opset_20_gelu_reads_as_the_five_node_export() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32])
    one = helper.make_model(
        helper.make_graph([helper.make_node("Gelu", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 20)],
    )
    c = [onnx.numpy_helper.from_array(np.asarray(v, np.float32), n) for v, n in ((2**0.5, "c0"), (1.0, "c1"), (0.5, "c2"))]
    five = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Constant", [], ["k0"], value=c[0]),
                helper.make_node("Div", ["x", "k0"], ["d"]),
                helper.make_node("Erf", ["d"], ["e"]),
                helper.make_node("Constant", [], ["k1"], value=c[1]),
                helper.make_node("Add", ["e", "k1"], ["a"]),
                helper.make_node("Mul", ["x", "a"], ["m"]),
                helper.make_node("Constant", [], ["k2"], value=c[2]),
                helper.make_node("Mul", ["m", "k2"], ["y"]),
            ],
            "g",
            [x],
            [y],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    a, b = parse_onnx(one.SerializeToString()), parse_onnx(five.SerializeToString())
    assert [n.op_type for n in a.nodes] == ["Div", "Erf", "Add", "Mul", "Mul"]
    assert [n.inputs for n in a.nodes] == [n.inputs for n in b.nodes]
    assert [n.cost for n in a.nodes] == [n.cost for n in b.nodes]


def test_onnxruntime_attention_ops_count_their_projections_and_both_products() -> None:
    batch, seq, width, heads = 2, 16, 64, 4
    fused = node_cost("Attention", ((batch, seq, width), (width, 3 * width), (3 * width,)), ((batch, seq, width),),
                      {"num_heads": heads})
    # the export: x @ W_qkv (B*S*H*3H), then per head Q.K^T and A.V (S*S*H/heads each, times heads)
    assert fused.macs == batch * seq * width * 3 * width + 2 * batch * seq * seq * width
    mha = node_cost("MultiHeadAttention", ((batch, seq, width), (batch, 8, width), (batch, 8, 32)), ((batch, seq, 32),), {})
    assert mha.macs == batch * seq * 8 * width + batch * seq * 8 * 32
    assert node_cost("Attention", ((batch, seq, width),), ((batch, seq, width),), {}).macs == 0  # shapes not known


def _decomposed_layer_norm(axis: int = -1, leak: bool = False) -> onnx.ModelProto:
    """x(1,8,16) -> the nine nodes torch writes for nn.LayerNorm below opset 17 (``axis``: the reduced axis; ``leak``:
    the centred values are also a graph output)."""
    affine = (16,) if axis == -1 else (8, 1)  # scale / bias broadcast over the reduced axis
    inits = [
        onnx.numpy_helper.from_array(np.asarray(2.0, np.float32), "two"),
        onnx.numpy_helper.from_array(np.asarray(1e-5, np.float32), "eps"),
        onnx.numpy_helper.from_array(np.ones(affine, np.float32), "gamma"),
        onnx.numpy_helper.from_array(np.zeros(affine, np.float32), "beta"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[axis]),
        helper.make_node("Sub", ["x", "mean"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[axis]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["std"]),
        helper.make_node("Div", ["d", "std"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["s"]),
        helper.make_node("Add", ["s", "beta"], ["y"]),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])
    outputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 16])]
    if leak:
        outputs.append(helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 8, 16]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outputs, inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_decomposed_layer_norm_reads_as_one_layer_normalization_as_onnxruntime_fuses_it() -> None:
    graph = parse_onnx(_decomposed_layer_norm().SerializeToString())
    assert [n.op_type for n in graph.nodes] == ["LayerNormalization", "Relu"]
    norm = graph.nodes[0]
    assert norm.input_shapes == ((1, 8, 16), (16,), (16,)) and norm.attrs["_weights"] == [1, 2]
    assert norm.cost == node_cost("LayerNormalization", norm.input_shapes, ((1, 8, 16),), norm.attrs, [1, 2])
    assert graph.nodes[1].inputs == (0,)
    for model in (_decomposed_layer_norm(leak=True), _decomposed_layer_norm(axis=1)):  # onnxruntime leaves these
        assert "Sqrt" in {n.op_type for n in parse_onnx(model.SerializeToString()).nodes}


def test_an_opset_13_vit_export_reads_like_the_opset_17_one(shipped) -> None:
    module = module_of("vit_tiny_16")
    old, new = export_as(module, RESOLUTION, "torch_opset13"), export_onnx_bytes(module, RESOLUTION)
    assert ("", "Sqrt") in op_types(old) and ("", "LayerNormalization") not in op_types(old)
    a, b = parse_onnx(old), parse_onnx(new)
    assert sorted(n.op_type for n in a.nodes) == sorted(n.op_type for n in b.nodes)
    assert a.totals()["macs"] == b.totals()["macs"]
    first, second = (predict_onnx_bytes(shipped, data, ParseOptions()) for data in (old, new))
    assert first["warnings"] == [] and first["latency_ms"]["value"] == pytest.approx(second["latency_ms"]["value"], rel=0.01)
