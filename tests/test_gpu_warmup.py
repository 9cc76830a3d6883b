"""The GPU warm-up benchmark's summary: per-protocol medians, round-to-round noise and ratios to a dataset's labels."""

from __future__ import annotations

import pytest

from benchmarks.gpu_warmup import PROTOCOLS, markdown, parse_ids, summary


def network(short: float, sustained: float, again: float) -> dict:
    return {
        "clock_idle_mhz": 1980.0,
        "clock_busy_mhz": 1980.0,
        **{p: {"min_ms": v, "median_ms": v, "runs": 60} for p, v in zip(PROTOCOLS, (short, sustained, again), strict=True)},
    }


def test_summary_takes_the_better_round_and_compares_with_labels() -> None:
    rounds = [
        {"0": network(1.0, 0.9, 1.0), "1": network(2.0, 1.8, 2.2), "2": network(3.0, 3.0, 3.0)},
        {"0": network(1.1, 0.9, 1.0), "1": network(2.2, 1.8, 2.0)},  # network 2 missed round 2: left out
    ]
    report = {"meta": {"provider": "cuda", "command": "x"}, "rounds": rounds}
    labels = {"first": {0: 0.5, 1: 1.0}}
    result = summary(report, labels)
    assert result["networks"] == 2
    assert result["short"]["median_ms"] == pytest.approx(1.5)  # minima 1.0 and 2.0
    assert result["short"]["round_noise_pct"] == pytest.approx(100 * (0.1 / 1.05 + 0.2 / 2.1) / 2)
    assert result["sustained"]["vs_short"] == pytest.approx(0.9)
    assert result["short"]["ratio_to_first"] == pytest.approx(2.0)
    assert result["short"]["miss_after_scale_pct_first"] == pytest.approx(0.0)
    text = markdown(report, result)
    assert "| short | 1.500 | 1.000 |" in text and "ratio to first" in text


def test_ids_are_a_range() -> None:
    assert parse_ids("0-3") == [0, 1, 2, 3] and parse_ids("7") == [7]
