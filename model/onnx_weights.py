"""Weight-free copies of ONNX models: what a prediction needs (the graph, every tensor's type and shape), not the weights.

A prediction reads a model's structure only, so a client can send a weight-free copy: each large floating-point
or 8- / 4-bit integer (quantized) initializer becomes a reference to an external-data file that is never sent (the
parser never follows such references). Wider integer tensors and small ones stay whole: their values can be shapes,
axes or indices that shape inference needs. Only top-level initializers are stripped: the parser accepts external
references nowhere else (``model.onnx_graph.check_external_data``). A 100 MB ResNet-50 becomes about 50 kB and gets
the same answer.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})
# element types of weights: floating point, and the 8- and 4-bit integers of quantized models (int32 / int64
# tensors are shapes, indices and quantized biases, not weights); the parser counts these as parameters
WEIGHT_TYPES = FLOAT_TYPES | {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4}
MISSING_FILE = "weights.bin"  # the external-data location named; nothing is sent under it


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    return len(tensor.raw_data) + 4 * len(tensor.float_data) + 8 * len(tensor.double_data) + 4 * len(tensor.int32_data)


def weight_free(data: bytes, min_bytes: int = 1024) -> bytes:
    """``data`` with every top-level weight initializer (``WEIGHT_TYPES``) of more than ``min_bytes`` turned into an
    external reference. Subgraph (If / Loop / Scan body) initializers and Constant values stay whole."""
    model = onnx.load_from_string(data)
    for tensor in model.graph.initializer:
        inline = tensor.data_location != TensorProto.EXTERNAL
        if tensor.data_type in WEIGHT_TYPES and inline and _tensor_bytes(tensor) > min_bytes:
            for field in ("raw_data", "float_data", "double_data", "int32_data"):
                tensor.ClearField(field)
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", MISSING_FILE
    return model.SerializeToString()
