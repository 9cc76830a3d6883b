"""Two-operand Einsums read as the Transposes and MatMul they compute (``model.onnx_einsum``): hand-built graphs
(onnx.helper), their MACs against hand counts, their tokens against the same product written with MatMul, and
equations left as Einsum nodes. onnxruntime runs each graph to check it is valid and the equation means what the
test says."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_fixtures import einsum_model, model_from

from model.network_tokenizer import gemm_view, network_token_matrix
from model.onnx_graph import parse_onnx

B, N, M, H, D = 1, 10, 12, 4, 8


def run(model: onnx.ModelProto, *arrays: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]
    return session.run(None, dict(zip(names, arrays, strict=True)))[0]


def test_attention_logits_read_as_transposes_and_a_batched_matmul():
    model = einsum_model("bnhd,bmhd->bhnm", (B, N, H, D), (B, M, H, D), (B, H, N, M))
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((B, N, H, D), np.float32), rng.standard_normal((B, M, H, D), np.float32)
    assert np.allclose(run(model, q, k), q.transpose(0, 2, 1, 3) @ k.transpose(0, 2, 3, 1), atol=1e-5)

    graph = parse_onnx(model)
    assert [node.op_type for node in graph.nodes] == ["Transpose", "Transpose", "MatMul"]
    assert [node.attrs["perm"] for node in graph.nodes[:2]] == [[0, 2, 1, 3], [0, 2, 3, 1]]
    product = graph.nodes[2]
    assert product.inputs == (0, 1)
    assert product.cost.macs == B * H * N * M * D
    assert graph.totals()["macs"] == B * H * N * M * D
    assert gemm_view(product) == (B * H, N, M, D)


def test_the_same_product_written_with_matmul_gives_the_same_tokens():
    einsum = einsum_model("bnhd,bmhd->bhnm", (B, N, H, D), (B, M, H, D), (B, H, N, M))
    nodes = [
        helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["at", "bt"], ["y"]),
    ]
    matmul = model_from(
        nodes,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, (B, N, H, D)),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, (B, M, H, D)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (B, H, N, M))],
        [],
    )
    a, b = parse_onnx(einsum), parse_onnx(matmul)
    assert a.totals() == b.totals()
    assert np.array_equal(network_token_matrix(a), network_token_matrix(b))


def test_output_in_another_order_is_transposed_back():
    # attention's A.V with the heads moved back behind the tokens: v transposed in, the product transposed out
    model = einsum_model("bhnm,bmhd->bnhd", (B, H, N, M), (B, M, H, D), (B, N, H, D))
    rng = np.random.default_rng(1)
    att, v = rng.standard_normal((B, H, N, M), np.float32), rng.standard_normal((B, M, H, D), np.float32)
    assert np.allclose(run(model, att, v), (att @ v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3), atol=1e-5)

    graph = parse_onnx(model)
    assert [node.op_type for node in graph.nodes] == ["Transpose", "MatMul", "Transpose"]
    assert graph.nodes[1].inputs == (0,)  # the attention operand goes in as it is; v through its Transpose
    assert graph.nodes[1].output_shapes == ((B, H, N, D),)
    assert graph.nodes[2].attrs["perm"] == [0, 2, 1, 3]
    assert graph.nodes[2].output_shapes == ((B, N, H, D),)
    assert graph.totals()["macs"] == B * H * N * D * M


def test_linear_layer_against_a_weight_is_one_matmul_with_parameters():
    model = einsum_model("bnd,de->bne", (B, N, D), (D, 16), (B, N, 16), weight=True)
    graph = parse_onnx(model)
    assert [node.op_type for node in graph.nodes] == ["MatMul"]
    product = graph.nodes[0]
    assert product.cost.macs == B * N * D * 16
    assert product.cost.params == D * 16
    assert gemm_view(product) == (1, B * N, 16, D)


def test_implicit_output_is_numpys():
    model = einsum_model("ij,jk", (N, D), (D, M), (N, M))
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((N, D), np.float32), rng.standard_normal((D, M), np.float32)
    assert np.allclose(run(model, x, y), x @ y, atol=1e-5)
    graph = parse_onnx(model)
    assert [node.op_type for node in graph.nodes] == ["MatMul"]
    assert graph.totals()["macs"] == N * D * M


@pytest.mark.parametrize(
    ("equation", "a", "b", "out"),
    [
        ("...ij,...jk->...ik", (2, N, D), (2, D, M), (2, N, M)),  # ellipsis
        ("ij,jk->i", (N, D), (D, M), (N,)),  # k summed out of one operand alone
        ("ii,ij->ij", (N, N), (N, M), (N, M)),  # a diagonal
        ("bij,bjk->bik", (1, N, D), (3, D, M), (3, N, M)),  # a broadcast batch
    ],
)
def test_other_equations_stay_einsum_nodes(equation, a, b, out):
    model = einsum_model(equation, a, b, out)
    rng = np.random.default_rng(3)
    run(model, rng.standard_normal(a, np.float32), rng.standard_normal(b, np.float32))  # a valid model
    graph = parse_onnx(model)
    assert [node.op_type for node in graph.nodes] == ["Einsum"]


def test_single_operand_einsum_stays():
    node = helper.make_node("Einsum", ["a"], ["y"], equation="ij->ji")
    model = model_from(
        [node],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, (N, D))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (D, N))],
        [],
    )
    assert [n.op_type for n in parse_onnx(model).nodes] == ["Einsum"]
