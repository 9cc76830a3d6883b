"""Predictor quality metrics: Kendall tau-b, Spearman, MAPE and Acc(10 %), in target units."""

from __future__ import annotations

import numpy as np
from scipy import stats


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    keep = np.isfinite(true)
    p, g = pred[keep], true[keep]
    relative = np.abs(p - g) / np.abs(g)
    return {
        "kendall_tau": float(stats.kendalltau(p, g).statistic),
        "spearman": float(stats.spearmanr(p, g).statistic),
        "mape": float(100.0 * relative.mean()),
        "acc10": float(100.0 * (relative <= 0.1).mean()),
        "n": int(keep.sum()),
    }
