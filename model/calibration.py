"""Few-shot calibration of a new device: a linear map in log space from a multi-device predictor's latency heads.

Given 10-50 measured (architecture, latency) pairs of a device the base predictor never saw, and the base
predictor's latencies for the same architectures on its own devices, ``fit_calibration`` chooses, by exact
leave-one-out error on the measurements, between

- ``single``: ``log y = a + b log p_j`` on the one source device ``j`` that explains the measurements best;
- ``ridge``: ``log y = a + w . log p`` over every source device, ridge-penalised (alpha chosen by leave-one-out);
- ``scale`` (asked for by name, and offered by ``fit_network_calibration``'s ``auto``): ``log y = a + log p_j``, one
  factor on the best source: a slope fitted on 5-10 measurements of a narrow range is mostly noise.

``calibrated_onnx`` appends that map to the base ONNX graph, so the result is an ordinary one-target cell predictor
(tokens/mask/depth -> prediction (B, 1) in ms) that the service and the CLI load like any shipped one.
``calibrated_network_onnx`` does the same for a whole-network (ONNX upload) predictor, keeping its (B, 2) = (ms, std)
contract; its sources are its one latency head and, from ``COSTS_FROM`` measured models on, the model's MACs and
memory traffic (``fit_network_calibration``): another CPU differs from the base one in compute and in memory speed.
The calibrated predictor's uncertainty (``std_log`` in its card) is the leave-one-out log-space RMSE times
``std_inflation(n)``: with few measurements, and a fit chosen by that same error, the leave-one-out RMSE under-states
the error on the rest of the space. The factors are measured on devices the few-shot benchmark does not score
(``python -m benchmarks.quality.calibration_std``) so that value +- 2 std holds 95 % of the space; whole-network fits
have their own, smaller factors (``NETWORK_STD_INFLATION``, ``python -m benchmarks.onnx_calibration_std``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_SAMPLES = 5
LOG_RANGE = (float(np.log(1e-6)), float(np.log(1e7)))  # predictions are clipped to 1 ns .. 10^7 ms (float32-safe)
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
STD_INFLATION: dict[int, float] = {5: 3.88, 10: 1.95, 15: 1.54, 20: 1.39, 30: 1.28, 50: 1.17}
"""Measurements -> factor on the leave-one-out RMSE (``benchmarks/results/quality/calibration_std.md``)."""
NETWORK_STD_INFLATION: dict[int, float] = {5: 1.31, 10: 1.19, 15: 1.07, 20: 1.08, 30: 1.02, 50: 0.96}
"""The same for whole-network fits (``fit_network_calibration``), measured on whole networks: 13 pairs of a shipped
network predictor and another machine's measurements of the same networks (``benchmarks/results/onnx_calibration_std.md``;
each machine scored with the other machines' factors: +-2 std holds 92-100 %). The cells' factors held 98-100 %."""
INFLATION_TABLES = {"cells": STD_INFLATION, "networks": NETWORK_STD_INFLATION}


def std_inflation(n_samples: int, table: str = "cells") -> float:
    """The ``table``'s factor (``cells``: ``STD_INFLATION``, ``networks``: ``NETWORK_STD_INFLATION``) interpolated
    linearly in log n; the last factor holds beyond the table."""
    factors_by_size = INFLATION_TABLES[table]
    sizes = np.log(np.array(sorted(factors_by_size), dtype=np.float64))
    factors = np.array([factors_by_size[k] for k in sorted(factors_by_size)])
    return float(np.interp(np.log(max(n_samples, 1)), sizes, factors))


@dataclass(frozen=True)
class Calibration:
    """``latency = exp(bias + weights . log(base[:, columns]))``; columns index the base predictor's outputs."""

    columns: tuple[int, ...]
    sources: tuple[str, ...]  # the base target names of ``columns``
    weights: tuple[float, ...]
    bias: float
    method: str  # "scale", "single" or "ridge"
    alpha: float  # ridge penalty (0 for the others)
    n_samples: int
    loo_rmse_log: float  # leave-one-out RMSE of log latency on the measurements (the predicted std in log space)
    loo_mape: float  # leave-one-out mean absolute % error on the measurements
    inflation_table: str = "cells"  # which std inflation table applies: "cells" or "networks" (whole-network fits)

    @property
    def std_log(self) -> float:
        """The predicted std of log latency: leave-one-out RMSE times ``std_inflation(n_samples, inflation_table)``."""
        return self.loo_rmse_log * std_inflation(self.n_samples, self.inflation_table)

    def predict(self, base: np.ndarray) -> np.ndarray:
        """Calibrated latency (N,) from the base predictor's full output (N, T) in ms."""
        logs = np.log(np.maximum(np.asarray(base, dtype=np.float64)[:, list(self.columns)], 1e-12))
        return np.exp(np.clip(self.bias + logs @ np.asarray(self.weights), *LOG_RANGE))

    def to_dict(self) -> dict:
        return asdict(self)


