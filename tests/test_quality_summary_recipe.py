"""The quality summary puts the node-sum recipe in ArchCast's column and derives its validation figures."""

from __future__ import annotations

from benchmarks.quality.summary import PLAIN_READOUT, validation_line, with_recipe


def test_with_recipe_moves_the_plain_readout_to_its_ablation_column() -> None:
    methods = {"archcast": (0.90, 0.01), "node_sum": (0.92, 0.01), "gbm_onehot": (0.91, 0.0)}
    swapped = with_recipe(methods, "node_sum")
    assert swapped["archcast"] == (0.92, 0.01) and swapped[PLAIN_READOUT] == (0.90, 0.01)
    assert "node_sum" not in swapped and swapped["gbm_onehot"] == (0.91, 0.0)
    assert with_recipe(methods, "archcast") is methods
    assert with_recipe({"archcast": (0.9, 0.0)}, "node_sum") == {"archcast": (0.9, 0.0)}  # recipe not run: unchanged


def test_validation_line_is_computed_from_the_recorded_scores() -> None:
    summary = {
        "archcast": {"900": {"val_scores": [0.80, 0.82]}, "20": {"val_scores": [0.5, 0.7]}},
        "node_sum": {"900": {"val_scores": [0.84, 0.86]}, "20": {"val_scores": [0.6, 0.8]}},
    }
    line = validation_line(summary, "node_sum")
    assert "20 / 900 cells" in line and "0.700 / 0.850 with the node-sum readout" in line and "0.600 / 0.810" in line
    del summary["archcast"]["900"]["val_scores"]  # an older results file without them: no line rather than a guess
    assert validation_line(summary, "node_sum") == ""
