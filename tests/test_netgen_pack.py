"""Measurement packs: weight-free ONNX files that another machine measures without torch, then a dataset again."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from training.latency_data import load_latency_dataset
from training.netgen.export import export_spec
from training.netgen.files import MEASUREMENTS, read_graphs, read_jsonl
from training.netgen.generate import generate, network_spec
from training.netgen.measure import MeasureSettings, make_session
from training.netgen.pack import assemble, export_pack, measure_pack, restore_weights, strip_weights

FAMILIES = ("squeezenet", "vit")
FAST = MeasureSettings(warmup=1, min_runs=2, max_runs=3, min_time_s=0.0)


def test_strip_keeps_integer_constants_and_restore_refills_float_weights() -> None:
    vit = network_spec(0, 1, FAMILIES)  # integer constants (Reshape shapes) and float weights
    data = export_spec(vit.family, vit.spec)
    light = strip_weights(data)
    assert len(light) < len(data) / 5
    model = onnx.load_from_string(light)
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    ints = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT64]
    assert floats and all(not t.raw_data and not t.float_data for t in floats)
    assert all(t.raw_data or t.int64_data for t in ints)  # shape constants survive
    restored = onnx.load_from_string(restore_weights(light))
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer}
    for tensor in restored.graph.initializer:
        values = numpy_helper.to_array(tensor)
        assert values.shape == original[tensor.name].shape and values.dtype == original[tensor.name].dtype
        if tensor.data_type == onnx.TensorProto.INT64:
            assert np.array_equal(values, original[tensor.name])
    session = make_session(restore_weights(light))  # runs like the original
    size = int(vit.spec["resolution"])
    (out,) = session.run(None, {"input": np.zeros((1, 3, size, size), np.float32)})
    assert out.shape == (1, int(vit.spec["num_classes"])) and np.isfinite(out).all()


def test_a_cuda_measurement_never_falls_back_to_cpu_silently() -> None:
    squeeze = network_spec(0, 0, FAMILIES)
    data = restore_weights(strip_weights(export_spec(squeeze.family, squeeze.spec)))
    try:
        session = make_session(data, provider="cuda")
    except Exception as exc:  # noqa: BLE001 - no GPU here: onnxruntime refuses, or we refuse its CPU fallback
        assert "CUDA" in str(exc)
    else:
        assert session.get_providers()[0] == "CUDAExecutionProvider"


def test_pack_round_trip_measures_and_assembles_a_dataset(tmp_path: Path) -> None:
    source = tmp_path / "source"
    generate(source, 2, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    extension = {"from_id": 2, "families": ["rnn", "text"]}  # sequence models: token-id or feature inputs
    generate(source, 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False, extension=extension)
    pack = tmp_path / "pack.tar.xz"
    assert export_pack(source, 3, pack) == 3
    with tarfile.open(pack, "r:xz") as tar:
        assert sorted(m.name for m in tar.getmembers()) == ["0.onnx", "1.onnx", "2.onnx", "index.json"]
    measured = tmp_path / "measured"
    assert measure_pack(pack, measured, "cpu-other", FAST, chunk=2) == 3
    assert measure_pack(pack, measured, "cpu-other", FAST, chunk=2) == 3  # resumed: nothing measured twice
    records = list(read_jsonl(measured / MEASUREMENTS))
    assert [r["id"] for r in records] == [0, 1, 2]
    sources = {r["id"]: r for r in read_jsonl(source / MEASUREMENTS)}
    for record in records:
        assert record["latency_ms"] == pytest.approx((record["a"]["min_ms"] + record["b"]["min_ms"]) / 2)
        assert record["spec"] == sources[record["id"]]["spec"] and record["family"] == sources[record["id"]]["family"]
    meta = json.loads((measured / "meta.json").read_text())
    assert meta["device"] == "cpu-other" and meta["seed"] == 0 and meta["families"] == list(FAMILIES)
    assert meta["extensions"] == [extension] and records[2]["family"] == "rnn"
    out = tmp_path / "dataset"
    assert assemble(measured, source, out) == 3
    assert set(read_graphs(out)) == {0, 1, 2}
    data = load_latency_dataset(out, progress=False)
    assert len(data) == 3


def test_measure_pack_stops_at_its_budget(tmp_path: Path) -> None:
    source = tmp_path / "source"
    generate(source, 4, seed=1, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    pack = tmp_path / "pack.tar.xz"
    export_pack(source, 4, pack)
    done = measure_pack(pack, tmp_path / "measured", "cpu-other", FAST, chunk=1, budget_s=0.0)
    assert done == 1  # the first chunk always runs; the next would overrun a zero budget