def _loo_residuals(design: np.ndarray, t: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Exact leave-one-out residuals of (penalised) least squares via the hat matrix: r_i / (1 - H_ii)."""
    gram = design.T @ design + np.diag(penalty)
    inv = np.linalg.pinv(gram)
    hat_diag = np.einsum("ij,jk,ik->i", design, inv, design)
    residual = t - design @ (inv @ (design.T @ t))
    return residual / np.maximum(1.0 - hat_diag, 1e-9)


def _rmse(residuals: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residuals**2)))


def _mape(log_residuals: np.ndarray) -> float:
    """Mean absolute % error of predictions whose log residuals (true - predicted) are given."""
    return float(100.0 * np.mean(np.abs(1.0 - np.exp(-log_residuals))))


def _single(logs: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Best one-device fit by leave-one-out RMSE: (LOO residuals, column, [bias, slope])."""
    best: tuple[np.ndarray, int, np.ndarray] | None = None
    for j in range(logs.shape[1]):
        design = np.column_stack([np.ones(len(t)), logs[:, j]])
        residuals = _loo_residuals(design, t, np.zeros(2))
        if best is None or _rmse(residuals) < _rmse(best[0]):
            best = (residuals, j, np.linalg.lstsq(design, t, rcond=None)[0])
    assert best is not None
    return best


def _scale(logs: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Best one-factor fit ``t = a + logs[:, j]`` by leave-one-out RMSE: (LOO residuals, column, a)."""
    n = len(t)
    offsets = t[:, None] - logs  # (n, columns)
    residuals = (offsets - offsets.mean(axis=0)) * (n / (n - 1))  # exact leave-one-out residuals of a mean
    j = int(np.argmin(np.sqrt(np.mean(residuals**2, axis=0))))
    return residuals[:, j], j, float(offsets[:, j].mean())


def _ridge(logs: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Ridge over all devices (standardised, intercept unpenalised): (LOO residuals, alpha, weights, bias), log units."""
    mean, scale = logs.mean(axis=0), logs.std(axis=0) + 1e-9
    design = np.column_stack([np.ones(len(t)), (logs - mean) / scale])
    best: tuple[np.ndarray, float, np.ndarray] | None = None
    for alpha in RIDGE_ALPHAS:
        penalty = np.r_[0.0, np.full(logs.shape[1], alpha)]
        residuals = _loo_residuals(design, t, penalty)
        if best is None or _rmse(residuals) < _rmse(best[0]):
            best = (residuals, alpha, np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ t))
    assert best is not None
    residuals, alpha, coef = best
    weights = coef[1:] / scale
    return residuals, alpha, weights, float(coef[0] - weights @ mean)


def fit_calibration(
    base: np.ndarray, measured: np.ndarray, columns: Sequence[int], sources: Sequence[str], method: str = "auto"
) -> Calibration:
    """Fit the map from base predictions (N, T) in ms, columns ``columns``, to measured latencies (N,) in ms.

    ``method``: ``auto`` (the lower leave-one-out error of single and ridge), ``single``, ``ridge`` or ``scale``.
    Raises ValueError on too few samples or non-positive / non-finite values.
    """
    base = np.asarray(base, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if measured.ndim != 1 or len(measured) != len(base):
        raise ValueError(f"{len(measured)} measurements for {len(base)} architectures")
    if len(measured) < MIN_SAMPLES:
        raise ValueError(f"calibration needs at least {MIN_SAMPLES} measurements, got {len(measured)}")
    if not np.all(np.isfinite(measured)) or np.any(measured <= 0):
        raise ValueError("measured latencies must be finite and > 0")
    if len(columns) != len(sources) or not columns:
        raise ValueError("columns and sources must be non-empty and of equal length")
    if method not in ("auto", "single", "ridge", "scale"):
        raise ValueError(f"unknown calibration method {method!r}")
    logs = np.log(np.maximum(base[:, list(columns)], 1e-12))
    t = np.log(measured)
    n = len(t)
    candidates: list[Calibration] = []
    if method == "scale":
        res, j, offset = _scale(logs, t)
        candidates.append(Calibration((int(columns[j]),), (sources[j],), (1.0,), offset, "scale", 0.0, n, _rmse(res), _mape(res)))
    if method in ("auto", "single"):
        res, j, coef = _single(logs, t)
        candidates.append(
            Calibration(
                (int(columns[j]),), (sources[j],), (float(coef[1]),), float(coef[0]), "single", 0.0, n, _rmse(res), _mape(res)
            )
        )
    if method in ("auto", "ridge"):
        res, alpha, weights, bias = _ridge(logs, t)
        candidates.append(
            Calibration(
                tuple(int(c) for c in columns),
                tuple(sources),
                tuple(map(float, weights)),
                bias,
                "ridge",
                alpha,
                n,
                _rmse(res),
                _mape(res),
            )
        )
    return min(candidates, key=lambda c: c.loo_rmse_log)


def _detached(base: onnx.ModelProto, output: str) -> tuple[onnx.ModelProto, str]:
    """A copy of ``base`` whose ``output`` is renamed to an inner value (returned) and no longer a graph output."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    inner = "base_" + output
    for node in graph.node:
        node.output[:] = [inner if name == output else name for name in node.output]
    kept = [o for o in graph.output if o.name != output]
    del graph.output[:]
    graph.output.extend(kept)
    return model, inner


def calibrated_onnx(base: onnx.ModelProto, calibration: Calibration, output: str = "prediction") -> onnx.ModelProto:
    """The base graph with ``prediction`` (B, T) replaced by the calibrated latency (B, 1) in ms."""
    model, inner = _detached(base, output)
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(calibration.columns, dtype=np.int64), "calibration_columns"),
            numpy_helper.from_array(np.asarray(calibration.weights, dtype=np.float32).reshape(-1, 1), "calibration_weights"),
            numpy_helper.from_array(np.asarray([calibration.bias], dtype=np.float32), "calibration_bias"),
            numpy_helper.from_array(np.asarray(1e-12, dtype=np.float32), "calibration_floor"),
            numpy_helper.from_array(np.asarray(LOG_RANGE[0], dtype=np.float32), "calibration_log_min"),
            numpy_helper.from_array(np.asarray(LOG_RANGE[1], dtype=np.float32), "calibration_log_max"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Gather", [inner, "calibration_columns"], ["calibration_selected"], axis=1),
            helper.make_node("Max", ["calibration_selected", "calibration_floor"], ["calibration_positive"]),
            helper.make_node("Log", ["calibration_positive"], ["calibration_log"]),
            helper.make_node("MatMul", ["calibration_log", "calibration_weights"], ["calibration_linear"]),
            helper.make_node("Add", ["calibration_linear", "calibration_bias"], ["calibration_shifted"]),
            helper.make_node(
                "Clip", ["calibration_shifted", "calibration_log_min", "calibration_log_max"], ["calibration_clipped"]
            ),
            helper.make_node("Exp", ["calibration_clipped"], [output]),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1]))
    onnx.checker.check_model(model)
    return model


NETWORK_SOURCES = ("latency_ms", "macs", "memory_bytes")
"""What a whole-network calibration may map from: the base predictor's latency and the model's cost (columns 0, 1, 2)."""
COSTS_FROM = 20
"""From this many measured models on, ``auto`` also offers the costs: with 20-50 models they cut the error of a clean
CPU by a third; with 10 they overfit a noisy one (``benchmarks/results/onnx_calibration_*.md``)."""
SLOPE_FROM = 10
"""From this many measured models on, ``auto`` also offers a slope: below it, choosing by the leave-one-out error of
five-odd models picked the slope in 20-35 % of draws and lost to one factor on both benchmarks that score it (another
CPU, ``onnx_calibration_epyc.md``; an unseen family, ``onnx_family_calibration.md``)."""
_FEATURE_COLUMNS = (1, 3)  # network_tokenizer.graph_features: log2(1 + macs), log2(1 + memory_bytes)


def network_design(base_ms: np.ndarray, macs: np.ndarray, memory_bytes: np.ndarray) -> np.ndarray:
    """(N, 3) = (base ms, 1 + MACs, 1 + memory bytes): the logs of these are what a network calibration maps from."""
    return np.column_stack([base_ms, 1.0 + np.asarray(macs, np.float64), 1.0 + np.asarray(memory_bytes, np.float64)])


def fit_network_calibration(design: np.ndarray, measured: np.ndarray, method: str = "auto") -> Calibration:
    """The map for a whole-network predictor: ``scale`` = one factor on the latency; ``single`` = latency with a
    slope; ``ridge`` = latency and costs; ``auto`` = scale below ``SLOPE_FROM`` models, then the lower leave-one-out
    error of scale and single, and from ``COSTS_FROM`` models on the lowest of scale, single on any one of the three
    sources, and ridge over them."""
    if method in ("scale", "single"):
        fit = fit_calibration(design, measured, [0], NETWORK_SOURCES[:1], method)
    elif method == "ridge":
        fit = fit_calibration(design, measured, [0, 1, 2], NETWORK_SOURCES, "ridge")
    elif method == "auto":
        candidates = [fit_calibration(design, measured, [0], NETWORK_SOURCES[:1], "scale")]
        if SLOPE_FROM <= len(measured) < COSTS_FROM:
            candidates.append(fit_calibration(design, measured, [0], NETWORK_SOURCES[:1], "single"))
        elif len(measured) >= COSTS_FROM:  # single on the best of the three sources, or ridge over them
            candidates.append(fit_calibration(design, measured, [0, 1, 2], NETWORK_SOURCES, "auto"))
        fit = min(candidates, key=lambda c: c.loo_rmse_log)
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    return replace(fit, inflation_table="networks")


def choose_network_base(
    designs: Mapping[str, np.ndarray], measured: np.ndarray, method: str = "auto"
) -> tuple[str, Calibration, dict[str, float]]:
    """The base predictor to calibrate, when several could be: (its name, its ``method`` fit, every base's score).

    Each base's ``network_design`` rows of the same measured models get a one-factor (``scale``) fit, and the base
    whose fit has the lowest leave-one-out RMSE (its score) wins; ties go to the first base named. Bases are compared
    with one same-sized fit because the lowest leave-one-out error of a flexible, selected map is optimistic: on the
    noisy Xeon, choosing by the ``auto`` fits' error took the wrong base in 30 % of draws of 10 models, by one factor
    in 10 %. A new CPU's latencies follow the shipped CPU of its own kind far more closely than another kind's
    (``benchmarks/results/onnx_calibration_bases_*.md``), and the user need not know which that is."""
    if not designs:
        raise ValueError("no base predictor to calibrate")
    scores = {name: fit_network_calibration(design, measured, "scale").loo_rmse_log for name, design in designs.items()}
    name = min(scores, key=lambda n: scores[n])
    return name, fit_network_calibration(designs[name], measured, method), scores


def calibrated_network_onnx(base: onnx.ModelProto, calibration: Calibration, output: str = "prediction") -> onnx.ModelProto:
    """A whole-network predictor's graph with ``prediction`` (B, 2) = (ms, std ms) mapped onto a new device.

    value = exp(bias + w . log(base ms, 1 + MACs, 1 + memory bytes)[columns]), the costs read from the graph's own
    ``features`` input; std = value * sqrt((w_ms * base_std / base_ms)^2 + std_log^2): the base's relative spread
    carried through the map, plus the calibration's inflated leave-one-out error.
    """
    if not calibration.columns or not set(calibration.columns) <= {0, 1, 2}:
        raise ValueError(f"a whole-network calibration maps columns of {NETWORK_SOURCES}, not {calibration.columns}")
    model, inner = _detached(base, output)
    graph = model.graph
    weights = dict(zip(calibration.columns, calibration.weights, strict=True))
    weight_ms = float(weights.get(0, 0.0))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray([0], dtype=np.int64), "calibration_value_column"),
            numpy_helper.from_array(np.asarray([1], dtype=np.int64), "calibration_std_column"),
            numpy_helper.from_array(np.asarray(_FEATURE_COLUMNS, dtype=np.int64), "calibration_feature_columns"),
            numpy_helper.from_array(np.asarray(np.log(2.0), dtype=np.float32), "calibration_ln2"),
            numpy_helper.from_array(np.asarray(calibration.columns, dtype=np.int64), "calibration_columns"),
            numpy_helper.from_array(np.asarray(calibration.weights, dtype=np.float32).reshape(-1, 1), "calibration_weights"),
            numpy_helper.from_array(np.asarray([weight_ms * weight_ms], dtype=np.float32), "calibration_weight_squared"),
            numpy_helper.from_array(np.asarray([calibration.bias], dtype=np.float32), "calibration_bias"),
            numpy_helper.from_array(np.asarray([calibration.std_log**2], dtype=np.float32), "calibration_variance_log"),
            numpy_helper.from_array(np.asarray(1e-12, dtype=np.float32), "calibration_floor"),
            numpy_helper.from_array(np.asarray(LOG_RANGE[0], dtype=np.float32), "calibration_log_min"),
            numpy_helper.from_array(np.asarray(LOG_RANGE[1], dtype=np.float32), "calibration_log_max"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Gather", [inner, "calibration_value_column"], ["calibration_base_value"], axis=1),
            helper.make_node("Gather", [inner, "calibration_std_column"], ["calibration_base_std"], axis=1),
            helper.make_node("Max", ["calibration_base_value", "calibration_floor"], ["calibration_positive"]),
            helper.make_node("Log", ["calibration_positive"], ["calibration_log"]),
            helper.make_node("Gather", ["features", "calibration_feature_columns"], ["calibration_log2_costs"], axis=1),
            helper.make_node("Mul", ["calibration_log2_costs", "calibration_ln2"], ["calibration_log_costs"]),
            helper.make_node("Concat", ["calibration_log", "calibration_log_costs"], ["calibration_logs"], axis=1),
            helper.make_node("Gather", ["calibration_logs", "calibration_columns"], ["calibration_selected"], axis=1),
            helper.make_node("MatMul", ["calibration_selected", "calibration_weights"], ["calibration_linear"]),
            helper.make_node("Add", ["calibration_linear", "calibration_bias"], ["calibration_shifted"]),
            helper.make_node(
                "Clip", ["calibration_shifted", "calibration_log_min", "calibration_log_max"], ["calibration_clipped"]
            ),
            helper.make_node("Exp", ["calibration_clipped"], ["calibration_value"]),
            helper.make_node("Div", ["calibration_base_std", "calibration_positive"], ["calibration_base_relative"]),
            helper.make_node("Mul", ["calibration_base_relative", "calibration_base_relative"], ["calibration_base_rel_sq"]),
            helper.make_node("Mul", ["calibration_base_rel_sq", "calibration_weight_squared"], ["calibration_carried"]),
            helper.make_node("Add", ["calibration_carried", "calibration_variance_log"], ["calibration_variance"]),
            helper.make_node("Sqrt", ["calibration_variance"], ["calibration_relative_std"]),
            helper.make_node("Mul", ["calibration_value", "calibration_relative_std"], ["calibration_std"]),
            helper.make_node("Concat", ["calibration_value", "calibration_std"], [output], axis=1),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 2]))
    onnx.checker.check_model(model)
    return model
