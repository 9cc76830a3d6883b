"""The two-version breakdown: a version read from git serves as the shipped one does, and the report's table."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_fixtures import conv_net

from benchmarks.onnx_versions_breakdown import load_version, markdown
from model.card import PREDICTOR_DIR
from model.onnx_graph import ParseOptions, parse_onnx
from service.predictor import load_registry

NAME = "cpu-ort-1t-epyc-v1"


def test_a_version_read_from_git_predicts_as_the_committed_predictor(tmp_path: Path) -> None:
    shipped = load_registry(PREDICTOR_DIR, providers="cpu").networks.get(NAME)
    if shipped is None:
        pytest.skip(f"{NAME} is not shipped")
    from_git = load_version(NAME, "HEAD", tmp_path)
    graph = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=32))
    assert from_git.card.version == shipped.card.version
    assert from_git.run(graph) == pytest.approx(shipped.run(graph))


def test_table_names_both_versions_and_only_categories_that_carry_time() -> None:
    def version(ms: float, matrix: float, tiny: float) -> dict:
        return {"ms": ms, "categories_ms": {"matrix product": matrix, "pooling": tiny}}

    report = {
        "command": "python -m benchmarks.onnx_versions_breakdown --revs a b",
        "machine": "test",
        "versions": ["1.0.0 (a)", "1.1.0 (b)"],
        "networks": [{"network": "net", "nodes": 7, "weights_mb": 495.4, "measured_ms": 15.2,
                      "versions": {"1.0.0 (a)": version(16.67, 15.53, 0.1), "1.1.0 (b)": version(14.57, 13.56, 0.05)}}],
        "largest_weights_mb_in_data": {"text": 312.0, "vgg": 37.0},
    }  # fmt: skip
    text = markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| net |"))
    assert row == "| net | 7 | 495 | 15.20 | 16.67 | 14.57 | matrix product 15.53 -> 13.56 |"
    assert "1.0.0 (a) ms | 1.1.0 (b) ms" in text and "text 312, vgg 37" in text
