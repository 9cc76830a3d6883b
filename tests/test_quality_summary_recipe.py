"""The quality summary puts the node-sum recipe in ArchCast's column and derives its validation figures."""

from __future__ import annotations

from benchmarks.quality.sample_sizes import TASKS
from benchmarks.quality.summary import NO_AUG, OTHER_CANDIDATE, PLAIN_READOUT, validation_line, with_recipe


def test_with_recipe_moves_the_plain_readout_to_its_ablation_column() -> None:
    methods = {"archcast": (0.90, 0.01), "node_sum": (0.92, 0.01), "gbm_onehot": (0.91, 0.0)}
    swapped = with_recipe(methods, "node_sum")
    assert swapped["archcast"] == (0.92, 0.01) and swapped[PLAIN_READOUT] == (0.90, 0.01)
    assert "node_sum" not in swapped and swapped["gbm_onehot"] == (0.91, 0.0)
    assert with_recipe(methods, "archcast") is methods
    assert with_recipe({"archcast": (0.9, 0.0)}, "node_sum") == {"archcast": (0.9, 0.0)}  # recipe not run: unchanged
    both = {**methods, "node_sum_huber": (0.93, 0.01)}
    chose_huber = with_recipe(both, "node_sum_huber", ("node_sum", "node_sum_huber"))
    assert chose_huber["archcast"] == (0.93, 0.01) and chose_huber[OTHER_CANDIDATE] == (0.92, 0.01)
    assert chose_huber[PLAIN_READOUT] == (0.90, 0.01) and not {"node_sum", "node_sum_huber"} & set(chose_huber)
    chose_squared = with_recipe(both, "node_sum", ("node_sum", "node_sum_huber"))
    assert chose_squared["archcast"] == (0.92, 0.01) and chose_squared[OTHER_CANDIDATE] == (0.93, 0.01)


def test_validation_line_is_computed_from_the_recorded_scores() -> None:
    summary = {
        "archcast": {"900": {"val_scores": [0.80, 0.82]}, "20": {"val_scores": [0.5, 0.7]}},
        "node_sum": {"900": {"val_scores": [0.84, 0.86]}, "20": {"val_scores": [0.6, 0.8]}},
    }
    line = validation_line(summary, ("node_sum", "node_sum_huber"))  # a candidate not run is left out
    assert "20 / 900 cells" in line and "`node_sum` 0.7000 / 0.8500" in line and "`archcast` 0.6000 / 0.8100" in line
    assert "huber" not in line
    del summary["archcast"]["900"]["val_scores"]  # an older results file without them: no line rather than a guess
    assert validation_line(summary, ("node_sum",)) == ""


def test_with_recipe_on_the_accuracy_candidates_shows_each_recipe_with_its_own_ablation() -> None:
    methods = {
        "archcast": (0.90, 0.01), "no_aug_no_consistency": (0.89, 0.01), "node_sum_huber": (0.92, 0.01),
        "node_sum_huber_no_aug": (0.91, 0.01), "gbm_onehot": (0.85, 0.0), "no_pretraining": (0.88, 0.0),
    }  # fmt: skip
    candidates = ("archcast", "node_sum_huber")
    huber = with_recipe(methods, "node_sum_huber", candidates)
    assert huber == {
        "archcast": (0.92, 0.01), OTHER_CANDIDATE: (0.90, 0.01), NO_AUG: (0.91, 0.01),
        "gbm_onehot": (0.85, 0.0), "no_pretraining": (0.88, 0.0),
    }  # fmt: skip
    plain = with_recipe(methods, "archcast", candidates)  # the Huber recipe's own ablation leaves the row
    assert plain == {
        "archcast": (0.90, 0.01), OTHER_CANDIDATE: (0.92, 0.01), NO_AUG: (0.89, 0.01),
        "gbm_onehot": (0.85, 0.0), "no_pretraining": (0.88, 0.0),
    }  # fmt: skip
    old_file = {m: v for m, v in methods.items() if m not in ("node_sum_huber", "node_sum_huber_no_aug")}
    assert with_recipe(old_file, "archcast", candidates) is old_file


def test_the_other_candidate_is_shown_but_the_ahead_column_counts_baselines_and_ablations_only() -> None:
    from benchmarks.quality.summary import _row

    row = _row("t", {"archcast": (0.90, 0.0), OTHER_CANDIDATE: (0.91, 0.0), NO_AUG: (0.89, 0.0), "gbm_onehot": (0.8, 0.0)})
    assert "0.910 ± 0.000" in row and row.split(" | ")[-2] == "yes"
    row = _row("t", {"archcast": (0.90, 0.0), OTHER_CANDIDATE: (0.91, 0.0), NO_AUG: (0.92, 0.0), "gbm_onehot": (0.8, 0.0)})
    assert row.split(" | ")[-2] == "no"  # its own ablation ahead


def test_a_run_of_the_recipe_and_its_ablation_alone_renders() -> None:
    """The 100-epoch accuracy runs hold node_sum_huber, its run without augmentation and the baselines, no archcast."""
    from benchmarks.quality.sample_sizes import markdown

    def result(tau: float) -> dict:
        scores = {"kendall_tau": [tau, 0.001], "spearman": [tau, 0.001], "acc10": [90.0, 1.0], "mape": [2.0, 0.1]}
        return {"targets": {t: scores for t in TASKS["accuracy"]["targets"]}, "train_seconds": [1.0], "val_scores": [tau]}

    summary = {"node_sum_huber": {"7813": result(0.93)}, "node_sum_huber_no_aug": {"7813": result(0.92)},
               "gbm_onehot": {"7813": result(0.88)}}  # fmt: skip
    methods = with_recipe({m: v["7813"]["targets"]["cifar10_test_acc"]["kendall_tau"] for m, v in summary.items()},
                          "node_sum_huber", ("node_sum_huber",))  # fmt: skip
    assert methods == {"archcast": [0.93, 0.001], NO_AUG: [0.92, 0.001], "gbm_onehot": [0.88, 0.001]}
    text = markdown("accuracy", summary, {"machine": "m", "command": "c", "seeds": [0], "steps": 6200})
    assert "## Kendall tau, 7813 training cells" in text and "| node_sum_huber | node_sum_huber_no_aug |" in text


def test_shipped_choice_line_names_every_candidate_from_the_card() -> None:
    import json

    from benchmarks.quality.summary import shipped_choice_line
    from model.card import PREDICTOR_DIR

    card = json.loads((PREDICTOR_DIR / "nb201-v1.card.json").read_text())
    line = shipped_choice_line("nb201-v1")
    assert card["version"] in line
    for candidate in card["training"]["selected_on_validation"]:
        assert f"`{candidate['run']}` {candidate['best_val_score']:.4f}" in line
    assert shipped_choice_line("no-such-predictor") == ""
