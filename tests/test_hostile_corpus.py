"""The hostile-input corpus (tests/hostile/corpus.json): every entry gets its expected 4xx status and error code, never a 500.

Entries run against the real app with the shipped predictors (model/predictors/). External-data entries also
check (audit hook) that no Python code opened /etc/passwd; the unit tests below prove with inotify, which sees opens
from C++ too, that ``parse_onnx`` refuses an unsafe external-data location before any access to the file, and that
inotify does see onnx's own external-data loader read it (positive control).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
from hostile.generators import constant_of_shape_model, external_constant_model, external_weight_model, small_conv_net
from hostile.runner import Clients, inotify_available, inotify_opens, load_corpus, send

from model.errors import ArchitectureError
from model.onnx_graph import parse_onnx

CORPUS = load_corpus()
needs_inotify = pytest.mark.skipif(not inotify_available(), reason="file-access checks use Linux inotify")


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    made = Clients()
    yield made
    made.close()


def test_corpus_is_big_and_well_formed() -> None:
    assert len(CORPUS) >= 22
    assert len({entry["name"] for entry in CORPUS}) == len(CORPUS)
    assert all(400 <= entry["expect_status"] < 500 for entry in CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_hostile_entry(clients: Clients, entry: dict[str, Any]) -> None:
    outcome = send(clients.get(entry.get("settings")), entry)
    assert outcome.status != 500
    assert (outcome.status, outcome.code) == (entry["expect_status"], entry["expect_code"]), outcome
    assert not outcome.opened, f"the service opened {outcome.opened}"
    if "max_seconds" in entry:
        assert outcome.seconds <= entry["max_seconds"], outcome
    if entry.get("stream"):
        assert outcome.bytes_read < outcome.bytes_sent, "the over-long body was read before it was refused"


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    path = tmp_path / "sentinel.bin"
    path.write_bytes(b"\0" * 4096)
    return path


def _relative_with_dotdot(target: Path) -> str:
    """A location from the current directory to ``target`` that climbs with '..' (how a traversal is spelled)."""
    return os.path.relpath(target, Path.cwd()) if ".." in os.path.relpath(target, Path.cwd()) else f"../{'../' * 8}{target}"


@needs_inotify
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "constant"])
def test_unsafe_external_data_is_refused_before_any_file_access(sentinel: Path, kind: str) -> None:
    location = _relative_with_dotdot(sentinel) if kind == "dotdot" else str(sentinel)
    model = external_constant_model(location) if kind == "constant" else external_weight_model(location)
    with inotify_opens(sentinel) as opened, pytest.raises(ArchitectureError) as info:
        parse_onnx(model.SerializeToString())
    assert info.value.code == "unsafe_external_data" and location[:50] in info.value.message
    assert opened == []


@needs_inotify
def test_inotify_sees_onnx_read_external_data(sentinel: Path) -> None:
    """Positive control: onnx's own external-data loader (C++ open) is seen by ``inotify_opens``."""
    tensor = external_weight_model(sentinel.name).graph.initializer[0]
    with inotify_opens(sentinel) as opened:
        onnx.external_data_helper.load_external_data_for_tensor(tensor, str(sentinel.parent))
    assert opened and len(tensor.raw_data) == 8 * 3 * 3 * 3 * 4


@needs_inotify
def test_benign_relative_external_initializer_is_accepted_and_not_read(sentinel: Path) -> None:
    model = external_weight_model(sentinel.name)  # relative, beside the model: accepted, weights never read
    cwd = Path.cwd()
    os.chdir(sentinel.parent)
    try:
        with inotify_opens(sentinel) as opened:
            graph = parse_onnx(model.SerializeToString())
    finally:
        os.chdir(cwd)
    assert opened == [] and graph.n == 3
    assert graph.totals()["params"] == parse_onnx(small_conv_net().SerializeToString()).totals()["params"]


def test_constant_of_shape_is_not_materialised_by_shape_inference() -> None:
    """A [6000, 6000] int64 ConstantOfShape (288 MB if filled) parses with its shape and without allocating it."""
    data = constant_of_shape_model(6000).SerializeToString()
    parse_onnx(small_conv_net().SerializeToString())  # imports and warms shape inference outside the measurement
    tracemalloc.start()
    try:
        graph = parse_onnx(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert graph.nodes[-1].output_shapes == ((6000, 6000),)
    assert len(data) < 200 and peak < 64 * 2**20, f"parsing allocated {peak / 2**20:.0f} MiB"


def test_parsing_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's symbolic inference saves sym_shape_infer_temp.onnx into the working directory when it cannot
    infer every shape (here: a Slice without its starts/ends inputs); the parser must not write anything."""
    model = small_conv_net()
    model.graph.node[2].op_type = "Slice"
    monkeypatch.chdir(tmp_path)
    graph = parse_onnx(model.SerializeToString())
    assert graph.n == 3 and list(tmp_path.iterdir()) == []
