"""Shapes that depend on computed values: torch's ``unflatten`` (``nn.MultiheadAttention``'s packed q / k / v) splits a
dimension whose index comes out of an integer ``Mod``; the products after it must still get shapes and MACs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import model_from

from model.onnx_graph import parse_onnx

TOKENS, WIDTH = 4, 16


def unflatten_attention(batch: int | str) -> object:
    """x (batch, 4, 3*16) -> Reshape to (batch, 4, 3, 16) with the split index Mod(2, 3) -> q @ k^T (batch, 4, 4)."""
    ints = {name: numpy_helper.from_array(np.array(v, np.int64), name) for name, v in
            {"two": [2], "three": [3], "zero": [0], "tail": [3, WIDTH], "q_at": 0, "k_at": 1}.items()}  # fmt: skip
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mod", ["two", "three"], ["split"]),
        helper.make_node("Slice", ["s", "zero", "split"], ["head"]),
        helper.make_node("Concat", ["head", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["packed"]),
        helper.make_node("Gather", ["packed", "q_at"], ["q"], axis=2),
        helper.make_node("Gather", ["packed", "k_at"], ["k"], axis=2),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
    ]
    value = helper.make_tensor_value_info
    return model_from(
        nodes, [value("x", TensorProto.FLOAT, [batch, TOKENS, 3 * WIDTH])],
        [value("scores", TensorProto.FLOAT, [batch, TOKENS, TOKENS])], list(ints.values()),
    )  # fmt: skip


def test_the_products_after_a_mod_computed_split_have_shapes_and_macs() -> None:
    for batch in (1, "batch"):  # a fixed batch, and a dynamic one (set to 1 when parsed)
        model = unflatten_attention(batch)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        assert session.run(None, {"x": np.ones((1, TOKENS, 3 * WIDTH), np.float32)})[0].shape == (1, TOKENS, TOKENS)
        graph = parse_onnx(model)
        matmul = next(n for n in graph.nodes if n.op_type == "MatMul")
        assert matmul.output_shapes == ((1, TOKENS, TOKENS),), batch
        assert graph.totals()["macs"] == TOKENS * TOKENS * WIDTH
        assert all(-1 not in shape for n in graph.nodes for shape in n.output_shapes)
