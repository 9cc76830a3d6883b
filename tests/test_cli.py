"""``archcast rank`` and ``archcast predict``: in-process with the shipped predictor, and through a REAL server (--url)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from live_server import LiveServer

from archcast.cli import main
from model.card import PREDICTOR_DIR
from model.parsers import NB201_OPS, nb201_arch_str
from service.app import create_app
from service.local import predict_local_many
from service.settings import Settings

SHIPPED = sorted(PREDICTOR_DIR.glob("*.card.json"))
needs_shipped = pytest.mark.skipif(not SHIPPED, reason=f"no shipped predictor: {PREDICTOR_DIR}/*.card.json is absent")
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def cells(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, size=6)]) for _ in range(count)))


def write_jsonl(path: Path, archs: list[str]) -> Path:
    """The cells in every accepted line form: bare string, JSON string, JSON object; plus a comment and a blank line."""
    lines = ["# candidates", ""]
    for i, arch in enumerate(archs):
        lines.append([arch, json.dumps(arch), json.dumps({"space": "nb201", "arch": arch})][i % 3])
    path.write_text("\n".join(lines) + "\n")
    return path


def table_rows(output: str) -> list[list[str]]:
    header, *rows = output.strip().splitlines()
    assert header.split() == ["rank", header.split()[1], "key", "architecture"]
    return [row.split() for row in rows]


@pytest.fixture(scope="module")
def toy_server(toy_predictors) -> Iterator[LiveServer]:
    with LiveServer(create_app(Settings(predictor_dir=toy_predictors[0], providers="cpu"))) as live:
        yield live


@needs_shipped
def test_rank_in_process_with_the_shipped_predictor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archs = cells(12, seed=1)
    path = write_jsonl(tmp_path / "cells.jsonl", archs)
    assert main(["rank", str(path), "--target", "cifar10_test_acc", "--top", "4"]) == 0
    rows = table_rows(capsys.readouterr().out)
    expected = predict_local_many([{"space": "nb201", "arch": a} for a in archs], ["cifar10_test_acc"])["results"]
    values = [r["predictions"]["cifar10_test_acc"]["value"] for r in expected]
    best = sorted(range(len(archs)), key=lambda i: -values[i])[:4]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert [row[4] for row in rows] == [archs[i] for i in best]
    assert [row[3] for row in rows] == [expected[i]["key"] for i in best]
    assert [row[1:3] for row in rows] == [[f"{values[i]:.2f}", "%"] for i in best]

    assert main(["rank", str(path), "--target", "latency_pixel3_ms", "--top", "2", "--ascending"]) == 0
    fastest = table_rows(capsys.readouterr().out)
    latencies = predict_local_many([{"space": "nb201", "arch": a} for a in archs], ["latency_pixel3_ms"])["results"]
    order = sorted(range(len(archs)), key=lambda i: latencies[i]["predictions"]["latency_pixel3_ms"]["value"])[:2]
    assert [row[4] for row in fastest] == [archs[i] for i in order] and fastest[0][2] == "ms"


@needs_shipped
def test_predict_in_process_with_the_shipped_predictor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", ARCH, "--targets", "cifar10_test_acc"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert list(body["results"][0]["predictions"]) == ["cifar10_test_acc"]


def test_rank_through_the_service(toy_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archs = cells(9, seed=2)
    path = write_jsonl(tmp_path / "cells.jsonl", archs)
    assert main(["rank", str(path), "--url", toy_server.url, "--target", "gpu_latency", "--top", "3", "--ascending"]) == 0
    rows = table_rows(capsys.readouterr().out)
    settings = Settings(predictor_dir=toy_server.app.state.settings.predictor_dir, providers="cpu")
    local = predict_local_many([{"space": "nb201", "arch": a} for a in archs], ["gpu_latency"], settings=settings)["results"]
    order = sorted(range(len(archs)), key=lambda i: local[i]["predictions"]["gpu_latency"]["value"])[:3]
    assert [row[4] for row in rows] == [archs[i] for i in order]
    assert [row[2] for row in rows] == ["ms"] * 3


def test_predict_through_the_service(toy_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", ARCH, "--url", toy_server.url, "--targets", "gpu_latency"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["predictor"] == "toy-cell" and list(body["results"][0]["predictions"]) == ["gpu_latency"]
    assert main(["predict", ARCH, "--url", toy_server.url, "--targets", "nope"]) == 2
    assert "error: unknown_target:" in capsys.readouterr().err


def test_rank_errors_name_the_line(toy_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"# header\n{ARCH}\n|bad~0|\n")
    assert main(["rank", str(path), "--url", toy_server.url]) == 2
    err = capsys.readouterr().err
    assert "line 3 (architectures.1)" in err and "bad_arch_string" in err
    path.write_text(f"{ARCH}\n{{not json\n")
    assert main(["rank", str(path), "--url", toy_server.url]) == 2
    assert f"{path}:2: not valid JSON" in capsys.readouterr().err
    path.write_text("# nothing\n")
    assert main(["rank", str(path), "--url", toy_server.url]) == 2
    assert "no architectures" in capsys.readouterr().err
