"""The training loaders of every space with real tables: NB201, HELP's FBNet / OFA, NASLib's NB101 / DARTS subsets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.canonical import canonicalize
from model.tables import data_dir
from training.data import load_dataset
from training.targets import FBNET_LATENCY_TARGETS, LATENCY_TARGETS, OFA_LATENCY_TARGETS, TARGET_GROUPS, TARGETS, space_of

pytestmark = pytest.mark.skipif(not (data_dir() / "nb201").is_dir(), reason=f"benchmark tables absent at {data_dir()}")


@pytest.mark.parametrize(
    ("targets", "count", "nodes"),
    [
        (("nb101_cifar10_val_acc",), 292, 7),  # NASLib's 500 specs prune to 292 distinct cells
        (("darts_cifar10_val_acc",), 725, 28),
        (FBNET_LATENCY_TARGETS, 5000, 24),
        (OFA_LATENCY_TARGETS, 5000, 23),
    ],
)
def test_every_space_loads_with_finite_positive_targets(targets: tuple[str, ...], count: int, nodes: int) -> None:
    data = load_dataset(list(targets))
    assert len(data.indices) == count == len(set(data.arch_strs))
    assert data.encoded.op_ids.shape == (count, nodes)
    assert np.all(np.isfinite(data.y)) and np.all(data.y > 0)
    keys = {canonicalize(g).key for g in data.graphs}
    assert len(keys) > 0.95 * count  # distinct architectures stay distinct after parsing


def test_latency_targets_cover_the_three_nb201_tables() -> None:
    tables = {TARGETS[t].table for t in LATENCY_TARGETS}
    assert tables == {"nb201/latency_help_ms.csv.gz", "nb201/latency_eagle_ms.csv.gz", "nb201/latency_nnmeter_ms.csv.gz"}
    data = load_dataset(list(TARGET_GROUPS["latency"]))
    present = np.isfinite(data.y).sum(axis=0)
    nnmeter = [present[i] for i, t in enumerate(data.target_names) if t.startswith("latency_nnmeter_")]
    assert min(nnmeter) >= 1999 and max(nnmeter) <= 2000  # nn-Meter labels 2,000 cells (one value missing)
    assert present.max() == 15625 and present.min() >= 1999


def test_targets_of_two_spaces_cannot_share_a_predictor() -> None:
    with pytest.raises(ValueError, match="several spaces"):
        space_of(["latency_pixel3_ms", "fbnet_latency_pixel3_ms"])
    assert space_of(["darts_cifar10_val_acc"]) == "darts"


def test_cli_train_pretrains_on_the_whole_space_then_fine_tunes(tmp_path) -> None:
    """``archcast train --pretrain-steps``: the encoder is pre-trained on every NB201 graph, and the run starts from it."""
    torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")
    from archcast.cli import main

    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run), "--targets", "cifar10_test_acc", "--n-train", "78", "--n-val", "20",
            "--epochs", "1", "--pretrain-steps", "3", "--d-model", "16", "--layers", "1", "--heads", "2",
            "--threads", "1", "--huber-delta", "0.1"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["pretrained"] == str(run / "pretrained_encoder.pt") and config["huber_delta"] == 0.1
    saved = torch.load(run / "pretrained_encoder.pt", weights_only=False)
    assert len(saved["losses"]) == 3 and "log_flops" in saved["properties"]
    assert saved["space"] == "nb201" and saved["graphs"] == 15625 and saved["seconds"] > 0
    assert json.loads((run / "metrics_test.json").read_text())["n_test"] == 15625 - 78 - 20
    assert main(["export", "--run-dir", str(run), "--out", str(tmp_path / "out"), "--name", "tiny", "--version", "0.1.0"]) == 0
    card = json.loads((tmp_path / "out" / "tiny.card.json").read_text())  # the card says what the encoder was made with
    assert card["training"]["huber_delta"] == 0.1  # the loss it was trained on
    facts = card["training"]["pretraining"]
    assert facts["steps"] == 3 and facts["space"] == "nb201" and facts["graphs"] == 15625 and "log_flops" in facts["properties"]
    assert "selected_on_validation" not in card["training"]  # one run: nothing was chosen
    assert main(["export", "--run-dir", str(run), str(run), "--out", str(tmp_path / "out"), "--name", "two"]) == 0
    chosen = json.loads((tmp_path / "out" / "two.card.json").read_text())["training"]["selected_on_validation"]
    assert [c["run"] for c in chosen] == ["run", "run"] and chosen[0]["split"] == "nb201_train78_val20_seed0.json"


@pytest.mark.parametrize(
    ("target", "split", "arch"),
    [
        ("nb101_cifar10_val_acc", ["175", "58"], {"space": "nb101", "matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]],
                                                  "ops": ["input", "conv3x3-bn-relu", "output"]}),
        ("darts_cifar10_val_acc", ["435", "145"], {"space": "darts", "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]] * 4,
                                                   "reduce": [["max_pool_3x3", 0], ["dil_conv_5x5", 1]] * 4}),
    ],
)  # fmt: skip
def test_an_exported_nb101_or_darts_predictor_serves_its_space(tmp_path, make_client, target, split, arch) -> None:
    """Train one epoch on the real subset (committed split), export, fit the std: the service answers that space's cells."""
    pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")
    from archcast.cli import main
    from training.uncertainty import fit_uncertainty

    run, out = tmp_path / "run", tmp_path / "predictors"
    args = ["train", "--run-dir", str(run), "--targets", target, "--n-train", split[0], "--n-val", split[1], "--epochs", "1",
            "--d-model", "16", "--layers", "1", "--heads", "2", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    assert main(["export", "--run-dir", str(run), "--out", str(out), "--name", "small", "--version", "0.1.0"]) == 0
    used = {"nb101": {"conv3x3-bn-relu", "maxpool3x3"}, "darts": {"sep_conv_3x3", "add", "concat"}}[arch["space"]]
    assert set(json.loads((out / "small.card.json").read_text())["ops"]) >= used  # the card accepts the space's ops
    fit_uncertainty(out / "small.card.json")
    response = make_client(predictor_dir=out).post("/v1/predict", json={"architectures": [arch]})
    assert response.status_code == 200, response.text
    prediction = response.json()["results"][0]["predictions"][target]
    assert 0 < prediction["value"] < 100 and prediction["std"] > 0
