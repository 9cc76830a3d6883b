"""The GPU check's report: its pass rule, and the committed markdown is what the code renders from the committed JSON."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"


def test_a_row_passes_within_the_tolerance_absolute_or_relative() -> None:
    assert gpu_check.row_passes({"max_abs": 9e-5, "max_rel": 5e-3}, 1e-4)  # small values: absolute
    assert gpu_check.row_passes({"max_abs": 2.3e-4, "max_rel": 7e-6}, 1e-4)  # values of many ms: relative
    assert not gpu_check.row_passes({"max_abs": 2e-4, "max_rel": 2e-4}, 1e-4)


def test_committed_report_is_rendered_from_its_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = RESULTS / "gpu_check.json"
    if not source.exists():
        pytest.skip("no committed GPU check")
    copy = tmp_path / "gpu_check.json"
    shutil.copy(source, copy)
    monkeypatch.setattr(sys, "argv", ["gpu_check", "--render", str(copy)])
    gpu_check.main()
    assert (tmp_path / "gpu_check.md").read_text() == (RESULTS / "gpu_check.md").read_text()
    assert "CUDAExecutionProvider" in (tmp_path / "gpu_check.md").read_text()
