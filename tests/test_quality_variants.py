"""The quality benchmark's variants turn into the training configurations they name."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the quality benchmarks need the 'train' extra (torch)")

from benchmarks.quality.sample_sizes import NETWORK, TASKS, recipe_of, train_config, variant_config  # noqa: E402
from training.network import FusionTransformer  # noqa: E402


def test_node_sum_variant_is_archcast_with_the_node_sum_readout_and_the_latency_recipe() -> None:
    task = TASKS["latency_pretraining"]
    assert "node_sum" in task["variants"] and task["recipe"] == ("node_sum", "node_sum_huber")
    assert "default_variants" not in task  # a run from scratch trains the recipe and its ablations
    assert "node_sum" not in TASKS["accuracy"]["default_variants"]  # screened there, run only when named
    assert recipe_of("latency_pretraining", {"archcast": {"900": {}}, "node_sum": {"900": {}}}, "900") == "node_sum"
    assert recipe_of("latency_pretraining", {"archcast": {"900": {}}}, "900") == "archcast"  # an older results file
    assert recipe_of("accuracy", {"archcast": {"900": {}}, "node_sum": {"900": {}}}, "900") == "archcast"
    plain = train_config("latency_pretraining", 900, 0, 2000, "runs/x", task["variants"]["archcast"])
    summed = train_config("latency_pretraining", 900, 0, 2000, "runs/x", task["variants"]["node_sum"])
    assert plain.network == NETWORK and summed.network == {**NETWORK, "node_sum": True}
    assert {k: v for k, v in vars(summed).items() if k != "network"} == {k: v for k, v in vars(plain).items() if k != "network"}
    assert hasattr(FusionTransformer(summed.network_config()), "node_head")
    assert not hasattr(FusionTransformer(plain.network_config()), "node_head")
    assert NETWORK == {"d_model": 96, "n_layers": 3}  # the shared dict is not changed by a variant


def test_variant_config_serves_the_small_subsets_with_their_own_split_and_encoder() -> None:
    variant = TASKS["latency_pretraining"]["variants"]["node_sum"]
    cfg = variant_config(["darts_cifar10_val_acc"], Path("s.json"), 435, 1, 1000, Path("enc.pt"), variant)
    assert cfg.targets == ["darts_cifar10_val_acc"] and cfg.split == "s.json" and cfg.seed == 1
    assert cfg.pretrained == "enc.pt" and cfg.network == {**NETWORK, "node_sum": True}
    assert cfg.augment and cfg.augment_until == 0.5 and cfg.threads == 1
    plain = variant_config(["t"], Path("s.json"), 435, 1, 1000, Path("enc.pt"), TASKS["accuracy"]["variants"]["no_pretraining"])
    assert plain.pretrained is None and plain.network == NETWORK


def test_the_recipe_of_each_size_is_the_candidate_validation_prefers() -> None:
    summary = {
        "archcast": {"20": {"val_scores": [0.9]}, "900": {"val_scores": [0.9]}},
        "node_sum": {"20": {"val_scores": [0.70, 0.80]}, "900": {"val_scores": [0.89, 0.90]}},
        "node_sum_huber": {"20": {"val_scores": [0.80, 0.80]}, "900": {"val_scores": [0.88, 0.90]}},
    }
    assert recipe_of("latency_pretraining", summary, "20") == "node_sum_huber"
    assert recipe_of("latency_pretraining", summary, "900") == "node_sum"  # archcast is no candidate
    summary["node_sum_huber"]["900"]["val_scores"] = [0.89, 0.90]
    assert recipe_of("latency_pretraining", summary, "900") == "node_sum"  # a tie: the first listed
    del summary["node_sum"]["20"]["val_scores"]  # scores not recorded: no guess, the first listed
    assert recipe_of("latency_pretraining", summary, "20") == "node_sum"
    del summary["node_sum"]["20"]
    assert recipe_of("latency_pretraining", summary, "20") == "node_sum_huber"  # the only candidate run at 20


def test_the_huber_variant_is_node_sum_with_the_huber_loss() -> None:
    task = TASKS["latency_pretraining"]
    plain = train_config("latency_pretraining", 900, 0, 2000, "runs/x", task["variants"]["node_sum"])
    robust = train_config("latency_pretraining", 900, 0, 2000, "runs/x", task["variants"]["node_sum_huber"])
    assert plain.huber_delta is None and robust.huber_delta == 0.1
    assert {k: v for k, v in vars(robust).items() if k != "huber_delta"} == {
        k: v for k, v in vars(plain).items() if k != "huber_delta"
    }


def test_the_accuracy_recipe_candidates_and_their_ablation_differ_only_where_named() -> None:
    task = TASKS["accuracy"]
    assert task["recipe"] == ("archcast", "node_sum_huber")
    assert {"node_sum_huber", "node_sum_huber_no_aug", "no_aug_no_consistency"} <= set(task["default_variants"])
    robust = train_config("accuracy", 781, 0, 2000, "runs/x", task["variants"]["node_sum_huber"])
    ablation = train_config("accuracy", 781, 0, 2000, "runs/x", task["variants"]["node_sum_huber_no_aug"])
    assert robust.augment and robust.consistency_weight == 0.5 and robust.huber_delta == 0.1
    assert not ablation.augment and ablation.consistency_weight == 0.0 and ablation.huber_delta == 0.1
    assert ablation.network == robust.network == {**NETWORK, "node_sum": True}
    assert ablation.pretrained == robust.pretrained is not None
    same = {"augment", "consistency_weight", "augment_until"}
    assert {k: v for k, v in vars(robust).items() if k not in same} == {
        k: v for k, v in vars(ablation).items() if k not in same
    }
    summary = {"archcast": {"781": {"val_scores": [0.90]}}, "node_sum_huber": {"781": {"val_scores": [0.91]}}}
    assert recipe_of("accuracy", summary, "781") == "node_sum_huber"
    summary["archcast"]["781"]["val_scores"] = [0.92]
    assert recipe_of("accuracy", summary, "781") == "archcast"
