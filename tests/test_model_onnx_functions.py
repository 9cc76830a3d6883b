"""Local functions (``ModelProto.functions``): inlined before parsing, as onnxruntime runs them, so a network written with
a repeated block as a function is costed and predicted like the same network written out; hostile ones are refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper

from model.errors import ArchitectureError
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.settings import Settings

WIDTH, BLOCKS, DOMAIN = 32, 4, "local"


def _block_nodes(prefix: str, x: str, w1: str, w2: str, y: str) -> list[onnx.NodeProto]:
    """y = Relu(x + Conv(Relu(Conv(x, w1)), w2)): a residual block."""
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    return [
        helper.make_node("Conv", [x, w1], [f"{prefix}c1"], **conv),
        helper.make_node("Relu", [f"{prefix}c1"], [f"{prefix}r1"]),
        helper.make_node("Conv", [f"{prefix}r1", w2], [f"{prefix}c2"], **conv),
        helper.make_node("Add", [x, f"{prefix}c2"], [f"{prefix}s"]),
        helper.make_node("Relu", [f"{prefix}s"], [y]),
    ]


def residual_net(as_functions: bool) -> onnx.ModelProto:
    """Four residual blocks over a (1, 32, 28, 28) input, written out or as calls of one local function ``Block``."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH, 3, 3)).astype(np.float32) * 0.05, f"w{k}")
        for k in range(2 * BLOCKS)
    ]
    nodes, functions, current = [], [], "x"
    for b in range(BLOCKS):
        out = f"y{b}" if b < BLOCKS - 1 else "y"
        if as_functions:
            nodes.append(helper.make_node("Block", [current, f"w{2 * b}", f"w{2 * b + 1}"], [out], domain=DOMAIN))
        else:
            nodes += _block_nodes(f"b{b}_", current, f"w{2 * b}", f"w{2 * b + 1}", out)
        current = out
    if as_functions:
        functions.append(
            helper.make_function(
                DOMAIN, "Block", ["x", "w1", "w2"], ["y"], _block_nodes("", "x", "w1", "w2", "y"),
                [helper.make_opsetid("", 17)],
            )
        )  # fmt: skip
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "g", [value("x", TensorProto.FLOAT, [1, WIDTH, 28, 28])], [value("y", TensorProto.FLOAT, None)], weights
    )
    opsets = [helper.make_opsetid("", 17), *([helper.make_opsetid(DOMAIN, 1)] if as_functions else [])]
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    model.ir_version = 8
    return model


def test_a_function_call_is_costed_like_the_block_written_out() -> None:
    plain, called = residual_net(False), residual_net(True)
    x = np.random.default_rng(1).standard_normal((1, WIDTH, 28, 28)).astype(np.float32)
    outputs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for m in (plain, called)
    ]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)  # onnxruntime runs both alike
    a, b = parse_onnx(plain), parse_onnx(called)
    assert [n.op_type for n in b.nodes] == [n.op_type for n in a.nodes] == ["Conv", "Relu", "Conv", "Add", "Relu"] * BLOCKS
    assert b.totals() == a.totals()
    assert a.totals()["macs"] == BLOCKS * 2 * 28 * 28 * WIDTH * WIDTH * 9


def test_the_service_predicts_both_writings_alike() -> None:
    with TestClient(create_app(Settings(providers="cpu", cache_size=0))) as client:
        plain, called = (client.post("/v1/predict/onnx", content=residual_net(f).SerializeToString()) for f in (False, True))
    assert plain.status_code == called.status_code == 200, called.text
    p, c = plain.json(), called.json()
    assert c["latency_ms"]["value"] == pytest.approx(p["latency_ms"]["value"], rel=1e-6)
    assert c["cost"] == p["cost"]


def _calling(name: str, callee: str, calls: int) -> onnx.FunctionProto:
    nodes = [helper.make_node(callee, ["x" if k == 0 else f"t{k - 1}"], [f"t{k}"], domain=DOMAIN) for k in range(calls)]
    nodes.append(helper.make_node("Identity", [f"t{calls - 1}"], ["y"]))
    return helper.make_function(DOMAIN, name, ["x"], ["y"], nodes, [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)])


def _model_calling(functions: list[onnx.FunctionProto], first: str) -> onnx.ModelProto:
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node(first, ["x"], ["y"], domain=DOMAIN)], "g",
        [value("x", TensorProto.FLOAT, [1, 8])], [value("y", TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)], functions=functions
    )
    model.ir_version = 8
    return model


def test_a_call_cycle_is_refused_not_recursed_into() -> None:
    cycle = _model_calling([_calling("A", "B", 1), _calling("B", "A", 1)], "A")
    with pytest.raises(ArchitectureError) as error:
        parse_onnx(cycle.SerializeToString())
    assert error.value.code == "invalid_onnx" and "levels" in error.value.message


def test_nested_calls_cannot_multiply_a_small_upload_past_the_node_limit() -> None:
    """Ten levels of a function calling the next ten times would be 10^10 nodes: refused before inlining."""
    relu = helper.make_node("Relu", ["x"], ["y"])
    relu = helper.make_function(DOMAIN, "F0", ["x"], ["y"], [relu], [helper.make_opsetid("", 17)])
    functions = [relu, *(_calling(f"F{k}", f"F{k - 1}", 10) for k in range(1, 11))]
    bomb = _model_calling(functions, "F10")
    assert len(bomb.SerializeToString()) < 10_000
    with pytest.raises(ArchitectureError) as error:
        parse_onnx(bomb.SerializeToString(), ParseOptions(max_nodes=5_000))
    assert error.value.code == "too_large" and "5000" in error.value.message
    with TestClient(create_app(Settings(providers="cpu"))) as client:
        response = client.post("/v1/predict/onnx", content=bomb.SerializeToString())
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large", response.text
