"""Per-node cost of an ONNX op from its shapes: MACs, FLOPs, parameters and memory traffic.

Conventions (documented in the README): one multiply-accumulate (MAC) = 2 FLOPs. Conv, ConvTranspose, Gemm
and MatMul (with numpy broadcasting of batch dimensions, so attention's Q·K^T and A·V count per head) cost
2 x MACs; LSTM / GRU / RNN count, per time step and batch row, one product with each of their W and R weights
(gates x hidden x (input + hidden) per direction), plus 4 FLOPs per gate unit for the activations; other ops
cost a per-element factor on their output (1 for elementwise ops, more for Softmax and
normalisations, the window area for pooling, the input size for reductions; ``Resize`` costs 1 per output element
when nearest, and a multiply-add per interpolation tap when linear or cubic: 2 or 4 taps per resized axis, so a
bilinear 2-D upsampling costs 8 FLOPs per output element). Parameters are the elements of
the node's constant inputs (initializers and Constant outputs). Memory traffic is 4 bytes (float32) per
element read (all inputs, weights included) or written (all outputs), except where the parser gives the tensors'
own widths (float16, int8, ...: ``element_bytes``). Unknown dimensions (-1) count as 0.

Quantized and onnxruntime-fused products cost what their float op costs: ``ConvInteger`` / ``QLinearConv`` and
com.microsoft ``FusedConv`` like ``Conv``; ``MatMulInteger`` / ``QLinearMatMul`` and com.microsoft
``MatMulIntegerToFloat``, ``DynamicQuantizeMatMul`` and ``FusedMatMul`` like ``MatMul``; com.microsoft ``QGemm`` like
``Gemm`` (``PRODUCT_OPERANDS`` says where their two operands sit); com.microsoft ``Attention`` and
``MultiHeadAttention`` (onnxruntime's transformer optimizer writes them) count their projections, Q.K^T and A.V.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]
BYTES_PER_ELEMENT = 4

ELEMENTWISE_FACTOR: dict[str, float] = {
    "Softmax": 5.0,
    "LogSoftmax": 5.0,
    "LayerNormalization": 8.0,
    "BatchNormalization": 2.0,
    "InstanceNormalization": 8.0,
    "GroupNormalization": 8.0,
    "Erf": 4.0,
    "Gelu": 8.0,
    "Sigmoid": 4.0,
    "Tanh": 4.0,
    "Exp": 4.0,
    "Log": 4.0,
    "Sqrt": 2.0,
    "Pow": 4.0,
    "HardSwish": 3.0,
    "HardSigmoid": 2.0,
}
ZERO_COST_OPS = frozenset(
    {"Reshape", "Shape", "Flatten", "Squeeze", "Unsqueeze", "Gather", "Slice", "Constant", "ConstantOfShape", "Identity", "Cast"}
)


# op type -> (the float op it computes, positions of its two operands: data and weight, or A and B)
PRODUCT_OPERANDS: dict[str, tuple[str, int, int]] = {
    "ConvInteger": ("Conv", 0, 1),
    "QLinearConv": ("Conv", 0, 3),
    "FusedConv": ("Conv", 0, 1),
    "MatMulInteger": ("MatMul", 0, 1),
    "QLinearMatMul": ("MatMul", 0, 3),
    "MatMulIntegerToFloat": ("MatMul", 0, 1),
    "DynamicQuantizeMatMul": ("MatMul", 0, 1),
    "FusedMatMul": ("MatMul", 0, 1),
    "QGemm": ("Gemm", 0, 3),
}


def _attention_macs(op_type: str, in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    """com.microsoft ``Attention`` (input (B, S, H_in) projected by weights (H_in, Q+K+V), then Q.K^T and A.V) and
    ``MultiHeadAttention`` (query (B, S, Q), key (B, L, Q), value (B, L, V), already projected): the products, summed
    over heads. 0 where the shapes are not these (packed or past-key layouts)."""
    if op_type == "Attention":
        if len(in_shapes) < 2 or len(in_shapes[0]) != 3 or len(in_shapes[1]) != 2:
            return 0.0
        batch, seq, width = in_shapes[0]
        total = in_shapes[1][1]
        sizes = attrs.get("qkv_hidden_sizes") or [total // 3] * 3
        if len(sizes) != 3 or min(batch, seq, width, total) < 0:
            return 0.0
        query, _, value = sizes
        return float(batch * seq * width * total + batch * seq * seq * (query + value))
    if len(in_shapes) < 3 or any(len(shape) != 3 or min(shape) < 0 for shape in in_shapes[:3]):
        return 0.0
    (batch, seq, query), (_, length, _), (_, _, value) = in_shapes[:3]
    return float(batch * seq * length * (query + value))


ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention"})


@dataclass(frozen=True)
class NodeCost:
    macs: float
    flops: float
    params: float
    memory_bytes: float


def elements(shape: Sequence[int]) -> float:
    """Number of elements of a shape; 0 when any dimension is unknown."""
    if any(d < 0 for d in shape):
        return 0.0
    return float(math.prod(shape)) if shape else 1.0


def _conv_macs(in_shapes: Sequence[Shape], out_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    if len(in_shapes) < 2 or not out_shapes:
        return 0.0
    weight = in_shapes[1]  # (C_out, C_in / groups, k...)
    if len(weight) < 2:
        return 0.0
    return elements(out_shapes[0]) * elements(weight[1:])


def _conv_transpose_macs(in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    if len(in_shapes) < 2:
        return 0.0
    weight = in_shapes[1]  # (C_in, C_out / groups, k...)
    if len(weight) < 2:
        return 0.0
    x = in_shapes[0]
    return elements(x) * elements(weight[1:])


def _matmul_macs(in_shapes: Sequence[Shape], out_shapes: Sequence[Shape], trans_a: bool = False) -> float:
    if len(in_shapes) < 2 or not out_shapes:
        return 0.0
    a = in_shapes[0]
    if not a:
        return 0.0
    k = a[-2] if trans_a and len(a) >= 2 else a[-1]
    return elements(out_shapes[0]) * max(k, 0)


def gemm_dims(in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> tuple[int, int, int] | None:
    """(M, K, N) of a Gemm after its transA / transB; None when the operands are not two matrices."""
    if len(in_shapes) < 2 or len(in_shapes[0]) != 2 or len(in_shapes[1]) != 2:
        return None
    m, k = in_shapes[0][::-1] if attrs.get("transA", 0) else in_shapes[0]
    n = in_shapes[1][0] if attrs.get("transB", 0) else in_shapes[1][1]
    return m, k, n


def _gemm_macs(in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    dims = gemm_dims(in_shapes, attrs)
    if dims is None:
        return 0.0
    m, k, n = dims
    return float(max(m, 0) * max(k, 0) * max(n, 0))


RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})


def recurrent_steps_and_rows(in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> tuple[int, int] | None:
    """(time steps, batch rows) of an LSTM / GRU / RNN from X and its ``layout``; None when X, W or R is not 3-D."""
    if len(in_shapes) < 3 or any(len(shape) != 3 for shape in in_shapes[:3]):
        return None
    steps, rows = in_shapes[0][:2] if attrs.get("layout", 0) == 0 else in_shapes[0][1::-1]
    return steps, rows


def _recurrent_steps(in_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    """Time steps x batch rows of an LSTM / GRU / RNN (0 when X, W or R is not 3-D)."""
    dims = recurrent_steps_and_rows(in_shapes, attrs)
    return 0.0 if dims is None else float(max(dims[0], 0) * max(dims[1], 0))


RESIZE_TAPS_PER_AXIS = {"linear": 2, "cubic": 4}


def _resize_taps(in_shapes: Sequence[Shape], out_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    """FLOPs per output element of a Resize: 1 (a copy) for nearest, 2 x taps for linear / cubic interpolation."""
    per_axis = RESIZE_TAPS_PER_AXIS.get(str(attrs.get("mode", "nearest")))
    if per_axis is None:
        return 1.0
    src, dst = (in_shapes[0] if in_shapes else ()), (out_shapes[0] if out_shapes else ())
    axes = sum(a != b for a, b in zip(src, dst, strict=True)) if len(src) == len(dst) else 2
    return 2.0 * per_axis ** max(axes, 1)


def _other_flops(op_type: str, in_shapes: Sequence[Shape], out_shapes: Sequence[Shape], attrs: dict[str, Any]) -> float:
    out = elements(out_shapes[0]) if out_shapes else 0.0
    if op_type in ZERO_COST_OPS:
        return 0.0
    if op_type in ("MaxPool", "AveragePool", "LpPool"):
        return out * float(math.prod(attrs.get("kernel_shape", [1])))
    if op_type.startswith("Global") or op_type.startswith("Reduce"):
        return elements(in_shapes[0]) if in_shapes else 0.0
    if op_type == "Resize":
        return out * _resize_taps(in_shapes, out_shapes, attrs)
    return out * ELEMENTWISE_FACTOR.get(op_type, 1.0)


def node_cost(
    op_type: str,
    in_shapes: Sequence[Shape],
    out_shapes: Sequence[Shape],
    attrs: dict[str, Any],
    weight_positions: Sequence[int] = (),
    element_bytes: Sequence[float] | None = None,
) -> NodeCost:
    """MACs, FLOPs, parameters and memory bytes of one node; ``weight_positions`` index its constant inputs,
    ``element_bytes`` gives each input's then each output's bytes per element (default: 4 for all)."""
    product = PRODUCT_OPERANDS.get(op_type)
    if product is not None:
        float_op, first, second = product
        operands = [in_shapes[i] for i in (first, second) if i < len(in_shapes)]
        if float_op == "Conv":
            macs = _conv_macs(operands, out_shapes, attrs)
        elif float_op == "Gemm":
            macs = _gemm_macs(operands, attrs)
        else:
            macs = _matmul_macs(operands, out_shapes, bool(attrs.get("transA", 0)))
    elif op_type in ATTENTION_OPS:
        macs = _attention_macs(op_type, in_shapes, attrs)
    elif op_type == "Conv":
        macs = _conv_macs(in_shapes, out_shapes, attrs)
    elif op_type == "ConvTranspose":
        macs = _conv_transpose_macs(in_shapes, attrs)
    elif op_type == "Gemm":
        macs = _gemm_macs(in_shapes, attrs)
    elif op_type == "MatMul":
        macs = _matmul_macs(in_shapes, out_shapes)
    elif op_type in RECURRENT_OPS:  # per step and row, one product with W (dirs, gates*H, input) and R (dirs, gates*H, H)
        steps = _recurrent_steps(in_shapes, attrs)
        macs = steps * (elements(in_shapes[1]) + elements(in_shapes[2])) if steps else 0.0
    else:
        macs = 0.0
    flops = 2.0 * macs if macs or product or op_type in ATTENTION_OPS else _other_flops(op_type, in_shapes, out_shapes, attrs)
    if op_type in ("Conv", "Gemm", "ConvTranspose") and len(in_shapes) > 2 and out_shapes:
        flops += elements(out_shapes[0])  # bias add
    if op_type in RECURRENT_OPS and macs:  # gate activations: sigmoid / tanh on every gate unit (dirs x gates*H)
        flops += 4.0 * steps * in_shapes[2][0] * in_shapes[2][1]
    params = sum(elements(in_shapes[i]) for i in weight_positions if i < len(in_shapes))
    shapes = [*in_shapes, *out_shapes]
    if element_bytes is None or len(element_bytes) != len(shapes):
        memory = BYTES_PER_ELEMENT * sum(elements(s) for s in shapes)
    else:
        memory = sum(width * elements(s) for width, s in zip(element_bytes, shapes, strict=True))
    if op_type in ZERO_COST_OPS and op_type not in ("Gather", "Slice", "Cast"):
        memory = 0.0  # metadata-only ops move no data in onnxruntime
    return NodeCost(macs=macs, flops=flops, params=params, memory_bytes=memory)
