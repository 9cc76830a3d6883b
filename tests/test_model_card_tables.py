"""Model cards (JSON round trip, discovery) and the shared benchmark tables."""

from __future__ import annotations

import itertools
import json

import pytest

from model import tables
from model.card import ModelCard, TargetCard, find_cards
from model.ir import validate
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201


def make_card(name: str = "toy-v1") -> ModelCard:
    return ModelCard(
        name=name,
        version="1.2.3",
        spaces=["nb201", "graph"],
        ops=list(NB201_OPS),
        targets=[
            TargetCard("cifar10_acc", "%", "CIFAR-10 test accuracy", "identity", 88.5, 6.25, {"kendall_tau": 0.81}),
            TargetCard("latency_gpu", "ms", "latency on a GPU", "log", 1.5, 0.25),
        ],
        onnx_file=f"{name}.onnx",
        split={"seed": 0, "n_train": 1563},
        data_checksums={"nb201/accuracy.csv.gz": "ab" * 32},
        git_commit="0123abcd",
        created="2024-01-01T00:00:00Z",
        training={"epochs": 3, "lr": 1e-3},
    )


def test_card_json_round_trip(tmp_path):
    card = make_card()
    path = tmp_path / "toy-v1.card.json"
    path.write_text(card.to_json())
    loaded = ModelCard.load(path)
    assert loaded == card
    assert isinstance(loaded.targets[0], TargetCard)
    assert loaded.target_names == ["cifar10_acc", "latency_gpu"]
    assert loaded.targets[0].metrics == {"kendall_tau": 0.81}
    assert loaded.targets[1].metrics == {}
    data = json.loads(card.to_json())
    assert data["targets"][1]["transform"] == "log"
    assert ModelCard.from_dict(data) == card


def test_card_defaults_round_trip(tmp_path):
    card = ModelCard(name="bare", version="0", spaces=["nb201"], ops=[], targets=[], onnx_file="bare.onnx")
    path = tmp_path / "bare.card.json"
    path.write_text(card.to_json())
    assert ModelCard.load(path) == card


def test_find_cards_sorted_with_onnx_paths(tmp_path):
    for name in ("zeta", "alpha"):
        (tmp_path / f"{name}.card.json").write_text(make_card(name).to_json())
    (tmp_path / "notes.json").write_text("{}")
    found = find_cards(tmp_path)
    assert [card.name for card, _ in found] == ["alpha", "zeta"]
    assert [path for _, path in found] == [tmp_path / "alpha.onnx", tmp_path / "zeta.onnx"]
    assert find_cards(tmp_path / "missing") == []


NB201_TABLE = tables.data_dir() / "nb201" / "accuracy.csv.gz"


@pytest.mark.skipif(not NB201_TABLE.exists(), reason=f"NB201 tables not found at {NB201_TABLE}; set ARCHCAST_DATA_DIR")
def test_nb201_arch_strings_cover_the_space():
    strings = tables.nb201_arch_strings()
    assert len(strings) == 15625
    assert all(isinstance(s, str) for s in strings)
    seen = set()
    for s in strings:
        g = validate(parse_nb201(s))
        ops = tuple(g.ops[1:-1])
        assert nb201_arch_str(ops) == s
        seen.add(ops)
    assert seen == set(itertools.product(NB201_OPS, repeat=6))
    assert len(tables.file_checksum("nb201/accuracy.csv.gz")) == 64


def test_missing_table_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHCAST_DATA_DIR", str(tmp_path))
    assert tables.data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="ARCHCAST_DATA_DIR"):
        tables.table_path("nb201/accuracy.csv.gz")
