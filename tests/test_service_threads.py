"""onnxruntime intra-op threads: ``ort_threads=0`` means one worker's share of every CPU the process may use (affinity,
capped by a cgroup quota, divided by the worker processes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cpus import affinity_cpus, available_cpus, quota_cpus
from service.predictor import intra_op_threads, load_registry, load_service_registry, session_threads
from service.settings import Settings


def test_zero_threads_means_the_available_cpus(toy_predictors) -> None:
    registry = load_registry(toy_predictors[0], providers="cpu", threads=0)
    session = registry.predictors["toy-cell"].session
    assert session.get_session_options().intra_op_num_threads == available_cpus()
    assert intra_op_threads(0) == available_cpus() and intra_op_threads(3) == 3


def test_workers_share_the_cpus() -> None:
    cpus = available_cpus()
    assert intra_op_threads(0, workers=2) == max(1, cpus // 2)
    assert intra_op_threads(0, workers=cpus + 1) == 1  # never zero threads
    assert intra_op_threads(5, workers=64) == 5  # an explicit count is not divided


def test_service_sessions_get_one_workers_share(toy_predictors) -> None:
    cpus = available_cpus()
    for workers, expected in ((1, cpus), (cpus, 1), (64, 1)):
        settings = Settings(predictor_dir=toy_predictors[0], providers="cpu", workers=workers)
        assert session_threads(settings) == expected
        session = load_service_registry(settings).predictors["toy-cell"].session
        assert session.get_session_options().intra_op_num_threads == expected


def test_explicit_thread_count_is_kept(toy_predictors) -> None:
    registry = load_registry(toy_predictors[0], providers="cpu", threads=1)
    assert registry.predictors["toy-cell"].session.get_session_options().intra_op_num_threads == 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_affinity_count() -> None:
    assert affinity_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("content", "quota"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", None)],
)
def test_cgroup_quota(tmp_path: Path, content: str, quota: int | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content)
    assert quota_cpus(cpu_max) == quota
    expected = affinity_cpus() if quota is None else min(affinity_cpus(), quota)
    assert available_cpus(cpu_max) == expected


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert quota_cpus(tmp_path / "absent") is None
    assert available_cpus(tmp_path / "absent") == affinity_cpus()
