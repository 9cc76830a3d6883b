"""The label-consistency check's per-family offsets: median label / prediction and MAPE."""

import numpy as np
import pytest

from benchmarks.onnx_label_consistency import family_offsets


def test_family_offsets_per_family() -> None:
    labels = np.array([11.0, 22.0, 33.0, 10.0, 10.0])
    predictions = np.array([10.0, 20.0, 30.0, 10.0, 12.5])
    families = np.array(["a", "a", "a", "b", "b"])
    out = family_offsets(labels, predictions, families)
    assert out["a"] == pytest.approx({"n": 3, "median_offset_pct": 10.0, "mape_pct": 100 * (1 / 11)})
    assert out["b"]["n"] == 2
    assert out["b"]["median_offset_pct"] == pytest.approx(100 * (np.median([1.0, 0.8]) - 1))
    assert out["b"]["mape_pct"] == pytest.approx(100 * np.mean([0.0, 0.25]))
