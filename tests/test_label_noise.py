"""The twin-cell label-noise estimator on synthetic tables whose true values are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.quality.label_noise import noise_ceiling, spearman_to_kendall


def _synthetic(sigma: float, n_pairs: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latency tables of 2 * n_pairs cells: twins share a true value; each label adds its own log-normal noise."""
    rng = np.random.default_rng(seed)
    truth_of_pair = np.exp(rng.normal(0.0, 0.3, n_pairs))
    truth = np.repeat(truth_of_pair, 2)
    labels = truth * np.exp(rng.normal(0.0, sigma, truth.size))
    pairs = np.arange(truth.size).reshape(-1, 2)
    return labels, pairs, truth


def test_noise_free_twins_leave_no_ceiling() -> None:
    labels, pairs, _ = _synthetic(0.0)
    row = noise_ceiling(labels, pairs, "latency")
    assert row["twin_median_abs_diff_pct"] == 0.0 and row["twin_identical_share"] == 1.0
    assert row["ceiling_spearman"] == pytest.approx(1.0)
    assert row["acc10_bound"] == pytest.approx(100.0) and row["twin_acc10"] == pytest.approx(100.0)


def test_ceilings_match_what_the_true_values_score() -> None:
    labels, pairs, truth = _synthetic(0.08)
    row = noise_ceiling(labels, pairs, "latency")
    true_spearman = stats.spearmanr(truth, labels).statistic
    true_acc10 = 100 * np.mean(np.abs(truth - labels) / labels <= 0.1)
    assert abs(row["ceiling_spearman"] - true_spearman) < 0.01
    assert row["twin_acc10"] < true_acc10 < row["acc10_bound"]  # the noise-free answer lies inside the range
    assert 75 < true_acc10 < 90  # and the noise is large enough for that to mean something


def test_noisier_labels_lower_every_ceiling() -> None:
    calm = noise_ceiling(*_synthetic(0.03)[:2], "latency")
    noisy = noise_ceiling(*_synthetic(0.2)[:2], "latency")
    for key in ("ceiling_spearman", "acc10_bound", "twin_acc10", "ceiling_kendall_tau"):
        assert noisy[key] < calm[key]
    assert noisy["twin_median_abs_diff_pct"] > 5 * calm["twin_median_abs_diff_pct"]


def test_kendall_from_spearman_follows_the_normal_copula() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=20000)
    y = 0.8 * x + 0.6 * rng.normal(size=20000)
    rho_s, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    assert abs(spearman_to_kendall(rho_s) - tau) < 0.01
    assert spearman_to_kendall(1.0) == pytest.approx(1.0)


def test_a_table_with_two_modes_shows_twins_far_apart() -> None:
    """Noise keeps twins within percents; a label that jumps between a fast and a slow mode puts them 2x apart."""
    labels, pairs, _ = _synthetic(0.05)
    assert noise_ceiling(labels, pairs, "latency")["twin_over_2x_share"] == 0.0
    slow = np.random.default_rng(1).random(labels.size) < 0.3  # 30 % of the measurements hit a 4x slower mode
    share = noise_ceiling(np.where(slow, 4 * labels, labels), pairs, "latency")["twin_over_2x_share"]
    assert share == pytest.approx(2 * 0.3 * 0.7, abs=0.03)  # one twin slow, the other fast
