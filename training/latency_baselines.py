"""Baselines for whole-network latency, fitted on the same splits as the transformer.

- ``flops_loglog``: log latency = a + b log FLOPs (least squares).
- ``kernel_sum``: latency = c + sum over op kinds of (alpha_k FLOPs_k + beta_k bytes_k + gamma_k count_k), with
  non-negative coefficients (scipy NNLS), rows weighted by 1/latency so the fit minimises relative error; the
  classic per-op additive cost model (nn-Meter/TPU-cost-model style, without kernel fusion detection).
- ``gbm``: gradient-boosted trees (scikit-learn HistGradientBoosting) on the whole-graph features plus the
  per-op-kind log sums, predicting log latency.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import nnls
from sklearn.ensemble import HistGradientBoostingRegressor

from model.network_tokenizer import _is_depthwise
from model.onnx_graph import NetworkGraph

KINDS: tuple[str, ...] = (
    "conv_dense",
    "conv_depthwise",
    "conv_grouped",
    "matmul",
    "gemm",
    "pool",
    "norm",
    "softmax",
    "activation",
    "elementwise",
    "data_movement",
    "other",
)
ACTIVATIONS = frozenset({"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu", "LeakyRelu", "PRelu"})
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Max", "Min", "Where"})
MOVEMENT = frozenset(
    {
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
        "Tile",
        "Shape",
        "Cast",
        "Resize",
    }
)


def op_kind(node) -> str:  # noqa: ANN001 - a NetNode
    op = node.op_type
    if op == "Conv":
        if _is_depthwise(node):
            return "conv_depthwise"
        return "conv_grouped" if int(node.attrs.get("group", 1)) > 1 else "conv_dense"
    if op in ("MatMul", "Einsum"):
        return "matmul"
    if op == "Gemm":
        return "gemm"
    if op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax"):
        return "pool"
    if op in ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"):
        return "norm"
    if op in ("Softmax", "LogSoftmax"):
        return "softmax"
    if op in ACTIVATIONS:
        return "activation"
    if op in ELEMENTWISE:
        return "elementwise"
    if op in MOVEMENT:
        return "data_movement"
    return "other"


def kind_sums(graph: NetworkGraph) -> np.ndarray:
    """(3 * len(KINDS),): per kind FLOPs, memory bytes and node count."""
    out = np.zeros((len(KINDS), 3))
    for node in graph.nodes:
        k = KINDS.index(op_kind(node))
        out[k] += (node.cost.flops, node.cost.memory_bytes, 1.0)
    return out.reshape(-1)


Baseline = Callable[[np.ndarray], np.ndarray]


def fit_flops_loglog(flops: np.ndarray, latency: np.ndarray) -> Baseline:
    a, b = np.polyfit(np.log(flops), np.log(latency), 1)
    return lambda f: np.exp(b + a * np.log(f))


def fit_kernel_sum(sums: np.ndarray, latency: np.ndarray) -> Baseline:
    """NNLS on scaled columns (FLOPs in GFLOP, bytes in MB, counts) plus an intercept, weighted by 1/latency."""
    scale = np.where(np.arange(sums.shape[1]) % 3 == 0, 1e-9, np.where(np.arange(sums.shape[1]) % 3 == 1, 1e-6, 1.0))
    x = np.hstack([sums * scale, np.ones((len(sums), 1))])
    weights = 1.0 / latency
    coef, _ = nnls(x * weights[:, None], latency * weights)
    return lambda s: np.maximum(np.hstack([s * scale, np.ones((len(s), 1))]) @ coef, 1e-3)


def gbm_inputs(features: np.ndarray, sums: np.ndarray) -> np.ndarray:
    return np.hstack([features, np.log1p(sums)])


def fit_gbm(inputs: np.ndarray, latency: np.ndarray, seed: int) -> Baseline:
    model = HistGradientBoostingRegressor(
        max_iter=600, learning_rate=0.05, max_leaf_nodes=31, l2_regularization=1e-3, random_state=seed
    )
    model.fit(inputs, np.log(latency))
    return lambda x: np.exp(model.predict(x))
