"""The training loaders of every space with real tables: NB201, HELP's FBNet / OFA, NASLib's NB101 / DARTS subsets."""

from __future__ import annotations

import numpy as np
import pytest

from model.canonical import canonicalize
from model.tables import data_dir
from training.data import load_dataset
from training.targets import FBNET_LATENCY_TARGETS, LATENCY_TARGETS, OFA_LATENCY_TARGETS, TARGET_GROUPS, TARGETS, space_of

pytestmark = pytest.mark.skipif(not (data_dir() / "nb201").is_dir(), reason=f"benchmark tables absent at {data_dir()}")


@pytest.mark.parametrize(
    ("targets", "count", "nodes"),
    [
        (("nb101_cifar10_val_acc",), 292, 7),  # NASLib's 500 specs prune to 292 distinct cells
        (("darts_cifar10_val_acc",), 725, 28),
        (FBNET_LATENCY_TARGETS, 5000, 24),
        (OFA_LATENCY_TARGETS, 5000, 23),
    ],
)
def test_every_space_loads_with_finite_positive_targets(targets: tuple[str, ...], count: int, nodes: int) -> None:
    data = load_dataset(list(targets))
    assert len(data.indices) == count == len(set(data.arch_strs))
    assert data.encoded.op_ids.shape == (count, nodes)
    assert np.all(np.isfinite(data.y)) and np.all(data.y > 0)
    keys = {canonicalize(g).key for g in data.graphs}
    assert len(keys) > 0.95 * count  # distinct architectures stay distinct after parsing


def test_latency_targets_cover_the_three_nb201_tables() -> None:
    tables = {TARGETS[t].table for t in LATENCY_TARGETS}
    assert tables == {"nb201/latency_help_ms.csv.gz", "nb201/latency_eagle_ms.csv.gz", "nb201/latency_nnmeter_ms.csv.gz"}
    data = load_dataset(list(TARGET_GROUPS["latency"]))
    present = np.isfinite(data.y).sum(axis=0)
    nnmeter = [present[i] for i, t in enumerate(data.target_names) if t.startswith("latency_nnmeter_")]
    assert min(nnmeter) >= 1999 and max(nnmeter) <= 2000  # nn-Meter labels 2,000 cells (one value missing)
    assert present.max() == 15625 and present.min() >= 1999


def test_targets_of_two_spaces_cannot_share_a_predictor() -> None:
    with pytest.raises(ValueError, match="several spaces"):
        space_of(["latency_pixel3_ms", "fbnet_latency_pixel3_ms"])
    assert space_of(["darts_cifar10_val_acc"]) == "darts"
