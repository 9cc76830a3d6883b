"""Control-flow nodes (If, Loop) and the nodes inside them: counted, not costed, and said so in the warnings.
Hand-built graphs (onnx.helper) that onnxruntime runs; the shipped CPU predictor answers."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import model_from

from model.card import PREDICTOR_DIR
from model.network_domain import GraphFacts
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.settings import Settings

WIDTH = 64


def _value(name: str, dtype: int = TensorProto.FLOAT, shape: list[int] | None = None):
    return helper.make_tensor_value_info(name, dtype, [1, WIDTH] if shape is None else shape)


def if_and_loop_model():
    """y = If(sum(x) > 0, x @ W, Relu(x)), then 10 steps of h = h @ W in a Loop (whose body holds an If of its own)."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((WIDTH, WIDTH)).astype(np.float32), "W")
    then_branch = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"])], "then", [], [_value("t")])
    else_branch = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [], [_value("e")])
    inner_then = helper.make_graph([helper.make_node("Tanh", ["h_in"], ["it"])], "inner_then", [], [_value("it")])
    inner_else = helper.make_graph([helper.make_node("Sigmoid", ["h_in"], ["ie"])], "inner_else", [], [_value("ie")])
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["h_in", "W"], ["m"]),
            helper.make_node("If", ["cond_in"], ["h_out"], then_branch=inner_then, else_branch=inner_else),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [_value("i", TensorProto.INT64, []), _value("cond_in", TensorProto.BOOL, []), _value("h_in")],
        [_value("cond_out", TensorProto.BOOL, []), _value("h_out")],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Loop", ["steps", "true", "y"], ["z"], body=body),
    ]
    constants = [
        weight,
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(np.array(10, np.int64), "steps"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    return model_from(nodes, [_value("x")], [_value("z")], constants)


def test_control_flow_is_counted_with_the_nodes_inside():
    model = if_and_loop_model()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones((1, WIDTH), np.float32)})  # a valid model
    graph = parse_onnx(model)
    assert graph.control_flow == {"If": 1, "Loop": 1}
    # If: MatMul + Relu; Loop: MatMul, If, Identity, and the inner If's Tanh + Sigmoid
    assert graph.inner_nodes == 2 + 5
    assert graph.totals()["macs"] == 0  # the work inside is not costed
    facts = GraphFacts.of(graph)
    assert GraphFacts.from_values(facts.to_values()) == facts
    many = GraphFacts(defaulted_dims=tuple(f"x axis {k} ('d{k}')" for k in range(12)))  # order kept past 10
    assert GraphFacts.from_values(many.to_values()) == many


WARNING = (
    "control flow (1 If, 1 Loop) with 7 nodes inside: what runs inside is known only at run time and is not costed, "
    "so the latency leaves it out"
)


def test_the_answer_says_the_work_inside_is_left_out():
    predictor = load_registry(PREDICTOR_DIR, "cpu", 1).networks["cpu-ort-1t-v1"]
    body = predict_onnx_bytes(predictor, if_and_loop_model().SerializeToString(), ParseOptions())
    assert body["control_flow"] == {"If": 1, "Loop": 1} and body["inner_nodes"] == 7
    assert WARNING in body["warnings"]


def test_the_service_says_so_from_its_cache_too():
    data = if_and_loop_model().SerializeToString()
    with TestClient(create_app(Settings(providers="cpu"))) as client:
        first, again = (client.post("/v1/predict/onnx", content=data).json() for _ in range(2))
    assert again["cached"] is True
    for body in (first, again):
        assert body["control_flow"] == {"If": 1, "Loop": 1} and body["inner_nodes"] == 7
        assert WARNING in body["warnings"]
    assert first["warnings"] == again["warnings"]
