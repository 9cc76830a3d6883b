"""onnxruntime intra-op threads: ``ort_threads=0`` means one worker's share of every CPU the process may use (affinity,
capped by a cgroup quota, divided by the worker processes); small batches run on a single-threaded twin session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.parsers.nb201 import NB201_OPS, nb201_arch_str, parse_nb201
from model.tokenizer import tokenize_graphs
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


class CountingSession:
    """Wraps a real onnxruntime session and counts its runs."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.runs = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return self.session.run(*args, **kwargs)


def nb201_graphs(count: int) -> list:
    rng = np.random.default_rng(count)
    return [parse_nb201(nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)])) for _ in range(count)]


def test_small_batches_run_on_a_single_threaded_twin(toy_predictors) -> None:
    predictor = load_registry(toy_predictors[0], providers="cpu", threads=2, small_batch=4).predictors["toy-cell"]
    assert predictor.small_session is not None
    assert predictor.small_session.get_session_options().intra_op_num_threads == 1
    assert predictor.session.get_session_options().intra_op_num_threads == 2
    small, large = CountingSession(predictor.small_session), CountingSession(predictor.session)
    predictor.small_session, predictor.session = small, large
    few, many = tokenize_graphs(nb201_graphs(4)), tokenize_graphs(nb201_graphs(5))
    predictor.run(few)
    assert (small.runs, large.runs) == (1, 0)
    predictor.run(many)
    assert (small.runs, large.runs) == (1, 1)
    # both sessions hold the same graph: the same answers
    feeds = {"tokens": few.tokens, "mask": few.mask, "depth": few.depth}
    np.testing.assert_allclose(small.session.run(None, feeds)[0], large.session.run(None, feeds)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("threads", "small_batch"), [(1, 16), (2, 0)])
def test_no_twin_where_it_would_not_differ(toy_predictors, threads: int, small_batch: int) -> None:
    registry = load_registry(toy_predictors[0], providers="cpu", threads=threads, small_batch=small_batch)
    assert registry.predictors["toy-cell"].small_session is None


def test_service_setting_reaches_the_predictors(toy_predictors) -> None:
    settings = Settings(predictor_dir=toy_predictors[0], providers="cpu", ort_threads=2, ort_small_batch=8)
    predictor = load_service_registry(settings).predictors["toy-cell"]
    assert predictor.small_batch == 8 and predictor.small_session is not None
    off = load_service_registry(Settings(predictor_dir=toy_predictors[0], providers="cpu", ort_threads=2, ort_small_batch=0))
    assert off.predictors["toy-cell"].small_session is None


def test_multi_threaded_sessions_stop_spinning_when_a_run_returns(toy_predictors) -> None:
    """Left spinning, a session's threads hold the cores after its run and slow the next session's run."""
    predictor = load_registry(toy_predictors[0], "cpu", 2, 16).predictors["toy-cell"]
    options = predictor.session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.get_session_config_entry("session.force_spinning_stop") == "1"
    single = load_registry(toy_predictors[0], "cpu", 1).predictors["toy-cell"].session.get_session_options()
    with pytest.raises(RuntimeError):  # one thread: nothing spins beside the run, the entry is not set
        single.get_session_config_entry("session.force_spinning_stop")
