"""The few-shot split of the device-transfer benchmark: k networks, a fifth validating, the test networks untouched."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.onnx_latency_transfer import few_shot_split
from training.latency_data import Split


def _split() -> Split:
    return Split("aligned", np.arange(0, 100), np.arange(100, 120), np.arange(120, 150))


@pytest.mark.parametrize("k", [10, 24, 50, 100])
def test_few_shot_split_draws_k_training_networks(k: int) -> None:
    split = _split()
    few = few_shot_split(split, k, seed=0)
    assert len(few.train) + len(few.val) == k
    assert len(few.val) == max(5, k // 5)
    assert not set(few.train) & set(few.val)
    assert set(few.train) | set(few.val) <= set(split.train)  # never a validation or test network of the full split
    assert np.array_equal(few.test, split.test)


def test_few_shot_split_depends_on_seed_and_is_reproducible() -> None:
    split = _split()
    assert np.array_equal(few_shot_split(split, 20, 1).train, few_shot_split(split, 20, 1).train)
    assert not np.array_equal(few_shot_split(split, 20, 1).train, few_shot_split(split, 20, 2).train)


@pytest.mark.parametrize("k", [9, 101])
def test_few_shot_split_refuses_k_outside_the_training_networks(k: int) -> None:
    with pytest.raises(SystemExit, match="--few-shot-tune"):
        few_shot_split(_split(), k, 0)
