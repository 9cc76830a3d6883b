"""Hand-built ONNX models (onnx.helper, no torch) with hand-computable costs, shared by the ONNX tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def model_from(nodes, inputs, outputs, initializers, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_net(batch: str | int = "N", resolution: str | int = "H") -> onnx.ModelProto:
    """x(N,3,H,H) -> Conv 3x3 s2 (3->16) -> Relu -> depthwise Conv 3x3 (group 16) -> GlobalAveragePool -> Flatten -> Gemm.

    At N=1, H=32: conv1 out (1,16,16,16), MACs 16*16*16 * 3*3*3 = 110592; depthwise MACs 16*16*16 * 1*3*3 = 36864;
    Gemm MACs 16*10 = 160. Params: 16*3*3*3+16 = 448, 16*1*3*3+16 = 160, 10*16+10 = 170.
    """
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [
        _weight("w1", 16, 3, 3, 3),
        _weight("b1", 16),
        _weight("w2", 16, 1, 3, 3),
        _weight("b2", 16),
        _weight("w3", 10, 16),
        _weight("b3", 10),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, resolution, resolution])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])
    return model_from(nodes, [x], [y], inits)


def conv_stack(kernel: int, rank: int = 2, stride: int = 1, size: int = 16) -> onnx.ModelProto:
    """x(1,16,size,...) over ``rank`` spatial axes -> depthwise Conv (``kernel`` wide, ``stride``) -> GlobalAveragePool
    -> Flatten -> Gemm (16 -> 10)."""
    conv = helper.make_node(
        "Conv",
        ["x", "w", "b"],
        ["c"],
        kernel_shape=[kernel] * rank,
        strides=[stride] * rank,
        pads=[kernel // 2 if stride == 1 else 0] * 2 * rank,
        group=16,
    )
    nodes = [
        conv,
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [_weight("w", 16, 1, *[kernel] * rank), _weight("b", 16), _weight("w3", 10, 16), _weight("b3", 10)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, *[size] * rank])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    return model_from(nodes, [x], [y], inits)


def einsum_model(
    equation: str, a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...], weight: bool = False
) -> onnx.ModelProto:
    """One Einsum of input ``a`` and ``b`` (an input, or a weight when ``weight``)."""
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, a)]
    initializers = [_weight("b", *b)] if weight else []
    if not weight:
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, b))
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)]
    return model_from([node], inputs, outputs, initializers)


def attention_block(tokens: int = 50, dim: int = 64, heads: int = 4) -> onnx.ModelProto:
    """x(1,T,D) -> LayerNorm -> MatMul W_qkv (D,3D) -> Reshape (1,T,3,h,D/h) -> Transpose (2,0,3,1,4) -> Split 3 ->
    Squeeze x3 -> Transpose K -> MatMul Q.K^T (1,h,T,T) -> Softmax -> MatMul A.V -> Transpose -> Reshape (1,T,D)
    -> MatMul W_o (D,D) -> Add residual.

    MACs: qkv T*D*3D; Q.K^T h*T*T*(D/h) = T*T*D; A.V the same; proj T*D*D.
    """
    hd = dim // heads
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_g", "ln_b"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "w_qkv"], ["qkv"]),
        helper.make_node("Reshape", ["qkv", "shape5"], ["qkv5"]),
        helper.make_node("Transpose", ["qkv5"], ["qkvt"], perm=[2, 0, 3, 1, 4]),
        helper.make_node("Split", ["qkvt", "split3"], ["q1", "k1", "v1"], axis=0),
        helper.make_node("Squeeze", ["q1", "axis0"], ["q"]),
        helper.make_node("Squeeze", ["k1", "axis0"], ["k"]),
        helper.make_node("Squeeze", ["v1", "axis0"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["ctx"]),
        helper.make_node("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctxt", "shape3"], ["ctx3"]),
        helper.make_node("MatMul", ["ctx3", "w_o"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["y"]),
    ]
    inits = [
        _weight("ln_g", dim),
        _weight("ln_b", dim),
        _weight("w_qkv", dim, 3 * dim),
        _weight("w_o", dim, dim),
        _ints("shape5", [1, tokens, 3, heads, hd]),
        _ints("shape3", [1, tokens, dim]),
        _ints("split3", [1, 1, 1]),
        _ints("axis0", [0]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, dim])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, dim])
    return model_from(nodes, [x], [y], inits)


def recurrent_model(op: str, gates: int, direction: str, dirs: int, steps: int = 5, rows: int = 2) -> onnx.ModelProto:
    """x (steps, rows, 3) -> Relu -> op (LSTM / GRU / RNN, hidden 4, with bias) -> Relu: a recurrent node between two
    ordinary ones."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((dirs, gates * 4, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((dirs, gates * 4, 4)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.standard_normal((dirs, 2 * gates * 4)).astype(np.float32), "B"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["x1"]),
        helper.make_node(op, ["x1", "W", "R", "B"], ["y"], hidden_size=4, direction=direction),
        helper.make_node("Relu", ["y"], ["out"]),
    ]
    return model_from(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, rows, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        weights,
    )


def kv_cache_attention(heads: int = 2, head_dim: int = 4) -> onnx.ModelProto:
    """One attention step over a KV cache, dimensions named as a Hugging Face decoder export names them:
    q (batch, heads, sequence_length, d) and past_key (batch, heads, past_sequence_length, d) -> Concat along the
    sequence -> q K^T -> Softmax -> A K; out (batch, heads, sequence_length, d) and the grown cache."""
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch_size", heads, "sequence_length", head_dim])
    past = helper.make_tensor_value_info("past_key", TensorProto.FLOAT, ["batch_size", heads, "past_sequence_length", head_dim])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    present = helper.make_tensor_value_info("present", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Concat", ["past_key", "q"], ["present"], axis=2),
        helper.make_node("Transpose", ["present"], ["keys_t"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "keys_t"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attention"], axis=-1),
        helper.make_node("MatMul", ["attention", "present"], ["out"]),
    ]
    return model_from(nodes, [q, past], [out, present], [])
