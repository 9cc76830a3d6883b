"""The ONNX op vocabulary of the whole-network tokenizer: known op types get their own code, the rest "other".

Append-only (a new op takes the next free code) so tokens of existing networks never change; code 0 is the
shared "other" code for every op type not listed, which still carries its shapes and costs in its token.
"""

from __future__ import annotations

OTHER = "other"
ONNX_OPS: tuple[str, ...] = (
    OTHER,
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Einsum",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Erf",
    "Gelu",
    "Softplus",
    "Mish",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Reciprocal",
    "Max",
    "Min",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "Softmax",
    "LogSoftmax",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Expand",
    "Pad",
    "Resize",
    "Shape",
    "Cast",
    "Where",
    "Tile",
    "LSTM",
    "GRU",
)
VOCAB = 64
ONNX_OP_CODES: dict[str, int] = {name: code for code, name in enumerate(ONNX_OPS)}
assert len(ONNX_OPS) <= VOCAB


def onnx_op_code(op_type: str) -> int:
    return ONNX_OP_CODES.get(op_type, 0)
