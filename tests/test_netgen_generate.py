"""The dataset generator end to end: specs are reproducible, runs resume without loss or duplicates, records parse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.onnx_graph import NetworkGraph
from training.latency_data import load_latency_dataset, random_topological_order
from training.netgen.files import GRAPHS, MEASUREMENTS, done_ids, read_graphs, read_jsonl
from training.netgen.generate import generate, network_spec
from training.netgen.measure import MeasureSettings

FAMILIES = ("squeezenet", "shufflenet")
FAST = MeasureSettings(warmup=1, min_runs=2, max_runs=3, min_time_s=0.0)


def test_specs_are_a_function_of_seed_and_index() -> None:
    assert network_spec(0, 5) == network_spec(0, 5)
    assert network_spec(0, 5) != network_spec(1, 5)
    assert network_spec(0, 3, FAMILIES).family == FAMILIES[1]


def test_generate_resumes_without_duplicates(tmp_path: Path) -> None:
    generate(tmp_path, 2, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    assert done_ids(tmp_path) == {0, 1}
    # simulate a kill in the middle of the next chunk: a half-written measurement line
    with (tmp_path / MEASUREMENTS).open("a") as handle:
        handle.write('{"id": 2, "fam')
    generate(tmp_path, 4, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    ids = [r["id"] for r in read_jsonl(tmp_path / MEASUREMENTS)]
    assert sorted(ids) == [0, 1, 2, 3]
    records = list(read_jsonl(tmp_path / MEASUREMENTS))
    for record in records:
        assert record["latency_ms"] == pytest.approx((record["a"]["min_ms"] + record["b"]["min_ms"]) / 2)
        assert record["spec"] == network_spec(0, record["id"], FAMILIES).spec
    graphs = read_graphs(tmp_path)
    assert set(graphs) == {0, 1, 2, 3} and (tmp_path / GRAPHS).exists()
    graph = NetworkGraph.from_dict(graphs[0])
    assert graph.totals()["flops"] == pytest.approx(records[0]["totals"]["flops"])
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["device"] == "cpu-ort-1t" and meta["families"] == list(FAMILIES)


def test_networks_whose_passes_disagree_are_measured_again_and_the_new_label_is_used(tmp_path: Path) -> None:
    from training.netgen.generate import discordant_ids

    generate(tmp_path, 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    lines = (tmp_path / MEASUREMENTS).read_text().splitlines()
    slow = json.loads(lines[2])  # a slow spell of the host during pass B of network 2
    slow["b"]["min_ms"] = 3 * slow["a"]["min_ms"]
    slow["latency_ms"] = (slow["a"]["min_ms"] + slow["b"]["min_ms"]) / 2
    lines[2] = json.dumps(slow)
    (tmp_path / MEASUREMENTS).write_text("\n".join(lines) + "\n")
    assert 2 in discordant_ids(tmp_path, 50.0)
    assert discordant_ids(tmp_path, 50.0, from_id=3) == [i for i in discordant_ids(tmp_path, 50.0) if i >= 3]
    graphs_before = (tmp_path / GRAPHS).read_bytes()
    generate(tmp_path, 0, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False, redo=[2])
    records = list(read_jsonl(tmp_path / MEASUREMENTS))
    assert [r["id"] for r in records] == [0, 1, 2, 3, 2] and records[-1]["redo"] is True
    assert (tmp_path / GRAPHS).read_bytes() == graphs_before
    data = load_latency_dataset(tmp_path, progress=False)
    assert data.latency_ms[list(data.ids).index(2)] == pytest.approx(records[-1]["latency_ms"])
    assert data.latency_ms[list(data.ids).index(2)] != pytest.approx(slow["latency_ms"])
    with pytest.raises(SystemExit, match="only measured networks"):
        generate(tmp_path, 0, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False, redo=[7])


def test_a_chunk_whose_anchors_drift_from_their_labels_is_not_kept(tmp_path: Path) -> None:
    """Anchors: earlier networks measured with every chunk. Labels made 10x too fast stand for a host that now runs
    +900 %: the chunk is refused, nothing is appended, and the run stops after ``max_refusals``."""
    generate(tmp_path, 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    honest = (tmp_path / MEASUREMENTS).read_text()
    fast = [json.loads(line) for line in honest.splitlines()]
    for record in fast:
        record["latency_ms"] /= 10
    (tmp_path / MEASUREMENTS).write_text("".join(json.dumps(r) + "\n" for r in fast))
    with pytest.raises(SystemExit, match="chunks in a row"):
        generate(tmp_path, 6, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False, anchors=2,
                 max_drift_pct=50.0, max_refusals=2, retry_wait_s=0.0)  # fmt: skip
    assert done_ids(tmp_path) == {0, 1, 2, 3}
    (tmp_path / MEASUREMENTS).write_text(honest)
    generate(tmp_path, 6, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False, anchors=2,
             max_drift_pct=1000.0, retry_wait_s=0.0)  # fmt: skip
    new = [r for r in read_jsonl(tmp_path / MEASUREMENTS) if r["id"] >= 4]
    assert [r["id"] for r in new] == [4, 5]
    for record in new:
        anchors = record["anchor_drift"]["ids"]
        assert len(anchors) == 2 and set(anchors) <= {0, 1, 2, 3}
        assert {FAMILIES[a % 2] for a in anchors} == set(FAMILIES)  # one anchor per family of the chunk
    assert len(load_latency_dataset(tmp_path, progress=False)) == 6


def test_dataset_loads_and_orders_are_topological(tmp_path: Path) -> None:
    import random

    generate(tmp_path, 2, seed=3, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    data = load_latency_dataset(tmp_path, progress=False)
    assert len(data) == 2 and set(data.families) <= set(FAMILIES)
    src, dst = data.edges[0]
    order = random_topological_order(data.nodes[0].shape[0], src, dst, random.Random(0))
    position = {node: k for k, node in enumerate(order.tolist())}
    assert sorted(order.tolist()) == list(range(data.nodes[0].shape[0]))
    assert all(position[s] < position[d] for s, d in zip(src.tolist(), dst.tolist(), strict=True))


def test_a_dataset_is_not_extended_or_remeasured_on_another_device(tmp_path: Path) -> None:
    from training.netgen.measure import device_mismatch, environment
    from training.netgen.remeasure import remeasure

    generate(tmp_path, 2, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert device_mismatch(meta) is None
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "cpu": "Some Other CPU"}))
    assert "Some Other CPU" in (device_mismatch(json.loads((tmp_path / "meta.json").read_text())) or "")
    with pytest.raises(SystemExit, match="cpu"):
        generate(tmp_path, 4, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    with pytest.raises(SystemExit, match="not a repeat measurement"):
        remeasure(tmp_path, 1)
    assert done_ids(tmp_path) == {0, 1}
    assert environment()["cpu"] != "Some Other CPU"
    # the same model name on another CPU generation (a VM may show only "AMD EPYC") is another device too
    other_generation = {**meta, "cpu_id": "family 1 model 1 stepping 1, sse4_2"}
    assert "cpu_id" in (device_mismatch(other_generation) or "")
    assert device_mismatch({k: v for k, v in meta.items() if k != "cpu_id"}) is None  # recorded before cpu_id existed


def test_remeasure_draws_the_same_earlier_networks_after_the_dataset_grew(tmp_path: Path) -> None:
    from training.netgen.remeasure import REMEASURE, remeasure

    generate(tmp_path, 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    summary = remeasure(tmp_path, 2, ids_below=3, file="later.jsonl")
    first = [r["id"] for r in read_jsonl(tmp_path / "later.jsonl")]
    assert len(first) == 2 and set(first) <= {0, 1, 2}
    assert summary["n"] == 2 and summary["median_abs_pct"] >= abs(summary["median_signed_pct"]) - 1e-9
    assert not (tmp_path / REMEASURE).exists()  # another file keeps the earlier re-measurement apart
    generate(tmp_path, 8, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    remeasure(tmp_path, 2, ids_below=3, file="later.jsonl")  # the same draw: nothing left to measure
    assert [r["id"] for r in read_jsonl(tmp_path / "later.jsonl")] == first


def test_remeasure_of_the_test_part_measures_only_the_in_domain_test_networks(tmp_path: Path) -> None:
    from training.latency_data import in_domain_split
    from training.netgen.remeasure import remeasure

    generate(tmp_path, 10, seed=0, chunk=10, settings=FAST, families=FAMILIES, progress=False)
    data = load_latency_dataset(tmp_path, progress=False)
    test_ids = set(data.ids[in_domain_split(data.families, 0).test].tolist())
    assert 0 < len(test_ids) < 10
    summary = remeasure(tmp_path, 10, file="test_part.jsonl", part="test")
    assert {r["id"] for r in read_jsonl(tmp_path / "test_part.jsonl")} == test_ids
    assert summary["n"] == len(test_ids)


def test_a_dataset_keeps_its_device_name(tmp_path: Path) -> None:
    generate(tmp_path, 2, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False, device="cpu-ort-1t-here")
    assert json.loads((tmp_path / "meta.json").read_text())["device"] == "cpu-ort-1t-here"
    with pytest.raises(SystemExit, match="cpu-ort-1t-here"):
        generate(tmp_path, 4, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False)
    generate(tmp_path, 4, seed=0, chunk=2, settings=FAST, families=FAMILIES, progress=False, device="cpu-ort-1t-here")
    assert done_ids(tmp_path) == {0, 1, 2, 3}


def test_the_real_world_benchmark_does_not_measure_on_another_device(tmp_path: Path) -> None:
    from benchmarks.onnx_realworld import main

    (tmp_path / "meta.json").write_text(json.dumps({"device": "cpu-ort-1t", "cpu": "Some Other CPU"}))
    with pytest.raises(SystemExit, match="cannot measure here: .*Some Other CPU.*--measured-from"):
        main(["--data", str(tmp_path)])


def test_a_run_fine_tunes_from_another_runs_weights(tmp_path: Path) -> None:
    """``LatencyTrainConfig.init`` starts training from a finished run's weights (with lr 0 they come out unchanged)."""
    import numpy as np
    import torch

    from training.latency_data import Split
    from training.latency_trainer import LatencyTrainConfig, train_latency

    generate(tmp_path / "data", 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    data = load_latency_dataset(tmp_path / "data", progress=False)
    split = Split("tiny", np.array([0, 1]), np.array([2]), np.array([3]))
    small = {"d_model": 8, "n_heads": 1, "n_layers": 1, "dropout": 0.0, "queries": [1]}
    first = LatencyTrainConfig(epochs=1, readout="additive", network=small, eval_every=1)
    train_latency(data, split, first, tmp_path / "first", progress=False)
    tuned = LatencyTrainConfig(epochs=1, lr=0.0, readout="additive", network=small, eval_every=1,
                               init=str(tmp_path / "first" / "best.pt"))  # fmt: skip
    train_latency(data, split, tuned, tmp_path / "tuned", progress=False)
    before, after = (torch.load(tmp_path / run / "best.pt") for run in ("first", "tuned"))
    assert before.keys() == after.keys() and all(torch.allclose(before[k], after[k]) for k in before)
    fresh = LatencyTrainConfig(epochs=1, lr=0.0, readout="additive", network=small, eval_every=1, seed=5)
    train_latency(data, split, fresh, tmp_path / "fresh", progress=False)
    assert not all(torch.allclose(before[k], v) for k, v in torch.load(tmp_path / "fresh" / "best.pt").items())


def test_the_real_world_benchmark_measures_every_network_once_per_pass() -> None:
    from benchmarks.onnx_realworld import measure_in_passes
    from tests.onnx_fixtures import attention_block, conv_net

    networks = {"conv": conv_net(1, 32).SerializeToString(), "attention": attention_block().SerializeToString()}
    passes = measure_in_passes(networks, passes=2, seed=0)
    assert set(passes) == {"conv", "attention"}
    assert all(len(times) == 2 and min(times) > 0 for times in passes.values())


def test_the_anchor_order_supervises_the_exported_order_and_adds_a_renumbered_twin(tmp_path: Path) -> None:
    """``ORDERS``: with the weights frozen (lr 0), ``anchor`` sees the same supervised loss as ``none`` (the exported
    order) plus a consistency term that is positive, because its twin is renumbered and the model reads positions."""
    import numpy as np

    from training.latency_data import Split
    from training.latency_trainer import ORDERS, LatencyTrainConfig, train_latency

    generate(tmp_path / "data", 4, seed=0, chunk=4, settings=FAST, families=FAMILIES, progress=False)
    data = load_latency_dataset(tmp_path / "data", progress=False)
    split = Split("tiny", np.array([0, 1, 2]), np.array([3]), np.array([3]))
    small = {"d_model": 8, "n_heads": 1, "n_layers": 1, "dropout": 0.0, "queries": [1]}
    losses = {}
    for order, overrides in ORDERS.items():
        cfg = LatencyTrainConfig(epochs=2, lr=0.0, pair_weight=0.0, network=small, eval_every=1, **overrides)
        train_latency(data, split, cfg, tmp_path / order, progress=False)
        losses[order] = [h["train_loss"] for h in json.loads((tmp_path / order / "history.json").read_text())]
    assert losses["anchor"][0] > losses["none"][0] + 1e-6
    assert losses["random"][0] != losses["anchor"][0]
    # random_then_exported: renumbered orders + twin in the first half of the epochs, then exactly "none"
    assert losses["random_then_exported"][0] == pytest.approx(losses["random"][0], rel=1e-6)
    assert losses["random_then_exported"][1] == pytest.approx(losses["none"][1], rel=1e-6)
    assert losses["random"][1] != pytest.approx(losses["none"][1], rel=1e-6)


def test_noise_floor_divides_fresh_values_by_the_hosts_speed_of_the_day(tmp_path: Path) -> None:
    from benchmarks.onnx_noise_floor import compare, fresh_values

    label = np.array([10.0, 20.0, 40.0, 5.0])
    # a host 2x slower on the day: three networks exactly 2x, one 2.2x (10 % slower than the rest)
    lines = [{"id": 100, "min_ms": 20.0}, {"id": 101, "min_ms": 40.0}, {"id": 102, "min_ms": 88.0}, {"id": 103, "min_ms": 10.0}]
    (tmp_path / "fresh.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    position = {100: 0, 101: 1, 102: 2, 103: 3}
    fresh, speed = fresh_values(tmp_path / "fresh.jsonl", position, label)
    assert speed == pytest.approx(2.0)
    assert fresh == pytest.approx({0: 10.0, 1: 20.0, 2: 44.0, 3: 5.0})
    pred = label * 1.05
    result = compare("fresh.jsonl", fresh, "2.000", label, np.zeros(4), pred, rows=np.array([1, 2]))
    assert result["rows"].tolist() == [1, 2]  # only rows of the scored part
    assert result["fresh_vs_label"] == pytest.approx([0.0, 10.0])
    assert result["predictor_vs_label"] == pytest.approx([5.0, 5.0])
    assert result["predictor_vs_fresh"] == pytest.approx([5.0, 100 * abs(42.0 / 44.0 - 1)])


def test_window_drift_puts_each_test_label_at_its_windows_speed_from_validation_networks_only() -> None:
    """Window 0 ran at the labels' speed, window 1 10 % slow; the predictor knows the true latency. Validation
    networks of a window give its speed; a test network in a window without enough of them stays uncorrected."""
    from benchmarks.onnx_noise_floor import window_drift

    true = np.array([10.0, 20.0, 30.0, 40.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    times = np.array([0, 10, 20, 30, 70, 80, 90, 100, 130], dtype=float)  # windows of 60 s: 0, 1, 2
    label = true * np.array([1, 1, 1, 1, 1.1, 1.1, 1.1, 1.1, 1.2])
    val, test = np.array([0, 1, 2, 4, 5, 6]), np.array([3, 7, 8])
    result = window_drift(true, label, times, val, test, window_s=60.0)
    assert result["windows"] == 2 and result["test_corrected"] == 2  # window 2 has no validation network
    errors = np.array([0.0, 0.0, 100 * (1 - 1 / 1.2)])
    assert result["corrected"]["mape"] == pytest.approx(errors.mean())
    assert result["window_speed_std_pct"] == pytest.approx(100 * np.std([0.0, np.log(1 / 1.1)]))
    assert window_drift(true, label, times, val, test, window_s=60.0, min_val=4)["test_corrected"] == 0


def test_anchor_drift_is_the_median_ratio_and_nan_when_no_anchor_was_measured() -> None:
    """A chunk whose anchors all failed to measure is unchecked: its drift is NaN, which the generator refuses."""
    from training.netgen.generate import anchor_drift

    labels = {1: {"latency_ms": 10.0}, 2: {"latency_ms": 20.0}, 3: {"latency_ms": 5.0}}
    measured = {1: {"latency_ms": 11.0}, 2: {"latency_ms": 24.0}, 3: {"error": "export failed"}}
    assert anchor_drift(measured, labels) == pytest.approx(15.0)  # median of +10 % and +20 %; the failure left out
    assert np.isnan(anchor_drift({3: {"error": "export failed"}}, labels))
    assert not abs(anchor_drift({}, labels)) <= 4.0  # the generator's keep condition
