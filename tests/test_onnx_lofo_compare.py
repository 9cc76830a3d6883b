"""Pairing two leave-one-family-out reports split by split (``benchmarks.onnx_lofo_compare``)."""

from __future__ import annotations

import pytest

from benchmarks.onnx_lofo_compare import compare, markdown


def _job(family: str, seed: int, val: str, val_mape: float, mape: float) -> dict:
    metrics = {"mape": mape, "acc10": 50.0, "spearman": 0.99, "kendall": 0.9, "n": 10.0}
    return {
        "protocol": f"lofo:{family}",
        "split": f"leave_out_{family}_valfam_{val}_seed{seed}",
        "seed": seed,
        "archcast_val_mape": val_mape,
        "metrics": {"archcast": metrics, "gbm": metrics},
    }


def test_only_the_splits_both_runs_hold_are_compared() -> None:
    before = {
        "runs": [_job("rnn", 0, "densenet", 8.0, 60.0), _job("swin", 0, "rnn", 50.0, 32.0), _job("rnn", 1, "vit", 8.0, 58.0)]
    }
    after = {
        "runs": [_job("rnn", 0, "densenet", 7.0, 47.0), _job("swin", 0, "rnn", 49.0, 33.0), _job("vit", 0, "mnasnet", 9.0, 10.0)]
    }
    result = compare(before, after)
    assert (result["pairs"], result["seeds"], result["families"]) == (2, [0], ["rnn", "swin"])
    assert result["means"]["before"]["mape"] == pytest.approx(46.0)
    assert result["means"]["after"]["mape"] == pytest.approx(40.0)
    assert result["means"]["after"]["val_mape"] == pytest.approx(28.0)
    assert (result["better_val"], result["better_test"]) == (2, 1)
    text = markdown(result, ("a.json", "b.json"), "cmd")
    assert "| swin | 0 | rnn | 50.00 -> 49.00 | 32.00 -> 33.00 |" in text


def test_runs_without_a_shared_split_are_refused() -> None:
    with pytest.raises(SystemExit, match="share no"):
        compare({"runs": [_job("rnn", 0, "vit", 8.0, 60.0)]}, {"runs": [_job("rnn", 1, "vit", 8.0, 60.0)]})
