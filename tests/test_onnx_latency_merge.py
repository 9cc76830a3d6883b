"""``benchmarks.onnx_latency --merge``: reports of one protocol with different seeds joined into one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.onnx_latency import main, merge_reports

METHODS = ["archcast", "gbm"]


TRUE_MS = [1.0, 2.0, 4.0]


def report(
    seed: int, mapes: dict[str, float], machine: str, readout: str = "additive", preds: list[float] | None = None
) -> dict:
    runs = [
        {
            "protocol": f"lofo:{family}",
            "split": f"leave_out_{family}_seed{seed}",
            "seed": seed,
            "sizes": {"train": 8, "val": 2, "test": 2},
            "archcast_train_seconds": 1.0,
            "archcast_best_epoch": 1,
            "archcast_val_mape": 1.0,
            "metrics": {m: {"mape": mape * (2 if m == "gbm" else 1), "acc10": 50.0, "spearman": 0.9} for m in METHODS},
            **({"archcast_test_pred_ms": preds, "test_true_ms": TRUE_MS} if preds is not None else {}),
        }
        for family, mape in mapes.items()
    ]
    return {
        "command": f"python -m benchmarks.onnx_latency --seeds {seed}",
        "machine": machine,
        "measured_on": "cpu",
        "device": "cpu-ort-1t",
        "readout": readout,
        "order": "random",
        "methods": METHODS,
        "network": {"d_model": 32},
        "weight_decay": 0.01,
        "train_fraction": 1.0,
        "in_domain_split": "in_domain_seed0",
        "lofo_validation": "one other whole family",
        "dataset": {"networks": 20, "families": {"a": 10, "b": 10}},
        "ids_below": None,
        "noise_floor": {"median_abs_pct": 2.0, "p90_abs_pct": 5.0, "per_family": {"a": 2.0, "b": 2.0}},
        "seconds": 60.0,
        "runs": runs,
        "lofo_ensemble": {"a": {"mape": 1.0}},
    }


def test_merge_joins_seeds_and_names_each_machine(tmp_path: Path) -> None:
    paths = []
    for seed, mapes, machine in ((0, {"a": 10.0, "b": 20.0}, "EPYC"), (1, {"a": 12.0, "b": 30.0}, "Xeon")):
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps(report(seed, mapes, machine)))
    merged = merge_reports(paths, "merge")
    assert merged["lofo"]["a"]["archcast"]["mape"] == {"mean": 11.0, "std": 1.0, "n": 2}
    assert merged["lofo"]["b"]["gbm"]["mape"]["mean"] == pytest.approx(50.0)
    assert merged["lofo_average"]["archcast"]["mape"] == pytest.approx((11.0 + 25.0) / 2)
    assert merged["machine"] == "EPYC; Xeon" and "seeds [1] on Xeon" in merged["note"]
    assert "lofo_ensemble" not in merged  # no predictions kept: dropped, not carried over stale
    main(["--merge", *map(str, paths), "--out", str(tmp_path / "merged"), "--runs", str(tmp_path / "runs")])
    text = (tmp_path / "merged.md").read_text()
    assert "| a | 11.0 ± 1.0 (0.900)" in text and "Merged (`--merge`)" in text


def test_merge_refuses_other_protocols_and_repeated_seeds(tmp_path: Path) -> None:
    one, other, again = tmp_path / "1.json", tmp_path / "2.json", tmp_path / "3.json"
    one.write_text(json.dumps(report(0, {"a": 1.0}, "x")))
    other.write_text(json.dumps(report(1, {"a": 1.0}, "x", readout="contextual")))
    again.write_text(json.dumps(report(0, {"a": 2.0}, "y")))
    with pytest.raises(SystemExit, match="differs .* in readout"):
        merge_reports([one, other], "merge")
    with pytest.raises(SystemExit, match="lofo:a seed 0 is in two reports"):
        merge_reports([one, again], "merge")


def test_merge_recomputes_seed_ensembles_from_kept_predictions(tmp_path: Path) -> None:
    """Two seeds at -50 % and +100 % on every network: their geometric mean is exact, MAPE 0."""
    low, high = tmp_path / "low.json", tmp_path / "high.json"
    low.write_text(json.dumps(report(0, {"a": 50.0, "b": 50.0}, "x", preds=[t / 2 for t in TRUE_MS])))
    high.write_text(json.dumps(report(1, {"a": 100.0, "b": 100.0}, "x", preds=[t * 2 for t in TRUE_MS])))
    merged = merge_reports([low, high], "merge")
    assert set(merged["lofo_ensemble"]) == {"a", "b"}
    assert merged["lofo_ensemble"]["a"]["mape"] == pytest.approx(0.0)
    assert merged["lofo_ensemble_average"]["acc10"] == pytest.approx(100.0)
    old = tmp_path / "old.json"  # a report from before predictions were kept: no ensemble over part of the seeds
    old.write_text(json.dumps(report(2, {"a": 1.0, "b": 1.0}, "y")))
    assert "lofo_ensemble" not in merge_reports([low, high, old], "merge")
    assert "lofo_ensemble" not in merge_reports([low], "merge")  # one seed is not an ensemble
