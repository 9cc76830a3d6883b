"""Latency-prediction metrics: MAPE, Acc(10 %) (share within 10 % of the truth), Spearman rho, Kendall tau."""

from __future__ import annotations

import numpy as np
from scipy import stats


def latency_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if len(true) == 0:  # a split without test networks (a pretraining run)
        return {"n": 0.0}
    relative = np.abs(pred - true) / true
    out = {"n": float(len(true)), "mape": float(100 * relative.mean()), "acc10": float(100 * (relative <= 0.10).mean())}
    if len(true) > 2:
        out["spearman"] = float(stats.spearmanr(pred, true).statistic)
        out["kendall"] = float(stats.kendalltau(pred, true).statistic)
    return out
