"""The few-shot split of the device-transfer benchmark: k networks, a fifth validating, the test networks untouched."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.onnx_latency_transfer import few_shot_epochs, few_shot_split
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


def test_few_shot_epochs_reach_the_step_floor() -> None:
    import random
    from types import SimpleNamespace

    from training.latency_trainer import LatencyTrainConfig, make_batches

    data = SimpleNamespace(lengths=np.full(150, 100))  # 100 tokens a network: max_batch (16) networks a batch
    cfg = LatencyTrainConfig(epochs=20)
    few = few_shot_split(_split(), 50, 0)  # 40 training networks: 3 batches an epoch
    batches = len(make_batches(few.train, data.lengths, cfg.max_tokens, cfg.max_batch, random.Random(0)))
    assert batches == 3
    assert few_shot_epochs(data, few, cfg, 0) == 20  # no floor: the full fine-tune's epochs
    assert few_shot_epochs(data, few, cfg, 300) == 100  # 100 epochs x 3 batches = 300 steps
    assert few_shot_epochs(data, few, cfg, 30) == 20  # 20 epochs already make 60 steps
