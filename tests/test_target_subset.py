"""training.target_subset: a predictor cut to some targets answers exactly those columns of the source network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import NB201_NB101_OPS, write_toy_predictor

from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201_network
from model.tokenizer import tokenize_graphs
from training.target_subset import cut_predictor, main


def test_cut_predictor_keeps_the_named_columns_in_order(tmp_path: Path) -> None:
    targets = [("acc", "%"), ("lat_a", "ms"), ("lat_b", "ms")]
    write_toy_predictor(tmp_path, "src", ["nb201"], NB201_NB101_OPS, targets, seed=5)
    main([str(tmp_path / "src.card.json"), "--name", "cut", "--version", "2.0.0", "--priority", "-3", "--unit", "ms",
          "--origin", "test"])  # fmt: skip
    card = json.loads((tmp_path / "cut.card.json").read_text())
    assert (card["name"], card["version"], card["priority"]) == ("cut", "2.0.0", -3)
    assert [t["name"] for t in card["targets"]] == ["lat_a", "lat_b"] and card["training"]["origin"] == "test"
    rng = np.random.default_rng(0)
    graphs = [parse_nb201_network(nb201_arch_str([NB201_OPS[k] for k in rng.integers(0, 5, 6)])) for _ in range(9)]
    batch = tokenize_graphs(graphs)
    feed = {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}
    full = ort.InferenceSession(str(tmp_path / "src.onnx")).run(None, feed)[0]
    cut = ort.InferenceSession(str(tmp_path / "cut.onnx")).run(None, feed)[0]
    np.testing.assert_array_equal(cut, full[:, 1:])

    reordered, model = cut_predictor(card | {"targets": json.loads((tmp_path / "src.card.json").read_text())["targets"]},
                                     onnx.load(str(tmp_path / "src.onnx")), ["lat_b", "acc"], name="r", version="1",
                                     priority=0, origin="x")  # fmt: skip
    out = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    np.testing.assert_array_equal(out, full[:, [2, 0]])
    assert [t["name"] for t in reordered["targets"]] == ["lat_b", "acc"]


def test_unknown_targets_are_refused(tmp_path: Path) -> None:
    write_toy_predictor(tmp_path, "src", ["nb201"], NB201_NB101_OPS, [("acc", "%")], seed=6)
    card = json.loads((tmp_path / "src.card.json").read_text())
    with pytest.raises(ValueError, match="top5"):
        cut_predictor(card, onnx.load(str(tmp_path / "src.onnx")), ["top5"], name="c", version="1", priority=0, origin="")
