"""The whole-network std-inflation benchmark's factor: value +- 2 std holds 95.45 % with it, and not with less."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.onnx_calibration_std import factor_for, within
from model.calibration import NETWORK_STD_INFLATION, STD_INFLATION, Calibration, std_inflation


def draw(errors: np.ndarray, loo: float, base: float = 0.0) -> dict:
    return {"error": np.abs(errors), "loo": loo, "base": np.full(len(errors), base)}


def test_factor_is_one_when_the_leave_one_out_error_is_the_true_spread() -> None:
    rng = np.random.default_rng(0)
    draws = [draw(rng.normal(0.0, 0.1, 4000), loo=0.1) for _ in range(5)]
    factor = factor_for(draws)
    assert factor == pytest.approx(1.0, abs=0.05)
    assert within(draws, factor, 2.0) >= 95.45 > within(draws, factor * 0.95, 2.0)


def test_factor_grows_when_leave_one_out_understates_and_base_part_counts() -> None:
    rng = np.random.default_rng(1)
    understated = [draw(rng.normal(0.0, 0.2, 4000), loo=0.1) for _ in range(3)]
    assert factor_for(understated) == pytest.approx(2.0, abs=0.1)
    covered_by_base = [draw(rng.normal(0.0, 0.1, 4000), loo=0.1, base=0.2) for _ in range(3)]
    assert factor_for(covered_by_base) == 0.0  # the base predictor's own spread already covers 95 %


def test_network_fits_use_their_own_table() -> None:
    fit = Calibration((0,), ("latency",), (1.0,), 0.0, "scale", 0.0, 10, 0.1, 10.0)
    assert fit.std_log == pytest.approx(0.1 * STD_INFLATION[10])
    network = Calibration((0,), ("latency",), (1.0,), 0.0, "scale", 0.0, 10, 0.1, 10.0, inflation_table="networks")
    assert network.std_log == pytest.approx(0.1 * NETWORK_STD_INFLATION[10])
    assert std_inflation(10, "networks") == NETWORK_STD_INFLATION[10]
