"""Combined datasets and speed correction: the union of parts reads as one dataset, a part's labels are multiplied by
the factor of the moment they were taken, and the factors come from re-measured samples of both parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.latency_data import load_latency_dataset
from training.netgen.combine import combine
from training.netgen.files import GRAPHS, MEASUREMENTS, META, append_lines, latest_records, read_graphs, read_jsonl
from training.netgen.generate import generate
from training.netgen.measure import MeasureSettings
from training.netgen.remeasure import remeasure
from training.netgen.speed import SPEED, fit_speed

FAMILIES = ("squeezenet", "shufflenet")
FAST = MeasureSettings(warmup=1, min_runs=2, max_runs=3, min_time_s=0.0)
DEVICE = {"device": "cpu-ort-1t", "cpu": "Test CPU", "cpu_id": "family 1", "onnxruntime": "1.0", "seed": 0,
          "measure": {"threads": 1}}  # fmt: skip


def record(i: int, latency: float, t: float) -> dict:
    one_pass = {"min_ms": latency, "median_ms": latency, "t": t}
    return {"id": i, "family": FAMILIES[i % 2], "latency_ms": latency, "a": one_pass, "b": dict(one_pass)}


def write_part(directory: Path, records: list[dict], meta: dict | None = None) -> Path:
    directory.mkdir(parents=True)
    (directory / META).write_text(json.dumps({**DEVICE, "families": list(FAMILIES), **(meta or {})}))
    (directory / MEASUREMENTS).write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def bins(*factors: tuple[float, float, float]) -> dict:
    return {"bins": [{"from_t": a, "to_t": b, "n": 10, "median_pct": 0.0, "factor": f} for a, b, f in factors]}


def test_a_combined_dataset_is_the_union_with_each_label_scaled_by_the_factor_of_its_moment(tmp_path: Path) -> None:
    first = write_part(tmp_path / "first", [record(0, 10.0, 0.0), record(1, 20.0, 5.0)])
    second = write_part(tmp_path / "second", [record(2, 10.0, 100.0), record(3, 10.0, 250.0), record(4, 10.0, 900.0)])
    (second / SPEED).write_text(json.dumps(bins((100.0, 200.0, 0.9), (200.0, 300.0, 0.95))))
    combine(tmp_path / "both", [(first, None), (second, SPEED)])
    records = latest_records(tmp_path / "both")
    assert sorted(records) == [0, 1, 2, 3, 4]
    assert records[0]["latency_ms"] == 10.0 and "speed_factor" not in records[0]  # the reference part is as measured
    assert records[2]["latency_ms"] == pytest.approx(9.0) and records[2]["measured_latency_ms"] == 10.0
    assert records[3]["latency_ms"] == pytest.approx(9.5) and records[3]["a"]["min_ms"] == pytest.approx(9.5)
    assert records[4]["speed_factor"] == 0.95  # after the last bin: the nearest bin's factor
    assert latest_records(second)[2]["latency_ms"] == 10.0  # the part itself is untouched
    meta = json.loads((tmp_path / "both" / META).read_text())
    assert meta["device"] == "cpu-ort-1t" and meta["parts"] == [{"path": "../first"}, {"path": "../second", "speed": SPEED}]


def test_combine_refuses_parts_of_other_devices_repeated_ids_and_missing_speed_files(tmp_path: Path) -> None:
    first = write_part(tmp_path / "first", [record(0, 10.0, 0.0)])
    other_cpu = write_part(tmp_path / "other", [record(1, 10.0, 0.0)], {"cpu": "Another CPU"})
    same_ids = write_part(tmp_path / "same", [record(0, 10.0, 0.0)])
    later = write_part(tmp_path / "later", [record(1, 10.0, 0.0)])
    with pytest.raises(SystemExit, match="cpu"):
        combine(tmp_path / "x", [(first, None), (other_cpu, None)])
    with pytest.raises(SystemExit, match="repeats ids"):
        combine(tmp_path / "x", [(first, None), (same_ids, None)])
    with pytest.raises(SystemExit, match="no speed file"):
        combine(tmp_path / "x", [(first, None), (later, SPEED)])
    assert not (tmp_path / "x").exists()


def test_the_speed_of_each_stretch_of_a_labelling_run_is_measured_against_the_reference(tmp_path: Path) -> None:
    # the reference's labels were taken at today's speed x 1.02; the part's first half at x 1.10, its second at x 1.02
    reference = write_part(tmp_path / "reference", [record(i, 10.0 + i, 0.0) for i in range(20)])
    part = write_part(tmp_path / "part", [record(100 + i, 5.0 + i, float(i)) for i in range(40)])
    now = {i: r["latency_ms"] / 1.02 for i, r in latest_records(reference).items()}
    (reference / "ref.jsonl").write_text("".join(json.dumps({"id": i, "min_ms": v}) + "\n" for i, v in now.items()))
    lines = [{"id": 100 + i, "min_ms": (5.0 + i) / (1.10 if i < 20 else 1.02)} for i in range(40)]
    (part / "sample.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    speed = fit_speed(part, ["sample.jsonl"], reference, ["ref.jsonl"], 2)
    assert [b["n"] for b in speed["bins"]] == [20, 20]
    assert speed["bins"][0]["factor"] == pytest.approx(1.02 / 1.10)
    assert speed["bins"][1]["factor"] == pytest.approx(1.0)
    assert speed["reference_median_drift_pct"][0] == pytest.approx(100 * np.log(1 / 1.02))


def test_training_reads_a_combined_dataset_and_the_generator_will_not_extend_it(tmp_path: Path) -> None:
    generate(tmp_path / "full", 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    meta = json.loads((tmp_path / "full" / META).read_text())
    graphs = read_graphs(tmp_path / "full")
    for name, ids in (("low", {0, 1}), ("high", {2, 3})):  # two parts of one measuring campaign
        (tmp_path / name).mkdir()
        (tmp_path / name / META).write_text(json.dumps(meta))
        lines = [json.dumps(r) for r in read_jsonl(tmp_path / "full" / MEASUREMENTS) if r["id"] in ids]
        append_lines(tmp_path / name / MEASUREMENTS, lines)
        append_lines(tmp_path / name / GRAPHS, [json.dumps({"id": i, "graph": graphs[i]}) for i in sorted(ids)], compress=True)
    times = [(r["a"]["t"] + r["b"]["t"]) / 2 for r in latest_records(tmp_path / "high").values()]
    (tmp_path / "high" / SPEED).write_text(json.dumps(bins((min(times), max(times), 0.5))))
    combine(tmp_path / "both", [(tmp_path / "low", None), (tmp_path / "high", SPEED)])
    whole, both = load_latency_dataset(tmp_path / "full", progress=False), load_latency_dataset(tmp_path / "both", progress=False)
    assert both.ids.tolist() == [0, 1, 2, 3] and len(both.graphs) == 4
    np.testing.assert_allclose(both.latency_ms, whole.latency_ms * np.array([1, 1, 0.5, 0.5]))
    np.testing.assert_allclose(both.features, whole.features)
    with pytest.raises(SystemExit, match="combines other datasets"):
        generate(tmp_path / "both", 6, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    # one sitting over both parts: one network of each, each part's line also written to its own folder
    remeasure(tmp_path / "both", count=0, file="sitting.jsonl", per_part=1)
    sitting = [int(line["id"]) for line in read_jsonl(tmp_path / "both" / "sitting.jsonl")]
    assert len(sitting) == 2 and {i // 2 for i in sitting} == {0, 1}
    for name in ("low", "high"):
        (line,) = read_jsonl(tmp_path / name / "sitting.jsonl")
        assert line["id"] in sitting and line["id"] in latest_records(tmp_path / name) and line["min_ms"] > 0
